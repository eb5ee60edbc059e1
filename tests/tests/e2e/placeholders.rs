//! Placeholder credentials end to end: a credential bound to a host (`--inject-host`) reaches
//! the agent under `frona run --net proxy` only as a placeholder; real clients inside the
//! sandbox (curl, Python's urllib and requests, Node) call the bound host through the egress
//! proxy, which terminates TLS with the session CA and swaps the placeholder for the value on
//! the requests policy permits. The upstream is a local HTTPS server with its own test CA,
//! reached under made-up names with `--proxy-resolve`.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::credentials::Dirs;
use crate::fake_http::{FakeServer, Response};
use crate::support::text;

const VALUE: &str = "ghp_PlaceholderE2eRealValue0123456789";
const BOUND: &str = "api.bound.test";
const OTHER: &str = "echo.unbound.test";

const POLICY: &str = r#"
rules:
  - name: no-admin
    http: { path: "/admin*" }
    credentials: [gh]
    effect: deny
    reason: admin calls need a human
  - name: github-api
    http: { host: api.bound.test }
    credentials: [gh]
    effect: permit
"#;

/// The fake API: echoes the credential it received (so a leak back would show), and
/// redirects to the unbound name.
fn api() -> (FakeServer, String) {
    FakeServer::start_tls_for(&[BOUND, OTHER], |request| match request.path() {
        "/redirect-away" => {
            let host = request.header("host").unwrap_or_default();
            let port = host.rsplit_once(':').map_or("443", |(_, p)| p);
            let mut r = Response::text(302, "");
            r.headers
                .push(("location".into(), format!("https://{OTHER}:{port}/landing")));
            r
        }
        _ => Response::json(
            200,
            serde_json::json!({
                "authorization": request.header("authorization"),
                "x_api_key": request.header("x-api-key"),
                "query": request.target.split_once('?').map(|(_, q)| q),
                "host": request.header("host"),
            }),
        ),
    })
}

struct Setup {
    dirs: Dirs,
    port: u16,
    /// A plain HTTP server's port the agent may reach too.
    plain_port: u16,
}

impl Setup {
    fn new(name: &str, port: u16, ca: &str) -> Self {
        let dirs = Dirs::new(&format!("placeholder-{name}"));
        dirs.store("github", VALUE);
        let bound = format!("{BOUND}:{port}");
        let register = dirs
            .cmd(&[
                "credential",
                "register",
                "--name",
                "gh",
                "--backend",
                "local",
                "--path",
                "github",
                "--env",
                "GH_TOKEN",
                "--inject-host",
                &bound,
                "--inject-query",
                "access_token",
            ])
            .output()
            .unwrap();
        assert!(register.status.success(), "{}", text(&register));
        std::fs::create_dir_all(dirs.root.join("config/policies")).unwrap();
        std::fs::write(dirs.root.join("config/policies/policy.yaml"), POLICY).unwrap();
        std::fs::write(dirs.root.join("ca.pem"), ca).unwrap();
        Self {
            dirs,
            port,
            plain_port: port,
        }
    }

    fn run(&self, script: &str) -> Output {
        let port = self.port.to_string();
        let output = self
            .dirs
            .cmd(&[
                "run",
                "--quiet",
                "--net",
                "proxy",
                "--proxy-resolve",
                &format!("{BOUND}=127.0.0.1"),
                "--proxy-resolve",
                &format!("{OTHER}=127.0.0.1"),
                "--allow-host",
                &format!("{BOUND}:{port}"),
                "--allow-host",
                &format!("{OTHER}:{port}"),
                "--allow-host",
                &format!("{OTHER}:{}", self.plain_port),
                "--allow-host",
                &format!("127.0.0.1:{}", self.plain_port),
                "--allow-host",
                &format!("127.0.0.1:{port}"),
                "--",
                "sh",
                "-c",
                script,
            ])
            .env("HOME", &self.dirs.root)
            .env("FRONA_STATE_DIR", self.dirs.root.join("state"))
            .env("XDG_RUNTIME_DIR", self.runtime())
            // What frona itself trusts for upstreams (and puts in the agent's bundle).
            .env("SSL_CERT_FILE", self.dirs.root.join("ca.pem"))
            .output()
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&output.stdout).contains(VALUE)
                && !String::from_utf8_lossy(&output.stderr).contains(VALUE),
            "the value reached the agent's output:\n{}",
            text(&output)
        );
        output
    }

    fn runtime(&self) -> PathBuf {
        let dir = self.dirs.root.join("runtime");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        dir
    }

    fn audit(&self) -> Vec<serde_json::Value> {
        let text =
            std::fs::read_to_string(self.dirs.root.join("state/audit.jsonl")).unwrap_or_default();
        assert!(!text.contains(VALUE), "the value is in the audit log");
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// The project's Python (it has `requests`, a dependency of moto), when scripts/test.sh
/// installed it.
fn venv_python() -> Option<PathBuf> {
    let moto = std::env::var_os("FRONA_TEST_MOTO_SERVER")?;
    let python = Path::new(&moto).parent()?.join("python");
    python.exists().then_some(python)
}

fn bearer_values(server: &FakeServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_owned))
        .collect()
}

#[test]
fn real_clients_get_the_value_swapped_in_and_never_see_it() {
    let (server, ca) = api();
    let setup = Setup::new("clients", server.port, &ca);
    let port = server.port;
    let url = format!("https://{BOUND}:{port}");
    let python = venv_python();
    let requests = match &python {
        Some(python) => format!(
            r#"{} -c '
import os, requests
r = requests.get("{url}/requests", headers={{"Authorization": "Bearer " + os.environ["GH_TOKEN"]}}, timeout=20)
print("requests", r.status_code, r.text)
'"#,
            python.display()
        ),
        None => "echo 'requests skipped'".to_owned(),
    };
    let script = format!(
        r#"
echo "token=$GH_TOKEN"
echo "bundle=$SSL_CERT_FILE"
curl -sS -m 20 -H "Authorization: Bearer $GH_TOKEN" {url}/curl; echo " curl=$?"
curl -sS -m 20 -u "x-access-token:$GH_TOKEN" {url}/basic; echo " basic=$?"
curl -sS -m 20 "{url}/query?access_token=$GH_TOKEN&other=$GH_TOKEN"; echo " query=$?"
python3 -c '
import os, urllib.request
req = urllib.request.Request("{url}/urllib", headers={{"X-Api-Key": os.environ["GH_TOKEN"]}})
print("urllib", urllib.request.urlopen(req, timeout=20).read().decode())
'
{requests}
node -e '
const http = require("http"), tls = require("tls");
const proxy = new URL(process.env.HTTPS_PROXY);
http.request({{host: proxy.hostname, port: proxy.port, method: "CONNECT", path: "{BOUND}:{port}"}})
  .on("connect", (res, socket) => {{
    const s = tls.connect({{socket, servername: "{BOUND}"}}, () => {{
      s.write("GET /node HTTP/1.1\r\nHost: {BOUND}\r\nAuthorization: Bearer " + process.env.GH_TOKEN + "\r\nConnection: close\r\n\r\n");
    }});
    let out = ""; s.on("data", d => out += d); s.on("end", () => console.log("node", out.split("\r\n")[0], out.includes("\"authorization\":\"[REDACTED]\"")));
    s.on("error", e => console.log("node error", e.message));
  }}).end();
'
echo "env=$(tr '\0' '\n' < /proc/self/environ | grep -c '{VALUE}')"
echo "files=$(grep -rl '{VALUE}' "$HOME" "$XDG_RUNTIME_DIR" /tmp/frona-* /dev/shm 2>/dev/null | head -3 | tr '\n' ' ')."
echo done
"#
    );
    let output = setup.run(&script);
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    let placeholder = out
        .lines()
        .find_map(|l| l.strip_prefix("token="))
        .unwrap()
        .to_owned();
    assert!(
        placeholder.starts_with("ghp_"),
        "shaped like the value: {out}"
    );
    assert_eq!(placeholder.len(), VALUE.len());
    assert_ne!(placeholder, VALUE);
    assert!(
        out.contains("bundle=") && out.contains("ca-bundle.pem"),
        "{out}"
    );
    for client in [
        "curl=0",
        "basic=0",
        "query=0",
        "urllib {",
        "node HTTP/1.1 200 X true",
    ] {
        assert!(out.contains(client), "{client}: {out}");
    }
    // The server got the value from every client; the agent got it back redacted.
    let got = bearer_values(&server);
    assert!(
        got.iter()
            .filter(|v| v.as_str() == format!("Bearer {VALUE}"))
            .count()
            >= 2 + usize::from(python.is_some()),
        "{got:?}"
    );
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("x-access-token:{VALUE}"),
    );
    assert!(got.contains(&format!("Basic {basic}")), "{got:?}");
    let requests = server.requests();
    let urllib = requests.iter().find(|r| r.path() == "/urllib").unwrap();
    assert_eq!(urllib.header("x-api-key"), Some(VALUE));
    let query = requests.iter().find(|r| r.path() == "/query").unwrap();
    assert_eq!(
        query.target,
        format!("/query?access_token={VALUE}&other={placeholder}"),
        "only the named parameter is swapped"
    );
    assert!(
        out.contains("[REDACTED]"),
        "the echo came back redacted: {out}"
    );
    assert!(out.contains("env=0\n"), "{out}");
    assert!(
        out.contains("files=.\n"),
        "no file the agent can read has the value: {out}"
    );
    assert!(out.trim_end().ends_with("done"), "{out}");
    // Audited as calls, permitted by the rule.
    let audit = setup.audit();
    let calls: Vec<_> = audit
        .iter()
        .filter(|r| r["kind"] == "http" && r["via"] == "placeholder")
        .collect();
    // curl three ways, urllib, node, and requests when the venv has it.
    let expected = if python.is_some() { 6 } else { 5 };
    assert!(calls.len() >= expected, "{out}\n{calls:#?}");
    assert!(
        calls
            .iter()
            .all(|r| r["decision"] == "permit" && r["rule"] == "github-api")
    );
    // Each terminated tunnel's end is recorded too, with what it carried.
    let closed: Vec<_> = audit
        .iter()
        .filter(|r| r["kind"] == "egress-close" && r["terminated"] == true)
        .collect();
    assert!(closed.len() >= expected, "{closed:#?}");
    assert!(
        closed.iter().all(|r| r["host"] == BOUND
            && r["bytes_up"].as_u64() > Some(0)
            && r["bytes_down"].as_u64() > Some(0)),
        "{closed:#?}"
    );
}

#[test]
fn a_denied_path_an_unbound_host_and_a_redirect_get_no_value() {
    let (server, ca) = api();
    let mut setup = Setup::new("refusals", server.port, &ca);
    let port = server.port;
    let plain = FakeServer::start(|request| {
        Response::text(200, request.header("authorization").unwrap_or_default())
    });
    setup.plain_port = plain.port;
    let script = format!(
        r#"
curl -sS -m 20 -i -H "Authorization: Bearer $GH_TOKEN" https://{BOUND}:{port}/admin/users | tr -d '\r' | grep -Ei '^(HTTP|x-frona-error)'
curl -sS -m 20 -H "Authorization: Bearer $GH_TOKEN" https://{OTHER}:{port}/elsewhere; echo
curl -sS -m 20 -L --location-trusted -H "Authorization: Bearer $GH_TOKEN" https://{BOUND}:{port}/redirect-away; echo
curl -sS -m 20 -H "Authorization: Bearer $GH_TOKEN" http://{OTHER}:{plain}/plain; echo
curl -sS -m 20 -A "reflect-me $GH_TOKEN" https://{BOUND}:{port}/user-agent; echo
curl -sS -m 20 -i -H "Connection: Upgrade" -H "Upgrade: websocket" -H "Authorization: Bearer $GH_TOKEN" https://{BOUND}:{port}/socket | tr -d '\r' | grep -Ei '^(HTTP|x-frona-error)'
"#,
        plain = plain.port
    );
    let output = setup.run(&script);
    let out = text(&output);
    assert!(out.contains("HTTP/1.1 403"), "{out}");
    assert!(out.contains("HTTP/1.1 501"), "{out}");
    assert!(out.contains("x-frona-error: upgrade refused"), "{out}");
    assert!(
        out.contains("x-frona-error: denied by rule \"no-admin\""),
        "{out}"
    );
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.path() != "/admin/users" && r.path() != "/socket"),
        "a denied request and a refused upgrade never leave"
    );
    // The unbound host, the redirect's target and plain HTTP got the placeholder, not the value.
    for path in ["/elsewhere", "/landing"] {
        let request = requests
            .iter()
            .find(|r| r.path() == path)
            .unwrap_or_else(|| panic!("{path}: {out}"));
        let auth = request.header("authorization").unwrap();
        assert!(
            auth.starts_with("Bearer ghp_") && !auth.contains(VALUE),
            "{path}: {auth}"
        );
    }
    let redirect = requests
        .iter()
        .find(|r| r.path() == "/redirect-away")
        .unwrap();
    assert_eq!(
        redirect.header("authorization"),
        Some(format!("Bearer {VALUE}").as_str())
    );
    let ua = requests.iter().find(|r| r.path() == "/user-agent").unwrap();
    assert!(
        ua.header("user-agent")
            .unwrap()
            .starts_with("reflect-me ghp_"),
        "a header the binding does not name is never swapped"
    );
    assert!(
        !requests
            .iter()
            .any(|r| r.headers.values().any(|v| v.contains(VALUE)) && r.path() != "/redirect-away"),
        "only the permitted request carried the value"
    );
    let plain_auth = plain
        .requests()
        .first()
        .unwrap_or_else(|| panic!("{out}"))
        .header("authorization")
        .unwrap()
        .to_owned();
    assert!(!plain_auth.contains(VALUE) && plain_auth.starts_with("Bearer ghp_"));
    let audit = setup.audit();
    assert!(
        audit
            .iter()
            .any(|r| r["kind"] == "http" && r["decision"] == "deny" && r["rule"] == "no-admin"),
        "{audit:#?}"
    );
    for scheme in ["http", "https"] {
        assert!(
            audit.iter().any(|r| r["kind"] == "placeholder-unbound"
                && r["scheme"] == scheme
                && r["credential"] == "gh"),
            "{scheme}: {audit:#?}"
        );
    }
}

#[test]
fn without_the_egress_proxy_the_agent_gets_no_placeholder_and_is_told() {
    let (server, ca) = api();
    let setup = Setup::new("host-net", server.port, &ca);
    let output = setup
        .dirs
        .cmd(&["run", "--", "sh", "-c", "echo \"token=${GH_TOKEN:-unset}\""])
        .env("GH_TOKEN", VALUE)
        .env("FRONA_STATE_DIR", setup.dirs.root.join("state"))
        .env("XDG_RUNTIME_DIR", setup.runtime())
        .output()
        .unwrap();
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(
        out.contains("token=unset"),
        "scrubbed, and no placeholder: {out}"
    );
    assert!(
        out.contains("credential `gh` is bound to hosts; the agent gets its placeholder only under --net proxy"),
        "{out}"
    );
}

//! The egress proxy driven directly over its Unix socket: CONNECT tunnels, plain HTTP
//! forwarding, and each refusal (host not allowed, deny rule, loopback and metadata addresses,
//! callers outside the agent's tree), with the audit records they leave.

use std::collections::HashMap;
use std::future::Future;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{IpAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::pin::Pin;

use frona_policy::PolicySet;
use frona_policy::network::HostPattern;

use super::*;
use crate::http::ERROR_HEADER;

#[derive(Debug, Default)]
struct FakeResolver(HashMap<String, Vec<IpAddr>>);

impl Resolve for FakeResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        _port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>> {
        let found = self.0.get(host).cloned();
        Box::pin(async move {
            found.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such host"))
        })
    }
}

struct Fixture {
    dir: PathBuf,
    socket: PathBuf,
    broker: Broker,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A broker with `policy` plus `allow` as `--allow-host`, whose agent root is `root` (this
/// test process by default), serving the egress proxy with `names` as its DNS.
fn fixture(
    name: &str,
    policy: &str,
    allow: &[String],
    names: &[(&str, &[&str])],
    root: Option<i32>,
) -> Fixture {
    let dir = std::env::temp_dir().join(format!("frona-egress-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut policy = PolicySet::load([("net.yaml", policy)]).unwrap();
    policy.allow_hosts(
        "--allow-host",
        allow
            .iter()
            .map(|p| HostPattern::parse(p).unwrap())
            .collect(),
    );
    let broker = crate::testing::broker(
        &dir,
        policy,
        HashMap::new(),
        root.unwrap_or(std::process::id() as i32),
    );
    let resolver = FakeResolver(
        names
            .iter()
            .map(|(n, ips)| {
                (
                    n.to_string(),
                    ips.iter().map(|i| i.parse().unwrap()).collect(),
                )
            })
            .collect(),
    );
    let socket = dir.join("egress.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    listener.set_nonblocking(true).unwrap();
    let egress = Arc::new(Egress::new(broker.clone(), Arc::new(resolver)));
    broker.runtime().spawn(async move {
        let listener = tokio::net::UnixListener::from_std(listener).unwrap();
        serve(egress, listener).await;
    });
    Fixture {
        dir,
        socket,
        broker,
    }
}

impl Fixture {
    /// Sends `request` and reads the response head; returns the stream for what follows.
    fn send(&self, request: &str) -> (String, BufReader<UnixStream>) {
        let mut stream = UnixStream::connect(&self.socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        (head, reader)
    }

    /// A request refused with 403: returns the `x-frona-error` header and the body.
    fn refused(&self, request: &str) -> (String, String) {
        let (head, mut rest) = self.send(request);
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
        let error = header(&head, ERROR_HEADER).unwrap_or_default();
        let mut body = String::new();
        rest.read_to_string(&mut body).unwrap();
        (error, body)
    }

    fn audit(&self) -> Vec<serde_json::Value> {
        self.broker.finish();
        frona_broker::audit::read(&self.dir.join("audit.jsonl")).unwrap()
    }
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

/// An echo server on 127.0.0.1 (one connection at a time).
fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut writer = stream.try_clone().unwrap();
            let mut reader = stream;
            let _ = std::io::copy(&mut reader, &mut writer);
        }
    });
    port
}

/// An HTTP server that answers every request with its request line and headers as the body.
fn http_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut seen = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                seen.push_str(&line);
            }
            let mut out = stream;
            let _ = write!(
                out,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\nkeep-alive: timeout=5\r\n\r\n{seen}",
                seen.len()
            );
        }
    });
    port
}

#[test]
fn connect_tunnels_to_a_checked_address_and_is_audited() {
    let port = echo_server();
    let f = fixture(
        "connect",
        "",
        &[
            format!("echo.test.example:{port}"),
            format!("127.0.0.1:{port}"),
        ],
        // One address that is not allowed, one that is: only the checked one is used.
        &[("echo.test.example", &["10.9.9.9", "127.0.0.1"])],
        None,
    );
    let (head, mut tunnel) = f.send(&format!(
        "CONNECT echo.test.example:{port} HTTP/1.1\r\nHost: echo.test.example:{port}\r\n\r\n"
    ));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    tunnel
        .get_mut()
        .write_all(b"ping through the tunnel\n")
        .unwrap();
    let mut line = String::new();
    tunnel.read_line(&mut line).unwrap();
    assert_eq!(line, "ping through the tunnel\n");
    drop(tunnel);
    let audit = f.audit();
    let record = audit
        .iter()
        .find(|r| r["kind"] == "egress")
        .expect("an egress record");
    assert_eq!(record["method"], "CONNECT");
    assert_eq!(record["host"], "echo.test.example");
    assert_eq!(record["port"], port);
    assert_eq!(record["decision"], "permit");
    assert_eq!(record["rule"], "--allow-host");
    assert_eq!(record["addresses"], serde_json::json!(["127.0.0.1"]));
    assert!(record["skipped"].as_str().unwrap().contains("10.9.9.9"));
    assert_eq!(record["peer_pid"], std::process::id());
    assert!(record.get("path").is_none(), "no path for CONNECT");
}

/// A tunnel that closes leaves `kind: egress-close` with the bytes each way.
#[test]
fn a_closed_tunnel_is_audited_with_its_byte_counts() {
    let port = echo_server();
    let f = fixture(
        "close",
        "",
        &[
            format!("echo.test.example:{port}"),
            format!("127.0.0.1:{port}"),
        ],
        &[("echo.test.example", &["127.0.0.1"])],
        None,
    );
    let (head, mut tunnel) = f.send(&format!(
        "CONNECT Echo.Test.Example:{port} HTTP/1.1\r\nHost: echo.test.example:{port}\r\n\r\n"
    ));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let sent = b"twenty-three bytes out\n";
    tunnel.get_mut().write_all(sent).unwrap();
    let mut line = String::new();
    tunnel.read_line(&mut line).unwrap();
    assert_eq!(line.as_bytes(), sent);
    tunnel
        .get_mut()
        .shutdown(std::net::Shutdown::Write)
        .unwrap();
    let mut rest = Vec::new();
    tunnel.read_to_end(&mut rest).unwrap();
    drop(tunnel);
    // The record is written when the copy ends, after the client has seen the close.
    let close = wait_for(|| f.audit().into_iter().find(|r| r["kind"] == "egress-close"));
    assert_eq!(close["host"], "echo.test.example");
    assert_eq!(close["port"], port);
    assert_eq!(close["bytes_up"], sent.len());
    assert_eq!(close["bytes_down"], sent.len());
    assert!(close["duration_ms"].as_u64().is_some(), "{close}");
    assert_eq!(close["peer_pid"], std::process::id());
    assert!(close.get("error").is_none(), "{close}");
}

/// `found()` once it is `Some`, trying for up to 10 s.
fn wait_for<T>(mut found: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = found() {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "not within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const POLICY: &str = r#"
network:
  - name: test-hosts
    allow: ["*.test.example"]
  - name: no-secret
    deny: secret.test.example
"#;

#[test]
fn refusals_name_the_rule_or_say_not_allowed() {
    let port = echo_server();
    let f = fixture(
        "refusals",
        POLICY,
        &[format!("localhost:{port}")],
        &[
            ("secret.test.example", &["93.184.215.14"]),
            ("loop.test.example", &["127.0.0.1"]),
            ("meta.test.example", &["169.254.169.254"]),
            ("localhost", &["127.0.0.1", "::1"]),
        ],
        None,
    );
    let connect = |host: &str| format!("CONNECT {host} HTTP/1.1\r\nHost: {host}\r\n\r\n");

    let (error, body) = f.refused(&connect("example.com:443"));
    assert_eq!(error, "not allowed");
    assert!(body.contains("`example.com` is not allowed"), "{body}");

    let (error, body) = f.refused(&connect("secret.test.example:443"));
    assert_eq!(
        error, "denied by rule \"no-secret\"",
        "deny beats the wildcard allow"
    );
    assert!(body.contains("no-secret"), "{body}");

    let (error, body) = f.refused(&connect("loop.test.example:443"));
    assert_eq!(error, "not allowed");
    assert!(body.contains("resolves to 127.0.0.1 (loopback)"), "{body}");

    let (_, body) = f.refused(&connect("meta.test.example:443"));
    assert!(body.contains("cloud metadata"), "{body}");

    let (error, body) = f.refused(&connect("169.254.169.254:80"));
    assert_eq!(error, "not allowed");
    assert!(body.contains("169.254.169.254"), "{body}");

    // Allowed by name, but the name is loopback: the address must be allowed too.
    let (error, body) = f.refused(&connect(&format!("localhost:{port}")));
    assert_eq!(error, "not allowed");
    assert!(
        body.contains(&format!("--allow-host 127.0.0.1:{port}")),
        "{body}"
    );

    let (error, _) =
        f.refused("GET http://example.com/secret?token=x HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(error, "not allowed");

    let audit = f.audit();
    let denied: Vec<_> = audit
        .iter()
        .filter(|r| r["kind"] == "egress" && r["decision"] == "deny")
        .collect();
    assert_eq!(denied.len(), 7, "{audit:#?}");
    assert_eq!(denied[1]["rule"], "no-secret");
    assert_eq!(denied[6]["method"], "GET");
    assert_eq!(denied[6]["path"], "/secret", "the path without its query");
}

#[test]
fn plain_http_is_forwarded_with_the_decided_host() {
    let port = http_server();
    let f = fixture(
        "plain",
        "",
        &[
            format!("web.test.example:{port}"),
            format!("127.0.0.1:{port}"),
        ],
        &[("web.test.example", &["127.0.0.1"])],
        None,
    );
    let (head, mut rest) = f.send(&format!(
        "GET http://web.test.example:{port}/a/b?q=1 HTTP/1.1\r\nHost: evil.example\r\n\
         Proxy-Authorization: Basic eDp5\r\nProxy-Connection: keep-alive\r\nX-Kept: yes\r\n\
         Connection: close\r\n\r\n"
    ));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        header(&head, "keep-alive").is_none(),
        "hop-by-hop dropped: {head}"
    );
    let mut body = String::new();
    rest.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("GET /a/b?q=1 HTTP/1.1\r\n"), "{body}");
    assert_eq!(
        header(&body, "host").as_deref(),
        Some(format!("web.test.example:{port}").as_str())
    );
    assert_eq!(header(&body, "x-kept").as_deref(), Some("yes"));
    assert!(header(&body, "proxy-authorization").is_none(), "{body}");
    assert!(header(&body, "proxy-connection").is_none(), "{body}");
}

#[test]
fn requests_that_are_not_for_a_forward_proxy_are_refused() {
    let f = fixture("forms", "", &[], &[], None);
    for request in [
        "GET /path HTTP/1.1\r\nHost: example.com\r\n\r\n",
        "GET https://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
        "CONNECT example.com HTTP/1.1\r\nHost: example.com\r\n\r\n",
        "CONNECT exa%20mple.com:443 HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let (head, _) = f.send(request);
        assert!(head.starts_with("HTTP/1.1 400"), "{request}: {head}");
    }
}

#[test]
fn callers_outside_the_agent_tree_are_refused() {
    let port = echo_server();
    let f = fixture("outsider", "", &[format!("127.0.0.1:{port}")], &[], Some(0));
    let (error, body) = f.refused(&format!(
        "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    ));
    assert_eq!(error, "not allowed");
    assert!(
        body.contains("not part of the agent's process tree"),
        "{body}"
    );
}

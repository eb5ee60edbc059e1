//! The real `moto` AWS emulator (installed into `.venv` by `scripts/test.sh`): started on a free
//! port, waited for, killed on drop. Tests skip when it is missing, except under CI.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    /// The server from `FRONA_TEST_MOTO_SERVER` or the workspace's `.venv`; `None` (the test
    /// says it skips) when there is none outside CI.
    pub fn start() -> Option<Moto> {
        let path = std::env::var("FRONA_TEST_MOTO_SERVER").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/moto_server").to_owned()
        });
        if !std::path::Path::new(&path).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "moto is missing under CI: run scripts/test.sh"
            );
            eprintln!("SKIPPED: no moto server at {path}; scripts/test.sh installs it");
            return None;
        }
        let mut child = Command::new(&path)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let port = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                line.split("Running on http://127.0.0.1:")
                    .nth(1)
                    .and_then(|p| p.trim().parse().ok())
            })
            .expect("moto did not report its port");
        std::thread::spawn(move || for _ in lines {});
        let moto = Moto { child, port };
        let started = Instant::now();
        while !moto
            .raw("GET", "/moto-api/", &[], "")
            .starts_with("HTTP/1.1 200")
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "moto not ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(moto)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One raw HTTP request; returns the whole response.
    pub fn raw(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return String::new();
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        let _ = stream.write_all(request.as_bytes());
        let mut out = String::new();
        let _ = stream.read_to_string(&mut out);
        out
    }

    /// A Secrets Manager call in its JSON protocol (moto does not check signatures).
    pub fn secretsmanager(&self, action: &str, body: serde_json::Value) -> String {
        let target = format!("secretsmanager.{action}");
        self.raw(
            "POST",
            "/",
            &[
                ("X-Amz-Target", &target),
                ("Content-Type", "application/x-amz-json-1.1"),
                ("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20261125/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=0"),
            ],
            &body.to_string(),
        )
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

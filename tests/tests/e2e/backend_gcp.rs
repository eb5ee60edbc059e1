//! Google Secret Manager through the official client in frona, against a fake server speaking
//! its REST API (`/v1/{name}:access`, base64 payloads, Google error envelopes).

use std::process::Output;

use base64_payload::encode;
use serde_json::json;

use crate::credentials::{Dirs, fingerprint};
use crate::fake_http::{FakeServer, Request, Response};
use crate::support::text;

const TOKEN: &str = "ya29.frona-test-access-token";
const VALUE: &str = "gcp-secret-value-0123456789";

mod base64_payload {
    /// Standard base64 with padding (the API's `bytes` encoding).
    pub fn encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

fn google_error(status: u16, code: &str) -> Response {
    Response::json(
        status,
        json!({"error": {"code": status, "message": "fake", "status": code}}),
    )
}

fn secret_manager(request: &Request) -> Response {
    if request.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
        return google_error(401, "UNAUTHENTICATED");
    }
    match request.path() {
        "/v1/projects/p1/secrets" => {
            Response::json(200, json!({"secrets": [], "nextPageToken": ""}))
        }
        "/v1/projects/p1/secrets/stripe/versions/latest:access" => Response::json(
            200,
            json!({"name": "projects/123/secrets/stripe/versions/7", "payload": {"data": encode(VALUE.as_bytes())}}),
        ),
        "/v1/projects/p1/secrets/stripe/versions/3:access" => {
            Response::json(200, json!({"payload": {"data": encode(b"old-value")}}))
        }
        "/v1/projects/p1/secrets/db/versions/latest:access" => Response::json(
            200,
            json!({"payload": {"data": encode(br#"{"user":"app","password":"db-pass-gcp"}"#)}}),
        ),
        "/v1/projects/p1/secrets/denied/versions/latest:access" => {
            google_error(403, "PERMISSION_DENIED")
        }
        "/v1/projects/p1/secrets/boom/versions/latest:access" => Response::text(500, "oops"),
        _ => google_error(404, "NOT_FOUND"),
    }
}

#[test]
fn gcp_secret_manager_round_trip_and_errors() {
    let dirs = Dirs::new("gcp");
    let server = FakeServer::start(secret_manager);
    let run = |token: &str, args: &[&str]| -> Output {
        dirs.cmd(args)
            .env("GOOGLE_CLOUD_PROJECT", "p1")
            .env("FRONA_CREDENTIAL_GCP_ENDPOINT", server.url())
            .env("FRONA_CREDENTIAL_GCP_ACCESS_TOKEN", token)
            .output()
            .unwrap()
    };
    for (name, path, extra) in [
        ("stripe", "stripe", vec![]),
        ("stripe-v3", "stripe", vec!["--secret-version", "3"]),
        ("db", "db", vec!["--field", "password"]),
        ("denied", "denied", vec![]),
        ("boom", "boom", vec![]),
        ("missing", "projects/p1/secrets/missing", vec![]),
    ] {
        let mut args = vec![
            "credential",
            "register",
            "--name",
            name,
            "--backend",
            "gcp",
            "--path",
            path,
        ];
        args.extend(extra);
        assert!(dirs.cmd(&args).output().unwrap().status.success());
    }
    for (name, value) in [
        ("stripe", VALUE),
        ("stripe-v3", "old-value"),
        ("db", "db-pass-gcp"),
    ] {
        let output = run(TOKEN, &["credential", "test", "--name", name]);
        assert!(
            text(&output).contains(&fingerprint(value)),
            "{name}: {}",
            text(&output)
        );
        assert!(!text(&output).contains(value) && !text(&output).contains(TOKEN));
    }
    for (name, token, expected) in [
        ("denied", TOKEN, "gcp: access to `denied` denied"),
        ("boom", TOKEN, "gcp: server error (HTTP 500)"),
        (
            "missing",
            TOKEN,
            "gcp: `projects/p1/secrets/missing` not found",
        ),
        ("stripe", "wrong", "gcp: authentication failed"),
    ] {
        let output = run(token, &["credential", "test", "--name", name]);
        assert_eq!(output.status.code(), Some(1), "{name}: {}", text(&output));
        assert!(
            text(&output).contains(expected),
            "{name}: {}",
            text(&output)
        );
        assert!(!text(&output).contains(TOKEN));
    }
    let health = run(TOKEN, &["credential", "health"]);
    assert!(
        health.status.success() && text(&health).contains("gcp\thealthy"),
        "{}",
        text(&health)
    );
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.path() == "/v1/projects/p1/secrets/stripe/versions/3:access")
    );
}

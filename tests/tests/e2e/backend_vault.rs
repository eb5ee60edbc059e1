//! Vault through the real `vaultrs` client in frona, against a fake Vault speaking the HTTP API
//! as Vault documents it (envelopes, `X-Vault-Token`, KV v2, token create/revoke, leases).

use std::collections::HashMap;
use std::process::Output;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::credentials::{Dirs, fingerprint};
use crate::fake_http::{FakeServer, Request, Response};
use crate::support::text;

pub const ROOT: &str = "hvs.frona-test-root-token";
const VALUE: &str = "sk_live_VaultKvValue0123456789abcdef";
const ROTATED: &str = "sk_live_VaultRotated9876543210fedcba";
const ROLE_ID: &str = "role-1234";
const SECRET_ID: &str = "secret-id-5678-abcdef";
const APPROLE_TOKEN: &str = "hvs.approle-login-token";

#[derive(Default)]
pub struct State {
    kv: HashMap<String, Vec<Value>>,
    pub revoked_accessors: Vec<String>,
    revoked_leases: Vec<String>,
}

impl State {
    /// Stores a new version of KV secret `key`.
    pub fn kv_insert(&mut self, key: &str, data: Value) {
        self.kv.entry(key.into()).or_default().push(data);
    }
}

fn envelope(data: Value) -> Value {
    json!({"request_id": "r", "lease_id": "", "lease_duration": 0, "renewable": false, "data": data, "warnings": null})
}

fn auth(token: &str, accessor: &str, ttl: u64) -> Value {
    json!({"request_id": "r", "lease_id": "", "lease_duration": 0, "renewable": false, "data": null,
           "auth": {"client_token": token, "accessor": accessor, "policies": ["default"], "token_policies": ["default"],
                    "metadata": null, "lease_duration": ttl, "renewable": false, "entity_id": "", "token_type": "service", "orphan": false}})
}

fn error(status: u16, message: &str) -> Response {
    Response::json(status, json!({"errors": [message]}))
}

pub fn vault(request: &Request, state: &Mutex<State>) -> Response {
    let mut state = state.lock().unwrap();
    let path = request.path();
    if path == "/v1/sys/health" {
        return Response::json(
            200,
            json!({"initialized": true, "sealed": false, "standby": false, "performance_standby": false,
            "replication_performance_mode": "disabled", "replication_dr_mode": "disabled", "server_time_utc": 1_700_000_000, "version": "1.15.0"}),
        );
    }
    if path == "/v1/auth/approle/login" {
        let body = request.json();
        return if body["role_id"] == ROLE_ID && body["secret_id"] == SECRET_ID {
            Response::json(200, auth(APPROLE_TOKEN, "acc-approle", 3600))
        } else {
            error(400, "invalid role or secret ID")
        };
    }
    if request.header("x-vault-request") != Some("true") {
        return error(400, "missing X-Vault-Request");
    }
    let token = request.header("x-vault-token").unwrap_or("");
    if token != ROOT && token != APPROLE_TOKEN {
        return error(403, "permission denied");
    }
    match (request.method.as_str(), path) {
        ("GET", "/v1/auth/token/lookup-self") => Response::json(
            200,
            envelope(json!({
            "accessor": "acc-root", "creation_time": 1, "creation_ttl": 0, "display_name": "root", "entity_id": "",
            "expire_time": null, "explicit_max_ttl": 0, "id": token, "meta": null, "num_uses": 0, "orphan": true,
            "path": "auth/token/root", "policies": ["root"], "ttl": 0})),
        ),
        ("GET", p) if p.starts_with("/v1/secret/data/") => {
            let key = p.trim_start_matches("/v1/secret/data/");
            if key == "broken" {
                return Response::text(500, "internal error");
            }
            let Some(versions) = state.kv.get(key) else {
                return Response::json(404, json!({"errors": []}));
            };
            let version = request
                .query("version")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(versions.len());
            let Some(data) = versions.get(version.wrapping_sub(1)) else {
                return Response::json(404, json!({"errors": []}));
            };
            Response::json(
                200,
                envelope(
                    json!({"data": data, "metadata": {"created_time": "2026-11-25T00:00:00Z",
                "custom_metadata": null, "deletion_time": "", "destroyed": false, "version": version}}),
                ),
            )
        }
        ("POST" | "PUT", p) if p.starts_with("/v1/secret/data/") => {
            let key = p.trim_start_matches("/v1/secret/data/").to_owned();
            let data = request.json()["data"].clone();
            let versions = state.kv.entry(key).or_default();
            versions.push(data);
            Response::json(
                200,
                envelope(
                    json!({"created_time": "2026-11-25T00:00:00Z", "custom_metadata": null,
                "deletion_time": "", "destroyed": false, "version": versions.len()}),
                ),
            )
        }
        ("POST", "/v1/auth/token/create") => {
            let body = request.json();
            if body["ttl"] != "60s"
                || body["num_uses"] != 1
                || body["policies"] != json!(["stripe-read"])
            {
                return error(400, "unexpected token request");
            }
            Response::json(200, auth("hvs.child-token-abc", "acc-child-1", 60))
        }
        ("POST", "/v1/auth/token/revoke-accessor") => {
            state
                .revoked_accessors
                .push(request.json()["accessor"].as_str().unwrap_or("").to_owned());
            Response::text(204, "")
        }
        ("GET", "/v1/database/creds/readonly") => Response::json(
            200,
            json!({"request_id": "r", "lease_id": "database/creds/readonly/lease-1",
            "renewable": true, "lease_duration": 300, "data": {"username": "v-ro-1", "password": "db-pass-xyz"}}),
        ),
        ("PUT", "/v1/sys/leases/revoke") => {
            state
                .revoked_leases
                .push(request.json()["lease_id"].as_str().unwrap_or("").to_owned());
            Response::text(204, "")
        }
        _ => Response::json(404, json!({"errors": []})),
    }
}

fn quiet(output: &Output) {
    for secret in [
        ROOT,
        VALUE,
        ROTATED,
        SECRET_ID,
        APPROLE_TOKEN,
        "hvs.child-token-abc",
        "db-pass-xyz",
    ] {
        assert!(
            !text(output).contains(secret),
            "secret in output: {}",
            text(output)
        );
    }
}

#[test]
fn vault_kv2_token_and_approle() {
    let dirs = Dirs::new("vault");
    let state = Arc::new(Mutex::new(State::default()));
    state.lock().unwrap().kv.insert(
        "stripe/api-key".into(),
        vec![
            json!({"value": "sk_live_old"}),
            json!({"value": VALUE, "note": "n"}),
        ],
    );
    let shared = Arc::clone(&state);
    let server = FakeServer::start(move |r| vault(r, &shared));
    let token_file = dirs.root.join("vault-token");
    std::fs::write(&token_file, format!("{ROOT}\n")).unwrap();
    let run = |args: &[&str]| -> Output {
        let mut cmd = dirs.cmd(args);
        cmd.env("VAULT_ADDR", server.url()).env("VAULT_TOKEN", ROOT);
        cmd.output().unwrap()
    };
    let register = |name: &str, path: &str, extra: &[&str]| {
        let mut args = vec![
            "credential",
            "register",
            "--name",
            name,
            "--backend",
            "vault",
            "--path",
            path,
        ];
        args.extend_from_slice(extra);
        assert!(dirs.cmd(&args).output().unwrap().status.success());
    };
    register(
        "stripe",
        "secret/data/stripe/api-key",
        &["--field", "value"],
    );
    register(
        "stripe-v1",
        "secret/data/stripe/api-key",
        &["--field", "value", "--secret-version", "1"],
    );
    register("no-field", "secret/data/stripe/api-key", &[]);
    register("missing", "secret/data/nope", &[]);
    register("broken", "secret/data/broken", &["--field", "value"]);

    let ok = run(&["credential", "test", "--name", "stripe"]);
    quiet(&ok);
    assert!(text(&ok).contains(&fingerprint(VALUE)), "{}", text(&ok));
    assert!(
        text(&run(&["credential", "test", "--name", "stripe-v1"]))
            .contains(&fingerprint("sk_live_old"))
    );
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.target == "/v1/secret/data/stripe/api-key?version=1"),
        "pinned version on the wire"
    );
    assert!(
        requests
            .iter()
            .filter(|r| r.path() != "/v1/sys/health")
            .all(|r| r.header("x-vault-token") == Some(ROOT))
    );

    for (name, expected) in [
        ("no-field", "holds several keys; register it with --field"),
        ("missing", "vault: `secret/data/nope` not found"),
        ("broken", "vault: server error (HTTP 500)"),
    ] {
        let output = run(&["credential", "test", "--name", name]);
        assert_eq!(output.status.code(), Some(1), "{name}: {}", text(&output));
        assert!(
            text(&output).contains(expected),
            "{name}: {}",
            text(&output)
        );
        quiet(&output);
    }
    let denied = dirs
        .cmd(&["credential", "test", "--name", "stripe"])
        .env("VAULT_ADDR", server.url())
        .env("VAULT_TOKEN", "hvs.wrong")
        .output()
        .unwrap();
    assert!(
        text(&denied).contains("vault: access to `secret/data/stripe/api-key` denied"),
        "{}",
        text(&denied)
    );

    // The token from a file (--vault-token-file) instead of the environment.
    let from_file = dirs
        .cmd(&[
            "credential",
            "test",
            "--name",
            "stripe",
            "--vault-token-file",
            token_file.to_str().unwrap(),
        ])
        .env("VAULT_ADDR", server.url())
        .output()
        .unwrap();
    assert!(from_file.status.success(), "{}", text(&from_file));

    // Rotation writes a new KV version with the field replaced and the other keys kept.
    let mut rotate = dirs.cmd(&["credential", "rotate", "--name", "stripe"]);
    rotate
        .env("VAULT_ADDR", server.url())
        .env("VAULT_TOKEN", ROOT)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = rotate.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), ROTATED.as_bytes()).unwrap();
    let rotated = child.wait_with_output().unwrap();
    assert!(
        rotated.status.success() && text(&rotated).contains("(version 3)"),
        "{}",
        text(&rotated)
    );
    assert_eq!(
        state.lock().unwrap().kv["stripe/api-key"][2],
        json!({"value": ROTATED, "note": "n"})
    );

    // AppRole: login once, then reads carry the login's token.
    let approle = dirs
        .cmd(&["credential", "test", "--name", "stripe"])
        .env("VAULT_ADDR", server.url())
        .env("VAULT_ROLE_ID", ROLE_ID)
        .env("VAULT_SECRET_ID", SECRET_ID)
        .output()
        .unwrap();
    quiet(&approle);
    assert!(
        text(&approle).contains(&fingerprint(ROTATED)),
        "{}",
        text(&approle)
    );
    let bad_login = dirs
        .cmd(&["credential", "test", "--name", "stripe"])
        .env("VAULT_ADDR", server.url())
        .env("VAULT_ROLE_ID", ROLE_ID)
        .env("VAULT_SECRET_ID", "wrong")
        .output()
        .unwrap();
    assert!(
        text(&bad_login).contains("vault: authentication failed"),
        "{}",
        text(&bad_login)
    );

    let health = run(&["credential", "health"]);
    assert!(
        health.status.success() && text(&health).contains("vault\thealthy"),
        "{}",
        text(&health)
    );
}

/// Short-lived credentials: a child token (ttl, uses, policies) and a leased dynamic secret,
/// each revoked afterwards; driven through the library, as the broker will.
#[test]
fn vault_child_tokens_and_leases_are_revoked() {
    use frona_backends::{Backend as _, IssueRequest, Revocation, SecretRef};
    let state = Arc::new(Mutex::new(State::default()));
    let shared = Arc::clone(&state);
    let server = FakeServer::start(move |r| vault(r, &shared));
    let vault = frona_backends::vault::Vault::new(
        frona_backends::vault::VaultConfig {
            addr: server.url(),
            auth: frona_backends::vault::VaultAuth::Token(frona_backends::Secret::from_string(
                ROOT.into(),
            )),
            namespace: None,
        },
        frona_backends::Limits::default(),
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let request = IssueRequest {
            ttl: std::time::Duration::from_secs(60),
            uses: Some(1),
            policies: vec!["stripe-read".into()],
            ..IssueRequest::default()
        };
        let token = SecretRef {
            path: "auth/token/create",
            field: None,
            version: None,
        };
        let issued = vault.issue(&token, &request).await.unwrap();
        assert_eq!(issued.values[0].1.expose(), b"hvs.child-token-abc");
        assert_eq!(
            issued.revocation,
            Revocation::VaultTokenAccessor("acc-child-1".into())
        );
        assert!(
            !format!("{issued:?}").contains("hvs.child"),
            "Debug leaks the token"
        );
        vault.revoke(&issued.revocation).await.unwrap();

        let lease = SecretRef {
            path: "database/creds/readonly",
            field: None,
            version: None,
        };
        let issued = vault.issue(&lease, &request).await.unwrap();
        let names: Vec<&str> = issued.values.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["password", "username"]);
        assert_eq!(issued.ttl, std::time::Duration::from_secs(300));
        vault.revoke(&issued.revocation).await.unwrap();
    });
    let state = state.lock().unwrap();
    assert_eq!(state.revoked_accessors, ["acc-child-1"]);
    assert_eq!(state.revoked_leases, ["database/creds/readonly/lease-1"]);
}

//! 1Password Connect and Infisical, through the real client code in frona against fake servers
//! speaking their documented REST APIs: happy paths, auth headers, and the error paths.

use std::process::Output;
use std::time::Duration;

use serde_json::json;

use crate::credentials::{Dirs, fingerprint};
use crate::fake_http::{FakeServer, Request, Response};
use crate::support::text;

const VALUE: &str = "sk_live_OnePasswordValue0123456789abcdef";
const SECTION_VALUE: &str = "ak_SectionValue_987654321";
const TOKEN: &str = "op-connect-token-eyJhbGciOi-test";
const VAULT_ID: &str = "vvvvvvvvvvvvvvvvvvvvvvvvvv";
const ITEM_ID: &str = "iiiiiiiiiiiiiiiiiiiiiiiiii";

fn assert_quiet(output: &Output, secrets: &[&str]) {
    for secret in secrets {
        for stream in [&output.stdout, &output.stderr] {
            assert!(
                !String::from_utf8_lossy(stream).contains(secret),
                "secret in output: {output:?}"
            );
        }
    }
}

/// The Connect API as documented: vault and item lookup by filter, item with fields/sections.
fn connect(request: &Request) -> Response {
    if request.path() == "/health" {
        return Response::json(
            200,
            json!({"name": "1Password Connect API", "version": "1.7.3", "dependencies": []}),
        );
    }
    if request.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
        return Response::json(
            401,
            json!({"status": 401, "message": "Invalid token signature"}),
        );
    }
    match request.path() {
        "/v1/vaults" => match request.query("filter").as_deref() {
            Some("name eq \"Prod\"") | None => {
                Response::json(200, json!([{"id": VAULT_ID, "name": "Prod"}]))
            }
            _ => Response::json(200, json!([])),
        },
        p if p == format!("/v1/vaults/{VAULT_ID}/items") => {
            match request.query("filter").as_deref() {
                Some("title eq \"Stripe\"") => Response::json(
                    200,
                    json!([{"id": ITEM_ID, "title": "Stripe", "vault": {"id": VAULT_ID}}]),
                ),
                Some("title eq \"Broken\"") => Response::json(
                    200,
                    json!([{"id": "bbbbbbbbbbbbbbbbbbbbbbbbbb", "title": "Broken"}]),
                ),
                _ => Response::json(200, json!([])),
            }
        }
        p if p == format!("/v1/vaults/{VAULT_ID}/items/{ITEM_ID}") => Response::json(
            200,
            json!({
                "id": ITEM_ID, "title": "Stripe", "vault": {"id": VAULT_ID}, "category": "API_CREDENTIAL",
                "sections": [{"id": "s1", "label": "API"}],
                "fields": [
                    {"id": "credential", "label": "credential", "type": "CONCEALED", "value": VALUE},
                    {"id": "k2", "label": "api key", "type": "CONCEALED", "value": SECTION_VALUE, "section": {"id": "s1"}},
                ],
            }),
        ),
        p if p == format!("/v1/vaults/{VAULT_ID}/items/bbbbbbbbbbbbbbbbbbbbbbbbbb") => {
            Response::text(200, "{not json")
        }
        _ => Response::json(404, json!({"status": 404, "message": "not found"})),
    }
}

fn onepassword(dirs: &Dirs, server: &FakeServer, token: &str, args: &[&str]) -> Output {
    dirs.cmd(args)
        .env("FRONA_CREDENTIAL_1PASSWORD_HOST", server.url())
        .env("FRONA_CREDENTIAL_1PASSWORD_TOKEN", token)
        .output()
        .unwrap()
}

fn register(dirs: &Dirs, name: &str, backend: &str, path: &str) {
    let output = dirs
        .cmd(&[
            "credential",
            "register",
            "--name",
            name,
            "--backend",
            backend,
            "--path",
            path,
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn onepassword_connect_round_trip_and_errors() {
    let dirs = Dirs::new("onepassword");
    let server = FakeServer::start(connect);
    register(
        &dirs,
        "stripe",
        "onepassword",
        "op://Prod/Stripe/credential",
    );
    register(
        &dirs,
        "sectioned",
        "onepassword",
        "op://Prod/Stripe/API/api key",
    );
    register(
        &dirs,
        "missing-item",
        "onepassword",
        "op://Prod/Nope/credential",
    );
    register(
        &dirs,
        "missing-field",
        "onepassword",
        "op://Prod/Stripe/nope",
    );
    register(&dirs, "garbage", "onepassword", "op://Prod/Broken/x");
    let secrets = [VALUE, SECTION_VALUE, TOKEN];

    let ok = onepassword(
        &dirs,
        &server,
        TOKEN,
        &["credential", "test", "--name", "stripe"],
    );
    assert_quiet(&ok, &secrets);
    assert!(text(&ok).contains(&fingerprint(VALUE)), "{}", text(&ok));
    let vault_lookup = server
        .requests()
        .into_iter()
        .find(|r| r.path() == "/v1/vaults")
        .unwrap();
    assert_eq!(
        vault_lookup.query("filter").as_deref(),
        Some("name eq \"Prod\"")
    );

    let ok = onepassword(
        &dirs,
        &server,
        TOKEN,
        &["credential", "test", "--name", "sectioned"],
    );
    assert!(
        text(&ok).contains(&fingerprint(SECTION_VALUE)),
        "{}",
        text(&ok)
    );

    for (name, token, expected) in [
        (
            "stripe",
            "wrong-token",
            "onepassword: authentication failed",
        ),
        ("missing-item", TOKEN, "onepassword: `Prod/Nope` not found"),
        (
            "missing-field",
            TOKEN,
            "onepassword: `Prod/Stripe` has no field `nope`",
        ),
        (
            "garbage",
            TOKEN,
            "onepassword: unexpected response for `Prod/Broken`",
        ),
    ] {
        let output = onepassword(
            &dirs,
            &server,
            token,
            &["credential", "test", "--name", name],
        );
        assert_eq!(output.status.code(), Some(1), "{name}: {}", text(&output));
        assert!(
            text(&output).contains(expected),
            "{name}: {}",
            text(&output)
        );
        assert_quiet(&output, &secrets);
    }

    let health = onepassword(&dirs, &server, TOKEN, &["credential", "health", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&health.stdout).unwrap();
    assert_eq!(doc[1]["backend"], "onepassword");
    assert_eq!(doc[1]["healthy"], true);
    let unhealthy = onepassword(&dirs, &server, "wrong", &["credential", "health"]);
    assert_eq!(unhealthy.status.code(), Some(1), "{}", text(&unhealthy));
}

#[test]
fn transient_failures_are_retried_and_slow_servers_time_out() {
    let dirs = Dirs::new("faults");
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&calls);
    let flaky = FakeServer::start(move |r| {
        if r.path() != "/health" && counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
            return Response::json(503, json!({"message": "busy"}));
        }
        connect(r)
    });
    register(
        &dirs,
        "stripe",
        "onepassword",
        "op://Prod/Stripe/credential",
    );
    let ok = onepassword(
        &dirs,
        &flaky,
        TOKEN,
        &["credential", "test", "--name", "stripe"],
    );
    assert!(ok.status.success(), "retried past two 503s: {}", text(&ok));

    let down = FakeServer::start(|_| Response::json(500, json!({"message": "boom"})));
    let failed = onepassword(
        &dirs,
        &down,
        TOKEN,
        &["credential", "test", "--name", "stripe"],
    );
    assert!(
        text(&failed).contains("server error (HTTP 500)"),
        "{}",
        text(&failed)
    );
    assert_eq!(down.requests().len(), 3, "one try and two retries");

    let throttled = FakeServer::start(|_| Response::json(429, json!({"message": "slow down"})));
    let failed = onepassword(
        &dirs,
        &throttled,
        TOKEN,
        &["credential", "test", "--name", "stripe"],
    );
    assert!(text(&failed).contains("throttled"), "{}", text(&failed));

    let slow = FakeServer::start(|r| connect(r).delayed(Duration::from_secs(3)));
    let started = std::time::Instant::now();
    let failed = onepassword(
        &dirs,
        &slow,
        TOKEN,
        &[
            "credential",
            "test",
            "--name",
            "stripe",
            "--backend-timeout",
            "300ms",
        ],
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "timeout not honoured: {:?}",
        started.elapsed()
    );
    assert!(
        text(&failed).contains("no answer within 300ms"),
        "{}",
        text(&failed)
    );

    let truncated = FakeServer::start(|r| connect(r).truncated());
    let failed = onepassword(
        &dirs,
        &truncated,
        TOKEN,
        &["credential", "test", "--name", "stripe"],
    );
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));

    let nobody = onepassword(
        &dirs,
        &FakeServer::start(connect),
        TOKEN,
        &["credential", "test", "--name", "stripe"],
    );
    assert!(nobody.status.success());
    let refused = dirs
        .cmd(&["credential", "test", "--name", "stripe"])
        .env("FRONA_CREDENTIAL_1PASSWORD_HOST", "http://127.0.0.1:9")
        .env("FRONA_CREDENTIAL_1PASSWORD_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        text(&refused).contains("onepassword: cannot reach http://127.0.0.1:9"),
        "{}",
        text(&refused)
    );
    let unconfigured = dirs
        .cmd(&["credential", "test", "--name", "stripe"])
        .output()
        .unwrap();
    assert!(
        text(&unconfigured).contains("onepassword is not configured"),
        "{}",
        text(&unconfigured)
    );
}

const CLIENT_SECRET: &str = "infisical-client-secret-0123456789";
const ACCESS: &str = "infisical-access-token-abcdef";
const INF_VALUE: &str = "whsec_InfisicalValue_0123456789";

/// Infisical's universal-auth login and raw secret read, as documented.
fn infisical_api(request: &Request, expired_once: &std::sync::atomic::AtomicBool) -> Response {
    match (request.method.as_str(), request.path()) {
        ("GET", "/api/status") => {
            Response::json(200, json!({"date": "2026-11-25", "message": "Ok"}))
        }
        ("POST", "/api/v1/auth/universal-auth/login") => {
            let body = request.json();
            if body["clientId"] == "machine-1" && body["clientSecret"] == CLIENT_SECRET {
                Response::json(
                    200,
                    json!({"accessToken": ACCESS, "expiresIn": 7200, "accessTokenMaxTTL": 43200, "tokenType": "Bearer"}),
                )
            } else {
                Response::json(401, json!({"message": "Invalid credentials"}))
            }
        }
        ("GET", path) if path.starts_with("/api/v3/secrets/raw/") => {
            if request.header("authorization") != Some(&format!("Bearer {ACCESS}")) {
                return Response::json(401, json!({"message": "unauthorized"}));
            }
            if !expired_once.swap(true, std::sync::atomic::Ordering::SeqCst) {
                return Response::json(401, json!({"message": "token expired"}));
            }
            let wanted = (
                path.trim_start_matches("/api/v3/secrets/raw/"),
                request.query("workspaceId"),
                request.query("environment"),
                request.query("secretPath"),
            );
            match wanted {
                ("STRIPE_WEBHOOK", Some(p), Some(e), Some(f))
                    if p == "proj-1" && e == "prod" && f == "/payments" =>
                {
                    Response::json(
                        200,
                        json!({"secret": {"secretKey": "STRIPE_WEBHOOK", "secretValue": INF_VALUE, "version": 3, "type": "shared"}}),
                    )
                }
                ("FORBIDDEN", ..) => Response::json(403, json!({"message": "no access"})),
                _ => Response::json(404, json!({"message": "Secret not found"})),
            }
        }
        _ => Response::json(404, json!({"message": "no route"})),
    }
}

#[test]
fn infisical_universal_auth_round_trip_and_errors() {
    let dirs = Dirs::new("infisical");
    let expired_once = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&expired_once);
    let server = FakeServer::start(move |r| infisical_api(r, &flag));
    register(
        &dirs,
        "webhook",
        "infisical",
        "prod:/payments/STRIPE_WEBHOOK",
    );
    register(&dirs, "forbidden", "infisical", "/FORBIDDEN");
    register(&dirs, "missing", "infisical", "NOPE");
    let run = |secret: &str, args: &[&str]| {
        dirs.cmd(args)
            .env("FRONA_CREDENTIAL_INFISICAL_HOST", server.url())
            .env("FRONA_CREDENTIAL_INFISICAL_CLIENT_ID", "machine-1")
            .env("FRONA_CREDENTIAL_INFISICAL_CLIENT_SECRET", secret)
            .env("FRONA_CREDENTIAL_INFISICAL_PROJECT_ID", "proj-1")
            .output()
            .unwrap()
    };
    let secrets = [CLIENT_SECRET, ACCESS, INF_VALUE];
    // The first read answers 401 (expired token): frona logs in again once and succeeds.
    let ok = run(CLIENT_SECRET, &["credential", "test", "--name", "webhook"]);
    assert_quiet(&ok, &secrets);
    assert!(text(&ok).contains(&fingerprint(INF_VALUE)), "{}", text(&ok));
    let logins = server
        .requests()
        .iter()
        .filter(|r| r.path().ends_with("/login"))
        .count();
    assert_eq!(logins, 2, "a re-login after the 401");

    for (name, secret, expected) in [
        (
            "webhook",
            "wrong-secret",
            "infisical: authentication failed",
        ),
        (
            "forbidden",
            CLIENT_SECRET,
            "infisical: access to `/FORBIDDEN` denied",
        ),
        ("missing", CLIENT_SECRET, "infisical: `NOPE` not found"),
    ] {
        let output = run(secret, &["credential", "test", "--name", name]);
        assert_eq!(output.status.code(), Some(1), "{name}: {}", text(&output));
        assert!(
            text(&output).contains(expected),
            "{name}: {}",
            text(&output)
        );
        assert_quiet(&output, &secrets);
    }
    let health = run(CLIENT_SECRET, &["credential", "health"]);
    assert!(
        health.status.success() && text(&health).contains("infisical\thealthy"),
        "{}",
        text(&health)
    );
}

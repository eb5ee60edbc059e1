//! Azure Key Vault through the official client, against a fake Key Vault speaking its REST API
//! including the authentication challenge (401 + `WWW-Authenticate`, then the bearer token).
//! The client keeps its production vault URL; only the transport is pointed at the fake.

use frona_backends::azure::{Azure, AzureConfig, AzureCredential};
use frona_backends::{Backend as _, BackendError, Secret, SecretRef};
use serde_json::json;

use crate::fake_http::{FakeServer, Request, Response};

const TOKEN: &str = "eyJ0eXAi.azure-test-token.sig";
const VALUE: &str = "azure-secret-value-0123456789";

fn key_vault(request: &Request) -> Response {
    let Some(auth) = request.header("authorization") else {
        let mut challenge = Response::json(
            401,
            json!({"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}}),
        );
        challenge.headers.push((
            "www-authenticate".into(),
            r#"Bearer authorization="https://login.microsoftonline.com/tenant", resource="https://vault.azure.net""#.into(),
        ));
        return challenge;
    };
    if auth != format!("Bearer {TOKEN}") {
        return Response::json(
            401,
            json!({"error": {"code": "Unauthorized", "message": "AKV10032: Invalid issuer."}}),
        );
    }
    let path = request.path().trim_end_matches('/');
    match path {
        "/secrets" => Response::json(200, json!({"value": [], "nextLink": null})),
        "/secrets/stripe" => Response::json(
            200,
            json!({"value": VALUE, "id": "https://myvault.vault.azure.net/secrets/stripe/v2", "attributes": {"enabled": true}}),
        ),
        "/secrets/stripe/v1" => Response::json(
            200,
            json!({"value": "old-azure-value", "id": "https://myvault.vault.azure.net/secrets/stripe/v1"}),
        ),
        "/secrets/forbidden" => Response::json(
            403,
            json!({"error": {"code": "Forbidden", "message": "Caller is not authorized"}}),
        ),
        "/secrets/boom" => Response::text(500, "not json"),
        _ => Response::json(
            404,
            json!({"error": {"code": "SecretNotFound", "message": "not found"}}),
        ),
    }
}

fn client(server: &FakeServer, token: &str) -> Azure {
    Azure::new(
        AzureConfig {
            vault_url: "https://myvault.vault.azure.net/".into(),
            credential: AzureCredential::AccessToken(Secret::from_string(token.into())),
            connect_to: Some(format!("127.0.0.1:{}", server.port)),
        },
        frona_backends::Limits::default(),
    )
    .unwrap()
}

#[test]
fn azure_key_vault_challenge_round_trip_and_errors() {
    let server = FakeServer::start(key_vault);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let azure = client(&server, TOKEN);
        let secret = |path, version| SecretRef {
            path,
            field: None,
            version,
        };
        assert_eq!(
            azure.fetch(&secret("stripe", None)).await.unwrap().expose(),
            VALUE.as_bytes()
        );
        assert_eq!(
            azure
                .fetch(&secret("stripe", Some("v1")))
                .await
                .unwrap()
                .expose(),
            b"old-azure-value"
        );
        assert!(matches!(
            azure.fetch(&secret("missing", None)).await,
            Err(BackendError::NotFound { .. })
        ));
        assert!(matches!(
            azure.fetch(&secret("forbidden", None)).await,
            Err(BackendError::Denied { .. })
        ));
        assert!(matches!(
            azure.fetch(&secret("boom", None)).await,
            Err(BackendError::Server { status: 500, .. })
        ));
        azure.health().await.unwrap();
        let wrong = client(&server, "wrong-token");
        assert!(matches!(
            wrong.fetch(&secret("stripe", None)).await,
            Err(BackendError::Unauthenticated { .. })
        ));
        assert!(!format!("{azure:?}").contains(TOKEN));
    });
    let requests = server.requests();
    // The first request of a new client carries no token: the challenge, then the retry with it.
    assert_eq!(requests[0].header("authorization"), None);
    assert_eq!(
        requests[1].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert!(requests.iter().all(|r| r.query("api-version").is_some()));
}

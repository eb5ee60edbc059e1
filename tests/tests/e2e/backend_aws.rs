//! AWS through the official SDK in frona, against the real moto emulator: GetSecretValue
//! (string, JSON field), RotateSecret, health, and STS AssumeRole sessions.

use std::process::Output;
use std::time::Duration;

use serde_json::json;

use crate::credentials::{Dirs, fingerprint};
use crate::moto::Moto;
use crate::support::text;

const VALUE: &str = "sk_live_AwsSecretValue0123456789abcdef";

#[test]
fn aws_secrets_manager_against_moto() {
    let Some(moto) = Moto::start() else { return };
    moto.secretsmanager(
        "CreateSecret",
        json!({"Name": "prod/stripe", "SecretString": VALUE}),
    );
    moto.secretsmanager("CreateSecret", json!({"Name": "prod/db", "SecretString": r#"{"username":"app","password":"aws-db-pass"}"#}));
    let dirs = Dirs::new("aws");
    let run = |args: &[&str]| -> Output {
        dirs.cmd(args)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", moto.endpoint())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing-secret-key")
            .output()
            .unwrap()
    };
    for (name, path, extra) in [
        ("stripe", "prod/stripe", vec![]),
        ("db", "prod/db", vec!["--field", "password"]),
        ("missing", "prod/nope", vec![]),
    ] {
        let mut args = vec![
            "credential",
            "register",
            "--name",
            name,
            "--backend",
            "aws",
            "--path",
            path,
        ];
        args.extend(extra);
        assert!(dirs.cmd(&args).output().unwrap().status.success());
    }
    let ok = run(&["credential", "test", "--name", "stripe"]);
    assert!(text(&ok).contains(&fingerprint(VALUE)), "{}", text(&ok));
    let field = run(&["credential", "test", "--name", "db"]);
    assert!(
        text(&field).contains(&fingerprint("aws-db-pass")),
        "{}",
        text(&field)
    );
    let missing = run(&["credential", "test", "--name", "missing"]);
    assert!(
        text(&missing).contains("aws: `prod/nope` not found"),
        "{}",
        text(&missing)
    );
    for output in [&ok, &field, &missing] {
        for secret in [VALUE, "aws-db-pass", "testing-secret-key"] {
            assert!(
                !text(output).contains(secret),
                "secret printed: {}",
                text(output)
            );
        }
    }

    let rotated = run(&["credential", "rotate", "--name", "stripe"]);
    assert!(
        rotated.status.success() && text(&rotated).contains("rotated `stripe` in aws (version "),
        "{}",
        text(&rotated)
    );
    // The version frona reports is the one AWS now calls current.
    let described = moto.secretsmanager("DescribeSecret", json!({"SecretId": "prod/stripe"}));
    let body: serde_json::Value =
        serde_json::from_str(described.split("\r\n\r\n").nth(1).unwrap_or("{}")).unwrap();
    let current = body["VersionIdsToStages"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, stages)| stages.as_array().unwrap().iter().any(|s| s == "AWSCURRENT"))
        .map(|(id, _)| id.clone())
        .unwrap();
    assert!(
        text(&rotated).contains(&format!("(version {current})")),
        "{}",
        text(&rotated)
    );
    assert!(body["LastRotatedDate"].is_number(), "{body}");

    let health = run(&["credential", "health", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&health.stdout).unwrap();
    let aws = doc
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["backend"] == "aws")
        .unwrap();
    assert_eq!(aws["healthy"], true, "{}", text(&health));

    let down = dirs
        .cmd(&[
            "credential",
            "test",
            "--name",
            "stripe",
            "--backend-timeout",
            "500ms",
        ])
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .unwrap();
    assert!(text(&down).contains("aws: cannot reach"), "{}", text(&down));
}

/// STS AssumeRole with a session policy and duration: the short-lived credential the broker
/// hands a tool. Driven through the library, against moto.
#[test]
fn aws_sts_sessions_against_moto() {
    use frona_backends::{Backend as _, IssueRequest, Revocation, SecretRef};
    let Some(moto) = Moto::start() else { return };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let aws = frona_backends::aws::Aws::new(
            frona_backends::aws::AwsConfig {
                region: "us-east-1".into(),
                endpoint: Some(moto.endpoint()),
                keys: Some(frona_backends::aws::AwsKeys {
                    access_key_id: "testing".into(),
                    secret_access_key: frona_backends::Secret::from_string("testing".into()),
                    session_token: None,
                }),
            },
            frona_backends::Limits::default(),
        )
        .await
        .unwrap();
        let role = SecretRef { path: "arn:aws:iam::123456789012:role/readonly", field: None, version: None };
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
        let request = IssueRequest {
            ttl: Duration::from_secs(900),
            session_policy: Some(policy.into()),
            session_name: Some("frona-agent-ci".into()),
            ..IssueRequest::default()
        };
        let issued = aws.issue(&role, &request).await.unwrap();
        let names: Vec<&str> = issued.values.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]);
        assert!(issued.values[0].1.expose().starts_with(b"ASIA"), "a temporary key id");
        assert!(issued.ttl > Duration::from_secs(800) && issued.ttl <= Duration::from_secs(900), "{:?}", issued.ttl);
        assert_eq!(issued.revocation, Revocation::Expires);
        assert!(!format!("{issued:?}").contains(std::str::from_utf8(issued.values[1].1.expose()).unwrap()));
        // frona refuses what AWS would (moto does not check): a session too short or too long,
        // and a session policy that is not JSON.
        for bad in [
            IssueRequest { ttl: Duration::from_secs(60), ..request.clone() },
            IssueRequest { ttl: Duration::from_secs(50_000), ..request.clone() },
            IssueRequest { session_policy: Some("not json".into()), ..request.clone() },
        ] {
            assert!(aws.issue(&role, &bad).await.is_err());
        }
    });
}

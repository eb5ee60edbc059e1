//! The endpoint driven directly: the token, the session reuse rule, and whole fetches against a
//! fake STS backend (permit, reuse, refresh near expiry, deny), with their audit records.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use frona_backends::registry::Registry;
use frona_backends::{Backend, BackendError, IssueRequest, Issued, Revocation, SecretRef};
use frona_policy::PolicySet;
use http_body_util::BodyExt as _;
use serde_json::json;

use super::*;
use crate::http::ERROR_HEADER;

const ROLE: &str = "arn:aws:iam::123456789012:role/agent";

/// STS as far as the endpoint cares: sessions numbered by issue, lasting `ttl` (or what was
/// asked for).
#[derive(Debug)]
struct FakeSts {
    issued: Arc<AtomicUsize>,
    ttl: Option<Duration>,
}

type Fut<'a, T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + Send + 'a>>;

impl Backend for FakeSts {
    fn kind(&self) -> BackendKind {
        BackendKind::Aws
    }

    fn fetch<'s, 'a, 'b, 'f>(&'s self, _secret: &'a SecretRef<'b>) -> Fut<'f, Secret>
    where
        's: 'f,
        'a: 'f,
        'b: 'f,
    {
        Box::pin(async { Ok(Secret::from_string("long-term".into())) })
    }

    fn health<'s, 'f>(&'s self) -> Fut<'f, ()>
    where
        's: 'f,
    {
        Box::pin(async { Ok(()) })
    }

    fn issue<'s, 'a, 'b, 'c, 'f>(
        &'s self,
        secret: &'a SecretRef<'b>,
        request: &'c IssueRequest,
    ) -> Fut<'f, Issued>
    where
        's: 'f,
        'a: 'f,
        'b: 'f,
        'c: 'f,
    {
        Box::pin(async move {
            assert_eq!(secret.path, ROLE);
            let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(Issued {
                values: vec![
                    (
                        "AWS_ACCESS_KEY_ID".into(),
                        Secret::from_string(format!("ASIAFAKE{n:012}")),
                    ),
                    (
                        "AWS_SECRET_ACCESS_KEY".into(),
                        Secret::from_string(format!("session-secret-{n}")),
                    ),
                    (
                        "AWS_SESSION_TOKEN".into(),
                        Secret::from_string(format!("session-token-{n}")),
                    ),
                ],
                ttl: self.ttl.unwrap_or(request.ttl),
                revocation: Revocation::Expires,
            })
        })
    }
}

struct Fixture {
    dir: std::path::PathBuf,
    broker: Broker,
    endpoint: OnceLock<AwsEndpoint>,
    issued: Arc<AtomicUsize>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `aws-sts` credential `aws` for [`ROLE`].
fn sts_credential() -> Credential {
    Credential {
        kind: CredentialKind::AwsSts,
        ..Credential::new("aws", BackendKind::Aws, ROLE)
    }
}

impl Fixture {
    /// A broker with `policy`, one `aws-sts` credential `aws`, and STS sessions of `ttl`.
    fn new(name: &str, policy: &str, ttl: Option<Duration>) -> Self {
        let dir = std::env::temp_dir().join(format!("frona-awscc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let registry = Registry::new(dir.join("credentials.yaml"));
        registry.register(sts_credential()).unwrap();
        let issued = Arc::new(AtomicUsize::new(0));
        let mut backends: HashMap<BackendKind, Box<dyn Backend>> = HashMap::new();
        backends.insert(
            BackendKind::Aws,
            Box::new(FakeSts {
                issued: Arc::clone(&issued),
                ttl,
            }),
        );
        let broker = crate::testing::broker(
            &dir,
            PolicySet::load([("aws.yaml", policy)]).unwrap(),
            backends,
            std::process::id() as i32,
        );
        Self {
            dir,
            broker,
            endpoint: OnceLock::new(),
            issued,
        }
    }

    /// Serves the endpoint for the credential `aws`; returns the token.
    fn serve(&self) -> String {
        let (endpoint, token) = AwsEndpoint::new(self.broker.clone(), "aws").unwrap();
        assert!(self.endpoint.set(endpoint).is_ok(), "served once");
        String::from_utf8(token.expose().to_vec()).unwrap()
    }

    /// GETs the endpoint with `token`; returns the status, `x-frona-error` and the body.
    fn fetch(&self, token: Option<&str>) -> (u16, Option<String>, serde_json::Value) {
        let mut request = http::Request::builder().method("GET").uri(PATH);
        if let Some(token) = token {
            request = request.header("authorization", token);
        }
        let request = request.body(()).unwrap();
        let response = match self.endpoint.get() {
            Some(endpoint) => endpoint.handle(&request, None),
            None => not_served(),
        };
        let status = response.status().as_u16();
        let error = response
            .headers()
            .get(ERROR_HEADER)
            .map(|v| v.to_str().unwrap().to_owned());
        if status == 200 {
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        }
        let bytes = self
            .broker
            .runtime()
            .block_on(response.into_body().collect())
            .unwrap()
            .to_bytes();
        (status, error, serde_json::from_slice(&bytes).unwrap())
    }

    fn audit(&self) -> Vec<serde_json::Value> {
        self.broker.finish();
        std::fs::read_to_string(self.dir.join("audit.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|r| r["kind"] == "aws-credentials")
            .collect()
    }
}

const PERMIT: &str = r#"
rules:
  - name: aws-sdk
    tool: aws-credentials
    credentials: [aws]
    effect: permit
    issue: { ttl: 1h }
"#;

#[test]
fn tokens_are_random_and_compared_whole() {
    let token = Token::generate().unwrap();
    let other = Token::generate().unwrap();
    assert_eq!(token.expose().len(), 64);
    assert!(token.expose().bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(token.expose(), other.expose());
    assert!(token.matches(token.expose().as_bytes()));
    assert!(!token.matches(other.expose().as_bytes()));
    assert!(!token.matches(&token.expose().as_bytes()[..63]));
    assert!(!token.matches(format!("{}0", token.expose()).as_bytes()));
    assert!(!token.matches(b""));
    assert!(
        !token.matches(token.expose().to_uppercase().as_bytes())
            || !token.expose().bytes().any(|b| b.is_ascii_alphabetic())
    );
    assert!(!format!("{token:?}").contains(token.expose()));
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
}

fn key(rule: &str, ttl: u64) -> SessionKey {
    SessionKey {
        rule: Some(rule.into()),
        issue: IssueSpec {
            ttl: Some(Duration::from_secs(ttl)),
            ..IssueSpec::default()
        },
        credential: sts_credential(),
    }
}

#[test]
fn a_session_is_reused_for_the_same_rule_and_issue_while_over_five_minutes_are_left() {
    let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
    let session = |left: i64| Session {
        key: key("aws-sdk", 3600),
        access_key_id: Secret::from_string("ASIA".into()),
        secret_access_key: Secret::from_string("s".into()),
        token: Secret::from_string("t".into()),
        expires: now + jiff::SignedDuration::from_secs(left),
    };
    assert!(session(3600).reusable(&key("aws-sdk", 3600), now));
    assert!(session(301).reusable(&key("aws-sdk", 3600), now));
    assert!(
        !session(300).reusable(&key("aws-sdk", 3600), now),
        "5 minutes left"
    );
    assert!(!session(10).reusable(&key("aws-sdk", 3600), now));
    assert!(
        !session(-10).reusable(&key("aws-sdk", 3600), now),
        "expired"
    );
    assert!(!session(3600).reusable(&key("other-rule", 3600), now));
    assert!(
        !session(3600).reusable(&key("aws-sdk", 900), now),
        "another issue spec"
    );
    let mut moved = key("aws-sdk", 3600);
    moved.credential.path = "arn:aws:iam::123456789012:role/other".into();
    assert!(!session(3600).reusable(&moved, now), "another role");
    let mut policy = key("aws-sdk", 3600);
    policy.issue.session_policy = Some("{}".into());
    assert!(
        !session(3600).reusable(&policy, now),
        "another session policy"
    );
    assert!(!format!("{:?}", session(1)).contains("ASIA"));
}

#[test]
fn a_permitted_fetch_gets_a_session_and_later_ones_reuse_it() {
    let fixture = Fixture::new("permit", PERMIT, None);
    let token = &fixture.serve();
    let (status, _, body) = fixture.fetch(Some(token));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["AccessKeyId"], "ASIAFAKE000000000001");
    assert_eq!(body["SecretAccessKey"], "session-secret-1");
    assert_eq!(body["Token"], "session-token-1");
    let expiration: jiff::Timestamp = body["Expiration"].as_str().unwrap().parse().unwrap();
    let left = expiration.duration_since(jiff::Timestamp::now()).as_secs();
    assert!((3500..=3600).contains(&left), "{left}");
    assert!(body["Expiration"].as_str().unwrap().ends_with('Z'));
    assert!(!body["Expiration"].as_str().unwrap().contains('.'));
    let (status, _, again) = fixture.fetch(Some(token));
    assert_eq!(status, 200);
    assert_eq!(again, body, "the same session");
    assert_eq!(fixture.issued.load(Ordering::SeqCst), 1, "one AssumeRole");
    let audit = fixture.audit();
    assert_eq!(audit.len(), 2, "{audit:#?}");
    for (record, session) in audit.iter().zip(["new", "reused"]) {
        assert_eq!(record["decision"], "permit");
        assert_eq!(record["rule"], "aws-sdk");
        assert_eq!(record["credentials"], json!(["aws"]));
        assert_eq!(record["role"], ROLE);
        assert_eq!(record["sts_session"], session);
    }
    let log = std::fs::read_to_string(fixture.dir.join("audit.jsonl")).unwrap();
    assert!(!log.contains("session-secret") && !log.contains("session-token"));
}

#[test]
fn a_session_near_expiry_is_replaced() {
    // STS sessions that come back with under five minutes: each fetch needs a new one.
    let fixture = Fixture::new("refresh", PERMIT, Some(Duration::from_secs(240)));
    let token = &fixture.serve();
    let (_, _, first) = fixture.fetch(Some(token));
    let (_, _, second) = fixture.fetch(Some(token));
    assert_eq!(first["Token"], "session-token-1");
    assert_eq!(second["Token"], "session-token-2");
    assert_eq!(fixture.issued.load(Ordering::SeqCst), 2);
}

#[test]
fn the_token_is_required() {
    let fixture = Fixture::new("token", PERMIT, None);
    let token = &fixture.serve();
    let (status, error, body) = fixture.fetch(None);
    assert_eq!(
        (status, error.as_deref()),
        (401, Some("no token")),
        "{body}"
    );
    let (status, error, body) = fixture.fetch(Some(&token[..63]));
    assert_eq!(
        (status, error.as_deref()),
        (403, Some("wrong token")),
        "{body}"
    );
    assert_eq!(body["Code"], "AccessDenied");
    let (status, _, _) = fixture.fetch(Some(&"0".repeat(64)));
    assert_eq!(status, 403);
    assert_eq!(fixture.issued.load(Ordering::SeqCst), 0);
    let audit = fixture.audit();
    assert_eq!(audit.len(), 3, "{audit:#?}");
    assert!(audit.iter().all(|r| r["decision"] == "deny"));
}

#[test]
fn a_denial_is_a_json_refusal_and_audited() {
    let fixture = Fixture::new(
        "deny",
        r#"
rules:
  - name: no-aws
    tool: aws-credentials
    credentials: [aws]
    effect: deny
    reason: no cloud today
"#,
        None,
    );
    let token = &fixture.serve();
    let (status, error, body) = fixture.fetch(Some(token));
    assert_eq!(status, 403);
    assert_eq!(error.as_deref(), Some("denied by rule \"no-aws\""));
    assert_eq!(body["Code"], "AccessDenied");
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .contains("denied by rule `no-aws`: no cloud today"),
        "{body}"
    );
    assert_eq!(fixture.issued.load(Ordering::SeqCst), 0);
    let audit = fixture.audit();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["decision"], "deny");
    assert_eq!(audit[0]["rule"], "no-aws");
}

#[test]
fn without_a_matching_rule_nothing_is_handed_out() {
    let fixture = Fixture::new("default-deny", "rules: []\n", None);
    let token = &fixture.serve();
    let (status, error, _) = fixture.fetch(Some(token));
    assert_eq!((status, error.as_deref()), (403, Some("not allowed")));
}

#[test]
fn nothing_is_served_unless_asked() {
    let fixture = Fixture::new("unserved", PERMIT, None);
    let (status, error, _) = fixture.fetch(Some("anything"));
    assert_eq!((status, error.as_deref()), (404, Some("not served")));
}

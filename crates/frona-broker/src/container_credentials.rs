//! The AWS container credentials endpoint of `frona run --net proxy` (as aws-vault's
//! `--ecs-server`): the agent's AWS SDKs find `AWS_CONTAINER_CREDENTIALS_FULL_URI` =
//! `http://127.0.0.1:PORT/frona/aws-credentials` and `AWS_CONTAINER_AUTHORIZATION_TOKEN` in
//! their environment and fetch short-lived STS credentials of one `aws-sts` credential (a
//! role) from there. The request reaches the egress proxy's listener in origin form; the egress
//! proxy hands it here ([`PATH`]).
//!
//! - The caller must present the session's token (`Authorization: TOKEN`, compared in constant
//!   time): `401` without one, `403` with another.
//! - Each fetch is a policy decision for the tool [`frona_policy::AWS_CREDENTIALS_TOOL`] with
//!   the credential's name (an `ask` waits for a human, and a grant settles it as for any
//!   call), audited as `kind: aws-credentials` (credential, role, decision, rule, and in
//!   `sts_session` whether the session was new or reused; never a value), durable before a
//!   credential is handed out.
//! - A permit gives an STS `AssumeRole` session of the role through the broker's
//!   dynamic-credential path, shaped by the rule's `issue:` (`ttl`, `session_policy`). A session
//!   is handed out again to later fetches decided by the same rule with the same `issue:` while
//!   more than [`REUSE_MARGIN`] of it is left; past that a new one is issued (SDKs fetch again
//!   as expiry nears). STS sessions cannot be revoked: they are never journalled as leases and
//!   simply expire.
//! - The answer is the JSON the SDKs expect: `{"AccessKeyId", "SecretAccessKey", "Token",
//!   "Expiration"}`. A refusal is a JSON `{"Code", "Message"}` (which SDKs show) with
//!   `x-frona-error`.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use frona_backends::registry::{Credential, CredentialKind};
use frona_backends::{BackendKind, Revocation, Secret};
use frona_policy::{AWS_CREDENTIALS_TOOL, Effect, IssueSpec, Request};
use http::StatusCode;
use http::header::{self, HeaderValue};
use http_body_util::{BodyExt as _, Full};
use serde_json::{Map, Value, json};
use zeroize::{Zeroize as _, Zeroizing};

use crate::egress::{ERROR_HEADER, EgressBody};
use crate::peer::Peer;
use crate::server::Broker;

/// The endpoint's path on the egress proxy's listener.
pub const PATH: &str = "/frona/aws-credentials";

/// A session with this much or less left is not handed out again: a new one is issued.
pub const REUSE_MARGIN: Duration = Duration::from_secs(5 * 60);

/// The `kind` of the endpoint's audit records.
const AUDIT_KIND: &str = "aws-credentials";

/// Why the endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("the AWS container credentials endpoint is served already in this session")]
    AlreadyServed,
    #[error("no randomness for the endpoint's token: {0}")]
    Random(String),
}

/// The session's token: 32 random bytes, hex-encoded; zeroized on drop, never shown.
pub struct Token(Zeroizing<String>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

impl Token {
    /// A fresh random token.
    pub fn generate() -> Result<Self, EndpointError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| EndpointError::Random(e.to_string()))?;
        let token = Zeroizing::new(frona_backends::hex(&bytes));
        bytes.zeroize();
        Ok(Self(token))
    }

    /// The token, for the agent's environment.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is the token, in time that does not depend on where they differ.
    pub fn matches(&self, presented: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), presented)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// What a session was issued for: it is handed out again only for the same.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SessionKey {
    rule: Option<String>,
    issue: IssueSpec,
    /// The registration as resolved (a changed role or scope makes a new session).
    credential: Credential,
}

/// An STS session handed out.
struct Session {
    key: SessionKey,
    access_key_id: Secret,
    secret_access_key: Secret,
    token: Secret,
    expires: jiff::Timestamp,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("key", &self.key)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Whether this session may answer a fetch decided for `key` at `now`.
    fn reusable(&self, key: &SessionKey, now: jiff::Timestamp) -> bool {
        self.key == *key
            && jiff::SignedDuration::try_from(REUSE_MARGIN)
                .is_ok_and(|margin| self.expires.duration_since(now) > margin)
    }
}

/// The endpoint of this session: which credential it serves, the token, the last session.
#[derive(Debug)]
pub struct Endpoint {
    credential: String,
    token: Token,
    /// Held while a session is issued, so that concurrent fetches make one `AssumeRole`.
    session: Mutex<Option<Session>>,
}

/// A refusal: status, `x-frona-error`, and the message of the JSON body.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    header: String,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, header: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            header: header.into(),
            message: message.into(),
        }
    }
}

fn body(bytes: impl Into<Bytes>) -> EgressBody {
    Full::new(bytes.into())
        .map_err(|never: std::convert::Infallible| match never {})
        .boxed()
}

fn json_response(status: StatusCode, bytes: Vec<u8>) -> http::Response<EgressBody> {
    let mut response = http::Response::new(body(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A refusal as SDKs show it: `{"Code", "Message"}`, and `x-frona-error`.
fn refused(refusal: Refusal) -> http::Response<EgressBody> {
    let code = match refusal.status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "AccessDenied",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
        _ => "ServiceUnavailable",
    };
    let text = json!({"Code": code, "Message": format!("frona: {}", refusal.message)});
    let mut response = json_response(refusal.status, text.to_string().into_bytes());
    let headers = response.headers_mut();
    headers.insert("x-frona", HeaderValue::from_static("refused"));
    headers.insert(
        ERROR_HEADER,
        HeaderValue::from_str(&refusal.header)
            .unwrap_or_else(|_| HeaderValue::from_static("refused")),
    );
    response
}

/// The credentials in the form the SDKs read; the secrets are copied only into the body.
fn credentials_body(session: &Session) -> Result<Vec<u8>, String> {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        #[serde(rename = "AccessKeyId")]
        access_key_id: &'a str,
        #[serde(rename = "SecretAccessKey")]
        secret_access_key: &'a str,
        #[serde(rename = "Token")]
        token: &'a str,
        #[serde(rename = "Expiration")]
        expiration: String,
    }
    fn text(secret: &Secret) -> Result<&str, String> {
        std::str::from_utf8(secret.expose())
            .map_err(|_| "STS returned a credential that is not UTF-8".to_owned())
    }
    let body = Body {
        access_key_id: text(&session.access_key_id)?,
        secret_access_key: text(&session.secret_access_key)?,
        token: text(&session.token)?,
        expiration: expiration(session.expires),
    };
    serde_json::to_vec(&body).map_err(|e| e.to_string())
}

/// `2026-01-05T12:15:00Z`: whole seconds (rounded down), UTC.
fn expiration(expires: jiff::Timestamp) -> String {
    jiff::Timestamp::from_second(expires.as_second())
        .unwrap_or(expires)
        .to_string()
}

/// `denied by rule "NAME"` or `not allowed`, as the egress proxy says it.
fn denial_header(rule: Option<&str>) -> String {
    match rule {
        Some(rule) if HeaderValue::from_str(rule).is_ok() => format!("denied by rule \"{rule}\""),
        Some(_) => "denied by a rule".to_owned(),
        None => "not allowed".to_owned(),
    }
}

impl Broker {
    /// Serves STS sessions of the `aws-sts` credential named `credential` at [`PATH`] on the
    /// egress proxy, from now on; returns the token the agent must present (for its
    /// environment). Once per broker.
    pub fn serve_aws_credentials(&self, credential: &str) -> Result<Secret, EndpointError> {
        let token = Token::generate()?;
        let exposed = Secret::from_string(token.expose().to_owned());
        self.aws_endpoint
            .set(Endpoint {
                credential: credential.to_owned(),
                token,
                session: Mutex::new(None),
            })
            .map_err(|_| EndpointError::AlreadyServed)?;
        Ok(exposed)
    }

    /// Answers a request for [`PATH`] that reached the egress proxy in origin form. Blocks
    /// (on a runtime worker, handed off with `block_in_place`) while the policy decides and STS
    /// issues.
    pub(crate) fn aws_credentials<B>(
        &self,
        request: &http::Request<B>,
        peer: Option<Peer>,
    ) -> http::Response<EgressBody> {
        let Some(endpoint) = self.aws_endpoint.get() else {
            return refused(Refusal::new(
                StatusCode::NOT_FOUND,
                "not served",
                "this session serves no AWS credentials (`frona run --net proxy --aws-credential NAME`)",
            ));
        };
        if request.method() != http::Method::GET {
            return refused(Refusal::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
                format!("{PATH} answers GET only"),
            ));
        }
        let mut peer_info = Map::new();
        if let Some(p) = peer {
            peer_info.insert("peer_pid".into(), p.pid.into());
            peer_info.insert("peer_uid".into(), p.uid.into());
        }
        let mut record = peer_info.clone();
        record.insert("kind".into(), AUDIT_KIND.into());
        record.insert("credentials".into(), json!([endpoint.credential]));
        let token_refusal = match request.headers().get(header::AUTHORIZATION) {
            None => Some(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "no token",
                "send the session's token: `Authorization: $AWS_CONTAINER_AUTHORIZATION_TOKEN`",
            )),
            Some(value) if !endpoint.token.matches(value.as_bytes()) => Some(Refusal::new(
                StatusCode::FORBIDDEN,
                "wrong token",
                "the Authorization header is not this session's token",
            )),
            Some(_) => None,
        };
        if let Some(refusal) = token_refusal {
            record.insert("decision".into(), "deny".into());
            record.insert("rule".into(), Value::Null);
            record.insert("reason".into(), refusal.message.clone().into());
            self.submit_audit(record);
            return refused(refusal);
        }
        let answer = tokio::task::block_in_place(|| self.aws_fetch(endpoint, record, &peer_info));
        match answer {
            Ok(bytes) => json_response(StatusCode::OK, bytes),
            Err(refusal) => refused(refusal),
        }
    }

    /// Decides one fetch, records it, and hands out a session (reused or new) as the body.
    fn aws_fetch(
        &self,
        endpoint: &Endpoint,
        mut record: Map<String, Value>,
        peer_info: &Map<String, Value>,
    ) -> Result<Vec<u8>, Refusal> {
        let name = &endpoint.credential;
        let fail = |mut record: Map<String, Value>, why: String| {
            record.insert("decision".into(), "error".into());
            record.insert("reason".into(), why.clone().into());
            self.submit_audit(record);
            Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", why)
        };
        let credential = match self.config.registry.resolve(
            name,
            Some(&self.config.agent),
            &self.config.proxy_cwd,
        ) {
            Ok(Some(c)) if c.kind == CredentialKind::AwsSts && c.backend == BackendKind::Aws => c,
            Ok(Some(_)) => {
                return Err(fail(
                    record,
                    format!(
                        "credential `{name}` is no longer an aws-sts credential of the aws backend"
                    ),
                ));
            }
            Ok(None) => {
                return Err(fail(
                    record,
                    format!("credential `{name}` is not registered"),
                ));
            }
            Err(e) => return Err(fail(record, e.to_string())),
        };
        record.insert("role".into(), credential.path.clone().into());
        let request = Request {
            tool: AWS_CREDENTIALS_TOOL.to_owned(),
            args: Vec::new(),
            credentials: vec![name.clone()],
            agent: self.config.agent.clone(),
            time: jiff::Timestamp::now(),
            sha256: None,
            http: None,
        };
        let decision = self.evaluate(&request);
        let (decision, grant) = self.settle(&request, decision, None, peer_info, |id, timeout| {
            tracing::info!(
                "an AWS credentials fetch waits up to {}s for `frona approve {id}`",
                timeout.as_secs()
            );
        });
        record.insert("decision".into(), json!(decision.effect));
        record.insert("rule".into(), json!(decision.rule));
        record.insert("reason".into(), decision.reason.clone().into());
        record.insert("grant".into(), json!(grant));
        if decision.effect != Effect::Permit {
            self.submit_audit(record);
            let by = decision
                .rule
                .as_ref()
                .map(|r| format!(" by rule `{r}`"))
                .unwrap_or_default();
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                denial_header(decision.rule.as_deref()),
                format!("denied{by}: {}", decision.reason),
            ));
        }
        let issue = decision.issue.clone().unwrap_or_default();
        let key = SessionKey {
            rule: decision.rule.clone(),
            issue: issue.clone(),
            credential: credential.clone(),
        };
        // One fetch at a time from here: concurrent SDKs share one new session.
        let mut slot = endpoint.session.lock().unwrap_or_else(|p| p.into_inner());
        let reuse = slot
            .as_ref()
            .filter(|s| s.reusable(&key, jiff::Timestamp::now()))
            .map(|s| s.expires);
        record.insert(
            "sts_session".into(),
            if reuse.is_some() { "reused" } else { "new" }.into(),
        );
        if let Some(expires) = reuse {
            record.insert("expires".into(), expiration(expires).into());
        }
        // Durable before a credential is handed out: no audit, no credential.
        if !self.audit(record) {
            return Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit log unavailable",
                "the audit log cannot be written; failing closed",
            ));
        }
        if reuse.is_none() {
            *slot = Some(self.assume_role(credential, issue, key)?);
        }
        let session = slot.as_ref().ok_or_else(|| {
            Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "no session")
        })?;
        credentials_body(session).map_err(|e| {
            self.issue_failed(AWS_CREDENTIALS_TOOL, &e);
            Refusal::new(StatusCode::BAD_GATEWAY, "issue failed", e)
        })
    }

    /// A new STS session of `credential`'s role through the dynamic-credential path.
    fn assume_role(
        &self,
        credential: Credential,
        issue: IssueSpec,
        key: SessionKey,
    ) -> Result<Session, Refusal> {
        let failed = |message: String| {
            self.issue_failed(AWS_CREDENTIALS_TOOL, &message);
            Refusal::new(StatusCode::BAD_GATEWAY, "issue failed", message)
        };
        let prepared = self
            .prepare_with(vec![credential], issue, true)
            .map_err(failed)?
            .ok_or_else(|| failed("the credential could not be prepared".into()))?;
        // STS sessions cannot be revoked: they expire, and were never journalled. Anything
        // else is not what this endpoint serves, and is taken back at once.
        let mut expires: Option<jiff::Timestamp> = None;
        let mut revocable = Vec::new();
        for (lease, journal) in prepared.revocations {
            if lease.revocation == Revocation::Expires {
                expires = Some(expires.map_or(lease.expires, |e| e.min(lease.expires)));
            } else {
                revocable.push((lease, journal));
            }
        }
        if !revocable.is_empty() {
            self.revoke_all(revocable);
            return Err(failed(
                "the backend issued something other than an STS session".into(),
            ));
        }
        let mut env = prepared.env;
        let mut take = |var: &str| {
            env.iter()
                .position(|(name, _)| name == var)
                .map(|i| env.swap_remove(i).1)
        };
        match (
            take("AWS_ACCESS_KEY_ID"),
            take("AWS_SECRET_ACCESS_KEY"),
            take("AWS_SESSION_TOKEN"),
            expires,
        ) {
            (Some(access_key_id), Some(secret_access_key), Some(token), Some(expires)) => {
                Ok(Session {
                    key,
                    access_key_id,
                    secret_access_key,
                    token,
                    expires,
                })
            }
            _ => Err(failed(
                "the backend did not return an STS session (key id, secret key, token)".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests;

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

use frona_backends::registry::{Credential, CredentialKind};
use frona_backends::{BackendKind, Secret};
use frona_broker::audit::{AuditEvent, AwsCredentials, Outcome, StsSession};
use frona_broker::credentials::{CredentialError, Ready};
use frona_broker::peer::Peer;
use frona_broker::{Action, Broker, Call};
use frona_policy::{AWS_CREDENTIALS_TOOL, IssueSpec};
use http::StatusCode;
use http::header::{self, HeaderValue};
use zeroize::{Zeroize as _, Zeroizing};

use crate::http::{Body, Reason, Refusal, Response};

/// The endpoint's path on the egress proxy's listener.
pub const PATH: &str = "/frona/aws-credentials";

/// A session with this much or less left is not handed out again: a new one is issued.
pub const REUSE_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Why the endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
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
        let token = Zeroizing::new(hex::encode(bytes.as_slice()));
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
pub struct AwsEndpoint {
    broker: Broker,
    credential: String,
    token: Token,
    /// Held while a session is issued, so that concurrent fetches make one `AssumeRole`.
    session: Mutex<Option<Session>>,
}

fn json_response(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut response = http::Response::new(Body::full(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The answer at [`PATH`] when this session serves no AWS credentials.
pub(crate) fn not_served() -> Response {
    Refusal::new(
        StatusCode::NOT_FOUND,
        Reason::NotServed,
        "this session serves no AWS credentials (`frona run --net proxy --aws-credential NAME`)",
    )
    .aws()
}

/// The credentials in the form the SDKs read; the secrets are copied only into the body.
/// Why a permitted fetch got no session.
#[derive(Debug, thiserror::Error)]
enum IssueError {
    #[error(transparent)]
    Credential(#[from] frona_broker::credentials::CredentialError),
    #[error("the backend issued something other than an STS session")]
    NotSts,
    #[error("the backend did not return an STS session (key id, secret key, token)")]
    Incomplete,
    #[error("STS returned a credential that is not UTF-8")]
    NotUtf8,
    #[error("the STS session cannot be encoded")]
    Encode(#[source] serde_json::Error),
}

fn credentials_body(session: &Session) -> Result<Vec<u8>, IssueError> {
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
    fn text(secret: &Secret) -> Result<&str, IssueError> {
        std::str::from_utf8(secret.expose()).map_err(|_| IssueError::NotUtf8)
    }
    let body = Body {
        access_key_id: text(&session.access_key_id)?,
        secret_access_key: text(&session.secret_access_key)?,
        token: text(&session.token)?,
        expiration: expiration(session.expires),
    };
    serde_json::to_vec(&body).map_err(IssueError::Encode)
}

/// `2026-01-05T12:15:00Z`: whole seconds (rounded down), UTC.
fn expiration(expires: jiff::Timestamp) -> String {
    jiff::Timestamp::from_second(expires.as_second())
        .unwrap_or(expires)
        .to_string()
}

/// The record of a fetch, filled in as it goes.
fn record(
    peer: Option<Peer>,
    credential: &str,
    decision: Outcome,
    reason: String,
) -> AwsCredentials {
    AwsCredentials {
        peer,
        credentials: vec![credential.to_owned()],
        role: None,
        decision,
        rule: None,
        reason,
        grant: None,
        sts_session: None,
        expires: None,
    }
}

impl AwsEndpoint {
    /// Serves STS sessions of the `aws-sts` credential named `credential` at [`PATH`] on the
    /// egress proxy; the token is what the agent must present (for its environment).
    pub fn new(broker: Broker, credential: &str) -> Result<(Self, Secret), EndpointError> {
        let token = Token::generate()?;
        let exposed = Secret::from_string(token.expose().to_owned());
        let endpoint = Self {
            broker,
            credential: credential.to_owned(),
            token,
            session: Mutex::new(None),
        };
        Ok((endpoint, exposed))
    }

    /// Answers a request for [`PATH`] that reached the egress proxy in origin form. Blocks
    /// (on a runtime worker, handed off with `block_in_place`) while the policy decides and STS
    /// issues.
    pub(crate) fn handle<B>(&self, request: &http::Request<B>, peer: Option<Peer>) -> Response {
        if request.method() != http::Method::GET {
            return Refusal::new(
                StatusCode::METHOD_NOT_ALLOWED,
                Reason::MethodNotAllowed,
                format!("{PATH} answers GET only"),
            )
            .aws();
        }
        let token_refusal = match request.headers().get(header::AUTHORIZATION) {
            None => Some(Refusal::new(
                StatusCode::UNAUTHORIZED,
                Reason::NoToken,
                "send the session's token: `Authorization: $AWS_CONTAINER_AUTHORIZATION_TOKEN`",
            )),
            Some(value) if !self.token.matches(value.as_bytes()) => Some(Refusal::new(
                StatusCode::FORBIDDEN,
                Reason::WrongToken,
                "the Authorization header is not this session's token",
            )),
            Some(_) => None,
        };
        if let Some(refusal) = token_refusal {
            let mut refused = record(
                peer,
                &self.credential,
                Outcome::Deny,
                refusal.message.clone(),
            );
            refused.rule = Some(None);
            self.broker
                .audit
                .submit(&AuditEvent::AwsCredentials(refused));
            return refusal.aws();
        }
        match tokio::task::block_in_place(|| self.fetch(peer)) {
            Ok(bytes) => json_response(StatusCode::OK, bytes),
            Err(refusal) => refusal.aws(),
        }
    }

    /// Decides one fetch, records it, and hands out a session (reused or new) as the body.
    fn fetch(&self, peer: Option<Peer>) -> Result<Vec<u8>, Refusal> {
        let name = &self.credential;
        let audit = &self.broker.audit;
        let fail = |why: String| {
            audit.submit(&AuditEvent::AwsCredentials(record(
                peer,
                name,
                Outcome::Error,
                why.clone(),
            )));
            Refusal::new(StatusCode::SERVICE_UNAVAILABLE, Reason::Unavailable, why)
        };
        let credentials = &self.broker.credentials;
        let credential = match credentials.resolve(name, credentials.cwd()) {
            Ok(c) if c.kind == CredentialKind::AwsSts && c.backend == BackendKind::Aws => c,
            Ok(_) => {
                return Err(fail(format!(
                    "credential `{name}` is no longer an aws-sts credential of the aws backend"
                )));
            }
            Err(e) => return Err(fail(e.to_string())),
        };
        let call = Call::new(peer, Action::AwsCredentials, vec![name.clone()]);
        let decision = self.broker.decider.decide(&call, |id, timeout| {
            tracing::info!(
                "an AWS credentials fetch waits up to {}s for `frona approve {id}`",
                timeout.as_secs()
            );
        });
        let mut decided = record(peer, name, decision.effect.into(), decision.reason.clone());
        decided.role = Some(credential.path.clone());
        decided.rule = Some(decision.rule.clone());
        decided.grant = Some(decision.grant.clone());
        if !decision.permitted() {
            audit.submit(&AuditEvent::AwsCredentials(decided));
            return Err(Refusal::forbidden(
                decision.rule.as_deref(),
                decision.refusal(),
            ));
        }
        let issue = decision.issue();
        let key = SessionKey {
            rule: decision.rule.clone(),
            issue: issue.clone(),
            credential: credential.clone(),
        };
        // One fetch at a time from here: concurrent SDKs share one new session.
        let mut slot = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let reuse = slot
            .as_ref()
            .filter(|s| s.reusable(&key, jiff::Timestamp::now()))
            .map(|s| s.expires);
        decided.sts_session = Some(if reuse.is_some() {
            StsSession::Reused
        } else {
            StsSession::New
        });
        decided.expires = reuse.map(expiration);
        // Durable before a credential is handed out: no audit, no credential.
        if !audit.recorded(&AuditEvent::AwsCredentials(decided)) {
            return Err(Refusal::audit_unavailable());
        }
        if reuse.is_none() {
            *slot = Some(self.assume_role(credential, issue, key)?);
        }
        let session = slot.as_ref().ok_or_else(|| {
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Reason::Unavailable,
                "no session",
            )
        })?;
        credentials_body(session).map_err(|e| self.issue_failed(&e))
    }

    /// Records that a permitted fetch got no session; the refusal to answer with.
    fn issue_failed(&self, error: &IssueError) -> Refusal {
        let message = frona_sandbox::error_chain(error);
        self.broker.audit.submit(&AuditEvent::IssueFailed {
            tool: AWS_CREDENTIALS_TOOL.to_owned(),
            reason: message.clone(),
        });
        Refusal::new(StatusCode::BAD_GATEWAY, Reason::IssueFailed, message)
    }

    /// A new STS session of `credential`'s role through the dynamic-credential path.
    fn assume_role(
        &self,
        credential: Credential,
        issue: IssueSpec,
        key: SessionKey,
    ) -> Result<Session, Refusal> {
        let credentials = &self.broker.credentials;
        let issued = match credentials.prepare(vec![credential], &issue, true) {
            Ok(Ready::Issued(issued)) => issued,
            Ok(Ready::WouldBlock) => {
                return Err(self.issue_failed(&CredentialError::NotPrepared.into()));
            }
            Err(e) => return Err(self.issue_failed(&e.into())),
        };
        // STS sessions cannot be revoked: they expire, and were never journalled. Anything
        // else is not what this endpoint serves, and is taken back at once.
        let (expires, revocable) = issued.leases.split_unrevocable();
        if !revocable.is_empty() {
            credentials.revoke(revocable);
            return Err(self.issue_failed(&IssueError::NotSts));
        }
        let mut env = issued.values;
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
            _ => Err(self.issue_failed(&IssueError::Incomplete)),
        }
    }
}

#[cfg(test)]
mod tests;

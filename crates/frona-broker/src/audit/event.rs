//! What the audit log records, as types: every record frona writes is one [`AuditEvent`],
//! stamped with the time, the agent and the session ([`super::Audit`]). The variant is the
//! record's `kind`; its fields are the record's other fields, by the same names.
//!
//! The JSON is a contract (`frona audit --json`, `docs/broker.md`, the log pipelines users
//! feed it to) and the hash chain seals it: a field renamed, dropped, or changed from `null`
//! to absent is a different record. So each field says whether it is always there (an
//! `Option` without `skip_serializing_if` is written as `null`) or only when it has a value.
//! `tests/fixtures/audit-0.1.0.jsonl`, written by frona 0.1.0, must read back through these
//! types to the same bytes (see the tests).

use serde::{Deserialize, Serialize};

use crate::peer::Peer;

/// One audit record, by its `kind`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AuditEvent {
    /// A call on the broker's socket (`frona tool`), decided.
    Decision(ToolDecision),
    /// `frona issue`: values handed to the agent itself, decided.
    Deliver(ToolDecision),
    /// A call refused before the policy saw it (a caller outside the agent's tree, a request
    /// that is malformed or too large, a tool named by a path that is not the named tool).
    Refused(Refused),
    /// A call waits for a human (`frona approve ID`).
    Ask(Ask),
    /// A permitted call got no credential (a backend down, slow, erring).
    IssueFailed { tool: String, reason: String },
    /// A dynamic credential revoked (or found expired), after its call or as an orphan of a
    /// session that died.
    Revoke(Revoke),
    /// An operator revoked a grant.
    RevokeGrant { grant: String },
    /// A call through the credential proxy, or a placeholder about to be swapped, decided.
    Http(HttpDecision),
    /// What became of a permitted [`AuditEvent::Http`] call.
    HttpResponse(HttpResponse),
    /// A connection through the egress proxy, decided.
    Egress(Egress),
    /// A connection the egress proxy permitted could not be made.
    EgressError { reason: String },
    /// A `CONNECT` tunnel closed.
    EgressClose(EgressClose),
    /// A placeholder sent where it is never swapped, sent on unchanged.
    PlaceholderUnbound(PlaceholderUnbound),
    /// A fetch at the AWS container credentials endpoint.
    AwsCredentials(AwsCredentials),
    /// A signature through frona's SSH agent, decided (the data signed is never recorded).
    SshSign(SshSign),
    /// An MCP server started by the gateway for one agent connection, with its credentials.
    McpStart(McpStart),
    /// A `tools/call` through the MCP gateway, decided.
    McpCall(McpCallRecord),
    /// A permitted `tools/call` the server did not answer in time; the agent got an error.
    McpTimeout(McpTimeout),
    /// A tool whose definition is not the pinned one, withheld from the agent.
    McpToolChanged(McpToolChanged),
}

/// How a call was decided, as the log says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Permit,
    Deny,
    /// Never recorded as a final decision: an `ask` is settled (permit or deny) first.
    Ask,
    /// Neither: something failed before a decision could be carried out.
    Error,
}

impl From<frona_policy::Effect> for Outcome {
    fn from(effect: frona_policy::Effect) -> Self {
        match effect {
            frona_policy::Effect::Permit => Outcome::Permit,
            frona_policy::Effect::Deny => Outcome::Deny,
            frona_policy::Effect::Ask => Outcome::Ask,
        }
    }
}

/// `decision` and `deliver` records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolDecision {
    #[serde(flatten)]
    pub peer: Option<Peer>,
    pub tool: String,
    /// Redacted of every value handed out so far.
    pub args: Vec<String>,
    pub credentials: Vec<String>,
    pub decision: Outcome,
    pub rule: Option<String>,
    pub reason: String,
    pub grant: Option<String>,
    /// Why the agent says it makes the call (untrusted text).
    pub agent_reason: Option<String>,
    pub latency_us: u64,
}

/// `refused` records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    #[serde(flatten)]
    pub peer: Option<Peer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Always [`Outcome::Deny`].
    pub decision: Outcome,
    pub reason: String,
}

/// `ask` records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ask {
    #[serde(flatten)]
    pub peer: Option<Peer>,
    pub approval: String,
    pub tool: String,
    pub credentials: Vec<String>,
    pub rule: String,
}

/// `revoke` records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoke {
    pub credential: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The dead session whose journal listed it (orphans only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphan_of_session: Option<String>,
    /// It had expired already: nothing was sent to the backend (orphans only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expired: bool,
}

/// Which HTTP front end a call came through, when not the credential proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// A placeholder in a terminated tunnel.
    Placeholder,
}

/// The request part of `http` and `http-response` records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpCall {
    #[serde(flatten)]
    pub peer: Option<Peer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<Via>,
    pub method: String,
    pub host: String,
    /// Percent-decoded, without the query.
    pub path: String,
    /// The credential proxy's route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    pub credentials: Vec<String>,
}

/// `http` records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpDecision {
    #[serde(flatten)]
    pub call: HttpCall,
    pub decision: Outcome,
    pub rule: Option<String>,
    pub reason: String,
    pub grant: Option<String>,
}

/// `http-response` records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    #[serde(flatten)]
    pub call: HttpCall,
    pub latency_us: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `egress` records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Egress {
    #[serde(flatten)]
    pub peer: Option<Peer>,
    pub method: String,
    /// As the policy names it: lower case, an IPv6 address in brackets.
    pub host: String,
    pub port: u16,
    /// A plain request's path, without its query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub decision: Outcome,
    pub rule: Option<String>,
    pub reason: String,
    /// The addresses a permitted connection may go to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<String>>,
    /// Why some of the name's addresses were left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// `egress-close` records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressClose {
    #[serde(flatten)]
    pub peer: Option<Peer>,
    pub host: String,
    pub port: u16,
    /// From the agent.
    pub bytes_up: u64,
    /// To the agent.
    pub bytes_down: u64,
    pub duration_ms: u64,
    /// frona terminated the tunnel's TLS (a host a credential is bound to).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terminated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `placeholder-unbound` records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceholderUnbound {
    #[serde(flatten)]
    pub peer: Option<Peer>,
    pub credential: String,
    pub host: String,
    pub port: u16,
    pub scheme: String,
    pub reason: String,
}

/// Whether a fetch at the AWS endpoint got a new STS session or one handed out before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StsSession {
    New,
    Reused,
}

/// `aws-credentials` records. Which fields are there depends on how far the fetch got: a
/// refused token has `rule: null` and no `grant`; a failure before the decision has neither;
/// a decided fetch has both, and `sts_session` when it was permitted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsCredentials {
    #[serde(flatten)]
    pub peer: Option<Peer>,
    pub credentials: Vec<String>,
    /// The role, once the credential was resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub decision: Outcome,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub rule: Option<Option<String>>,
    pub reason: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub grant: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sts_session: Option<StsSession>,
    /// When a reused session expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// How a call was decided, and how long it took: the fields the decision records of the newer
/// front ends share (flattened: the JSON has them at the top level).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided {
    pub decision: Outcome,
    pub rule: Option<String>,
    pub reason: String,
    pub grant: Option<String>,
    pub latency_us: u64,
}

impl Decided {
    /// `decision`, `started` ago.
    pub fn new(decision: &crate::decider::Decision, started: std::time::Instant) -> Self {
        Self {
            decision: decision.effect.into(),
            rule: decision.rule.clone(),
            reason: decision.reason.clone(),
            grant: decision.grant.clone(),
            latency_us: started.elapsed().as_micros() as u64,
        }
    }
}

/// `ssh-sign` records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshSign {
    #[serde(flatten)]
    pub peer: Option<Peer>,
    /// The key's `SHA256:` fingerprint.
    pub key: String,
    /// Its comment in the user's ssh-agent.
    pub comment: String,
    /// The `SHA256:` fingerprint of the server host key the connection was bound to (verified
    /// `session-bind@openssh.com`); `null` when bound to none.
    pub host_key: Option<String>,
    /// The names `known_hosts` gives that host key, as `name:port`.
    pub hosts: Vec<String>,
    #[serde(flatten)]
    pub decided: Decided,
}

/// `mcp-start` records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpStart {
    #[serde(flatten)]
    pub peer: Option<Peer>,
    pub server: String,
    /// The credentials in the server's environment (names, never values).
    pub credentials: Vec<String>,
    /// Why it did not start, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `mcp-call` records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpCallRecord {
    #[serde(flatten)]
    pub peer: Option<Peer>,
    pub server: String,
    pub tool: String,
    /// SHA-256 of the arguments as JSON (keys sorted): what an approval is bound to.
    pub arguments_sha256: String,
    /// The arguments as JSON, redacted of every value handed out.
    pub arguments: String,
    #[serde(flatten)]
    pub decided: Decided,
}

/// `mcp-timeout` records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpTimeout {
    #[serde(flatten)]
    pub peer: Option<Peer>,
    pub server: String,
    pub tool: String,
    pub timeout_secs: u64,
}

/// `mcp-tool-changed` records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpToolChanged {
    #[serde(flatten)]
    pub peer: Option<Peer>,
    pub server: String,
    pub tool: String,
    /// SHA-256 of the definition pinned, and of the one the server lists now.
    pub pinned: String,
    pub now: String,
}

/// A field that is there, `null` or not: `Some(None)` for `null` (serde alone reads `null` as
/// absent).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

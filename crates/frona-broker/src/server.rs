//! The broker server: accepts the agent's calls on a Unix socket, decides each with the policy
//! (and remembered grants), records the decision in the audit log before answering, fetches or
//! issues the credentials, runs the tool with them in its environment only, streams its output
//! back redacted, and revokes what it issued once the tool has exited.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use frona_backends::cache::SecretCache;
use frona_backends::registry::{CredentialKind, Registry};
use frona_backends::{Backend, BackendKind, IssueRequest, Issued, Secret, SecretRef};
use frona_policy::{Effect, PolicySet, RateTracker, Request};
use serde_json::{Map, Value, json};
use sha2::Digest as _;

use crate::audit::AuditLog;
use crate::control::{Answer, Approvals, Pending};
use crate::grants::Grants;
use crate::grants::Lifetime;
use crate::leases::{Lease, LeaseJournal};
use crate::peer::{descends_from, peer_of};
use crate::protocol::{self, Call, Event, MAX_REQUEST};
use crate::redact::Redactor;

/// How long a connection may sit idle (or a request stall) before the broker closes it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Connections served at once; more are answered with an error and closed.
pub const MAX_CONNECTIONS: usize = 256;

/// Everything the broker needs, built by `frona run`.
pub struct BrokerConfig {
    pub agent: String,
    pub session: String,
    pub policy: PolicySet,
    pub registry: Registry,
    /// One client per configured backend.
    pub backends: HashMap<BackendKind, Box<dyn Backend>>,
    pub audit: AuditLog,
    pub grants: Grants,
    /// Host pid of the agent's init helper, once started (0 before): callers must descend from
    /// it, which leaves out frona itself and the tools the broker runs.
    pub agent_root: Arc<std::sync::atomic::AtomicI32>,
    /// The environment tools start from (the agent's, scrubbed).
    pub tool_env: Vec<(OsString, OsString)>,
    /// How tools are isolated: run through this launcher (frona's init helper with the tool
    /// profile), or directly when `None`.
    pub tool_launcher: Option<ToolLauncher>,
    pub cache_ttl: Duration,
    /// How long one credential's fetch or issue may take, retries included: past it the call
    /// fails with that reason instead of waiting on a slow backend.
    pub backend_timeout: Duration,
    /// The agent's starting directory: where project-scoped credentials of proxied calls are
    /// resolved.
    pub proxy_cwd: PathBuf,
}

/// Runs each tool under its own isolation: `exe` (frona) `__init --parent PID --plan JSON --
/// TOOL ARGS…`, the same helper that isolates the agent.
#[derive(Clone, Debug)]
pub struct ToolLauncher {
    pub exe: PathBuf,
    pub parent: i32,
    /// The isolation plan for tools, as JSON.
    pub plan: String,
}

impl ToolLauncher {
    fn command(&self, program: &Path, args: &[String]) -> Command {
        use std::os::unix::process::CommandExt as _;
        let mut command = Command::new(&self.exe);
        command
            .arg0("frona")
            .args([
                "__init",
                "--parent",
                &self.parent.to_string(),
                "--stop-timeout",
                "10s",
                "--plan",
                &self.plan,
                "--",
            ])
            .arg(program)
            .args(args);
        command
    }
}

impl std::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("agent", &self.agent)
            .field("rules", &self.policy.len())
            .finish_non_exhaustive()
    }
}

pub struct Broker {
    pub(crate) config: BrokerConfig,
    approvals: Approvals,
    rates: Mutex<RateTracker>,
    cache: SecretCache,
    /// Every value this broker has handed out (to tools or, with `deliver: value`, to the
    /// agent): what audit records are redacted against.
    handed_out: Mutex<Vec<Secret>>,
    runtime: tokio::runtime::Runtime,
    /// Dynamic credentials issued and not yet revoked, on disk.
    leases: LeaseJournal,
    /// The HTTP proxy's client (connection pool shared by all calls), made on first use: a
    /// machine without CA certificates loses the proxy, not the broker.
    #[cfg(feature = "proxy")]
    pub(crate) http: std::sync::OnceLock<Result<reqwest::Client, String>>,
    /// Placeholders and TLS termination for credentials bound to hosts (`--net proxy`).
    #[cfg(feature = "proxy")]
    pub(crate) intercept: std::sync::OnceLock<crate::intercept::Intercept>,
    /// The AWS container credentials endpoint, once `frona run` serves one.
    #[cfg(feature = "proxy")]
    pub(crate) aws_endpoint: std::sync::OnceLock<crate::container_credentials::Endpoint>,
    /// `CONNECT` tunnels being copied: [`Broker::finish`] lets the ones closing write their
    /// `egress-close` records.
    #[cfg(feature = "proxy")]
    pub(crate) tunnels: AtomicUsize,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("agent", &self.config.agent)
            .finish_non_exhaustive()
    }
}

/// Writes events to the client, one JSON line each. Events that are not the last of a step are
/// queued and go out with the next [`Replies::send`] in one write: one wake-up of the client,
/// not one per line.
struct Replies {
    stream: Mutex<(UnixStream, Vec<u8>)>,
}

impl Replies {
    fn new(stream: UnixStream) -> Self {
        Self {
            stream: Mutex::new((stream, Vec::new())),
        }
    }

    fn queue(&self, event: &Event) {
        let mut guard = self.stream.lock().unwrap_or_else(|p| p.into_inner());
        if serde_json::to_writer(&mut guard.1, event).is_ok() {
            guard.1.push(b'\n');
        }
    }

    /// Queues `event` and writes everything queued.
    fn send(&self, event: &Event) {
        self.queue(event);
        self.flush();
    }

    fn flush(&self) {
        let mut guard = self.stream.lock().unwrap_or_else(|p| p.into_inner());
        let (stream, buffer) = &mut *guard;
        let _ = stream.write_all(buffer);
        buffer.clear();
    }
}

/// A credential ready for one tool run: environment variables, and what to revoke after.
pub(crate) struct Prepared {
    pub(crate) env: Vec<(String, Secret)>,
    /// Dynamic credentials to revoke after the call, with their journal ids.
    pub(crate) revocations: Vec<(Lease, Option<u64>)>,
}

pub(crate) fn env_name(credential: &str) -> String {
    credential
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

impl Broker {
    pub fn new(config: BrokerConfig) -> std::io::Result<Arc<Self>> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("frona-broker")
            .build()?;
        let cache = SecretCache::new(config.cache_ttl);
        let leases = LeaseJournal::new(&leases_dir(config.audit.path()), &config.session);
        let broker = Arc::new(Self {
            config,
            leases,
            approvals: Approvals::default(),
            rates: Mutex::new(RateTracker::default()),
            cache,
            handed_out: Mutex::new(Vec::new()),
            runtime,
            #[cfg(feature = "proxy")]
            http: std::sync::OnceLock::new(),
            #[cfg(feature = "proxy")]
            intercept: std::sync::OnceLock::new(),
            #[cfg(feature = "proxy")]
            aws_endpoint: std::sync::OnceLock::new(),
            #[cfg(feature = "proxy")]
            tunnels: AtomicUsize::new(0),
        });
        // Leases of sessions that were killed are revoked before this one starts its agent
        // (there are none unless a frona died without cleaning up).
        broker.revoke_orphans();
        Ok(broker)
    }

    /// The runtime the broker's async work (backends, the HTTP proxy) runs on.
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    /// The agent's init helper's pid. The agent can call before frona has recorded it (in the
    /// moment after the spawn): a caller then waits up to 2 s for it rather than being refused.
    /// 0 if there is still none.
    pub(crate) fn agent_root(&self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let root = self.config.agent_root.load(Ordering::SeqCst);
            if root > 0 || Instant::now() >= deadline {
                return root;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Whether `peer` is the agent or one of its descendants: who may use the broker, the
    /// credential proxy and the egress proxy. Blocks only while the agent is not yet recorded.
    pub(crate) fn in_agent_tree(&self, peer: Option<crate::peer::Peer>) -> bool {
        let root = self.agent_root();
        root > 0 && peer.is_some_and(|p| descends_from(p.pid, root))
    }

    /// Accepts connections until the listener fails; one thread per connection, at most
    /// [`MAX_CONNECTIONS`] at once (an agent opening sockets in a loop does not exhaust frona).
    pub fn serve(self: Arc<Self>, listener: UnixListener) {
        let open = Arc::new(AtomicUsize::new(0));
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                open.fetch_sub(1, Ordering::SeqCst);
                Replies::new(stream).send(&Event::Error {
                    message: format!("too many open connections (at most {MAX_CONNECTIONS})"),
                });
                continue;
            }
            let broker = Arc::clone(&self);
            let spawned = std::thread::Builder::new()
                .name("frona-call".into())
                .spawn({
                    let open = Arc::clone(&open);
                    move || {
                        broker.connection(stream);
                        open.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            if spawned.is_err() {
                open.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    pub(crate) fn audit(&self, record: Map<String, Value>) -> bool {
        match self.config.audit.append(self.stamped(record)) {
            Ok(_) => true,
            Err(e) => {
                tracing::error!("{}", e);
                false
            }
        }
    }

    /// Before exit: waits (up to 5 s) until every queued audit record is on disk.
    pub fn finish(&self) {
        // A tunnel whose agent end has just closed (the agent is gone) records its byte counts
        // first; one that stays open longer than this goes unrecorded.
        #[cfg(feature = "proxy")]
        {
            let deadline = Instant::now() + Duration::from_secs(1);
            while self.tunnels.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        if !self.config.audit.flush(Duration::from_secs(5)) {
            tracing::error!("some audit records may not have reached the log");
        }
    }

    /// Queues `record` for the audit log without waiting; [`AuditLog::durable`] waits.
    pub(crate) fn submit_audit(&self, record: Map<String, Value>) -> u64 {
        self.config.audit.submit(self.stamped(record))
    }

    /// `record` with the fields every audit record carries.
    fn stamped(&self, mut record: Map<String, Value>) -> Map<String, Value> {
        record.insert("time".into(), jiff::Timestamp::now().to_string().into());
        record.insert("agent".into(), self.config.agent.clone().into());
        record.insert("session".into(), self.config.session.clone().into());
        record
    }

    /// Serves one connection: its calls in sequence until the client closes it. Who the peer is
    /// was fixed when it connected, so membership of the agent's tree is checked once.
    fn connection(&self, stream: UnixStream) {
        // An idle or stalled client does not hold a thread forever.
        let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
        let peer = peer_of(&stream).ok();
        let Ok(reader) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(reader);
        let replies = Replies::new(stream);
        let mut peer_info = Map::new();
        if let Some(p) = peer {
            peer_info.insert("peer_pid".into(), p.pid.into());
            peer_info.insert("peer_uid".into(), p.uid.into());
        }
        let mut member = None;
        loop {
            // The request is read before anything is answered, so the peer always gets the
            // answer (closing a socket with unread data would reset the connection).
            let mut line = Vec::new();
            let read = (&mut reader)
                .take(MAX_REQUEST as u64 + 1)
                .read_until(b'\n', &mut line);
            if matches!(read, Ok(0)) || (read.is_err() && line.is_empty()) {
                // Closed, or idle past the timeout between calls.
                return;
            }
            let started = Instant::now();
            let member = *member.get_or_insert_with(|| self.in_agent_tree(peer));
            if !member {
                return self.deny(
                    &replies,
                    "the caller is not part of the agent's process tree".into(),
                    peer_info,
                );
            }
            if read.is_err() || line.len() > MAX_REQUEST {
                return self.deny(
                    &replies,
                    "request too large or unreadable".into(),
                    peer_info,
                );
            }
            self.call(&line, started, peer_info.clone(), &replies);
        }
    }

    /// Decides `request` with the policy and, for an `ask`, with a remembered grant or a human
    /// (`on_pending` tells the caller what to wait for). Returns the decision and the grant used.
    pub(crate) fn authorize(
        &self,
        request: &Request,
        reason: Option<String>,
        peer_info: &Map<String, Value>,
        on_pending: impl FnOnce(&str, Duration),
    ) -> (frona_policy::Decision, Option<String>) {
        let decision = self.evaluate(request);
        self.settle(request, decision, reason, peer_info, on_pending)
    }

    /// The policy's decision alone (counts towards rate limits; never blocks).
    pub(crate) fn evaluate(&self, request: &Request) -> frona_policy::Decision {
        let mut rates = self.rates.lock().unwrap_or_else(|p| p.into_inner());
        self.config.policy.evaluate(request, &mut rates)
    }

    /// Turns an `ask` into a permit or a deny, with a remembered grant or a human; blocks while
    /// the human decides. Other decisions pass through.
    pub(crate) fn settle(
        &self,
        request: &Request,
        mut decision: frona_policy::Decision,
        reason: Option<String>,
        peer_info: &Map<String, Value>,
        on_pending: impl FnOnce(&str, Duration),
    ) -> (frona_policy::Decision, Option<String>) {
        let mut grant_id = None;
        if decision.effect == Effect::Ask {
            let tool_name = request
                .tool
                .rsplit('/')
                .next()
                .unwrap_or(&request.tool)
                .to_owned();
            let rule = decision.rule.clone().unwrap_or_default();
            match self.config.grants.use_grant(
                &self.config.agent,
                &tool_name,
                &request.credentials,
                request.time,
            ) {
                Ok(Some(grant)) => {
                    decision.effect = Effect::Permit;
                    decision.reason = format!("approved earlier (grant {})", grant.id);
                    decision.issue = Some(decision.issue.take().unwrap_or_default());
                    grant_id = Some(grant.id);
                }
                Ok(None) => {
                    let pending = Pending {
                        id: new_approval_id(),
                        agent: self.config.agent.clone(),
                        tool: tool_name.clone(),
                        args: request.args.clone(),
                        credentials: request.credentials.clone(),
                        rule: rule.clone(),
                        reason: reason.clone(),
                        asked: request.time,
                    };
                    let id = pending.id.clone();
                    let mut record = peer_info.clone();
                    record.insert("kind".into(), "ask".into());
                    record.insert("approval".into(), id.clone().into());
                    record.insert("tool".into(), request.tool.clone().into());
                    record.insert("credentials".into(), json!(request.credentials));
                    record.insert("rule".into(), rule.clone().into());
                    if !self.audit(record) {
                        decision.effect = Effect::Deny;
                        decision.rule = None;
                        decision.reason = "the audit log cannot be written; failing closed".into();
                        return (decision, None);
                    }
                    let wait = self.approvals.hold(pending);
                    let timeout = decision.ask_timeout.unwrap_or(Duration::from_secs(300));
                    on_pending(&id, timeout);
                    let answer = wait.recv_timeout(timeout);
                    self.approvals.release(&id);
                    match answer {
                        Ok(Answer::Approve(lifetime)) => {
                            let granted = self
                                .config
                                .grants
                                .create(
                                    &self.config.agent,
                                    &tool_name,
                                    &request.credentials,
                                    &rule,
                                    lifetime,
                                    jiff::Timestamp::now(),
                                )
                                .and_then(|g| {
                                    if lifetime == Lifetime::Once {
                                        self.config
                                            .grants
                                            .use_grant(
                                                &self.config.agent,
                                                &tool_name,
                                                &request.credentials,
                                                jiff::Timestamp::now(),
                                            )
                                            .map(|_| g)
                                    } else {
                                        Ok(g)
                                    }
                                });
                            match granted {
                                Ok(grant) => {
                                    decision.effect = Effect::Permit;
                                    decision.reason = format!("approved (grant {})", grant.id);
                                    decision.issue =
                                        Some(decision.issue.take().unwrap_or_default());
                                    grant_id = Some(grant.id);
                                }
                                Err(e) => {
                                    decision.effect = Effect::Deny;
                                    decision.reason =
                                        format!("approved, but the grant could not be stored: {e}");
                                }
                            }
                        }
                        Ok(Answer::Deny(why)) => {
                            decision.effect = Effect::Deny;
                            decision.reason = format!("denied by the operator: {why}");
                        }
                        Err(_) => {
                            decision.effect = Effect::Deny;
                            decision.reason =
                                format!("no answer to approval {id} within {}s", timeout.as_secs());
                        }
                    }
                }
                Err(e) => {
                    decision.effect = Effect::Deny;
                    decision.reason = format!("grants unavailable: {e}");
                }
            }
        }
        (decision, grant_id)
    }

    /// Records and answers a refusal made before the policy was consulted.
    fn deny(&self, replies: &Replies, reason: String, mut record: Map<String, Value>) {
        record.insert("decision".into(), "deny".into());
        record.insert("reason".into(), reason.clone().into());
        self.audit(record);
        replies.send(&Event::Decision {
            effect: Effect::Deny,
            rule: None,
            reason,
        });
    }

    /// Decides and carries out one call; every answer ends with a final event (see
    /// [`crate::protocol`]).
    fn call(
        &self,
        line: &[u8],
        started: Instant,
        peer_info: Map<String, Value>,
        replies: &Replies,
    ) {
        let deny = |reason: String, record: Map<String, Value>| self.deny(replies, reason, record);
        let call = match protocol::decode(line) {
            Ok(call) => call,
            Err(e) => return deny(e.to_string(), peer_info),
        };
        let (tool, args, credentials, reason, cwd, deliver) = match call {
            Call::Tool {
                v: _,
                tool,
                args,
                credentials,
                reason,
                cwd,
            } => (tool, args, credentials, reason, cwd, false),
            Call::Issue {
                v: _,
                tool,
                credentials,
                reason,
                cwd,
            } => (tool, Vec::new(), credentials, reason, cwd, true),
        };
        // Rules name tools by their program name, which must mean the program of that name in
        // the tools' PATH: `./bin/gh` (the agent's own script) is not the `gh` a rule permits.
        if tool.contains('/') && !self.is_the_named_tool(&tool, &cwd) {
            let mut record = peer_info;
            record.insert("tool".into(), tool.clone().into());
            return deny(
                format!(
                    "`{tool}` is not the `{}` in the tools' PATH; call tools by name (policies match names)",
                    tool.rsplit('/').next().unwrap_or_default()
                ),
                record,
            );
        }
        // The binary is looked up only when it will run or its hash is matched.
        let program = (!deliver || self.config.policy.pins_binaries())
            .then(|| self.resolve(&tool))
            .flatten();
        let sha256 = if self.config.policy.pins_binaries() {
            program.as_deref().and_then(file_sha256)
        } else {
            None
        };
        let request = Request {
            tool: tool.clone(),
            args: args.clone(),
            credentials: credentials.clone(),
            agent: self.config.agent.clone(),
            time: jiff::Timestamp::now(),
            sha256,
            http: None,
        };
        let (mut decision, grant_id) =
            self.authorize(&request, reason.clone(), &peer_info, |id, timeout| {
                replies.send(&Event::Pending {
                    approval: id.into(),
                    timeout_secs: timeout.as_secs(),
                });
            });
        // Handing a value to the agent needs a rule that says so.
        if deliver
            && decision.effect == Effect::Permit
            && decision
                .issue
                .as_ref()
                .is_none_or(|i| i.deliver != frona_policy::Deliver::Value)
        {
            decision.effect = Effect::Deny;
            decision.reason = format!(
                "rule `{}` gives credentials to tools only; handing a value to the agent needs `issue: {{ deliver: value }}`",
                decision.rule.clone().unwrap_or_default()
            );
        }
        let mut record = peer_info;
        record.insert(
            "kind".into(),
            if deliver { "deliver" } else { "decision" }.into(),
        );
        record.insert("tool".into(), tool.clone().into());
        record.insert("args".into(), json!(self.redact_all(&args)));
        record.insert("credentials".into(), json!(credentials));
        record.insert("decision".into(), json!(decision.effect));
        record.insert("rule".into(), json!(decision.rule));
        record.insert("reason".into(), decision.reason.clone().into());
        record.insert("grant".into(), json!(grant_id));
        record.insert("agent_reason".into(), json!(reason));
        record.insert(
            "latency_us".into(),
            (started.elapsed().as_micros() as u64).into(),
        );
        // Durable before the answer: no audit, no call.
        if !self.audit(record) {
            return replies.send(&Event::Decision {
                effect: Effect::Deny,
                rule: None,
                reason: "the audit log cannot be written; failing closed".into(),
            });
        }
        // A permit is not the last event: it goes out with what follows.
        replies.queue(&Event::Decision {
            effect: decision.effect,
            rule: decision.rule.clone(),
            reason: decision.reason.clone(),
        });
        if decision.effect != Effect::Permit {
            return replies.flush();
        }
        if deliver {
            return match self.prepare(
                &credentials,
                decision.issue.as_ref().cloned().unwrap_or_default(),
                &cwd,
            ) {
                Ok(prepared) => {
                    for ((env, value), name) in prepared.env.iter().zip(credentials.iter().cycle())
                    {
                        let value = String::from_utf8_lossy(value.expose()).into_owned();
                        replies.queue(&Event::Credential {
                            name: name.clone(),
                            env: env.clone(),
                            value,
                        });
                    }
                    replies.send(&Event::Exit { code: 0 });
                }
                Err(message) => {
                    self.issue_failed(&tool, &message);
                    replies.send(&Event::Error { message })
                }
            };
        }
        let Some(program) = program else {
            return replies.send(&Event::Error {
                message: format!("`{tool}`: command not found in the agent's PATH"),
            });
        };
        let prepared = match self.prepare(
            &credentials,
            decision.issue.as_ref().cloned().unwrap_or_default(),
            &cwd,
        ) {
            Ok(prepared) => prepared,
            Err(message) => {
                self.issue_failed(&tool, &message);
                return replies.send(&Event::Error { message });
            }
        };
        replies.flush();
        let code = run_tool(
            self.config.tool_launcher.as_ref(),
            &program,
            &args,
            &cwd,
            &self.config.tool_env,
            &prepared.env,
            replies,
        );
        // Revoked before the agent hears the call ended: it cannot go on while the value lives.
        self.revoke_all(prepared.revocations);
        replies.send(&Event::Exit { code });
    }

    /// Records that a permitted call got no credential (a backend down, slow, erring); the
    /// decision before it is on disk already, so this one is not waited for.
    pub(crate) fn issue_failed(&self, tool: &str, message: &str) {
        let mut record = Map::new();
        record.insert("kind".into(), "issue-failed".into());
        record.insert("tool".into(), tool.into());
        record.insert("reason".into(), message.into());
        self.submit_audit(record);
    }

    /// Revokes what was issued for a call (after the call), auditing each; the journal
    /// forgets what was revoked (what was not is tried again by the next frona to start).
    pub(crate) fn revoke_all(&self, revocations: Vec<(Lease, Option<u64>)>) {
        for (lease, journal) in revocations {
            let result = self.revoke_lease(&lease);
            if result.is_ok()
                && let Some(id) = journal
                && let Err(e) = self.leases.done(id)
            {
                tracing::warn!("{e}");
            }
            let mut record = Map::new();
            record.insert("kind".into(), "revoke".into());
            record.insert("credential".into(), lease.credential.into());
            record.insert("ok".into(), result.is_ok().into());
            if let Err(e) = result {
                record.insert("error".into(), e.into());
            }
            self.audit(record);
        }
    }

    /// `texts` with every value handed out so far (and its encodings) replaced.
    fn redact_all(&self, texts: &[String]) -> Vec<String> {
        let known = self.handed_out.lock().unwrap_or_else(|p| p.into_inner());
        if known.is_empty() {
            return texts.to_vec();
        }
        texts
            .iter()
            .map(|text| {
                let mut redactor = Redactor::new(known.iter().map(Secret::expose));
                let mut out = redactor.push(text.as_bytes());
                out.extend(redactor.finish());
                String::from_utf8_lossy(&out).into_owned()
            })
            .collect()
    }

    /// Whether the path `tool` (relative to the caller's `cwd`) is the very file its name finds
    /// in the tools' PATH.
    fn is_the_named_tool(&self, tool: &str, cwd: &str) -> bool {
        let name = tool.rsplit('/').next().unwrap_or_default();
        match (
            self.resolve(name),
            std::fs::canonicalize(Path::new(cwd).join(tool)),
        ) {
            (Some(named), Ok(given)) => std::fs::canonicalize(named).is_ok_and(|n| n == given),
            _ => false,
        }
    }

    /// Finds `tool` in the tools' PATH (or takes it as a path).
    fn resolve(&self, tool: &str) -> Option<PathBuf> {
        if tool.contains('/') {
            return Path::new(tool).is_file().then(|| tool.into());
        }
        let path = self
            .config
            .tool_env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())?;
        std::env::split_paths(&path)
            .map(|dir| dir.join(tool))
            .find(|p| p.is_file())
    }

    /// Fetches static credentials (through the cache) and issues dynamic ones.
    pub(crate) fn prepare(
        &self,
        credentials: &[String],
        issue: frona_policy::IssueSpec,
        cwd: &str,
    ) -> Result<Prepared, String> {
        let resolved = credentials
            .iter()
            .map(|name| {
                self.config
                    .registry
                    .resolve(name, Some(&self.config.agent), Path::new(cwd))
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("credential `{name}` is not registered"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.prepare_with(resolved, issue, true)?
            .ok_or_else(|| "the credentials could not be prepared".into())
    }

    /// [`Broker::prepare`] for credentials already resolved; with `may_block` false (on an
    /// async thread) it returns `None`, having done nothing, when a backend would have to be
    /// called (a cache miss, a dynamic credential). If one credential fails, those issued
    /// before it are revoked.
    pub(crate) fn prepare_with(
        &self,
        credentials: Vec<frona_backends::registry::Credential>,
        issue: frona_policy::IssueSpec,
        may_block: bool,
    ) -> Result<Option<Prepared>, String> {
        let mut prepared = Prepared {
            env: Vec::new(),
            revocations: Vec::new(),
        };
        for credential in credentials {
            match self.prepare_one(&credential, &issue, may_block, &mut prepared) {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(message) => {
                    self.revoke_all(prepared.revocations);
                    return Err(message);
                }
            }
        }
        let mut handed_out = self.handed_out.lock().unwrap_or_else(|p| p.into_inner());
        for (_, value) in &prepared.env {
            if !handed_out.contains(value) {
                handed_out.push(value.clone());
            }
        }
        drop(handed_out);
        Ok(Some(prepared))
    }

    /// Adds `credential`'s values (and what to revoke) to `prepared`; `false` when it would
    /// have to block and may not.
    pub(crate) fn prepare_one(
        &self,
        credential: &frona_backends::registry::Credential,
        issue: &frona_policy::IssueSpec,
        may_block: bool,
        prepared: &mut Prepared,
    ) -> Result<bool, String> {
        let name = &credential.name;
        let backend = self
            .config
            .backends
            .get(&credential.backend)
            .ok_or_else(|| format!("backend {} is not configured", credential.backend))?;
        let env = credential.env.clone().unwrap_or_else(|| env_name(name));
        match credential.kind {
            CredentialKind::Static | CredentialKind::Totp => {
                // Keyed by what is fetched, not only the name: scopes resolve a name to
                // different secrets in different projects.
                let key = format!(
                    "{name}\0{}\0{}\0{}\0{}",
                    credential.backend,
                    credential.path,
                    credential.field.as_deref().unwrap_or_default(),
                    credential.version.as_deref().unwrap_or_default()
                );
                let value = match self.cache.get(&key) {
                    Some(value) => value,
                    None if !may_block => return Ok(false),
                    None => {
                        let value = self.within_deadline(
                            credential.backend,
                            backend.fetch(&SecretRef::from(credential)),
                        )?;
                        self.cache.put(&key, value.clone());
                        value
                    }
                };
                // A TOTP seed never leaves the broker: the tool gets the current code.
                let value = if credential.kind == CredentialKind::Totp {
                    let now = jiff::Timestamp::now().as_second().max(0) as u64;
                    frona_backends::totp::code(&value, now)
                        .map_err(|e| format!("credential `{name}`: {e}"))?
                } else {
                    value
                };
                prepared.env.push((env, value));
            }
            CredentialKind::Dynamic | CredentialKind::AwsSts if !may_block => return Ok(false),
            CredentialKind::Dynamic | CredentialKind::AwsSts => {
                let request = IssueRequest {
                    ttl: issue.ttl.unwrap_or(Duration::from_secs(900)),
                    uses: issue.uses,
                    policies: issue.policies.clone(),
                    session_policy: issue.session_policy.clone(),
                    session_name: Some(format!("frona-{}", self.config.agent)),
                };
                let Issued {
                    values,
                    revocation,
                    ttl,
                } = self.within_deadline(
                    credential.backend,
                    backend.issue(&SecretRef::from(credential), &request),
                )?;
                let lease = Lease {
                    backend: credential.backend,
                    revocation,
                    credential: name.clone(),
                    expires: jiff::Timestamp::now()
                        + jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::MAX),
                };
                // On disk before the value is used: a frona killed now has it revoked by the
                // next one. No journal, no credential.
                let journal = match &lease.revocation {
                    frona_backends::Revocation::Expires => None,
                    _ => match self.leases.add(lease.clone()) {
                        Ok(id) => Some(id),
                        Err(e) => {
                            self.revoke_all(vec![(lease, None)]);
                            return Err(format!("{e}; failing closed"));
                        }
                    },
                };
                prepared.revocations.push((lease, journal));
                let single = values.len() == 1;
                for (value_name, value) in values {
                    let var = if single {
                        env.clone()
                    } else if value_name.starts_with("AWS_") {
                        value_name
                    } else {
                        format!("{env}_{}", env_name(&value_name))
                    };
                    prepared.env.push((var, value));
                }
            }
        }
        Ok(true)
    }

    /// Runs a backend operation to its end or [`BrokerConfig::backend_timeout`], whichever
    /// comes first.
    fn within_deadline<T>(
        &self,
        backend: BackendKind,
        operation: impl std::future::Future<Output = Result<T, frona_backends::BackendError>>,
    ) -> Result<T, String> {
        let limit = self.config.backend_timeout;
        self.runtime
            .block_on(async move { tokio::time::timeout(limit, operation).await })
            .map_err(|_| format!("backend {backend} timed out after {limit:?}"))?
            .map_err(|e| e.to_string())
    }

    /// Revokes what the journals of dead sessions list (a frona killed mid-call), auditing
    /// each; what has expired already is only recorded.
    fn revoke_orphans(&self) {
        let now = jiff::Timestamp::now();
        for (path, leases) in crate::leases::orphans(&self.leases_dir()) {
            let session = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            for lease in leases {
                let mut record = Map::new();
                record.insert("kind".into(), "revoke".into());
                record.insert("credential".into(), lease.credential.clone().into());
                record.insert("orphan_of_session".into(), json!(session));
                if lease.expires <= now {
                    record.insert("ok".into(), true.into());
                    record.insert("expired".into(), true.into());
                } else {
                    let result = self.revoke_lease(&lease);
                    record.insert("ok".into(), result.is_ok().into());
                    if let Err(e) = result {
                        record.insert("error".into(), e.into());
                    }
                }
                self.audit(record);
            }
        }
    }

    fn leases_dir(&self) -> PathBuf {
        leases_dir(self.config.audit.path())
    }

    fn revoke_lease(&self, lease: &Lease) -> Result<(), String> {
        match self.config.backends.get(&lease.backend) {
            Some(backend) => self
                .runtime
                .block_on(backend.revoke(&lease.revocation))
                .map_err(|e| e.to_string()),
            None => Err(format!("backend {} is not configured", lease.backend)),
        }
    }
}

/// The lease journals live beside the audit log, in frona's state directory.
fn leases_dir(audit: &Path) -> PathBuf {
    audit
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("leases")
}

fn new_approval_id() -> String {
    let mut bytes = [0u8; 6];
    let _ = getrandom::fill(&mut bytes);
    format!("a-{}", frona_backends::hex(&bytes))
}

impl Broker {
    /// Answers one operator request (from [`crate::control`]).
    pub fn control(&self, request: crate::control::Request) -> Value {
        use crate::control::Request as R;
        match request {
            R::Pending => json!({"ok": true, "pending": self.approvals.list()}),
            R::Approve { id, lifetime } => match lifetime.parse::<Lifetime>() {
                Ok(lifetime) => {
                    let ok = self.approvals.answer(&id, Answer::Approve(lifetime));
                    json!({"ok": ok, "error": (!ok).then(|| format!("no call is waiting for approval `{id}`"))})
                }
                Err(e) => json!({"ok": false, "error": e}),
            },
            R::Deny { id, reason } => {
                let ok = self.approvals.answer(
                    &id,
                    Answer::Deny(reason.unwrap_or_else(|| "no reason given".into())),
                );
                json!({"ok": ok, "error": (!ok).then(|| format!("no call is waiting for approval `{id}`"))})
            }
            R::Grants => match self.config.grants.list(jiff::Timestamp::now()) {
                Ok(grants) => json!({"ok": true, "grants": grants}),
                Err(e) => json!({"ok": false, "error": e.to_string()}),
            },
            R::Revoke { id } => match self.config.grants.revoke(&id) {
                Ok(true) => {
                    let mut record = Map::new();
                    record.insert("kind".into(), "revoke-grant".into());
                    record.insert("grant".into(), id.into());
                    self.audit(record);
                    json!({"ok": true})
                }
                Ok(false) => json!({"ok": false, "error": format!("no grant `{id}`")}),
                Err(e) => json!({"ok": false, "error": e.to_string()}),
            },
        }
    }
}

fn file_sha256(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    Some(frona_backends::hex(&sha2::Sha256::digest(&bytes)))
}

/// Runs the tool, streaming both outputs back redacted; returns its shell status.
fn run_tool(
    launcher: Option<&ToolLauncher>,
    program: &Path,
    args: &[String],
    cwd: &str,
    base_env: &[(OsString, OsString)],
    credentials: &[(String, Secret)],
    replies: &Replies,
) -> i32 {
    use std::os::unix::ffi::OsStrExt as _;
    let mut command = match launcher {
        Some(launcher) => launcher.command(program, args),
        None => {
            let mut command = Command::new(program);
            command.args(args);
            command
        }
    };
    command
        .current_dir(cwd)
        .env_clear()
        .envs(base_env.iter().map(|(k, v)| (k, v)));
    for (name, value) in credentials {
        command.env(name, std::ffi::OsStr::from_bytes(value.expose()));
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            replies.send(&Event::Error {
                message: format!("cannot start `{}`: {e}", program.display()),
            });
            return 127;
        }
    };
    let secrets: Vec<&[u8]> = credentials.iter().map(|(_, v)| v.expose()).collect();
    std::thread::scope(|scope| {
        let pipes: [(Option<Box<dyn std::io::Read + Send>>, bool); 2] = [
            (
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
                true,
            ),
            (
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
                false,
            ),
        ];
        for (pipe, is_stdout) in pipes {
            let Some(mut pipe) = pipe else { continue };
            let secrets = secrets.clone();
            scope.spawn(move || {
                let mut redactor = Redactor::new(secrets);
                let mut buffer = [0u8; 16 * 1024];
                let emit = |bytes: Vec<u8>| {
                    if bytes.is_empty() {
                        return;
                    }
                    let data = base64::engine::general_purpose::STANDARD.encode(bytes);
                    replies.send(&if is_stdout {
                        Event::Stdout { data }
                    } else {
                        Event::Stderr { data }
                    });
                };
                loop {
                    match pipe.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => emit(redactor.push(&buffer[..n])),
                    }
                }
                emit(redactor.finish());
            });
        }
    });
    match child.wait() {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt as _;
            status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
        }
        Err(_) => 125,
    }
}

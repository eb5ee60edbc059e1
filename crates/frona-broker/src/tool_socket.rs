//! The agent's socket (`FRONA_BROKER_SOCKET`, [`crate::protocol`]): a front end of the decision
//! core. Each call is decided ([`crate::Decider`]), recorded in the audit log before it is
//! answered, and carried out: the tool runs with its credentials in its environment only
//! (`run.rs`), its output streamed back redacted, and what was issued for it is revoked once it
//! has exited; or, for `frona issue` under a `deliver: value` rule, the values are handed over.

mod run;

use std::ffi::OsString;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::Digest as _;

pub use run::ToolLauncher;

use crate::audit::{AuditEvent, Outcome, Refused, ToolDecision};
use crate::broker::Broker;
use crate::call::{Action, Call};
use crate::peer::{Peer, peer_of};
use crate::protocol::{self, Event, MAX_REQUEST};

/// How long a connection may sit idle (or a request stall) before the broker closes it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Connections served at once; more are answered with an error and closed.
pub const MAX_CONNECTIONS: usize = crate::connections::MAX;

/// How tools are run.
#[derive(Debug)]
pub struct Tools {
    /// The environment tools start from (the agent's, scrubbed).
    pub env: Vec<(OsString, OsString)>,
    /// Isolation: tools run through this launcher (frona's init helper with the tool plan),
    /// or directly when `None`.
    pub launcher: Option<ToolLauncher>,
}

/// The tool socket's server.
#[derive(Debug)]
pub struct ToolSocket {
    broker: Broker,
    tools: Tools,
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

    /// The connection itself, for a front end that takes it over (the MCP gateway).
    fn into_stream(self) -> UnixStream {
        self.stream
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .0
    }

    fn flush(&self) {
        let mut guard = self.stream.lock().unwrap_or_else(|p| p.into_inner());
        let (stream, buffer) = &mut *guard;
        let _ = stream.write_all(buffer);
        buffer.clear();
    }
}

/// A call as the protocol gives it.
struct Request {
    tool: String,
    args: Vec<String>,
    credentials: Vec<String>,
    reason: Option<String>,
    cwd: String,
    /// `frona issue`: hand the values to the agent.
    deliver: bool,
}

impl ToolSocket {
    pub fn new(broker: Broker, tools: Tools) -> Arc<Self> {
        Arc::new(Self { broker, tools })
    }

    /// Accepts connections until the listener fails; one thread per connection, at most
    /// [`MAX_CONNECTIONS`] at once (an agent opening sockets in a loop does not exhaust frona).
    pub fn serve(self: Arc<Self>, listener: UnixListener) {
        let overflow = |stream| {
            Replies::new(stream).send(&Event::Error {
                message: format!("too many open connections (at most {MAX_CONNECTIONS})"),
            });
        };
        crate::connections::serve(listener, "frona-call", overflow, move |stream| {
            self.connection(stream)
        });
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
            let member = *member.get_or_insert_with(|| self.broker.session.in_agent_tree(peer));
            if !member {
                return self.refuse(
                    &replies,
                    peer,
                    None,
                    "the caller is not part of the agent's process tree".into(),
                );
            }
            if read.is_err() || line.len() > MAX_REQUEST {
                return self.refuse(
                    &replies,
                    peer,
                    None,
                    "request too large or unreadable".into(),
                );
            }
            let decoded = protocol::decode(&line);
            // An MCP connection carries the server's JSON-RPC from here on.
            if let Ok(protocol::Call::Mcp { server, cwd, .. }) = decoded {
                let stream = replies.into_stream();
                let session = crate::mcp_gateway::Session::new(&self.broker, &self.tools, peer);
                return session.serve(&server, &cwd, reader, stream);
            }
            self.call(decoded, started, peer, &replies);
        }
    }

    /// Records and answers a refusal made before the policy was consulted.
    fn refuse(&self, replies: &Replies, peer: Option<Peer>, tool: Option<String>, reason: String) {
        self.broker.audit.recorded(&AuditEvent::Refused(Refused {
            peer,
            tool,
            decision: Outcome::Deny,
            reason: reason.clone(),
        }));
        replies.send(&Event::Decision {
            effect: frona_policy::Effect::Deny,
            rule: None,
            reason,
        });
    }

    /// Decides and carries out one call; every answer ends with a final event (see
    /// [`crate::protocol`]).
    fn call(
        &self,
        decoded: Result<protocol::Call, protocol::DecodeError>,
        started: Instant,
        peer: Option<Peer>,
        replies: &Replies,
    ) {
        let request = match decoded {
            Ok(protocol::Call::Tool {
                v: _,
                tool,
                args,
                credentials,
                reason,
                cwd,
            }) => Request {
                tool,
                args,
                credentials,
                reason,
                cwd,
                deliver: false,
            },
            Ok(protocol::Call::Issue {
                v: _,
                tool,
                credentials,
                reason,
                cwd,
            }) => Request {
                tool,
                args: Vec::new(),
                credentials,
                reason,
                cwd,
                deliver: true,
            },
            Ok(protocol::Call::Mcp { .. }) => {
                return self.refuse(replies, peer, None, "an MCP connection ends here".into());
            }
            Err(e) => return self.refuse(replies, peer, None, e.to_string()),
        };
        let Request {
            tool,
            args,
            credentials,
            reason,
            cwd,
            deliver,
        } = request;
        // Rules name tools by their program name, which must mean the program of that name in
        // the tools' PATH: `./bin/gh` (the agent's own script) is not the `gh` a rule permits.
        if tool.contains('/') && !self.is_the_named_tool(&tool, &cwd) {
            let reason = format!(
                "`{tool}` is not the `{}` in the tools' PATH; call tools by name (policies match names)",
                tool.rsplit('/').next().unwrap_or_default()
            );
            return self.refuse(replies, peer, Some(tool), reason);
        }
        let pins = self.broker.decider.pins_binaries();
        // The binary is looked up only when it will run or its hash is matched.
        let program = (!deliver || pins).then(|| self.resolve(&tool)).flatten();
        let sha256 = if pins {
            program.as_deref().and_then(file_sha256)
        } else {
            None
        };
        let call = Call {
            peer,
            action: Action::Tool {
                tool: tool.clone(),
                args: args.clone(),
                sha256,
            },
            credentials: credentials.clone(),
            reason: reason.clone(),
            time: jiff::Timestamp::now(),
        };
        let mut decision = self.broker.decider.decide(&call, |id, timeout| {
            replies.send(&Event::Pending {
                approval: id.into(),
                timeout_secs: timeout.as_secs(),
            });
        });
        // Handing a value to the agent needs a rule that says so.
        if deliver
            && decision.permitted()
            && decision
                .issue
                .as_ref()
                .is_none_or(|i| i.deliver != frona_policy::Deliver::Value)
        {
            decision.effect = frona_policy::Effect::Deny;
            decision.reason = format!(
                "rule `{}` gives credentials to tools only; handing a value to the agent needs `issue: {{ deliver: value }}`",
                decision.rule.clone().unwrap_or_default()
            );
        }
        let record = ToolDecision {
            peer,
            tool: tool.clone(),
            args: self.broker.credentials.redact(&args),
            credentials: credentials.clone(),
            decision: decision.effect.into(),
            rule: decision.rule.clone(),
            reason: decision.reason.clone(),
            grant: decision.grant.clone(),
            agent_reason: reason,
            latency_us: started.elapsed().as_micros() as u64,
        };
        let event = if deliver {
            AuditEvent::Deliver(record)
        } else {
            AuditEvent::Decision(record)
        };
        // Durable before the answer: no audit, no call.
        if !self.broker.audit.recorded(&event) {
            return replies.send(&Event::Decision {
                effect: frona_policy::Effect::Deny,
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
        if !decision.permitted() {
            return replies.flush();
        }
        if !deliver && program.is_none() {
            return replies.send(&Event::Error {
                message: format!("`{tool}`: command not found in the agent's PATH"),
            });
        }
        let issued =
            match self
                .broker
                .credentials
                .issue(&credentials, &decision.issue(), Path::new(&cwd))
            {
                Ok(issued) => issued,
                Err(e) => {
                    let message = e.to_string();
                    self.broker.audit.submit(&AuditEvent::IssueFailed {
                        tool,
                        reason: message.clone(),
                    });
                    return replies.send(&Event::Error { message });
                }
            };
        let Some(program) = program.filter(|_| !deliver) else {
            for ((env, value), name) in issued.values.iter().zip(credentials.iter().cycle()) {
                replies.queue(&Event::Credential {
                    name: name.clone(),
                    env: env.clone(),
                    value: String::from_utf8_lossy(value.expose()).into_owned(),
                });
            }
            // The agent holds them now: revoking would take back what the rule handed over.
            issued.leases.outlive_call();
            return replies.send(&Event::Exit { code: 0 });
        };
        replies.flush();
        let code = run::run_tool(
            self.tools.launcher.as_ref(),
            &program,
            &args,
            &cwd,
            &self.tools.env,
            &issued.values,
            replies,
        );
        // Revoked before the agent hears the call ended: it cannot go on while the value lives.
        self.broker.credentials.revoke(issued.leases);
        replies.send(&Event::Exit { code });
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
        find_program(&self.tools.env, tool)
    }
}

fn file_sha256(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    Some(hex::encode(sha2::Sha256::digest(&bytes)))
}

/// The program `tool` names: a path as it is, a name looked up in the `PATH` of `env` (the
/// tools' environment).
pub(crate) fn find_program(env: &[(OsString, OsString)], tool: &str) -> Option<PathBuf> {
    if tool.contains('/') {
        return Path::new(tool).is_file().then(|| tool.into());
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

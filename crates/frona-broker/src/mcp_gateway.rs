//! The MCP gateway: a front end of the decision core for the Model Context Protocol. The agent
//! runs `frona mcp connect NAME` as its MCP server; that client asks the broker's socket for
//! server `NAME` ([`crate::protocol::Call::Mcp`]) and then only pipes JSON-RPC lines. Here, the
//! broker starts the registered server itself — under the tools' isolation, with the server's
//! credentials in its environment only — and sits in the middle:
//! - `tools/list` answers are filtered: a tool no rule could permit for this agent is not
//!   listed;
//! - each `tools/call` is a [`Call`] ([`Action::Mcp`]), decided (an `ask` waits for
//!   `frona approve`, and a grant is bound to the arguments' digest) and recorded as `mcp-call`
//!   before it is forwarded; a refusal is a tool result with `isError: true` and the reason, so
//!   the model sees why;
//! - everything the server sends is redacted of its credentials' values;
//! - a line that is not JSON, too large or too deeply nested gets a JSON-RPC error, and the
//!   connection stays up.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;

use frona_backends::Secret;
use frona_backends::registry::mcp::McpServer;
use frona_policy::{IssueSpec, McpCall};
use serde_json::{Value, json};

use crate::audit::{
    AuditEvent, Decided, McpCallRecord, McpStart, McpTimeout, McpToolChanged, Outcome, Refused,
};
use crate::broker::Broker;
use crate::call::{Action, Call, arguments_sha256};
use crate::credentials::{Leases, Ready};
use crate::peer::Peer;
use crate::protocol::Event;
use crate::redact::Redactor;
use crate::tool_socket::Tools;

pub mod pins;

/// The largest JSON-RPC message accepted from either side (bytes, one line).
pub const MAX_MESSAGE: usize = 8 * 1024 * 1024;

/// JSON-RPC's error codes used here.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;

/// One agent connection to one MCP server.
#[derive(Debug)]
pub struct Session<'a> {
    broker: &'a Broker,
    tools: &'a Tools,
    peer: Option<Peer>,
}

/// What both directions share.
struct Shared {
    /// To the agent: whole lines only.
    client: Mutex<UnixStream>,
    /// Ids of `tools/list` requests whose answers are to be filtered.
    listing: Mutex<HashSet<String>>,
    /// Calls forwarded and not answered yet, by id: their deadline, the id as sent, the tool.
    calls: Mutex<HashMap<String, (Instant, Value, String)>>,
    /// Calls answered with a timeout: the server's late answer is dropped.
    timed_out: Mutex<HashSet<String>>,
    /// Set when the agent's side is done.
    done: AtomicBool,
    /// Tools withheld because their definition is not the pinned one: calls are refused.
    withheld: Mutex<HashSet<String>>,
}

impl Shared {
    fn send(&self, message: &Value) {
        let mut line = message.to_string().into_bytes();
        line.push(b'\n');
        let mut client = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let _ = client.write_all(&line);
    }
}

/// A JSON-RPC error answer (`id` may be null).
fn rpc_error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// Reads one line of at most [`MAX_MESSAGE`] bytes; `None` at the end. An overlong line is
/// read to its end and returned as `Err` (the next line is read normally).
fn read_line(reader: &mut impl std::io::BufRead) -> Option<Result<Vec<u8>, ()>> {
    let mut line = Vec::new();
    match reader
        .by_ref()
        .take(MAX_MESSAGE as u64 + 1)
        .read_until(b'\n', &mut line)
    {
        Ok(0) | Err(_) => None,
        Ok(_) if line.len() > MAX_MESSAGE && !line.ends_with(b"\n") => {
            // Skip the rest of the overlong line.
            let mut rest = Vec::new();
            loop {
                rest.clear();
                match reader.by_ref().take(1 << 20).read_until(b'\n', &mut rest) {
                    Ok(0) | Err(_) => return Some(Err(())),
                    Ok(_) if rest.ends_with(b"\n") => return Some(Err(())),
                    Ok(_) => {}
                }
            }
        }
        Ok(_) => Some(Ok(line)),
    }
}

impl<'a> Session<'a> {
    pub fn new(broker: &'a Broker, tools: &'a Tools, peer: Option<Peer>) -> Self {
        Self {
            broker,
            tools,
            peer,
        }
    }

    /// Serves the connection until the agent or the server closes it.
    pub fn serve(&self, name: &str, cwd: &str, reader: BufReader<UnixStream>, stream: UnixStream) {
        let mut stream = stream;
        // An MCP session sits idle while the model thinks: no idle timeout (the socket's
        // calls have one); it ends when the agent closes it.
        let _ = stream.set_read_timeout(None);
        let (server, values, leases) = match self.start_parts(name, cwd) {
            Ok(parts) => parts,
            Err(message) => {
                let refusal = Event::Error { message };
                let _ = serde_json::to_writer(&mut stream, &refusal);
                let _ = stream.write_all(b"\n");
                return;
            }
        };
        let mut child = match self.spawn(&server, cwd, &values) {
            Ok(child) => child,
            Err(message) => {
                self.record_start(&server, Some(message.clone()));
                self.broker.credentials.revoke(leases);
                let _ = serde_json::to_writer(&mut stream, &Event::Error { message });
                let _ = stream.write_all(b"\n");
                return;
            }
        };
        if !self.record_start(&server, None) {
            let _ = child.kill();
            let _ = child.wait();
            self.broker.credentials.revoke(leases);
            return;
        }
        let ready = Event::Mcp {
            server: server.name.clone(),
        };
        if serde_json::to_writer(&mut stream, &ready).is_err() || stream.write_all(b"\n").is_err() {
            let _ = child.kill();
            let _ = child.wait();
            self.broker.credentials.revoke(leases);
            return;
        }
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            self.broker.credentials.revoke(leases);
            return;
        };
        let Ok(client) = stream.try_clone() else {
            let _ = child.kill();
            let _ = child.wait();
            self.broker.credentials.revoke(leases);
            return;
        };
        let shared = Arc::new(Shared {
            client: Mutex::new(client),
            listing: Mutex::new(HashSet::new()),
            calls: Mutex::new(HashMap::new()),
            timed_out: Mutex::new(HashSet::new()),
            done: AtomicBool::new(false),
            withheld: Mutex::new(HashSet::new()),
        });
        let redactor = Redactor::new(values.iter().map(|(_, v)| v.expose()));
        std::thread::scope(|scope| {
            let from_server =
                scope.spawn(|| self.relay_server(&server, stdout, &redactor, &shared));
            scope.spawn(|| self.watch_calls(&server, &shared));
            self.relay_agent(&server, reader, stdin, &shared);
            shared.done.store(true, Ordering::SeqCst);
            // The agent is gone: so is its server.
            let _ = child.kill();
            let _ = from_server.join();
        });
        let _ = stream.shutdown(std::net::Shutdown::Both);
        let _ = child.wait();
        self.broker.credentials.revoke(leases);
    }

    /// The registration, its credentials' values and what to revoke once the server is gone.
    #[allow(clippy::type_complexity)]
    fn start_parts(
        &self,
        name: &str,
        cwd: &str,
    ) -> Result<(McpServer, Vec<(String, Secret)>, Leases), String> {
        let credentials = &self.broker.credentials;
        let agent = credentials.agent().to_owned();
        let registry = credentials.registry();
        let cwd_path = std::path::Path::new(cwd);
        let server = match registry.resolve_mcp(name, Some(&agent), cwd_path) {
            Ok(Some(server)) => server,
            Ok(None) => {
                let reason = format!("no MCP server `{name}` is registered (`frona mcp add`)");
                self.refuse(&reason);
                return Err(reason);
            }
            Err(e) => return Err(e.to_string()),
        };
        let mut resolved = Vec::new();
        for c in &server.credentials {
            match registry.resolve(&c.credential, Some(&agent), cwd_path) {
                Ok(Some(credential)) => resolved.push(credential),
                Ok(None) => {
                    let reason = format!(
                        "MCP server `{}` names credential `{}`, which is not registered",
                        server.name, c.credential
                    );
                    self.record_start(&server, Some(reason.clone()));
                    return Err(reason);
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        let issued = match credentials.prepare(resolved, &IssueSpec::default(), true) {
            Ok(Ready::Issued(issued)) => issued,
            Ok(Ready::WouldBlock) => return Err("the credentials could not be prepared".into()),
            Err(e) => {
                let reason = e.to_string();
                self.record_start(&server, Some(reason.clone()));
                return Err(reason);
            }
        };
        // In registration order: each value under the variable the registration names.
        let values = server
            .credentials
            .iter()
            .zip(issued.values)
            .map(|(c, (_, value))| (c.env.clone(), value))
            .collect();
        Ok((server, values, issued.leases))
    }

    fn spawn(
        &self,
        server: &McpServer,
        cwd: &str,
        values: &[(String, Secret)],
    ) -> Result<Child, String> {
        use std::os::unix::ffi::OsStrExt as _;
        let Some((program, args)) = server.command.split_first() else {
            return Err(format!("MCP server `{}` has no command", server.name));
        };
        let path = crate::tool_socket::find_program(&self.tools.env, program).ok_or_else(|| {
            format!(
                "MCP server `{}`: `{program}` is not in the tools' PATH",
                server.name
            )
        })?;
        let mut command = match &self.tools.launcher {
            Some(launcher) => launcher.command(&path, args),
            None => {
                let mut command = std::process::Command::new(&path);
                command.args(args);
                command
            }
        };
        command
            .current_dir(cwd)
            .env_clear()
            .envs(self.tools.env.iter().map(|(k, v)| (k, v)))
            .envs(&server.env);
        for (name, value) in values {
            command.env(name, std::ffi::OsStr::from_bytes(value.expose()));
        }
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("MCP server `{}` did not start: {e}", server.name))
    }

    fn record_start(&self, server: &McpServer, error: Option<String>) -> bool {
        self.broker.audit.recorded(&AuditEvent::McpStart(McpStart {
            peer: self.peer,
            server: server.name.clone(),
            credentials: server
                .credentials
                .iter()
                .map(|c| c.credential.clone())
                .collect(),
            error,
        }))
    }

    fn refuse(&self, reason: &str) {
        self.broker.audit.recorded(&AuditEvent::Refused(Refused {
            peer: self.peer,
            tool: Some("mcp".into()),
            decision: Outcome::Deny,
            reason: reason.into(),
        }));
    }

    /// The agent's messages: decided where they are calls, then passed to the server.
    fn relay_agent(
        &self,
        server: &McpServer,
        mut reader: BufReader<UnixStream>,
        mut stdin: ChildStdin,
        shared: &Shared,
    ) {
        while let Some(line) = read_line(&mut reader) {
            let Ok(line) = line else {
                shared.send(&rpc_error(
                    Value::Null,
                    INVALID_REQUEST,
                    &format!("message larger than {MAX_MESSAGE} bytes"),
                ));
                continue;
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            // serde_json refuses nesting deeper than 128 levels.
            let message: Value = match serde_json::from_slice(&line) {
                Ok(message) => message,
                Err(e) => {
                    let kind = frona_backends::json_error_kind(&e);
                    shared.send(&rpc_error(Value::Null, PARSE_ERROR, kind));
                    continue;
                }
            };
            // One message per line: a batch (an array, which MCP no longer has) would carry
            // calls past the decision below.
            if !message.is_object() {
                shared.send(&rpc_error(
                    Value::Null,
                    INVALID_REQUEST,
                    "one JSON-RPC object per line (no batches)",
                ));
                continue;
            }
            let id = message.get("id").cloned();
            match message.get("method").and_then(Value::as_str) {
                Some("tools/list") => {
                    if let Some(id) = &id {
                        let mut listing = shared.listing.lock().unwrap_or_else(|p| p.into_inner());
                        listing.insert(id.to_string());
                    }
                }
                Some("tools/call") => {
                    if let Some(refusal) = self.decide(server, &message, id.clone(), shared) {
                        shared.send(&refusal);
                        continue;
                    }
                    if let Some(id) = &id {
                        let tool = message
                            .pointer("/params/name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned();
                        let deadline = Instant::now() + server.call_timeout();
                        let mut calls = shared.calls.lock().unwrap_or_else(|p| p.into_inner());
                        calls.insert(id.to_string(), (deadline, id.clone(), tool));
                    }
                }
                _ => {}
            }
            // The server gets the message as frona read and decided it, written anew: no
            // duplicate key or odd escape that its parser might read otherwise.
            let mut out = message.to_string().into_bytes();
            out.push(b'\n');
            if stdin.write_all(&out).is_err() || stdin.flush().is_err() {
                return;
            }
        }
    }

    /// Decides a `tools/call` and records it; the answer to send instead of forwarding it
    /// when it is refused.
    fn decide(
        &self,
        server: &McpServer,
        message: &Value,
        id: Option<Value>,
        shared: &Shared,
    ) -> Option<Value> {
        let started = Instant::now();
        let params = message.get("params");
        let tool = params
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let arguments = params
            .and_then(|p| p.get("arguments"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let Some(id) = id else {
            // A call without an id is a notification: nothing could answer it.
            return Some(rpc_error(
                Value::Null,
                INVALID_REQUEST,
                "tools/call needs an id",
            ));
        };
        let call = McpCall {
            server: server.name.clone(),
            tool: tool.clone(),
            arguments,
        };
        let digest = arguments_sha256(&call.arguments);
        let text = Value::Object(call.arguments.clone()).to_string();
        let withheld = shared
            .withheld
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&tool);
        let decision = if withheld {
            crate::decider::Decision::deny(format!(
                "the definition of `{tool}` changed since it was pinned; an operator accepts it \
                 with `frona mcp pins approve {} {tool}`",
                server.name
            ))
        } else {
            self.broker.decider.decide(
                &Call::new(self.peer, Action::Mcp(call), Vec::new()),
                |approval, timeout| {
                    tracing::info!(
                        "MCP call {}/{tool:?} waits up to {}s for `frona approve {approval}`",
                        server.name,
                        timeout.as_secs()
                    );
                },
            )
        };
        let record = AuditEvent::McpCall(McpCallRecord {
            peer: self.peer,
            server: server.name.clone(),
            tool,
            arguments_sha256: digest,
            arguments: self
                .broker
                .credentials
                .redact(&[text])
                .pop()
                .unwrap_or_default(),
            decided: Decided::new(&decision, started),
        });
        // Durable before the call goes on: no audit, no call.
        let reason = if !self.broker.audit.recorded(&record) {
            "the audit log cannot be written; failing closed".to_owned()
        } else if decision.permitted() {
            return None;
        } else {
            decision.refusal()
        };
        Some(json!({
            "jsonrpc": "2.0",
            "id": id,
            "result": {
                "content": [{"type": "text", "text": format!("frona: {reason}")}],
                "isError": true
            }
        }))
    }

    /// The server's messages, redacted, `tools/list` answers filtered, to the agent.
    fn relay_server(
        &self,
        server: &McpServer,
        stdout: std::process::ChildStdout,
        redactor: &Redactor,
        shared: &Shared,
    ) {
        let mut reader = BufReader::new(stdout);
        while let Some(line) = read_line(&mut reader) {
            let Ok(line) = line else {
                tracing::warn!("MCP server `{}` sent an overlong message", server.name);
                continue;
            };
            let mut redactor = redactor.clone();
            let mut clean = redactor.push(&line);
            clean.extend(redactor.finish());
            let Ok(mut message) = serde_json::from_slice::<Value>(&clean) else {
                tracing::warn!("MCP server `{}` sent a line that is not JSON", server.name);
                continue;
            };
            if let Some(id) = message.get("id").map(Value::to_string) {
                let mut timed_out = shared.timed_out.lock().unwrap_or_else(|p| p.into_inner());
                if timed_out.remove(&id) {
                    // The agent was told already; this answer is too late.
                    continue;
                }
                drop(timed_out);
                let mut calls = shared.calls.lock().unwrap_or_else(|p| p.into_inner());
                calls.remove(&id);
            }
            let listed = message.get("id").is_some_and(|id| {
                let mut listing = shared.listing.lock().unwrap_or_else(|p| p.into_inner());
                listing.remove(&id.to_string())
            });
            if listed {
                self.filter_tools(server, &mut message, shared);
            }
            shared.send(&message);
        }
    }

    /// Answers the calls the server has not answered within the server's call timeout with an
    /// error result (recorded as `mcp-timeout`), so that the agent never waits forever.
    fn watch_calls(&self, server: &McpServer, shared: &Shared) {
        while !shared.done.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
            let now = Instant::now();
            let expired: Vec<(String, Value, String)> = {
                let mut calls = shared.calls.lock().unwrap_or_else(|p| p.into_inner());
                let keys: Vec<String> = calls
                    .iter()
                    .filter(|(_, (deadline, _, _))| *deadline <= now)
                    .map(|(k, _)| k.clone())
                    .collect();
                keys.into_iter()
                    .filter_map(|k| calls.remove(&k).map(|(_, id, tool)| (k, id, tool)))
                    .collect()
            };
            for (key, id, tool) in expired {
                let timeout = server.call_timeout().as_secs();
                shared
                    .timed_out
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key);
                self.broker
                    .audit
                    .recorded(&AuditEvent::McpTimeout(McpTimeout {
                        peer: self.peer,
                        server: server.name.clone(),
                        tool: tool.clone(),
                        timeout_secs: timeout,
                    }));
                shared.send(&json!({
                    "jsonrpc": "2.0",
                    "id": id,
                    "result": {
                        "content": [{"type": "text", "text": format!(
                            "frona: MCP server `{}` did not answer `{tool}` within {timeout}s",
                            server.name
                        )}],
                        "isError": true
                    }
                }));
            }
        }
    }

    /// Keeps the tools some rule could let this agent call and whose definition is the pinned
    /// one (pinned on first sight); a changed one is withheld, recorded as `mcp-tool-changed`,
    /// and its calls refused.
    fn filter_tools(&self, server: &McpServer, message: &mut Value, shared: &Shared) {
        let decider = &self.broker.decider;
        let mut pins =
            pins::Pins::in_dir(self.broker.audit.path().parent().unwrap_or(Path::new(".")));
        let Some(tools) = message
            .get_mut("result")
            .and_then(|r| r.get_mut("tools"))
            .and_then(Value::as_array_mut)
        else {
            return;
        };
        tools.retain(|tool| {
            let Some(name) = tool.get("name").and_then(Value::as_str) else {
                return false;
            };
            if !decider.may_call_mcp(&server.name, name) {
                return false;
            }
            match pins.check(&server.name, name, tool) {
                pins::Verdict::Listed => true,
                pins::Verdict::Changed { pinned, now } => {
                    let mut withheld = shared.withheld.lock().unwrap_or_else(|p| p.into_inner());
                    if withheld.insert(name.to_owned()) {
                        self.broker
                            .audit
                            .recorded(&AuditEvent::McpToolChanged(McpToolChanged {
                                peer: self.peer,
                                server: server.name.clone(),
                                tool: name.to_owned(),
                                pinned,
                                now,
                            }));
                    }
                    false
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_whole_and_overlong_ones_skipped() {
        let big = vec![b'x'; MAX_MESSAGE + 10];
        let input = [b"{\"a\":1}\n".as_slice(), &big, b"\n{\"b\":2}\n"].concat();
        let mut reader = std::io::Cursor::new(input);
        assert_eq!(read_line(&mut reader), Some(Ok(b"{\"a\":1}\n".to_vec())));
        assert_eq!(read_line(&mut reader), Some(Err(())));
        assert_eq!(read_line(&mut reader), Some(Ok(b"{\"b\":2}\n".to_vec())));
        assert_eq!(read_line(&mut reader), None);
    }
}

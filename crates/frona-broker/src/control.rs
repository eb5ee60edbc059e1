//! The operator's channel: a Unix socket in frona's private state directory (hidden from the
//! agent), where `frona approve`, `frona deny` and `frona grant` reach the running broker.
//! Callers are checked with `SO_PEERCRED`: same user as frona, and not a process frona started
//! (neither the agent nor a tool it ran may answer its own request).
//!
//! One JSON request line, one JSON answer line:
//! `{"op":"pending"}`, `{"op":"approve","id":"a-…","for":"2h"}`, `{"op":"deny","id":"a-…","reason":"…"}`,
//! `{"op":"grants"}`, `{"op":"revoke","id":"g-…"}`.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::grants::Lifetime;
use crate::peer::{descends_from, peer_of};
use crate::server::Broker;

/// A human's answer to an `ask`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Approve(Lifetime),
    Deny(String),
}

/// A call waiting for a human.
#[derive(Clone, Debug, Serialize)]
pub struct Pending {
    pub id: String,
    pub agent: String,
    pub tool: String,
    pub args: Vec<String>,
    pub credentials: Vec<String>,
    pub rule: String,
    pub reason: Option<String>,
    pub asked: jiff::Timestamp,
}

/// Calls on hold, by approval id.
#[derive(Debug, Default)]
pub struct Approvals {
    waiting: Mutex<HashMap<String, (Pending, mpsc::Sender<Answer>)>>,
}

impl Approvals {
    /// Puts a call on hold; the receiver gets the human's answer.
    pub fn hold(&self, pending: Pending) -> mpsc::Receiver<Answer> {
        let (answer, wait) = mpsc::channel();
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pending.id.clone(), (pending, answer));
        wait
    }

    /// Takes the call off hold (answered or timed out).
    pub fn release(&self, id: &str) {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    pub fn list(&self) -> Vec<Pending> {
        let mut all: Vec<Pending> = self
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|(p, _)| p.clone())
            .collect();
        all.sort_by_key(|p| p.asked);
        all
    }

    /// Delivers an answer; false when no such call is waiting.
    pub fn answer(&self, id: &str, answer: Answer) -> bool {
        match self
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
        {
            Some((_, sender)) => sender.send(answer).is_ok(),
            None => false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Pending,
    Approve {
        id: String,
        #[serde(rename = "for")]
        lifetime: String,
    },
    Deny {
        id: String,
        #[serde(default)]
        reason: Option<String>,
    },
    Grants,
    Revoke {
        id: String,
    },
}

/// Serves the control socket until the listener fails.
pub fn serve(broker: Arc<Broker>, listener: UnixListener) {
    let own_uid = nix::unistd::getuid().as_raw();
    let own_pid = std::process::id() as i32;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let broker = Arc::clone(&broker);
        let _ = std::thread::Builder::new().name("frona-control".into()).spawn(move || {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let answer = match peer_of(&stream) {
                Ok(peer) if peer.uid != own_uid => json!({"ok": false, "error": "not frona's user"}),
                Ok(peer) if descends_from(peer.pid, own_pid) => {
                    json!({"ok": false, "error": "a process frona started (the agent or a tool) cannot answer approvals"})
                }
                Ok(_) => handle(&broker, &stream),
                Err(e) => json!({"ok": false, "error": e.to_string()}),
            };
            let mut stream = stream;
            let _ = writeln!(stream, "{answer}");
        });
    }
}

fn handle(broker: &Broker, stream: &UnixStream) -> Value {
    let mut line = Vec::new();
    let Ok(reader) = stream.try_clone() else {
        return json!({"ok": false, "error": "socket"});
    };
    if BufReader::new(reader)
        .take(64 * 1024)
        .read_until(b'\n', &mut line)
        .is_err()
    {
        return json!({"ok": false, "error": "unreadable request"});
    }
    let request: Request = match serde_json::from_slice(&line) {
        Ok(request) => request,
        Err(e) => return json!({"ok": false, "error": format!("bad request: {e}")}),
    };
    broker.control(request)
}

/// Sends one control request to the socket at `path`.
pub fn call(path: &std::path::Path, request: &Value) -> std::io::Result<Value> {
    let mut stream = UnixStream::connect(path)?;
    writeln!(stream, "{request}")?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    serde_json::from_str(&answer).map_err(std::io::Error::other)
}

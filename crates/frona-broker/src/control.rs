//! The operator's channel: a Unix socket in frona's private state directory (hidden from the
//! agent), where `frona approve`, `frona deny` and `frona grant` reach the running broker.
//! Callers are checked with `SO_PEERCRED`: same user as frona, and not a process frona started
//! (neither the agent nor a tool it ran may answer its own request).
//!
//! One JSON request line, one JSON answer line:
//! `{"op":"pending"}`, `{"op":"approve","id":"a-…","for":"2h"}`, `{"op":"deny","id":"a-…","reason":"…"}`,
//! `{"op":"grants"}`, `{"op":"revoke","id":"g-…"}`.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::decider::{ControlError, Decider};
use crate::grants::Lifetime;
use crate::peer::{descends_from, peer_of};

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

/// Carries out one operator request; the answer is `{"ok": true, …}` or `{"ok": false, "error": …}`.
fn answer(decider: &Decider, request: Request) -> Value {
    let done = |result: Result<(), ControlError>| match result {
        Ok(()) => json!({"ok": true}),
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    };
    match request {
        Request::Pending => json!({"ok": true, "pending": decider.pending()}),
        Request::Approve { id, lifetime } => match lifetime.parse::<Lifetime>() {
            Ok(lifetime) => done(decider.approve(&id, lifetime)),
            Err(e) => json!({"ok": false, "error": e.to_string()}),
        },
        Request::Deny { id, reason } => done(decider.deny(&id, reason)),
        Request::Grants => match decider.grants() {
            Ok(grants) => json!({"ok": true, "grants": grants}),
            Err(e) => json!({"ok": false, "error": e.to_string()}),
        },
        Request::Revoke { id } => done(decider.revoke_grant(&id)),
    }
}

/// Serves the control socket until the listener fails.
pub fn serve(decider: Arc<Decider>, listener: UnixListener) {
    let own_uid = nix::unistd::getuid().as_raw();
    let own_pid = std::process::id() as i32;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let decider = Arc::clone(&decider);
        let _ = std::thread::Builder::new().name("frona-control".into()).spawn(move || {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let answer = match peer_of(&stream) {
                Ok(peer) if peer.uid != own_uid => json!({"ok": false, "error": "not frona's user"}),
                Ok(peer) if descends_from(peer.pid, own_pid) => {
                    json!({"ok": false, "error": "a process frona started (the agent or a tool) cannot answer approvals"})
                }
                Ok(_) => handle(&decider, &stream),
                Err(e) => json!({"ok": false, "error": e.to_string()}),
            };
            let mut stream = stream;
            let _ = writeln!(stream, "{answer}");
        });
    }
}

fn handle(decider: &Decider, stream: &UnixStream) -> Value {
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
    answer(decider, request)
}

/// Sends one control request to the socket at `path`.
pub fn call(path: &std::path::Path, request: &Value) -> std::io::Result<Value> {
    let mut stream = UnixStream::connect(path)?;
    writeln!(stream, "{request}")?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    serde_json::from_str(&answer).map_err(std::io::Error::other)
}

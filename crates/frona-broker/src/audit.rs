//! The audit log: one JSON object per line, each carrying the SHA-256 of the line before it
//! (`prev`) and of itself (`hash`), so that editing, removing or reordering any record is
//! detected by [`verify`]. A record is on disk (`fdatasync`) before [`Audit::record`] returns;
//! concurrent appends are written and synced together (group commit). A failed write is an
//! error the caller must treat as a deny: no audit, no call.
//!
//! - [`AuditEvent`] (`event.rs`): what is recorded, one type per `kind`.
//! - [`Audit`]: the handle every part of the broker writes through; it stamps each event with
//!   the time, the agent and the session.
//! - [`AuditLog`] (`log.rs`): the file, its hash chain and group commit.

mod event;
mod log;

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

pub use event::*;
pub use log::{AuditError, AuditLog, ChainHead, GENESIS, read, verify};

/// The audit log of one broker session: typed events in, stamped records out.
#[derive(Debug)]
pub struct Audit {
    log: AuditLog,
    agent: String,
    session: String,
}

/// An event with the fields every record carries.
#[derive(Serialize)]
struct Stamped<'a> {
    time: String,
    agent: &'a str,
    session: &'a str,
    #[serde(flatten)]
    event: &'a AuditEvent,
}

impl Audit {
    pub fn new(log: AuditLog, agent: impl Into<String>, session: impl Into<String>) -> Self {
        Self {
            log,
            agent: agent.into(),
            session: session.into(),
        }
    }

    pub fn path(&self) -> &Path {
        self.log.path()
    }

    /// Appends `event` and returns its sequence number once it is on disk.
    pub fn record(&self, event: &AuditEvent) -> Result<u64, AuditError> {
        self.log.append(self.stamped(event))
    }

    /// [`Audit::record`] for callers that only need to know whether to go on: a failure is
    /// logged, and the caller fails closed.
    pub fn recorded(&self, event: &AuditEvent) -> bool {
        match self.record(event) {
            Ok(_) => true,
            Err(e) => {
                tracing::error!("{}", frona_sandbox::error_chain(&e));
                false
            }
        }
    }

    /// Queues `event` without waiting; [`Audit::durable`] waits for it.
    pub fn submit(&self, event: &AuditEvent) -> u64 {
        self.log.submit(self.stamped(event))
    }

    /// Waits (without blocking a thread) until record `seq` is on disk.
    pub async fn durable(&self, seq: u64) -> Result<(), AuditError> {
        self.log.durable(seq).await
    }

    /// Blocks until everything queued is on disk (at exit); `false` if the log failed or
    /// `limit` passed.
    pub fn flush(&self, limit: Duration) -> bool {
        self.log.flush(limit)
    }

    /// The record `event` is written as (the log adds `seq`, `prev` and `hash`).
    fn stamped(&self, event: &AuditEvent) -> Map<String, Value> {
        stamp(jiff::Timestamp::now(), &self.agent, &self.session, event)
    }
}

fn stamp(
    time: jiff::Timestamp,
    agent: &str,
    session: &str,
    event: &AuditEvent,
) -> Map<String, Value> {
    let stamped = Stamped {
        time: time.to_string(),
        agent,
        session,
        event,
    };
    match serde_json::to_value(stamped) {
        Ok(Value::Object(map)) => map,
        // Not reached: every event is a struct of strings, numbers and lists. Recorded
        // anyway, so that the chain shows something was lost.
        other => {
            tracing::error!("an audit event could not be encoded: {other:?}");
            let mut map = Map::new();
            map.insert("kind".into(), "unencodable".into());
            map
        }
    }
}

#[cfg(test)]
mod tests;

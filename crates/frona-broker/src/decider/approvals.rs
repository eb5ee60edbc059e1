//! Calls on hold for a human: each `ask` waits here, by approval id, until an operator answers
//! (or it times out).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::mpsc;

use serde::Serialize;

use crate::grants::Lifetime;

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

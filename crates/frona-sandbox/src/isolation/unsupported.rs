//! Outside Linux there is nothing to isolate with: the plan is always empty (see
//! [`super::probe`]), and `frona doctor` says so.

use std::io;

use crate::isolation::{EgressListenerPlan, Namespaces, Plan, SeccompProgram};

#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    #[error("isolation is only available on Linux")]
    Unsupported,
    #[error("cannot give frona's egress proxy the agent's listener ({step})")]
    Relay {
        step: &'static str,
        #[source]
        source: io::Error,
    },
}

impl IsolationError {
    pub fn hint(&self) -> &'static str {
        "use --isolation off on this platform"
    }
}

pub fn enter_namespaces(ns: &Namespaces) -> Result<(), IsolationError> {
    if *ns == Namespaces::default() {
        Ok(())
    } else {
        Err(IsolationError::Unsupported)
    }
}

pub fn apply_in_init(_plan: &Plan) -> Result<(), IsolationError> {
    Ok(())
}

pub fn apply_in_agent(_plan: &Plan, _seccomp_program: &SeccompProgram) -> io::Result<()> {
    Ok(())
}

/// The `--net proxy` listener needs a network namespace: never here.
#[derive(Debug)]
pub struct EgressListener(());

impl EgressListener {
    pub fn bind(_relay: &EgressListenerPlan) -> Result<Self, IsolationError> {
        Err(IsolationError::Unsupported)
    }

    pub fn hand_over(self) -> Result<(), IsolationError> {
        Err(IsolationError::Unsupported)
    }
}

//! Entering the agent's namespaces from the init helper: one `unshare(2)`, then the id maps.
//!
//! The helper is a fresh `exec` of frona (no secrets, single-threaded, still dumpable so that
//! it may write its own `/proc/self/uid_map`), which is what `CLONE_NEWUSER` requires.

use nix::sched::{CloneFlags, unshare};

use super::IsolationError;
use crate::isolation::Namespaces;

/// Moves the calling process into new namespaces (its next child becomes PID 1 of the new
/// pid namespace). With a user namespace, the caller becomes uid/gid 0 inside it, mapped to
/// the caller's own ids, so that it may set up mounts; the agent is mapped back later.
pub fn enter_namespaces(ns: &Namespaces) -> Result<(), IsolationError> {
    let mut flags = CloneFlags::empty();
    for (on, flag) in [
        (ns.user.is_some(), CloneFlags::CLONE_NEWUSER),
        (ns.mount, CloneFlags::CLONE_NEWNS),
        (ns.pid, CloneFlags::CLONE_NEWPID),
        (ns.ipc, CloneFlags::CLONE_NEWIPC),
        (ns.uts, CloneFlags::CLONE_NEWUTS),
        (ns.net, CloneFlags::CLONE_NEWNET),
    ] {
        if on {
            flags |= flag;
        }
    }
    if flags.is_empty() {
        return Ok(());
    }
    unshare(flags).map_err(|e| IsolationError::Namespaces {
        step: "unshare",
        source: e.into(),
    })?;
    if let Some(ids) = ns.user {
        let write = |step: &'static str, data: String| {
            std::fs::write(format!("/proc/self/{step}"), data)
                .map_err(|source| IsolationError::Namespaces { step, source })
        };
        write("setgroups", "deny".into())?;
        write("uid_map", format!("0 {} 1\n", ids.uid))?;
        write("gid_map", format!("0 {} 1\n", ids.gid))?;
    }
    Ok(())
}

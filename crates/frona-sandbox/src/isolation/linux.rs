//! Applying a [`Plan`] on Linux.
//!
//! - [`enter_namespaces`]: the init helper (a fresh, single-threaded `exec` of frona) unshares
//!   the namespaces; its next child is PID 1 of the new pid namespace.
//! - [`apply_in_init`]: that PID 1, root of the user namespace, prepares the mount namespace
//!   (fresh `/proc`, masks over credential paths, persistence protection) and loopback.
//! - [`EgressListener`]: under `--net proxy`, the agent's `127.0.0.1:PORT`, bound by PID 1
//!   before the agent is forked and handed to frona's egress proxy, which accepts on it.
//! - [`apply_in_agent`]: between `fork` and `exec` of the agent (in the single-threaded helper):
//!   a nested user namespace that maps the caller back to their own uid, capabilities emptied,
//!   no_new_privs, Landlock, and the seccomp filter last.

mod agent;
mod egress_listener;
mod mounts;
mod namespaces;
mod protect;

pub use agent::apply_in_agent;
pub use egress_listener::EgressListener;
pub use mounts::apply_in_init;
pub use namespaces::enter_namespaces;

use std::io;
use std::path::PathBuf;

/// What could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    #[error("cannot create the agent's namespaces ({step})")]
    Namespaces {
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot make the agent's mounts private")]
    Propagation(#[source] io::Error),
    #[error("cannot mount a fresh /proc for the agent")]
    Proc(#[source] io::Error),
    #[error("cannot hide `{}`", path.display())]
    Hide {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot bring up loopback in the agent's network namespace")]
    Loopback(#[source] io::Error),
    #[error("cannot protect `{}` from the agent's writes", path.display())]
    Protect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot enter the working directory again after the mounts")]
    Cwd(#[source] io::Error),
    #[error("cannot give frona's egress proxy the agent's listener ({step})")]
    Relay {
        step: &'static str,
        #[source]
        source: io::Error,
    },
}

impl IsolationError {
    /// What the user can do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            IsolationError::Namespaces { .. } => {
                "run `frona doctor` to see what this kernel allows, or use --isolation best-effort"
            }
            IsolationError::Proc(_) => {
                "/proc is partly masked here (a container?); use --isolation best-effort, or run frona outside the container"
            }
            _ => "use --isolation best-effort to run with what this system allows",
        }
    }
}

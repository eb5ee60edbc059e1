//! Everything frona does to the agent's process before and while it runs.
//!
//! - [`scrub`]: which environment variables are credentials (by name and by value) and the
//!   environment the agent receives instead.
//! - [`environ`]: frona's own copy of its environment, and wiping stripped values from the
//!   process memory that `/proc/<pid>/environ` exposes.
//! - [`hardening`]: what frona does to itself before it holds any secret (non-dumpable, no core).
//! - [`isolation`]: the plan of namespaces, masks, capabilities, Landlock and seccomp, and
//!   applying it on Linux.
//! - [`supervise`]: the init-like supervisor: signal forwarding, exit status, reaping,
//!   parent-death teardown.

pub mod dotenv;
pub mod environ;
pub mod hardening;
pub mod isolation;
pub mod scrub;
pub mod supervise;

/// An error and its `source()` chain, joined with `: ` (the form every frona message uses).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub use environ::EnvSnapshot;
pub use scrub::{Decision, EnvMode, Reason, ScrubOptions, ScrubReport};

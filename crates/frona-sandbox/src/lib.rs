//! Everything frona does to the agent's process before and while it runs.
//!
//! - [`scrub`]: which environment variables are credentials (by name and by value) and the
//!   environment the agent receives instead.
//! - [`environ`]: frona's own copy of its environment, and wiping stripped values from the
//!   process memory that `/proc/<pid>/environ` exposes.
//! - [`hardening`]: what frona does to itself before it holds any secret (non-dumpable, no core).
//! - [`supervise`]: the init-like supervisor: signal forwarding, exit status, reaping,
//!   parent-death teardown.

pub mod environ;
pub mod hardening;
pub mod scrub;
pub mod supervise;

pub use environ::EnvSnapshot;
pub use scrub::{Decision, EnvMode, Reason, ScrubOptions, ScrubReport};

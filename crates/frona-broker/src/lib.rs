//! The broker: the part of frona that holds secrets while the agent runs.
//!
//! - [`audit`]: the hash-chained, durable JSONL record of every decision.
//! - [`grants`]: remembered approvals (once, for a while, permanent), persistent and revocable.
//! - [`redact`]: removing credential values (and their encodings) from what flows back.
//! - [`protocol`], [`server`], [`peer`]: the agent's Unix socket, JSON lines, `SO_PEERCRED`.
//! - [`control`]: the operator's socket (approve, deny, grants), out of the agent's reach.
//! - [`proxy`]: the HTTP credential proxy (`FRONA_PROXY`), attaching credentials on the way out.
//! - [`egress`]: the forward proxy that is the agent's only way out under `--net proxy`.
//! - [`container_credentials`]: the AWS SDKs' container credentials endpoint on the egress proxy.
//! - [`intercept`], [`placeholder`]: credentials bound to hosts, which the agent holds only as
//!   placeholders that the egress proxy swaps for the value in TLS it terminates.

pub mod audit;
#[cfg(feature = "proxy")]
pub mod container_credentials;
pub mod control;
#[cfg(feature = "proxy")]
pub mod egress;
pub mod grants;
#[cfg(feature = "proxy")]
pub mod intercept;
pub mod leases;
pub mod peer;
pub mod placeholder;
pub mod protocol;
#[cfg(feature = "proxy")]
pub mod proxy;
pub mod redact;
pub mod server;

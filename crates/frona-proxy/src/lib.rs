//! frona's HTTP front ends, each a client of the broker's decision core
//! ([`frona_broker::Broker`]) and none known to it:
//!
//! - [`credential_proxy`]: `FRONA_PROXY`, plain HTTP on a Unix socket; the credential is
//!   attached on the way to a registered route's HTTPS upstream.
//! - [`egress`]: the forward proxy that is the agent's only way out under `--net proxy`.
//! - [`intercept`]: credentials bound to hosts, which the agent holds only as placeholders that
//!   the egress proxy swaps for the value in TLS it terminates.
//! - [`aws_endpoint`]: the AWS SDKs' container credentials endpoint on the egress proxy.
//! - [`tunnel`]: `CONNECT` tunnels, copied or terminated: their byte counts and records.
//! - [`http`]: what they share: the body type, refusals, header rules, the path check, and
//!   the only ways out (`http/upstream.rs`).

mod authorize;
pub mod aws_endpoint;
pub mod credential_proxy;
pub mod egress;
pub mod http;
pub mod intercept;
#[cfg(test)]
mod testing;
pub mod tunnel;

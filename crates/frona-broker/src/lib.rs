//! The broker: the part of frona that holds secrets while the agent runs. A decision core that
//! knows no transport, and the two front ends that are Unix sockets; the HTTP front ends are in
//! `frona-proxy`. See `docs/architecture.md`.
//!
//! The core (front ends hold `Arc`s of these; they import no front end):
//! - [`decider`]: a [`Call`] in, a [`Decision`] out: policy, rate limits, grants, and the calls
//!   waiting for a human.
//! - [`credentials`]: registry, backends, cache, issue within a deadline, the lease journal,
//!   revocation, and the values handed out.
//! - [`audit`]: the hash-chained, durable JSONL record of every decision, written as typed
//!   [`audit::AuditEvent`]s.
//! - [`broker`]: the three for one agent's [`session`], as `frona run` builds them, and
//!   [`Broker::authorize`], the decide-record-issue sequence of async front ends.
//! - [`grants`], [`leases`], [`redact`], [`peer`], [`call`]: what the core is made of;
//!   [`connections`]: the thread-per-connection loop the socket front ends share.
//!
//! Front ends:
//! - [`tool_socket`] with [`protocol`]: the agent's socket (`frona tool`, `frona issue`).
//! - [`ssh_agent`]: `SSH_AUTH_SOCK` inside `frona run`: the user's ssh-agent, filtered and
//!   decided per signature.
//! - [`mcp_gateway`]: `frona mcp connect`, over the agent's socket: registered MCP servers
//!   started by the broker, `tools/list` filtered, each `tools/call` decided and audited.
//! - [`control`]: the operator's socket (approve, deny, grants), out of the agent's reach.

pub mod audit;
pub mod broker;
pub mod call;
pub mod connections;
pub mod control;
pub mod credentials;
pub mod decider;
pub mod grants;
pub mod leases;
pub mod mcp_gateway;
pub mod peer;
pub mod protocol;
pub mod redact;
pub mod session;
pub mod ssh_agent;
pub mod tool_socket;

pub use broker::{Broker, BrokerConfig, Refused};
pub use call::{Action, Call};
pub use decider::{Decider, Decision};

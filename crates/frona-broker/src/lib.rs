//! The broker: the part of frona that holds secrets while the agent runs.
//!
//! - [`audit`]: the hash-chained, durable JSONL record of every decision.
//! - [`redact`]: removing credential values (and their encodings) from what flows back.

pub mod audit;
pub mod redact;

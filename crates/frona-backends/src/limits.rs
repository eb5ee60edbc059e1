//! How long a network backend waits and how often it retries: one value, set by the binary
//! (`--backend-timeout`, `backends.timeout`) and handed to every client. A module of its own so
//! that the clients need not import the configuration that builds them.

use std::time::Duration;

/// Per-request timeout and retry policy shared by the network backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Each request's deadline (connect + response).
    pub timeout: Duration,
    /// Retries after a 5xx, a throttling answer or a transport error (so attempts = retries + 1).
    pub retries: u32,
    /// First backoff; doubled per retry.
    pub backoff: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            retries: 2,
            backoff: Duration::from_millis(100),
        }
    }
}

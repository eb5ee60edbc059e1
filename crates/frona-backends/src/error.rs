//! What can go wrong talking to a secret store. Messages name the backend, the path and what
//! to check; they never carry a value or a response body.

use std::time::Duration;

/// A failure of one backend operation.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{backend}: `{path}` not found")]
    NotFound { backend: &'static str, path: String },
    #[error("{backend}: access to `{path}` denied (check the token or role's policy)")]
    Denied { backend: &'static str, path: String },
    #[error("{backend}: authentication failed (check the credentials frona uses for {backend})")]
    Unauthenticated { backend: &'static str },
    #[error("{backend}: cannot reach {address}")]
    Unreachable {
        backend: &'static str,
        address: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{backend}: no answer within {timeout:?} (is {address} up?)")]
    Timeout {
        backend: &'static str,
        address: String,
        timeout: Duration,
    },
    #[error("{backend}: server error (HTTP {status}) for `{path}`")]
    Server {
        backend: &'static str,
        path: String,
        status: u16,
    },
    #[error("{backend}: throttled (HTTP 429, rate limited) for `{path}`")]
    Throttled {
        backend: &'static str,
        path: String,
        attempts: u32,
    },
    #[error("{backend}: unexpected response for `{path}`: {detail}")]
    Protocol {
        backend: &'static str,
        path: String,
        detail: String,
    },
    #[error("{backend}: `{path}` has no field `{field}`")]
    MissingField {
        backend: &'static str,
        path: String,
        field: String,
    },
    #[error("{backend}: {operation} is not supported")]
    Unsupported {
        backend: &'static str,
        operation: &'static str,
    },
    #[error("{backend} is not configured: {detail}")]
    NotConfigured {
        backend: &'static str,
        detail: String,
    },
    #[error("{backend}: {detail}")]
    Invalid {
        backend: &'static str,
        detail: String,
    },
    #[error("{backend}: cannot read `{path}`")]
    Read {
        backend: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Local(#[from] crate::local::LocalError),
}

impl BackendError {
    /// Whether retrying the same request may succeed (5xx, throttling, transport trouble).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            BackendError::Server { .. }
                | BackendError::Throttled { .. }
                | BackendError::Unreachable { .. }
                | BackendError::Timeout { .. }
        )
    }
}

/// The kind of a JSON error, without its text: serde_json's message may quote the document,
/// and the document may be a secret. Every error that crosses into a log, a reply to the agent
/// or a `hint:` line names only this kind.
pub fn json_error_kind(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Io => "i/o error",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "unexpected or missing fields",
        serde_json::error::Category::Eof => "truncated",
    }
}

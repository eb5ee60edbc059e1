//! Bounded retries with exponential backoff, for every network backend: an operation that
//! fails transiently ([`BackendError::is_transient`]) is tried again up to `Limits::retries`
//! times, waiting `backoff`, then twice that, … (at most 5 s between tries).

use std::future::Future;
use std::time::Duration;

use crate::BackendError;
use crate::Limits;

pub async fn with_retries<T, F, Fut>(
    limits: Limits,
    backend: &'static str,
    mut operation: F,
) -> Result<T, BackendError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, BackendError>>,
{
    let mut backoff = limits.backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match operation(attempt).await {
            Err(error) if error.is_transient() && attempt <= limits.retries => {
                tracing::debug!(backend, attempt, "retrying after: {error}");
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

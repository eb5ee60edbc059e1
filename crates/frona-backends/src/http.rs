//! What the REST backends share: one HTTP client setup (timeouts, no redirects, rustls), and
//! sending with bounded retries and exponential backoff on 5xx, 429 and transport errors,
//! mapping statuses to [`BackendError`]s that name the backend and path.

use reqwest::{RequestBuilder, Response, StatusCode};
use zeroize::Zeroizing;

use crate::BackendError;
use crate::Limits;

/// An HTTP client for one backend at `base` (scheme://host[:port], no trailing slash).
#[derive(Debug, Clone)]
pub struct Http {
    pub backend: &'static str,
    pub base: String,
    pub client: reqwest::Client,
    pub limits: Limits,
}

impl Http {
    pub fn new(backend: &'static str, base: &str, limits: Limits) -> Result<Self, BackendError> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(BackendError::NotConfigured {
                backend,
                detail: format!("`{base}` is not an http(s) URL"),
            });
        }
        let client = reqwest::Client::builder()
            .timeout(limits.timeout)
            .connect_timeout(limits.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("frona/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BackendError::NotConfigured {
                backend,
                detail: e.to_string(),
            })?;
        Ok(Self {
            backend,
            base,
            client,
            limits,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends the request `build` makes, retrying transient failures, and returns the body of
    /// a 2xx answer. `path` names the secret in errors.
    pub async fn send(
        &self,
        path: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Body, BackendError> {
        crate::retry::with_retries(self.limits, self.backend, |attempt| {
            let request = build();
            async move {
                match request.send().await {
                    Ok(response) => self.check(path, response, attempt).await,
                    Err(e) => Err(self.transport(e)),
                }
            }
        })
        .await
    }

    async fn check(
        &self,
        path: &str,
        response: Response,
        attempt: u32,
    ) -> Result<Body, BackendError> {
        let (backend, path) = (self.backend, path.to_owned());
        match response.status() {
            status if status.is_success() => {
                let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
                Ok(Body(Zeroizing::new(bytes.to_vec())))
            }
            StatusCode::UNAUTHORIZED => Err(BackendError::Unauthenticated { backend }),
            StatusCode::FORBIDDEN => Err(BackendError::Denied { backend, path }),
            StatusCode::NOT_FOUND => Err(BackendError::NotFound { backend, path }),
            StatusCode::TOO_MANY_REQUESTS => Err(BackendError::Throttled {
                backend,
                path,
                attempts: attempt,
            }),
            status if status.is_server_error() => Err(BackendError::Server {
                backend,
                path,
                status: status.as_u16(),
            }),
            status => Err(BackendError::Protocol {
                backend,
                path,
                detail: format!("HTTP {}", status.as_u16()),
            }),
        }
    }

    fn transport(&self, error: reqwest::Error) -> BackendError {
        if error.is_timeout() {
            BackendError::Timeout {
                backend: self.backend,
                address: self.base.clone(),
                timeout: self.limits.timeout,
            }
        } else {
            BackendError::Unreachable {
                backend: self.backend,
                address: self.base.clone(),
                source: Box::new(error),
            }
        }
    }
}

/// A response body, zeroized on drop (it may hold a secret); `Debug` shows its length only.
pub struct Body(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Body(<{} bytes>)", self.0.len())
    }
}

impl Body {
    /// Parses the body as JSON into `T`; a body that does not fit is a protocol error.
    pub fn json<T: serde::de::DeserializeOwned>(
        &self,
        backend: &'static str,
        path: &str,
    ) -> Result<T, BackendError> {
        serde_json::from_slice(&self.0).map_err(|e| BackendError::Protocol {
            backend,
            path: path.to_owned(),
            detail: format!("not the expected JSON ({})", crate::json_error_kind(&e)),
        })
    }
}

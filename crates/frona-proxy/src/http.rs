//! What the HTTP front ends share: one response body type ([`Body`]), one refusal
//! ([`Refusal`], `refusal.rs`: every `x-frona-error` value is written there once), the header
//! rules (`headers.rs`), the path check (`path.rs`), and the only ways out (`upstream.rs`).

mod headers;
mod path;
mod refusal;
pub mod upstream;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use frona_broker::redact::Redactor;
use http_body_util::combinators::BoxBody;

pub use headers::{basic_credentials, forwardable, redacted_headers};
pub use path::{PathError, checked_path};
pub use refusal::{ERROR_HEADER, Reason, Refusal};

/// The largest upstream response body a credential is attached to or swapped into; beyond, the
/// response is cut off (the redactor holds state per byte).
pub const MAX_RESPONSE_BODY: u64 = 1024 * 1024 * 1024;

/// A response of one of frona's HTTP front ends.
pub type Response = http::Response<Body>;

/// A response body: frona's own answer, an upstream's streamed through the redactor as hyper
/// polls it (no task or channel in between), or an upstream's passed through untouched (plain
/// HTTP through the egress proxy, which carries no credential).
#[derive(Debug)]
pub struct Body {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Full(Option<Bytes>),
    Redacted {
        body: BoxBody<Bytes, String>,
        redactor: Redactor,
        total: u64,
        /// Set once the upstream body ended and the redactor's tail was handed out.
        done: bool,
    },
    Passthrough(hyper::body::Incoming),
}

/// Why a streamed body stopped early. Surfacing it (instead of ending the body) makes hyper
/// abort the chunked answer, so that the client sees a cut-off, not a shorter "complete" body.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the upstream response exceeded {MAX_RESPONSE_BODY} bytes and was cut off")]
    TooLarge,
    #[error("the upstream response broke off: {0}")]
    Upstream(String),
}

impl Body {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self {
            inner: Inner::Full(Some(bytes.into())),
        }
    }

    pub fn empty() -> Self {
        Self::full(Bytes::new())
    }

    /// An upstream body, streamed through `redactor` and cut off at [`MAX_RESPONSE_BODY`].
    pub fn redacted(body: BoxBody<Bytes, String>, redactor: Redactor) -> Self {
        Self {
            inner: Inner::Redacted {
                body,
                redactor,
                total: 0,
                done: false,
            },
        }
    }

    /// An upstream body as it comes.
    pub fn passthrough(body: hyper::body::Incoming) -> Self {
        Self {
            inner: Inner::Passthrough(body),
        }
    }

    /// The next chunk (`None` at the end).
    pub async fn next(&mut self) -> Option<Result<Bytes, BodyError>> {
        use http_body_util::BodyExt as _;
        loop {
            match self.frame().await? {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        return Some(Ok(data));
                    }
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, BodyError>>> {
        let data =
            |bytes: Vec<u8>| Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from(bytes)))));
        match &mut self.inner {
            Inner::Full(bytes) => {
                Poll::Ready(bytes.take().map(|b| Ok(hyper::body::Frame::data(b))))
            }
            Inner::Passthrough(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|e| BodyError::Upstream(e.to_string())),
            Inner::Redacted {
                body,
                redactor,
                total,
                done,
            } => loop {
                if *done {
                    return Poll::Ready(None);
                }
                match std::task::ready!(Pin::new(&mut *body).poll_frame(cx)) {
                    Some(Ok(frame)) => {
                        let Ok(chunk) = frame.into_data() else {
                            continue; // trailers are not forwarded
                        };
                        *total += chunk.len() as u64;
                        if *total > MAX_RESPONSE_BODY {
                            tracing::warn!("proxied response cut off at {MAX_RESPONSE_BODY} bytes");
                            *done = true;
                            return Poll::Ready(Some(Err(BodyError::TooLarge)));
                        }
                        let out = redactor.push(&chunk);
                        if !out.is_empty() {
                            return data(out);
                        }
                    }
                    Some(Err(e)) => {
                        *done = true;
                        return Poll::Ready(Some(Err(BodyError::Upstream(e))));
                    }
                    None => {
                        *done = true;
                        let rest = redactor.finish();
                        if !rest.is_empty() {
                            return data(rest);
                        }
                    }
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(bytes) => bytes.is_none(),
            Inner::Redacted { done, .. } => *done,
            Inner::Passthrough(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match &self.inner {
            Inner::Full(Some(bytes)) => hyper::body::SizeHint::with_exact(bytes.len() as u64),
            Inner::Full(None) => hyper::body::SizeHint::with_exact(0),
            Inner::Passthrough(body) => body.size_hint(),
            Inner::Redacted { .. } => hyper::body::SizeHint::default(),
        }
    }
}

/// An error and its causes, one line, with every form of the values in `redactor` removed:
/// errors of requests that carried a credential may quote it (a URL with a query value).
pub fn redacted_error(error: &dyn std::error::Error, redactor: &Redactor) -> String {
    redacted_text(&frona_sandbox::error_chain(error), redactor)
}

/// `text` with every form of the values in `redactor` removed.
pub fn redacted_text(text: &str, redactor: &Redactor) -> String {
    let mut redactor = redactor.clone();
    let mut clean = redactor.push(text.as_bytes());
    clean.extend(redactor.finish());
    String::from_utf8_lossy(&clean).into_owned()
}

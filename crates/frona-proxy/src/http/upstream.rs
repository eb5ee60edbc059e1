//! The only ways out. Every connection the egress proxy and terminated tunnels make goes to an
//! address the egress proxy checked ([`Checked`], which nothing else can make) through
//! [`connect`]; a terminated tunnel then speaks TLS verified against the system roots
//! ([`tls`]). The credential proxy's upstreams are the registered routes' HTTPS hosts, which
//! policy names by host, so its client ([`https_client`]) resolves them itself; it follows no
//! redirect and goes through no proxy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use frona_broker::audit::{Audit, AuditEvent};
use http::StatusCode;
use hyper_util::rt::TokioIo;

use super::{Reason, Refusal, Response};

/// How long connecting to one address may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a TLS handshake with an upstream may take.
const TLS_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an upstream could not be reached or answered.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no address")]
    NoAddress,
    #[error("{addr}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr}: no answer within {}s", CONNECT_TIMEOUT.as_secs())]
    ConnectTimeout { addr: SocketAddr },
    #[error("`{host}` is not a TLS server name")]
    ServerName {
        host: String,
        #[source]
        source: rustls::pki_types::InvalidDnsNameError,
    },
    #[error("TLS handshake timed out")]
    TlsTimeout,
    #[error("TLS")]
    Tls(#[source] std::io::Error),
    /// The request cannot be sent as it is.
    #[error("{0}")]
    Request(&'static str),
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// Addresses the egress proxy's policy allowed for one connection: made only by its decision
/// (`crate::egress`), so that nothing connects to an address that was not checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked(Vec<SocketAddr>);

impl Checked {
    pub(crate) fn new(addresses: Vec<SocketAddr>) -> Self {
        Self(addresses)
    }

    pub fn addresses(&self) -> &[SocketAddr] {
        &self.0
    }
}

/// Connects to the first checked address that answers; the error says why the last one did
/// not.
pub async fn connect(to: &Checked) -> Result<tokio::net::TcpStream, UpstreamError> {
    let mut last = UpstreamError::NoAddress;
    for &addr in &to.0 {
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(source)) => last = UpstreamError::Connect { addr, source },
            Err(_) => last = UpstreamError::ConnectTimeout { addr },
        }
    }
    Err(last)
}

/// [`connect`] for `what` (`CONNECT host:port`), a failure audited (`kind: egress-error`).
pub async fn connect_audited(
    audit: &Audit,
    to: &Checked,
    what: &str,
) -> Result<tokio::net::TcpStream, UpstreamError> {
    let connected = connect(to).await;
    if let Err(e) = &connected {
        audit.submit(&AuditEvent::EgressError {
            reason: format!("{what}: {}", frona_sandbox::error_chain(e)),
        });
    }
    connected
}

/// The egress proxy's answer when [`connect_audited`] failed for `what`.
pub fn unreachable(what: &str, error: &UpstreamError) -> Response {
    Refusal::new(
        StatusCode::BAD_GATEWAY,
        Reason::UpstreamUnreachable,
        format!(
            "{what}: cannot connect: {}",
            frona_sandbox::error_chain(error)
        ),
    )
    .text_closing()
}

/// TLS to `host` over `tcp`, verified with `config` (the system roots).
pub async fn tls(
    tcp: tokio::net::TcpStream,
    host: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, UpstreamError> {
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|source| {
        UpstreamError::ServerName {
            host: host.to_owned(),
            source,
        }
    })?;
    let connector = tokio_rustls::TlsConnector::from(config);
    tokio::time::timeout(TLS_TIMEOUT, connector.connect(name, tcp))
        .await
        .map_err(|_| UpstreamError::TlsTimeout)?
        .map_err(UpstreamError::Tls)
}

/// An HTTP/1.1 client connection over `io`; the connection is driven by its own task.
pub async fn http1<I, B>(io: I) -> Result<hyper::client::conn::http1::SendRequest<B>, UpstreamError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// The credential proxy's client: HTTPS only, no redirects followed, no proxy, bounded waits.
pub fn https_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .https_only(true)
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(Duration::from_secs(60))
        .no_proxy()
        .build()
}

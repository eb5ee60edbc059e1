//! The `kind: egress-close` audit record of a `CONNECT` tunnel: how many bytes went each way and
//! for how long. For a tunnel the egress proxy copies bytes for (a host no credential is bound
//! to) the bytes are counted on the upstream connection, and the proxy never sees what travels
//! inside; for one it terminates ([`crate::intercept`]) they are counted on the agent's side
//! (TLS records included), and its requests have their own records.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use frona_policy::network::Target;
use hyper_util::rt::TokioIo;
use serde_json::Map;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::peer::Peer;
use crate::server::Broker;

/// A connection counting the bytes written to it and read from it. Counted here rather than
/// taken from `copy_bidirectional`'s result, which has no counts when the copy ends in an
/// error (a reset is how many tunnels end).
#[derive(Debug)]
pub(crate) struct Counted<S> {
    inner: S,
    counts: Arc<Counts>,
}

/// Bytes written to and read from a [`Counted`] connection, readable after it is gone.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    written: AtomicU64,
    read: AtomicU64,
}

impl Counts {
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    pub(crate) fn read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }
}

impl<S> Counted<S> {
    pub(crate) fn new(inner: S) -> (Self, Arc<Counts>) {
        let counts = Arc::new(Counts::default());
        (
            Self {
                inner,
                counts: Arc::clone(&counts),
            },
            counts,
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            let n = (buf.filled().len() - before) as u64;
            self.counts.read.fetch_add(n, Ordering::Relaxed);
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            self.counts.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = poll {
            self.counts.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Counts a tunnel among the broker's open ones for as long as it lives (also when its task
/// is dropped).
pub(crate) struct Open<'a>(&'a AtomicUsize);

impl<'a> Open<'a> {
    pub(crate) fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Broker {
    /// Copies bytes both ways between the agent's end of a `CONNECT` tunnel and `upstream`
    /// until both sides are done, then audits `kind: egress-close` with `host`, `port`,
    /// `bytes_up` (agent to upstream), `bytes_down`, `duration_ms`, the caller, and `error`
    /// when the copy ended in one.
    pub(super) async fn copy_tunnel(
        &self,
        client: hyper::upgrade::Upgraded,
        upstream: tokio::net::TcpStream,
        host: &str,
        port: u16,
        peer: Option<Peer>,
    ) {
        let started = Instant::now();
        let _open = Open::new(&self.tunnels);
        let mut client = TokioIo::new(client);
        let (mut upstream, counts) = Counted::new(upstream);
        let copied = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        let error = copied.err().map(|e| e.to_string());
        self.audit_tunnel_close(
            host,
            port,
            (counts.written(), counts.read()),
            started,
            error,
            peer,
            false,
        );
    }

    /// Audits `kind: egress-close` for a tunnel to `host:port` that moved `(up, down)` bytes
    /// (from the agent, to the agent) since `started`; `terminated` when frona terminated its
    /// TLS.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn audit_tunnel_close(
        &self,
        host: &str,
        port: u16,
        (up, down): (u64, u64),
        started: Instant,
        error: Option<String>,
        peer: Option<Peer>,
        terminated: bool,
    ) {
        let mut record = Map::new();
        record.insert("kind".into(), "egress-close".into());
        // As the `egress` record names it (lower case, IPv6 in brackets).
        let host = Target::parse(host).map_or_else(|| host.to_owned(), |t| t.to_string());
        record.insert("host".into(), host.into());
        record.insert("port".into(), port.into());
        record.insert("bytes_up".into(), up.into());
        record.insert("bytes_down".into(), down.into());
        let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        record.insert("duration_ms".into(), elapsed.into());
        if terminated {
            record.insert("terminated".into(), true.into());
        }
        if let Some(error) = error {
            record.insert("error".into(), error.into());
        }
        if let Some(p) = peer {
            record.insert("peer_pid".into(), p.pid.into());
            record.insert("peer_uid".into(), p.uid.into());
        }
        self.submit_audit(record);
    }
}

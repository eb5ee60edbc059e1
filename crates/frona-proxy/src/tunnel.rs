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

use frona_broker::audit::{Audit, AuditEvent, EgressClose};
use frona_broker::peer::Peer;
use frona_policy::network::Target;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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

/// The `CONNECT` tunnels open now, copied or terminated: at exit, those closing get the moment
/// they need to write their `egress-close` records ([`Tunnels::wait`]).
#[derive(Clone, Debug, Default)]
pub struct Tunnels(Arc<AtomicUsize>);

impl Tunnels {
    /// Counts a tunnel as open for as long as the guard lives (also when its task is dropped).
    pub(crate) fn open(&self) -> Open {
        self.0.fetch_add(1, Ordering::SeqCst);
        Open(Arc::clone(&self.0))
    }

    /// Waits until no tunnel is open, or `limit` has passed.
    pub fn wait(&self, limit: std::time::Duration) {
        let deadline = Instant::now() + limit;
        while self.0.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// One open tunnel ([`Tunnels::open`]).
pub(crate) struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Copies bytes both ways between the agent's end of a `CONNECT` tunnel and `upstream` until
/// both sides are done, then audits `kind: egress-close` with `host`, `port`, `bytes_up`
/// (agent to upstream), `bytes_down`, `duration_ms`, the caller, and `error` when the copy
/// ended in one.
pub(crate) async fn copy(
    audit: &Audit,
    tunnels: &Tunnels,
    client: hyper::upgrade::Upgraded,
    upstream: tokio::net::TcpStream,
    host: &str,
    port: u16,
    peer: Option<Peer>,
) {
    let started = Instant::now();
    let _open = tunnels.open();
    let mut client = TokioIo::new(client);
    let (mut upstream, counts) = Counted::new(upstream);
    let copied = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    let error = copied.err().map(|e| e.to_string());
    audit.submit(&closed(
        host,
        port,
        (counts.written(), counts.read()),
        started,
        error,
        peer,
        false,
    ));
}

/// The `kind: egress-close` record of a tunnel to `host:port` that moved `(up, down)` bytes
/// (from the agent, to the agent) since `started`; `terminated` when frona terminated its TLS.
pub(crate) fn closed(
    host: &str,
    port: u16,
    (up, down): (u64, u64),
    started: Instant,
    error: Option<String>,
    peer: Option<Peer>,
    terminated: bool,
) -> AuditEvent {
    AuditEvent::EgressClose(EgressClose {
        peer,
        // As the `egress` record names it (lower case, IPv6 in brackets).
        host: Target::parse(host).map_or_else(|| host.to_owned(), |t| t.to_string()),
        port,
        bytes_up: up,
        bytes_down: down,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        terminated,
        error,
    })
}

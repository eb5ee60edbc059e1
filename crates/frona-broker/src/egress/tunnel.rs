//! A `CONNECT` tunnel the egress proxy copies bytes for (a host no credential is bound to),
//! and its `kind: egress-close` audit record: how many bytes went each way and for how long.
//! Only counts: the proxy never sees what travels inside.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use frona_policy::network::Target;
use hyper_util::rt::TokioIo;
use serde_json::Map;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::peer::Peer;
use crate::server::Broker;

/// The upstream connection, counting the bytes written to it (`up`: from the agent) and read
/// from it (`down`: to the agent). Counted here rather than taken from
/// `copy_bidirectional`'s result, which has no counts when the copy ends in an error (a reset
/// is how many tunnels end).
#[derive(Debug)]
struct Counted<S> {
    inner: S,
    up: u64,
    down: u64,
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
            self.down += (buf.filled().len() - before) as u64;
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
            self.up += n as u64;
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
            self.up += n as u64;
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
struct Open<'a>(&'a AtomicUsize);

impl<'a> Open<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
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
        let mut upstream = Counted {
            inner: upstream,
            up: 0,
            down: 0,
        };
        let copied = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        let mut record = Map::new();
        record.insert("kind".into(), "egress-close".into());
        // As the `egress` record names it (lower case, IPv6 in brackets).
        let host = Target::parse(host).map_or_else(|| host.to_owned(), |t| t.to_string());
        record.insert("host".into(), host.into());
        record.insert("port".into(), port.into());
        record.insert("bytes_up".into(), upstream.up.into());
        record.insert("bytes_down".into(), upstream.down.into());
        let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        record.insert("duration_ms".into(), elapsed.into());
        if let Err(e) = copied {
            record.insert("error".into(), e.to_string().into());
        }
        if let Some(p) = peer {
            record.insert("peer_pid".into(), p.pid.into());
            record.insert("peer_uid".into(), p.uid.into());
        }
        self.submit_audit(record);
    }
}

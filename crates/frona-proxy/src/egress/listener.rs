//! The agent's listening socket, handed over by frona's init helper (`SCM_RIGHTS` over
//! `listen.sock`): the egress proxy accepts the agent's connections on it directly.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use frona_broker::peer::Peer;
use frona_broker::session::Session;

use super::{Egress, MAX_CONNECTIONS, admitted, serve_connection};

/// Takes the agent's listening socket from frona's init helper and serves the egress proxy on
/// it: the init helper binds `127.0.0.1:PORT` inside the agent's network namespace before the
/// agent exists and sends the socket here (`SCM_RIGHTS`), so that the agent's connections
/// reach the proxy directly, with no relay copying bytes in between. Only one hand-over is
/// taken, the first from the agent's tree (`SO_PEERCRED`), which is the init helper's: it
/// hands over before it forks the agent. Only a listening TCP socket on a loopback address.
/// Every connection accepted on it comes from inside the agent's namespace, whose loopback
/// nothing else reaches: it is the agent's tree, and is recorded as the init helper (the root
/// of that tree).
pub async fn serve_handed_over(egress: Arc<Egress>, handoff: tokio::net::UnixListener) {
    let (listener, peer) = loop {
        let Ok((stream, _)) = handoff.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let session = Arc::clone(&egress.broker.session);
        let taken = tokio::task::spawn_blocking(move || take_listener(&session, stream)).await;
        match taken {
            Ok(Ok(taken)) => break taken,
            Ok(Err(e)) => tracing::warn!("egress proxy: a listener hand-over was refused: {e}"),
            Err(_) => {}
        }
    };
    drop(handoff);
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        let Some((stream, permit)) = admitted(accepted, &open).await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            Arc::clone(&egress),
            stream,
            Some(peer),
            true,
            permit,
        ));
    }
}

/// Receives the listening socket on `stream` (blocking, bounded by a timeout) after checking
/// who sends it; acknowledges with one byte.
#[expect(
    unsafe_code,
    reason = "taking ownership of descriptors received with SCM_RIGHTS"
)]
fn take_listener(
    session: &Session,
    stream: tokio::net::UnixStream,
) -> io::Result<(std::net::TcpListener, Peer)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, getsockopt, sockopt};
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    let refused = |why: &str| io::Error::new(io::ErrorKind::PermissionDenied, why.to_owned());
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    // The init helper (PID 1 of the agent's namespaces, a child of the process frona spawned)
    // hands the socket over before it forks the agent, and only the first hand-over is taken:
    // whoever in the agent's tree sends first is the helper.
    let peer = frona_broker::peer::peer_of(&stream)?;
    if !session.in_agent_tree(Some(peer)) {
        return Err(refused("the sender is not frona's init helper"));
    }
    let mut byte = [0u8; 1];
    let mut iov = [io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let message = nix::sys::socket::recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for cmsg in message.cmsgs()? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            // SAFETY: the kernel just installed these descriptors in this process for us;
            // nothing else owns them.
            fds.extend(
                received
                    .into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    if fds.len() != 1 {
        return Err(refused("expected exactly one descriptor"));
    }
    let fd = fds.remove(0);
    let listening = getsockopt(&fd, sockopt::AcceptConn).unwrap_or(false);
    let stream_type =
        getsockopt(&fd, sockopt::SockType).is_ok_and(|t| t == nix::sys::socket::SockType::Stream);
    if !(listening && stream_type) {
        return Err(refused("not a listening stream socket"));
    }
    // `local_addr` fails for anything but an IP socket.
    let listener = std::net::TcpListener::from(fd);
    if !listener.local_addr().is_ok_and(|a| a.ip().is_loopback()) {
        return Err(refused("not a TCP socket on a loopback address"));
    }
    listener.set_nonblocking(true)?;
    io::Write::write_all(&mut &stream, b"1")?;
    Ok((listener, peer))
}

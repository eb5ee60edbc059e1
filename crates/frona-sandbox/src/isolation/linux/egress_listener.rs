//! The `--net proxy` listener: `127.0.0.1:PORT` in the agent's network namespace, bound by
//! frona's init helper and handed to the broker's egress proxy outside it, which accepts the
//! agent's connections on it directly (no process copies bytes in between).
//!
//! PID 1 of the agent's namespaces (the supervisor) brings loopback up, binds and listens
//! before the agent is forked, so the agent's first connection already finds it, then sends the
//! listening socket over a Unix socket in the session's private directory with `SCM_RIGHTS` and
//! waits for the broker's one-byte acknowledgement; its own copy is closed before the agent
//! exists, so the agent never holds it. A socket keeps the network namespace it was made in:
//! the broker, in the host's namespace, accepts connections that can only come from inside the
//! agent's, whose loopback nothing else reaches.
//!
//! Who may hand it over: the broker takes one socket, the first sent from the agent's tree
//! (`SO_PEERCRED`) — this helper's, sent before the agent exists — and only a listening TCP
//! socket on a loopback address.

use std::io::{self, Read as _};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use super::IsolationError;
use super::mounts::loopback_up;
use crate::isolation::EgressListenerPlan;

/// How long the broker may take to acknowledge the socket.
const HANDOFF_TIMEOUT: Duration = Duration::from_secs(10);

/// The agent's listening socket, bound, not yet handed over.
#[derive(Debug)]
pub struct EgressListener {
    listener: TcpListener,
    socket: PathBuf,
}

fn relay_error(step: &'static str) -> impl FnOnce(io::Error) -> IsolationError {
    move |source| IsolationError::Relay { step, source }
}

impl EgressListener {
    /// Brings loopback up in the calling process's (new) network namespace and listens on
    /// `127.0.0.1:port` there. Call it in PID 1, before the agent is forked.
    pub fn bind(relay: &EgressListenerPlan) -> Result<Self, IsolationError> {
        if relay.socket.as_os_str().is_empty() {
            return Err(IsolationError::Relay {
                step: "no egress socket in the plan",
                source: io::Error::from(io::ErrorKind::InvalidInput),
            });
        }
        loopback_up().map_err(IsolationError::Loopback)?;
        let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, relay.port))
            .map_err(relay_error("bind"))?;
        Ok(Self {
            listener,
            socket: relay.socket.clone(),
        })
    }

    /// Sends the listening socket to the broker and waits for it to take it; closes this
    /// process's copy either way.
    pub fn hand_over(self) -> Result<(), IsolationError> {
        use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
        let mut stream =
            UnixStream::connect(&self.socket).map_err(relay_error("connect to the broker"))?;
        stream
            .set_read_timeout(Some(HANDOFF_TIMEOUT))
            .map_err(relay_error("connect to the broker"))?;
        let fds = [self.listener.as_raw_fd()];
        sendmsg::<()>(
            stream.as_raw_fd(),
            &[io::IoSlice::new(b"L")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .map_err(|e| relay_error("hand the listener to the broker")(e.into()))?;
        let mut ack = [0u8; 1];
        match stream.read(&mut ack) {
            Ok(1) if ack == *b"1" => Ok(()),
            Ok(_) => Err(IsolationError::Relay {
                step: "hand the listener to the broker",
                source: io::Error::new(io::ErrorKind::ConnectionRefused, "refused by the broker"),
            }),
            Err(e) => Err(relay_error("hand the listener to the broker")(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The socket arrives at the other end of the Unix socket as a working listener; the
    /// sender waits for the acknowledgement.
    #[test]
    fn the_listener_is_handed_over() {
        use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
        use std::io::Write as _;
        let dir = std::env::temp_dir().join(format!("frona-handoff-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("listen.sock");
        let server = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let receiver = std::thread::spawn(move || {
            let (mut stream, _) = server.accept().unwrap();
            let mut byte = [0u8; 1];
            let mut iov = [io::IoSliceMut::new(&mut byte)];
            let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
            let message = recvmsg::<()>(
                stream.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::empty(),
            )
            .unwrap();
            let fd = message
                .cmsgs()
                .unwrap()
                .find_map(|c| match c {
                    ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
                    _ => None,
                })
                .unwrap();
            stream.write_all(b"1").unwrap();
            fd
        });
        EgressListener {
            listener,
            socket: socket.clone(),
        }
        .hand_over()
        .unwrap();
        let fd = receiver.join().unwrap();
        // The sender's copy is closed; the received one still listens on the same port.
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert!(
            nix::sys::socket::accept(fd).is_ok(),
            "the received descriptor is the listener"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_refusal_or_no_broker_is_an_error() {
        let dir = std::env::temp_dir().join(format!("frona-handoff-no-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("listen.sock");
        let listener = || EgressListener {
            listener: TcpListener::bind("127.0.0.1:0").unwrap(),
            socket: socket.clone(),
        };
        assert!(listener().hand_over().is_err(), "nobody listens");
        let server = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || drop(server.accept()));
        assert!(listener().hand_over().is_err(), "closed without the byte");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_plan_without_a_socket_is_refused() {
        let relay = EgressListenerPlan {
            port: 1,
            socket: PathBuf::new(),
        };
        assert!(matches!(
            EgressListener::bind(&relay),
            Err(IsolationError::Relay { .. })
        ));
    }
}

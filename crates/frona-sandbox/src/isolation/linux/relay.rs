//! The `--net proxy` relay: TCP connections to `127.0.0.1:PORT` in the agent's network
//! namespace, carried byte for byte to the broker's egress proxy on a Unix socket outside it.
//! The relay decides nothing; the proxy does.
//!
//! It runs in PID 1 of the agent's pid namespace (the supervisor; the process that created the
//! namespaces cannot start threads, having unshared the pid namespace). The listening socket
//! is bound before the agent is forked, so the agent's first connection already finds it, and
//! served by threads started after that fork, when PID 1 forks nothing more (threads and the
//! agent's pre-exec code do not mix). PID 1's signals stay blocked in every thread: they still
//! reach its `sigtimedwait`. The agent sees PID 1 but cannot stop it (a namespace's init
//! ignores signals it has no handler for, `SIGKILL` included), trace it (seccomp) or read its
//! memory (it is not dumpable).
//!
//! Who may connect: on the TCP side only processes inside the namespace (the agent's tree, and
//! frona's helpers) can reach its loopback; on the Unix side the broker checks `SO_PEERCRED`,
//! which names this helper, the root of the agent's tree.
//!
//! One thread per direction per connection, at most [`MAX_CONNECTIONS`] connections (more are
//! closed at once), small stacks. A clean end of one direction is passed on as a half-close;
//! an error closes both directions so that neither thread waits forever.

use std::io;
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::IsolationError;
use super::mounts::loopback_up;
use crate::isolation::ProxyRelay;

/// Connections relayed at once.
pub const MAX_CONNECTIONS: usize = 512;

/// Each relay thread copies through an 8 KiB buffer and calls little else.
const STACK_SIZE: usize = 64 * 1024;

/// The relay's socket, bound and listening, not yet served.
#[derive(Debug)]
pub struct RelayListener {
    listener: TcpListener,
    socket: PathBuf,
}

fn relay_error(step: &'static str) -> impl FnOnce(io::Error) -> IsolationError {
    move |source| IsolationError::Relay { step, source }
}

impl RelayListener {
    /// Brings loopback up in the calling process's (new) network namespace and listens on
    /// `127.0.0.1:port` there. Call it in the single-threaded PID 1, before the agent is forked.
    pub fn bind(relay: &ProxyRelay) -> Result<Self, IsolationError> {
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

    /// Serves the relay on its own thread for the rest of the process's life. Call it only in
    /// a process that will not fork again.
    pub fn start(self) -> Result<(), IsolationError> {
        std::thread::Builder::new()
            .name("frona-relay".into())
            .stack_size(STACK_SIZE)
            .spawn(move || self.accept_loop())
            .map(|_| ())
            .map_err(relay_error("spawn"))
    }

    fn accept_loop(self) {
        let open = Arc::new(AtomicUsize::new(0));
        loop {
            let client = match self.listener.accept() {
                Ok((client, _)) => client,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    // Out of descriptors, say: wait instead of spinning.
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                open.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            let slot = Slot(Arc::clone(&open));
            let socket = self.socket.clone();
            // A failed spawn drops the closure: the connection closes and the slot is freed.
            let _ = std::thread::Builder::new()
                .name("frona-relay".into())
                .stack_size(STACK_SIZE)
                .spawn(move || {
                    let _slot = slot;
                    relay_one(client, &socket);
                });
        }
    }
}

/// A counted connection; freed when dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The two kinds of stream the relay joins.
trait Stream {
    fn shut(&self, how: Shutdown);
}

impl Stream for TcpStream {
    fn shut(&self, how: Shutdown) {
        let _ = self.shutdown(how);
    }
}

impl Stream for UnixStream {
    fn shut(&self, how: Shutdown) {
        let _ = self.shutdown(how);
    }
}

/// Copies `from` into `to` until `from` ends; passes a clean end on as a half-close, and
/// closes both on an error.
fn pump<A: Stream, B: Stream>(from: &A, to: &B)
where
    for<'a> &'a A: io::Read,
    for<'a> &'a B: io::Write,
{
    let (mut reader, mut writer) = (from, to);
    match io::copy(&mut reader, &mut writer) {
        Ok(_) => to.shut(Shutdown::Write),
        Err(_) => {
            from.shut(Shutdown::Both);
            to.shut(Shutdown::Both);
        }
    }
}

/// Relays one connection to the egress socket (closing it when the socket cannot be reached).
fn relay_one(client: TcpStream, socket: &Path) {
    let Ok(upstream) = UnixStream::connect(socket) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let (Ok(client_back), Ok(upstream_back)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let back = std::thread::Builder::new()
        .name("frona-relay".into())
        .stack_size(STACK_SIZE)
        .spawn(move || pump(&upstream_back, &client_back));
    let Ok(back) = back else {
        return;
    };
    pump(&client, &upstream);
    let _ = back.join();
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use super::*;

    /// The relay between a TCP client and a Unix echo server, in this process's own network
    /// namespace (the test binds a free port rather than the fixed one).
    #[test]
    fn relays_both_ways_with_half_close() {
        let dir = std::env::temp_dir().join(format!("frona-relay-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("egress.sock");
        let server = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || {
            for stream in server.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut received = Vec::new();
                    stream.read_to_end(&mut received).unwrap();
                    received.reverse();
                    stream.write_all(&received).unwrap();
                });
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        RelayListener {
            listener,
            socket: socket.clone(),
        }
        .start()
        .unwrap();
        for _ in 0..3 {
            let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
            client.write_all(b"olleh").unwrap();
            client.shutdown(Shutdown::Write).unwrap();
            let mut answer = String::new();
            client.read_to_string(&mut answer).unwrap();
            assert_eq!(answer, "hello");
        }
        // No egress socket: the connection is closed, nothing else happens.
        std::fs::remove_file(&socket).unwrap();
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut answer = Vec::new();
        let _ = client.read_to_end(&mut answer);
        assert!(answer.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_plan_without_a_socket_is_refused() {
        let relay = ProxyRelay {
            port: 1,
            socket: PathBuf::new(),
        };
        assert!(matches!(
            RelayListener::bind(&relay),
            Err(IsolationError::Relay { .. })
        ));
    }
}

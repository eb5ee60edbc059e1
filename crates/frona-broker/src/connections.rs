//! Serving a Unix socket with one thread per connection, as the socket front ends do, with a
//! cap: an agent opening connections in a loop does not exhaust frona's threads.

use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Connections served at once by one listener.
pub const MAX: usize = 256;

/// Accepts connections until the listener fails; each runs `handle` on a thread named `name`.
/// A connection beyond [`MAX`] goes to `overflow` (which may answer it) and is closed.
pub fn serve(
    listener: UnixListener,
    name: &str,
    overflow: impl Fn(UnixStream),
    handle: impl Fn(UnixStream) + Send + Sync + 'static,
) {
    let handle = Arc::new(handle);
    let open = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if open.fetch_add(1, Ordering::SeqCst) >= MAX {
            open.fetch_sub(1, Ordering::SeqCst);
            overflow(stream);
            continue;
        }
        let spawned = std::thread::Builder::new().name(name.into()).spawn({
            let (open, handle) = (Arc::clone(&open), Arc::clone(&handle));
            move || {
                handle(stream);
                open.fetch_sub(1, Ordering::SeqCst);
            }
        });
        if spawned.is_err() {
            open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

//! Writing frona's own files safely (the local store, the registry): an exclusive `flock` for
//! read-modify-write cycles, and atomic replacement (a 0600 temporary file in the same
//! directory, fsync, rename over the target, fsync of the directory), so that a reader or a
//! crash never sees half a file.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

/// Holds an exclusive lock on `lock_path` (created 0600) until dropped.
pub fn lock_exclusive(lock_path: &Path) -> io::Result<Flock<File>> {
    let lock = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(lock_path)?;
    Flock::lock(lock, FlockArg::LockExclusive).map_err(|(_, e)| e.into())
}

/// Replaces `path` with `bytes` atomically; the new file is 0600.
pub fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    out.write_all(bytes).and_then(|()| out.sync_all())?;
    std::fs::rename(&tmp, path)?;
    File::open(dir).and_then(|d| d.sync_all())
}

//! The lease journal: dynamic credentials issued and not yet revoked, on disk, so that those of a
//! frona killed mid-call (SIGKILL, a crash, power loss) are revoked by the next frona to start
//! instead of living out their TTL.
//!
//! One append-only file per broker session under `STATE/leases/`, holding no secret (a Vault
//! lease id or token accessor): `{"add":…}` when a credential is issued, `{"done":ID}` once it
//! is revoked. The session holds an exclusive `flock` on its file while it lives; the kernel
//! drops the lock when the process dies, however it dies. A starting broker takes the lock of
//! every other file it can: those are orphans, and what they list as added but not done is
//! revoked (if not yet expired) and audited, then the file is removed. A torn last line (a
//! crash mid-append) is skipped; its credential is left to expire.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use frona_backends::{BackendKind, Revocation};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("cannot write the lease journal `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An issued credential that must be revoked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub backend: BackendKind,
    pub revocation: Revocation,
    /// The credential's name (for the audit record).
    pub credential: String,
    /// When it expires by itself; past that, revoking is pointless.
    pub expires: jiff::Timestamp,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    Add { id: u64, lease: Lease },
    Done(u64),
}

/// This session's journal. The file is made on the first lease: a session that issues no
/// dynamic credential leaves nothing behind; one that does leaves a file that the next start
/// reads (all done, or orphans) and removes.
#[derive(Debug)]
pub struct LeaseJournal {
    dir: PathBuf,
    path: PathBuf,
    /// The open, locked file once made, and the next id.
    file: Mutex<(Option<Flock<File>>, u64)>,
}

impl LeaseJournal {
    /// This session's journal in `dir` (nothing is created yet).
    pub fn new(dir: &Path, session: &str) -> Self {
        Self {
            dir: dir.to_path_buf(),
            path: dir.join(format!("{session}.jsonl")),
            file: Mutex::new((None, 0)),
        }
    }

    /// Creates (0600, in a 0700 directory) and locks the file.
    fn create(&self) -> Result<Flock<File>, LeaseError> {
        let error = |source| LeaseError::Write {
            path: self.path.clone(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(error)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&self.path)
            .map_err(error)?;
        Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, errno)| error(std::io::Error::from(errno)))
    }

    /// Records `lease` durably; returns its id for [`LeaseJournal::done`].
    pub fn add(&self, lease: Lease) -> Result<u64, LeaseError> {
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let (file, next) = &mut *guard;
        let file = match file {
            Some(file) => file,
            None => file.insert(self.create()?),
        };
        let id = *next;
        self.append(file, &Line::Add { id, lease })?;
        *next += 1;
        Ok(id)
    }

    /// Records that lease `id` was revoked.
    pub fn done(&self, id: u64) -> Result<(), LeaseError> {
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        match &mut guard.0 {
            Some(file) => self.append(file, &Line::Done(id)),
            None => Ok(()),
        }
    }

    fn append(&self, file: &mut File, line: &Line) -> Result<(), LeaseError> {
        let mut text = serde_json::to_string(line).map_err(|e| LeaseError::Write {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        text.push('\n');
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|source| LeaseError::Write {
                path: self.path.clone(),
                source,
            })
    }
}

impl Drop for LeaseJournal {
    /// Dropped with its broker: everything issued was revoked (or recorded as not), the file
    /// goes. (A process that exits without dropping it leaves it to the next start.)
    fn drop(&mut self) {
        if self.file.get_mut().is_ok_and(|(file, _)| file.is_some()) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The journals in `dir` whose session is gone, each with its unrevoked leases; each file is
/// removed as it is read (the caller revokes what it can; what it cannot expires).
pub fn orphans(dir: &Path) -> Vec<(PathBuf, Vec<Lease>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        let Ok(file) = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)
        else {
            continue;
        };
        // Locked: its session is alive.
        let Ok(file) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        let leases = unrevoked(BufReader::new(&*file));
        let _ = std::fs::remove_file(&path);
        found.push((path, leases));
    }
    found
}

/// What a journal lists as added and not done, in order; unreadable lines are skipped.
fn unrevoked(reader: impl std::io::BufRead) -> Vec<Lease> {
    let mut added: Vec<(u64, Lease)> = Vec::new();
    for line in reader.lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<Line>(&line) {
            Ok(Line::Add { id, lease }) => added.push((id, lease)),
            Ok(Line::Done(id)) => added.retain(|(added, _)| *added != id),
            Err(_) => {} // a torn last line: its lease expires by itself
        }
    }
    added.into_iter().map(|(_, lease)| lease).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(n: u32) -> Lease {
        Lease {
            backend: BackendKind::Vault,
            revocation: Revocation::VaultTokenAccessor(format!("acc-{n}")),
            credential: "vault-child".into(),
            expires: jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60),
        }
    }

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("frona-leases-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_live_session_is_not_an_orphan_a_dead_one_is() {
        let dir = dir("orphans");
        let live = LeaseJournal::new(&dir, "live");
        let first = live.add(lease(1)).unwrap();
        live.add(lease(2)).unwrap();
        live.done(first).unwrap();
        assert!(orphans(&dir).is_empty(), "a locked journal is not touched");
        // What a killed session leaves: the same lines, and nobody holding the lock.
        let dead = dir.join("dead.jsonl");
        std::fs::write(&dead, std::fs::read(&live.path).unwrap()).unwrap();
        let found = orphans(&dir);
        assert_eq!(found.len(), 1);
        let revocations: Vec<_> = found[0].1.iter().map(|l| &l.revocation).collect();
        assert_eq!(
            revocations,
            [&Revocation::VaultTokenAccessor("acc-2".into())],
            "added and not done"
        );
        assert!(!dead.exists(), "an orphan is read once");
        assert!(live.path.exists());
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_a_clean_exit_removes_the_file() {
        let text = format!(
            "{}\n{{\"add\":{{\"id\":1,\"le",
            serde_json::to_string(&Line::Add {
                id: 0,
                lease: lease(0)
            })
            .unwrap()
        );
        assert_eq!(unrevoked(text.as_bytes()).len(), 1);
        let dir = dir("clean");
        let journal = LeaseJournal::new(&dir, "s");
        let path = journal.path.clone();
        assert!(!path.exists(), "nothing until the first lease");
        journal.add(lease(0)).unwrap();
        assert!(path.exists());
        drop(journal);
        assert!(!path.exists());
        let again = LeaseJournal::new(&dir, "s");
        assert!(
            again.add(lease(1)).is_ok(),
            "the lock went with the journal"
        );
    }
}

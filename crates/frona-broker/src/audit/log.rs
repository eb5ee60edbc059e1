//! The log file and its hash chain: sealing records, group commit, verifying.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot write the audit log `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the audit log `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the audit log `{}` is damaged at line {line}: {detail}", path.display())]
    Broken {
        path: PathBuf,
        line: usize,
        detail: String,
    },
}

/// Serialises `record` with `seq` and `prev`, and seals it: returns the line and its hash.
/// A record serialised by the thread that made it, in three runs of `"key":value` pairs with
/// the places of `prev` and `seq` between them: keys in the order [`verify`] re-serialises them
/// (sorted), so the writer only splices in the chain fields and hashes. The work per record is
/// spread over the callers, and the writer frees one string instead of a JSON tree made on
/// another thread.
#[derive(Debug)]
struct Unsealed {
    before_prev: String,
    before_seq: String,
    after_seq: String,
}

impl Unsealed {
    fn new(mut record: Map<String, Value>) -> Self {
        for key in ["seq", "prev", "hash"] {
            record.remove(key);
        }
        let mut parts = [String::new(), String::new(), String::new()];
        for (key, value) in &record {
            let part =
                &mut parts[usize::from(key.as_str() > "prev") + usize::from(key.as_str() > "seq")];
            if !part.is_empty() {
                part.push(',');
            }
            part.push_str(&Value::String(key.clone()).to_string());
            part.push(':');
            part.push_str(&value.to_string());
        }
        let [before_prev, before_seq, after_seq] = parts;
        Self {
            before_prev,
            before_seq,
            after_seq,
        }
    }

    /// The record's line with `seq` and `prev` in place and its hash last, and that hash.
    fn seal(&self, seq: u64, prev: &str) -> (String, String) {
        let mut line = String::with_capacity(
            self.before_prev.len() + self.before_seq.len() + self.after_seq.len() + 180,
        );
        line.push('{');
        let mut push = |piece: &str| {
            if !piece.is_empty() {
                if line.len() > 1 {
                    line.push(',');
                }
                line.push_str(piece);
            }
        };
        push(&self.before_prev);
        push(&format!("\"prev\":\"{prev}\""));
        push(&self.before_seq);
        push(&format!("\"seq\":{seq}"));
        push(&self.after_seq);
        line.push('}');
        let hash = hex::encode(Sha256::digest(line.as_bytes()));
        // The hash goes last; `verify` re-serialises without it, so its place does not matter.
        line.pop();
        line.push_str(",\"hash\":\"");
        line.push_str(&hash);
        line.push_str("\"}");
        (line, hash)
    }
}

/// Checks one line against the chain; returns its hash.
fn check_line(
    path: &Path,
    number: usize,
    line: &str,
    expected_seq: u64,
    prev: &str,
) -> Result<String, AuditError> {
    let broken = |detail: String| AuditError::Broken {
        path: path.to_path_buf(),
        line: number,
        detail,
    };
    let mut record: Map<String, Value> = match serde_json::from_str(line) {
        Ok(Value::Object(map)) => map,
        _ => return Err(broken("not a JSON object (a torn or edited line)".into())),
    };
    let hash = record
        .remove("hash")
        .and_then(|h| h.as_str().map(str::to_owned))
        .ok_or_else(|| broken("no hash".into()))?;
    if record.get("seq").and_then(Value::as_u64) != Some(expected_seq) {
        return Err(broken(format!(
            "sequence number is not {expected_seq} (a record was removed or reordered)"
        )));
    }
    if record.get("prev").and_then(Value::as_str) != Some(prev) {
        return Err(broken(
            "does not follow the previous record (a record was changed, removed or reordered)"
                .into(),
        ));
    }
    let body = Value::Object(record).to_string();
    if hex::encode(Sha256::digest(body.as_bytes())) != hash {
        return Err(broken(
            "its content does not match its hash (the record was edited)".into(),
        ));
    }
    Ok(hash)
}

/// Where the chain stands after reading a log: the next sequence number and the last hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub records: u64,
    pub last_hash: String,
}

/// Verifies the whole log at `path`. A missing file is an empty, valid log. A last line without
/// its newline is a torn write and is reported, not accepted.
pub fn verify(path: &Path) -> Result<ChainHead, AuditError> {
    let file = match open_regular(path, OpenOptions::new().read(true)) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(ChainHead {
                records: 0,
                last_hash: GENESIS.into(),
            });
        }
        Err(source) => {
            return Err(AuditError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut reader = BufReader::new(file);
    let mut head = ChainHead {
        records: 0,
        last_hash: GENESIS.into(),
    };
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .map_err(|source| AuditError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        if read == 0 {
            return Ok(head);
        }
        let number = head.records as usize + 1;
        let Some(text) = line.strip_suffix('\n') else {
            return Err(AuditError::Broken {
                path: path.to_path_buf(),
                line: number,
                detail:
                    "the last record is incomplete (a torn write, e.g. frona was killed mid-write)"
                        .into(),
            });
        };
        head.last_hash = check_line(path, number, text, head.records, &head.last_hash)?;
        head.records += 1;
    }
}

/// Opens `path` only if it is a regular file and not a symlink: a log swapped for a FIFO, a
/// device (`/dev/zero` would be read forever) or a link elsewhere is refused, not followed.
fn open_regular(path: &Path, options: &mut OpenOptions) -> std::io::Result<File> {
    let file = options
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}

/// Every record, verified, as JSON values (for `frona audit`).
pub fn read(path: &Path) -> Result<Vec<Value>, AuditError> {
    verify(path)?;
    let file =
        open_regular(path, OpenOptions::new().read(true)).map_err(|source| AuditError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    BufReader::new(file)
        .lines()
        .map(|line| {
            let line = line.map_err(|source| AuditError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            serde_json::from_str(&line).map_err(|e| AuditError::Broken {
                path: path.to_path_buf(),
                line: 0,
                detail: e.to_string(),
            })
        })
        .collect()
}

/// Records waiting to be written, in sequence order.
#[derive(Debug)]
struct Queue {
    pending: Vec<Unsealed>,
    /// The sequence number the next queued record gets.
    next: u64,
}

/// The file and where its chain stands; held only by the appender writing a batch.
#[derive(Debug)]
struct Writer {
    file: File,
    head: ChainHead,
}

/// What appenders wait on.
#[derive(Debug, Default)]
struct Progress {
    /// Records with a smaller sequence number are on disk.
    durable: u64,
    /// Whether an appender is writing a batch now.
    writing: bool,
    /// Whether the flusher thread is alive.
    flusher: bool,
    /// After a failed write every later append fails too: the chain on disk is no longer known
    /// to be whole.
    failed: Option<String>,
}

/// How far the log is durable, for waiters on an async runtime.
#[derive(Debug, Clone, Default)]
struct Durable {
    below: u64,
    failed: Option<String>,
}

/// How long the flusher thread stays alive with nothing to write.
const FLUSHER_IDLE: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    progress: Mutex<Progress>,
    /// Wakes blocked appenders after each batch.
    written: Condvar,
    /// Wakes the flusher when records it must write are queued.
    work: Condvar,
    /// Wakes async waiters after each batch.
    durable: tokio::sync::watch::Sender<Durable>,
    writer: Mutex<Writer>,
    path: PathBuf,
}

/// An open audit log.
///
/// Group commit: records queued while a batch is being synced go out together in the next one.
/// Two ways in:
/// - [`AuditLog::append`] (blocking callers): queue the record and wait until it is on disk; if
///   nobody is writing, write and sync everything queued in one go. A lone caller pays no
///   thread hand-off; concurrent callers share each sync.
/// - [`AuditLog::submit`] + [`AuditLog::durable`] (async callers, and records nobody needs to
///   wait for): queue the record and let a flusher thread write it; await it if needed. No
///   blocking thread is held per waiter.
#[derive(Debug)]
pub struct AuditLog {
    shared: Arc<Shared>,
}

impl AuditLog {
    /// Opens (creating, 0600) the log at `path` after verifying it: a damaged log is refused, so
    /// that new records never chain onto an edited history.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let head = verify(path)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| AuditError::Write {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let file = open_regular(
            path,
            OpenOptions::new().create(true).append(true).mode(0o600),
        )
        .map_err(|source| AuditError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self::with_file(file, head, path))
    }

    fn with_file(file: File, head: ChainHead, path: &Path) -> Self {
        let (durable, _) = tokio::sync::watch::channel(Durable {
            below: head.records,
            failed: None,
        });
        Self {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue {
                    pending: Vec::new(),
                    next: head.records,
                }),
                progress: Mutex::new(Progress {
                    durable: head.records,
                    ..Progress::default()
                }),
                written: Condvar::new(),
                work: Condvar::new(),
                durable,
                writer: Mutex::new(Writer { file, head }),
                path: path.to_path_buf(),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Appends `record` (a JSON object; `seq`, `prev` and `hash` are added) and returns its
    /// sequence number once it is on disk.
    pub fn append(&self, record: Map<String, Value>) -> Result<u64, AuditError> {
        let shared = &self.shared;
        let seq = shared.enqueue(record);
        let mut progress = lock(&shared.progress);
        loop {
            if let Some(message) = &progress.failed {
                return Err(shared.error(message));
            }
            if seq < progress.durable {
                return Ok(seq);
            }
            if !progress.writing {
                progress.writing = true;
                break;
            }
            progress = shared
                .written
                .wait(progress)
                .unwrap_or_else(|p| p.into_inner());
        }
        drop(progress);
        // This caller writes: everything queued so far, its own record included.
        shared.write_batch();
        match &lock(&shared.progress).failed {
            Some(message) => Err(shared.error(message)),
            None => Ok(seq),
        }
    }

    /// Queues `record` and returns its sequence number at once; the flusher thread writes it
    /// (with whatever else is queued) soon. [`AuditLog::durable`] waits for it.
    pub fn submit(&self, record: Map<String, Value>) -> u64 {
        let seq = self.shared.enqueue(record);
        let mut progress = lock(&self.shared.progress);
        if progress.flusher {
            self.shared.work.notify_one();
        } else {
            let shared = Arc::clone(&self.shared);
            let started = std::thread::Builder::new()
                .name("frona-audit".into())
                .spawn(move || shared.flush_until_idle());
            if started.is_ok() {
                progress.flusher = true;
            } else {
                // No thread to be had: write here rather than leave the record queued.
                drop(progress);
                self.shared.write_now();
            }
        }
        seq
    }

    /// Blocks until everything queued so far is on disk (at exit: records nobody waited for,
    /// such as outcomes, must not be lost); `false` if the log failed or `limit` passed.
    pub fn flush(&self, limit: Duration) -> bool {
        let shared = &self.shared;
        let target = lock(&shared.queue).next;
        let deadline = std::time::Instant::now() + limit;
        let mut progress = lock(&shared.progress);
        loop {
            if progress.failed.is_some() {
                return false;
            }
            if progress.durable >= target {
                return true;
            }
            if !progress.writing {
                progress.writing = true;
                drop(progress);
                shared.write_batch();
                progress = lock(&shared.progress);
                continue;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            progress = shared
                .written
                .wait_timeout(progress, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Waits (without blocking a thread) until record `seq` is on disk.
    pub async fn durable(&self, seq: u64) -> Result<(), AuditError> {
        let mut receiver = self.shared.durable.subscribe();
        let state = receiver
            .wait_for(|d| d.failed.is_some() || d.below > seq)
            .await
            .map(|d| d.failed.clone())
            .unwrap_or_else(|_| Some("the audit log was closed".into()));
        match state {
            Some(message) => Err(self.shared.error(&message)),
            None => Ok(()),
        }
    }
}

impl Shared {
    fn enqueue(&self, record: Map<String, Value>) -> u64 {
        let record = Unsealed::new(record);
        let mut queue = lock(&self.queue);
        queue.pending.push(record);
        queue.next += 1;
        queue.next - 1
    }

    fn error(&self, message: &str) -> AuditError {
        AuditError::Write {
            path: self.path.clone(),
            source: std::io::Error::other(message.to_owned()),
        }
    }

    /// Whether records are queued that no batch has taken yet.
    fn has_pending(&self) -> bool {
        !lock(&self.queue).pending.is_empty()
    }

    /// The flusher thread: writes whatever is queued whenever nobody else is writing; exits
    /// after [`FLUSHER_IDLE`] with nothing to do.
    fn flush_until_idle(&self) {
        let mut progress = lock(&self.progress);
        loop {
            if progress.failed.is_none() && !progress.writing && self.has_pending() {
                progress.writing = true;
                drop(progress);
                self.write_batch();
                progress = lock(&self.progress);
                continue;
            }
            let (next, timeout) = self
                .work
                .wait_timeout(progress, FLUSHER_IDLE)
                .unwrap_or_else(|p| p.into_inner());
            progress = next;
            // Records queued behind a batch in progress keep it alive: that writer wakes it.
            if timeout.timed_out() && (progress.failed.is_some() || !self.has_pending()) {
                progress.flusher = false;
                return;
            }
        }
    }

    /// Becomes the writer (waiting for the current one) and writes what is queued.
    fn write_now(&self) {
        let mut progress = lock(&self.progress);
        while progress.writing {
            progress = self
                .written
                .wait(progress)
                .unwrap_or_else(|p| p.into_inner());
        }
        if progress.failed.is_some() {
            return;
        }
        progress.writing = true;
        drop(progress);
        self.write_batch();
    }

    /// Seals, writes and syncs every queued record, then tells every kind of waiter. The
    /// caller has set `writing`; this clears it.
    fn write_batch(&self) {
        let result = self.write_queued();
        let mut progress = lock(&self.progress);
        progress.writing = false;
        match result {
            Ok(durable) => progress.durable = durable,
            Err(e) => {
                let message = e.to_string();
                tracing::error!("audit log write failed: {message}");
                progress.failed = Some(message);
            }
        }
        self.durable.send_replace(Durable {
            below: progress.durable,
            failed: progress.failed.clone(),
        });
        self.written.notify_all();
        // Records queued meanwhile by `submit` may have nobody else to write them.
        if progress.flusher {
            self.work.notify_one();
        }
    }

    /// Seals, writes and syncs every queued record; returns how many records are durable.
    fn write_queued(&self) -> std::io::Result<u64> {
        let mut writer = lock(&self.writer);
        let batch = std::mem::take(&mut lock(&self.queue).pending);
        let mut text = String::new();
        let mut next = writer.head.clone();
        for record in batch {
            let (line, hash) = record.seal(next.records, &next.last_hash);
            next.last_hash = hash;
            next.records += 1;
            text.push_str(&line);
            text.push('\n');
        }
        writer
            .file
            .write_all(text.as_bytes())
            .and_then(|()| writer.file.sync_data())?;
        writer.head = next;
        Ok(writer.head.records)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;

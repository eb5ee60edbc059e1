//! Turning the protected list into mounts, just before the agent starts (in frona, as the
//! user, outside the sandbox): where each path really is (symbolic links followed), which
//! ancestors the agent could rename, which missing paths Landlock already keeps it from
//! creating, and placeholders for the others (see the [parent module](super)).
#![allow(unsafe_code)]

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::Serialize;

use super::{Kind, ProtectMount};
use crate::isolation::{LandlockPlan, Plan};

/// The extended attribute that marks a placeholder, so that one a killed frona left behind is
/// recognised and removed by the next session.
const MARKER: &str = "user.frona.placeholder";
/// Symbolic links followed for one protected path.
const MAX_LINKS: usize = 8;

/// What happens to one protected path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Disposition {
    /// It exists: bound read-only.
    ReadOnly,
    /// It is missing where the agent may write: an empty placeholder, bound read-only, for the
    /// session.
    Placeholder,
    /// It is missing where Landlock keeps the agent from writing: nothing to do.
    Landlock,
    /// It is missing and cannot be created by frona's user (so not by the agent either).
    Unwritable,
}

/// One protected path and what [`prepare`] does (or would do) with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Preview {
    /// The protected path.
    pub path: PathBuf,
    pub disposition: Disposition,
    /// Where: the real location (links followed), or the placeholder's.
    pub at: PathBuf,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot protect `{}`", path.display())]
pub struct PrepareError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// The placeholders of one session, each held with a shared lock; removed by
/// [`Placeholders::release`] (or on drop) unless another session still uses it.
#[derive(Debug, Default)]
pub struct Placeholders {
    held: Vec<Held>,
}

#[derive(Debug)]
struct Held {
    path: PathBuf,
    lock: Flock<File>,
    /// This session made it (else it is removed only if it carries the marker).
    created: bool,
    dev: u64,
    ino: u64,
}

/// Decides the mounts for `plan`'s protected paths and makes the placeholders they need.
/// Fills in `plan.persistence.mounts`; the placeholders stay until the returned value is
/// released or dropped, which must be after every process using the plan has exited.
pub fn prepare(plan: &mut Plan) -> Result<Placeholders, PrepareError> {
    let roots = writable_roots(plan.landlock.as_ref());
    let Some(persistence) = plan.persistence.as_mut() else {
        return Ok(Placeholders::default());
    };
    let mut layout = Layout::new(roots, true);
    for protected in &persistence.protect {
        layout.protect(&protected.path, protected.kind)?;
    }
    persistence.mounts = layout.mounts();
    persistence.relies_on_landlock = layout.relies_on_landlock;
    Ok(Placeholders { held: layout.held })
}

/// What [`prepare`] would do, changing nothing (for `frona doctor`): one entry per protected
/// path, and the number of directories that would be pinned.
pub fn preview(plan: &Plan) -> (Vec<Preview>, usize) {
    let roots = writable_roots(plan.landlock.as_ref());
    let Some(persistence) = &plan.persistence else {
        return (Vec::new(), 0);
    };
    let mut layout = Layout::new(roots, false);
    for protected in &persistence.protect {
        if let Err(err) = layout.protect(&protected.path, protected.kind) {
            tracing::debug!(error = %crate::error_chain(&err), "preview");
        }
    }
    let pins = layout.pins.len();
    (layout.previews, pins)
}

/// Landlock's writable directories, links resolved; `None` when Landlock is not planned
/// (the agent may then write wherever its user can).
fn writable_roots(landlock: Option<&LandlockPlan>) -> Option<Vec<PathBuf>> {
    landlock.map(|l| {
        l.writable
            .iter()
            .map(|w| std::fs::canonicalize(w).unwrap_or_else(|_| w.clone()))
            .collect()
    })
}

struct Layout {
    roots: Option<Vec<PathBuf>>,
    create: bool,
    read_only: Vec<PathBuf>,
    links: Vec<PathBuf>,
    pins: BTreeSet<PathBuf>,
    relies_on_landlock: bool,
    held: Vec<Held>,
    /// Directories already found not to be placeholders (many paths share ancestors).
    not_placeholders: BTreeSet<PathBuf>,
    previews: Vec<Preview>,
}

/// Where a protected path ends.
enum End {
    Exists {
        at: PathBuf,
        meta: Metadata,
    },
    /// `at` is the first missing component; `last` when that is the protected path itself.
    Missing {
        at: PathBuf,
        last: bool,
    },
}

/// A protected path resolved: the existing directories (and links) above its end, then the end.
struct Walk {
    ancestors: Vec<PathBuf>,
    end: End,
}

enum Outcome {
    Done,
    /// Something changed under frona's feet (another session removing a placeholder): again.
    Again,
}

impl Layout {
    fn new(roots: Option<Vec<PathBuf>>, create: bool) -> Self {
        Self {
            roots,
            create,
            read_only: Vec::new(),
            links: Vec::new(),
            pins: BTreeSet::new(),
            relies_on_landlock: false,
            held: Vec::new(),
            not_placeholders: BTreeSet::new(),
            previews: Vec::new(),
        }
    }

    /// Whether the agent may create or remove entries in `dir`.
    fn writable(&self, dir: &Path) -> bool {
        match &self.roots {
            None => true,
            Some(roots) => roots.iter().any(|w| dir.starts_with(w)),
        }
    }

    fn protect(&mut self, path: &Path, kind: Kind) -> Result<(), PrepareError> {
        self.protect_at(path, path, kind, 0)
    }

    /// Protects `path` (reached from the protected path `origin` through `depth` links).
    fn protect_at(
        &mut self,
        origin: &Path,
        path: &Path,
        kind: Kind,
        depth: usize,
    ) -> Result<(), PrepareError> {
        let fail = |source: io::Error| PrepareError {
            path: origin.to_path_buf(),
            source,
        };
        if depth > MAX_LINKS {
            return Err(fail(io::Error::from_raw_os_error(libc::ELOOP)));
        }
        for _ in 0..3 {
            if let Outcome::Done = self.try_protect(origin, path, kind, depth)? {
                return Ok(());
            }
        }
        Err(fail(io::Error::other(
            "it kept changing while frona prepared it",
        )))
    }

    fn try_protect(
        &mut self,
        origin: &Path,
        path: &Path,
        kind: Kind,
        depth: usize,
    ) -> Result<Outcome, PrepareError> {
        let fail = |source: io::Error| PrepareError {
            path: origin.to_path_buf(),
            source,
        };
        let walk = match walk(path, depth) {
            Ok(walk) => walk,
            // frona's user cannot look it up, or a component is a file: the agent cannot
            // create it either.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::ENOTDIR)) => {
                self.preview(origin, Disposition::Unwritable, path);
                return Ok(Outcome::Done);
            }
            Err(e) => return Err(fail(e)),
        };
        // A placeholder on the way (another session's, or this one's from an earlier path) is
        // held before anything is made inside it, so that it is not removed meanwhile.
        for ancestor in &walk.ancestors {
            if let Outcome::Again = self.hold(ancestor, false).map_err(fail)? {
                return Ok(Outcome::Again);
            }
        }
        match walk.end {
            End::Exists { at, meta } if meta.file_type().is_symlink() => {
                // The target, where it lives, then the link's own name.
                let target = match std::fs::canonicalize(&at) {
                    Ok(target) => target,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        lexical_target(&at).map_err(fail)?
                    }
                    Err(e) => return Err(fail(e)),
                };
                self.protect_at(origin, &target, kind, depth + 1)?;
                self.preview(origin, Disposition::ReadOnly, &at);
                push_new(&mut self.links, at);
            }
            End::Exists { at, .. } => {
                if let Outcome::Again = self.hold(&at, true).map_err(fail)? {
                    return Ok(Outcome::Again);
                }
                self.preview(origin, Disposition::ReadOnly, &at);
                push_new(&mut self.read_only, at);
            }
            End::Missing { at, last } => {
                let parent = at.parent().unwrap_or(Path::new("/"));
                if !self.writable(parent) {
                    self.relies_on_landlock = true;
                    self.preview(origin, Disposition::Landlock, &at);
                    return Ok(Outcome::Done);
                }
                if self.create {
                    let shape = if last { kind } else { Kind::Dir };
                    match create_placeholder(&at, shape) {
                        Ok(held) => self.held.push(held),
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                            return Ok(Outcome::Again);
                        }
                        Err(e)
                            if matches!(
                                e.raw_os_error(),
                                Some(libc::EACCES | libc::EPERM | libc::EROFS)
                            ) =>
                        {
                            self.preview(origin, Disposition::Unwritable, &at);
                            return Ok(Outcome::Done);
                        }
                        Err(e) => return Err(fail(e)),
                    }
                }
                self.preview(origin, Disposition::Placeholder, &at);
                push_new(&mut self.read_only, at);
            }
        }
        for ancestor in walk.ancestors {
            if ancestor.parent().is_some_and(|p| self.writable(p)) {
                self.pins.insert(ancestor);
            }
        }
        Ok(Outcome::Done)
    }

    /// Holds `at` if it is (or, at a path's end, may be) a placeholder; nothing in a preview.
    fn hold(&mut self, at: &Path, end: bool) -> io::Result<Outcome> {
        if !self.create
            || self.held.iter().any(|h| h.path == at)
            || (!end && self.not_placeholders.contains(at))
        {
            return Ok(Outcome::Done);
        }
        Ok(match hold_existing(at, end)? {
            Hold::Held(held) => {
                self.held.push(held);
                Outcome::Done
            }
            Hold::NotNeeded => {
                if !end {
                    self.not_placeholders.insert(at.to_path_buf());
                }
                Outcome::Done
            }
            Hold::Changed => Outcome::Again,
        })
    }

    fn preview(&mut self, origin: &Path, disposition: Disposition, at: &Path) {
        // A link reached from the protected path is one entry: the link's own.
        if self.previews.last().is_some_and(|p| p.path == origin) {
            self.previews.pop();
        }
        self.previews.push(Preview {
            path: origin.to_path_buf(),
            disposition,
            at: at.to_path_buf(),
        });
    }

    /// Read-only mounts first, then links, then pins (deepest first), without repeats: a path
    /// mounted read-only needs no pin.
    fn mounts(&self) -> Vec<ProtectMount> {
        let mut out: Vec<ProtectMount> = Vec::new();
        out.extend(self.read_only.iter().cloned().map(ProtectMount::ReadOnly));
        out.extend(self.links.iter().cloned().map(ProtectMount::ReadOnlyLink));
        let mut pins: Vec<&PathBuf> = self
            .pins
            .iter()
            .filter(|p| !self.read_only.contains(p) && !self.links.contains(p))
            .collect();
        pins.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        out.extend(pins.into_iter().cloned().map(ProtectMount::Pin));
        out
    }
}

fn push_new(list: &mut Vec<PathBuf>, path: PathBuf) {
    if !list.contains(&path) {
        list.push(path);
    }
}

/// Resolves `path` component by component from `/`: every existing component above the end
/// (a link among them recorded by its own name, then followed, its target's directories
/// recorded too), and the end (a final link is not followed).
fn walk(path: &Path, depth: usize) -> io::Result<Walk> {
    let mut names: Vec<OsString> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => names.push(name.to_owned()),
            Component::ParentDir => {
                names.pop();
            }
            _ => {}
        }
    }
    let mut cur = PathBuf::from("/");
    let mut ancestors = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let next = cur.join(name);
        let last = i + 1 == names.len();
        let meta = match std::fs::symlink_metadata(&next) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Walk {
                    ancestors,
                    end: End::Missing { at: next, last },
                });
            }
            Err(e) => return Err(e),
        };
        if last {
            return Ok(Walk {
                ancestors,
                end: End::Exists { at: next, meta },
            });
        }
        ancestors.push(next.clone());
        if meta.file_type().is_symlink() {
            match std::fs::canonicalize(&next) {
                Ok(target) => {
                    ancestors.extend(
                        target
                            .ancestors()
                            .filter(|a| a.parent().is_some())
                            .map(Path::to_path_buf),
                    );
                    cur = target;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // A dangling link on the way: the rest of the path continues at its target.
                    if depth >= MAX_LINKS {
                        return Err(io::Error::from_raw_os_error(libc::ELOOP));
                    }
                    let mut rest = lexical_target(&next)?;
                    rest.extend(&names[i + 1..]);
                    let mut inner = walk(&rest, depth + 1)?;
                    ancestors.append(&mut inner.ancestors);
                    inner.ancestors = ancestors;
                    return Ok(inner);
                }
                Err(e) => return Err(e),
            }
        } else if meta.is_dir() {
            cur = next;
        } else {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
    }
    // `/` itself.
    Ok(Walk {
        ancestors,
        end: End::Exists {
            meta: std::fs::symlink_metadata("/")?,
            at: cur,
        },
    })
}

/// Where the link `link` points, made absolute from its directory.
fn lexical_target(link: &Path) -> io::Result<PathBuf> {
    let target = std::fs::read_link(link)?;
    Ok(match link.parent() {
        Some(dir) if target.is_relative() => dir.join(target),
        _ => target,
    })
}

/// What [`hold_existing`] did.
enum Hold {
    Held(Held),
    /// Not a placeholder (nothing to hold).
    NotNeeded,
    /// It changed while being locked (another session removed it): try again.
    Changed,
}

/// A placeholder another session made (marked), or — at the end of a protected path — any
/// empty directory or file (which may be one on a file system without user xattrs): hold it
/// with a shared lock too, so that its session does not remove it while this one relies on it,
/// and so that the last session to end removes it.
fn hold_existing(at: &Path, end: bool) -> io::Result<Hold> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(at)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Hold::Changed),
        // A link (ELOOP), something frona's user cannot open: not a placeholder.
        Err(_) => return Ok(Hold::NotNeeded),
    };
    let meta = file.metadata()?;
    let empty = || {
        if meta.is_dir() {
            std::fs::read_dir(at).is_ok_and(|mut d| d.next().is_none())
        } else {
            meta.is_file() && meta.len() == 0
        }
    };
    if !(is_marked(&file) || (end && empty())) {
        return Ok(Hold::NotNeeded);
    }
    let lock =
        Flock::lock(file, FlockArg::LockShared).map_err(|(_, errno)| io::Error::from(errno))?;
    match std::fs::symlink_metadata(at) {
        Ok(now) if (now.dev(), now.ino()) == (meta.dev(), meta.ino()) => {}
        Ok(_) => return Ok(Hold::Changed),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Hold::Changed),
        Err(e) => return Err(e),
    }
    Ok(Hold::Held(Held {
        path: at.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
        lock,
        created: false,
    }))
}

/// Makes an empty, marked placeholder at `at` and holds it with a shared lock. Readable by
/// every user (it is empty, and only its owner may write it): a session of another user in the
/// same directory must be able to open it to hold it too, or this session would remove it
/// under that one's mounts.
fn create_placeholder(at: &Path, kind: Kind) -> io::Result<Held> {
    let file = match kind {
        Kind::Dir => {
            std::fs::DirBuilder::new().mode(0o755).create(at)?;
            OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(at)?
        }
        Kind::File => OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(at)?,
    };
    // Whatever the umask took away.
    let mode = if kind == Kind::Dir { 0o755 } else { 0o644 };
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    mark(&file);
    let lock =
        Flock::lock(file, FlockArg::LockShared).map_err(|(_, errno)| io::Error::from(errno))?;
    let meta = lock.metadata()?;
    Ok(Held {
        path: at.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
        lock,
        created: true,
    })
}

/// Whether `path` is an empty placeholder some session made (and so, for frona's own
/// decisions, not really there): frona's policy directory is one when it did not exist.
pub fn is_placeholder(path: &Path) -> bool {
    let Ok(file) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    else {
        return false;
    };
    let empty = match file.metadata() {
        Ok(meta) if meta.is_dir() => std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_none()),
        Ok(meta) => meta.is_file() && meta.len() == 0,
        Err(_) => false,
    };
    empty && is_marked(&file)
}

impl Placeholders {
    /// How many placeholders this session holds (its own and others' it relies on).
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Removes this session's placeholders (and marked ones left by a killed frona), except
    /// those another session still holds or someone has put something in.
    pub fn release(&mut self) {
        // Innermost first: a placeholder may sit inside another. Removing a directory that was
        // a mount point in a namespace that just ended waits for the kernel (an RCU grace
        // period, milliseconds), so those at one depth are removed together.
        let mut held: Vec<Held> = self.held.drain(..).collect();
        held.sort_by_key(|h| std::cmp::Reverse(h.path.components().count()));
        while let Some(first) = held.first() {
            let depth = first.path.components().count();
            let split = held
                .iter()
                .position(|h| h.path.components().count() != depth)
                .unwrap_or(held.len());
            let level: Vec<std::sync::Mutex<Option<Held>>> = held
                .drain(..split)
                .map(|h| std::sync::Mutex::new(Some(h)))
                .collect();
            std::thread::scope(|scope| {
                for slot in &level {
                    let spawned = std::thread::Builder::new()
                        .name("frona-placeholder".into())
                        .spawn_scoped(scope, move || release_slot(slot));
                    if spawned.is_err() {
                        // No thread: remove it here.
                        release_slot(slot);
                    }
                }
            });
        }
    }
}

fn release_slot(slot: &std::sync::Mutex<Option<Held>>) {
    let held = slot.lock().ok().and_then(|mut h| h.take());
    if let Some(held) = held {
        held.release();
    }
}

impl Drop for Placeholders {
    fn drop(&mut self) {
        self.release();
    }
}

impl Held {
    fn release(self) {
        if !self.created && !is_marked(&self.lock) {
            return;
        }
        // Another session's shared lock means it still relies on the placeholder.
        if self.lock.relock(FlockArg::LockExclusiveNonblock).is_err() {
            return;
        }
        let Ok(meta) = std::fs::symlink_metadata(&self.path) else {
            return;
        };
        if (meta.dev(), meta.ino()) != (self.dev, self.ino) {
            return;
        }
        let removed = if meta.is_dir() {
            std::fs::remove_dir(&self.path)
        } else if meta.is_file() && meta.len() == 0 {
            std::fs::remove_file(&self.path)
        } else {
            return;
        };
        match removed {
            Err(e) if e.kind() != io::ErrorKind::DirectoryNotEmpty => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove a placeholder");
            }
            _ => {}
        }
    }
}

#[cfg(target_os = "linux")]
fn mark(file: &File) {
    use std::os::fd::AsRawFd as _;
    let Ok(name) = std::ffi::CString::new(MARKER) else {
        return;
    };
    // SAFETY: a valid descriptor, a NUL-terminated name, and a one-byte value that outlives
    // the call. A file system without user xattrs answers ENOTSUP, which is fine: the
    // placeholder is then only recognised by the session that made it.
    unsafe { libc::fsetxattr(file.as_raw_fd(), name.as_ptr(), b"1".as_ptr().cast(), 1, 0) };
}

#[cfg(target_os = "linux")]
fn is_marked(file: &File) -> bool {
    use std::os::fd::AsRawFd as _;
    let Ok(name) = std::ffi::CString::new(MARKER) else {
        return false;
    };
    // SAFETY: a valid descriptor and name; size 0 with a null buffer only asks for the
    // value's length.
    unsafe { libc::fgetxattr(file.as_raw_fd(), name.as_ptr(), std::ptr::null_mut(), 0) >= 0 }
}

#[cfg(not(target_os = "linux"))]
fn mark(_file: &File) {}

#[cfg(not(target_os = "linux"))]
fn is_marked(_file: &File) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isolation::persistence::{PersistencePlan, Protected};

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("frona-prepare-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(std::fs::canonicalize(&dir).unwrap())
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn plan_for(protect: &[(&Path, Kind)], writable: Option<Vec<PathBuf>>) -> Plan {
        Plan {
            landlock: writable.map(|writable| LandlockPlan {
                writable,
                required: false,
            }),
            persistence: Some(PersistencePlan {
                protect: protect
                    .iter()
                    .map(|(path, kind)| Protected {
                        path: path.to_path_buf(),
                        kind: *kind,
                    })
                    .collect(),
                ..PersistencePlan::default()
            }),
            ..Plan::default()
        }
    }

    fn mounts(plan: &Plan) -> Vec<ProtectMount> {
        plan.persistence.as_ref().unwrap().mounts.clone()
    }

    #[test]
    fn existing_missing_covered_and_pinned() {
        let s = Scratch::new("layout");
        let home = s.0.join("home");
        let proj = s.0.join("proj");
        std::fs::create_dir_all(proj.join(".git/hooks")).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(home.join(".bashrc"), "x").unwrap();
        let hooks = proj.join(".git/hooks");
        let envrc = proj.join(".envrc");
        let zshrc = home.join(".zshrc");
        let bashrc = home.join(".bashrc");
        let mut plan = plan_for(
            &[
                (&hooks, Kind::Dir),
                (&envrc, Kind::Dir),
                (&zshrc, Kind::File),
                (&bashrc, Kind::File),
            ],
            Some(vec![proj.clone()]),
        );
        let (preview_list, pins) = preview(&plan);
        let dispositions: Vec<Disposition> = preview_list.iter().map(|p| p.disposition).collect();
        assert_eq!(
            dispositions,
            [
                Disposition::ReadOnly,
                Disposition::Placeholder,
                Disposition::Landlock,
                Disposition::ReadOnly
            ]
        );
        assert_eq!(pins, 1);
        assert!(!envrc.exists(), "preview changes nothing");

        let mut held = prepare(&mut plan).unwrap();
        assert!(envrc.is_dir(), "placeholder made");
        assert!(is_placeholder(&envrc) || !is_marked(&File::open(&envrc).unwrap()));
        assert!(!is_placeholder(&hooks));
        assert!(
            !zshrc.exists(),
            "Landlock covers $HOME here: no placeholder"
        );
        assert_eq!(
            mounts(&plan),
            [
                ProtectMount::ReadOnly(hooks.clone()),
                ProtectMount::ReadOnly(envrc.clone()),
                ProtectMount::ReadOnly(bashrc.clone()),
                // `.git` sits in the writable project: pinned; `proj` itself is not (its
                // parent is not writable).
                ProtectMount::Pin(proj.join(".git")),
            ]
        );
        assert!(plan.persistence.as_ref().unwrap().relies_on_landlock);
        held.release();
        assert!(!envrc.exists(), "placeholder removed");
        assert!(hooks.is_dir() && bashrc.is_file());
    }

    #[test]
    fn without_landlock_everything_missing_gets_a_placeholder() {
        let s = Scratch::new("nolandlock");
        let home = s.0.join("home");
        std::fs::create_dir_all(home.join(".config")).unwrap();
        let zshrc = home.join(".zshrc");
        let git_config = home.join(".config/git");
        let fish = home.join(".config/fish/conf.d");
        let mut plan = plan_for(
            &[
                (&zshrc, Kind::File),
                (&git_config, Kind::Dir),
                (&fish, Kind::Dir),
            ],
            None,
        );
        let held = prepare(&mut plan).unwrap();
        assert!(zshrc.is_file() && std::fs::read(&zshrc).unwrap().is_empty());
        assert!(git_config.is_dir());
        // The first missing component gets the placeholder.
        assert!(home.join(".config/fish").is_dir() && !fish.exists());
        let m = mounts(&plan);
        assert!(m.contains(&ProtectMount::Pin(home.join(".config"))));
        assert!(m.contains(&ProtectMount::Pin(home.clone())));
        assert!(!plan.persistence.as_ref().unwrap().relies_on_landlock);
        drop(held);
        assert!(!zshrc.exists() && !git_config.exists() && !home.join(".config/fish").exists());
    }

    #[test]
    fn links_are_followed_and_pinned_by_name() {
        let s = Scratch::new("links");
        let home = s.0.join("home");
        std::fs::create_dir_all(home.join("dotfiles")).unwrap();
        std::fs::write(home.join("dotfiles/bashrc"), "x").unwrap();
        std::os::unix::fs::symlink("dotfiles/bashrc", home.join(".bashrc")).unwrap();
        std::os::unix::fs::symlink("dotfiles/missing", home.join(".zshrc")).unwrap();
        let bashrc = home.join(".bashrc");
        let zshrc = home.join(".zshrc");
        let mut plan = plan_for(
            &[(&bashrc, Kind::File), (&zshrc, Kind::File)],
            Some(vec![home.clone()]),
        );
        let mut held = prepare(&mut plan).unwrap();
        let m = mounts(&plan);
        assert!(m.contains(&ProtectMount::ReadOnly(home.join("dotfiles/bashrc"))));
        assert!(m.contains(&ProtectMount::ReadOnlyLink(bashrc.clone())));
        // A dangling link: its target gets the placeholder, so the link resolves.
        assert!(home.join("dotfiles/missing").is_file());
        assert!(m.contains(&ProtectMount::ReadOnlyLink(zshrc.clone())));
        assert!(m.contains(&ProtectMount::Pin(home.join("dotfiles"))));
        held.release();
        assert!(!home.join("dotfiles/missing").exists());
    }

    #[test]
    fn a_placeholder_in_use_by_another_session_stays() {
        let s = Scratch::new("shared");
        let envrc = s.0.join(".envrc");
        let mut first = plan_for(&[(&envrc, Kind::Dir)], None);
        let mut second = first.clone();
        let mut a = prepare(&mut first).unwrap();
        assert!(envrc.is_dir());
        let mut b = prepare(&mut second).unwrap();
        assert_eq!(
            b.len(),
            1,
            "the second session holds the first one's placeholder"
        );
        a.release();
        assert!(envrc.is_dir(), "still in use by the second session");
        b.release();
        // Removed by the second session when the marker is supported; else it stays empty.
        if envrc.exists() {
            assert!(std::fs::read_dir(&envrc).unwrap().next().is_none());
        }
    }

    /// frona's data and state dirs both missing: `~/.local` gets a placeholder (the first
    /// missing component of the first), and `state` one inside it (the second's); both go at
    /// the end, innermost first.
    #[test]
    fn nested_placeholders_are_all_removed() {
        let s = Scratch::new("nested");
        let data = s.0.join(".local/share/frona");
        let state = s.0.join(".local/state/frona");
        let mut plan = plan_for(&[(&data, Kind::Dir), (&state, Kind::Dir)], None);
        let mut held = prepare(&mut plan).unwrap();
        assert!(s.0.join(".local/state").is_dir() && !s.0.join(".local/share").exists());
        held.release();
        assert!(!s.0.join(".local").exists());
    }

    #[test]
    fn a_placeholder_someone_wrote_into_is_kept() {
        let s = Scratch::new("used");
        let vscode = s.0.join(".vscode");
        let mut plan = plan_for(&[(&vscode, Kind::Dir)], None);
        let mut held = prepare(&mut plan).unwrap();
        std::fs::write(vscode.join("settings.json"), "{}").unwrap();
        held.release();
        assert!(vscode.join("settings.json").is_file());
    }
}

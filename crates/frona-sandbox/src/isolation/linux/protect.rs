//! The init helper's part of persistence protection: the mounts [`crate::isolation::persistence`]
//! decided, made in three phases around the credential masks.
//!
//! 1. [`ProtectMount::ReadOnly`]: before the masks, so that a mask over a protected path sits
//!    on top of the read-only copy.
//! 2. [`ProtectMount::ReadOnlyLink`]: after the masks: the link's target (masks included) is
//!    copied onto the link itself, so that both ways in are read-only and masked.
//! 3. [`ProtectMount::Pin`]: last, each a recursive copy of what is there by then.
//!
//! With the new mount API (Linux 5.2; `mount_setattr` 5.12) a tree is cloned (`open_tree`),
//! made read-only, no-suid and no-dev *recursively* (`mount_setattr`, which only adds flags and
//! so keeps whatever a user namespace locked), and attached without following a final symbolic
//! link (`move_mount`). Older kernels get `mount(2)` and a remount that repeats the flags the
//! mount already has (a user namespace may not drop them); a link's own name cannot be pinned
//! there, which is an error.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use nix::mount::{MsFlags, mount};
use nix::sys::statvfs::{FsFlags, statvfs};

use super::IsolationError;
use crate::isolation::persistence::ProtectMount;

/// Which mounts a call makes (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    BeforeMasks,
    AfterMasks,
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;

/// `struct mount_attr` (linux/mount.h), version 0.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Makes `phase`'s mounts; `each` decides what a failure means (best-effort skips it).
pub(super) fn apply(
    mounts: &[ProtectMount],
    phase: Phase,
    each: &dyn Fn(Result<(), IsolationError>) -> Result<(), IsolationError>,
) -> Result<(), IsolationError> {
    for m in mounts {
        let (path, result) = match (phase, m) {
            (Phase::BeforeMasks, ProtectMount::ReadOnly(path)) => (path, read_only(path, false)),
            (Phase::AfterMasks, ProtectMount::ReadOnlyLink(path)) => (path, read_only(path, true)),
            (Phase::AfterMasks, ProtectMount::Pin(path)) => (path, pin(path)),
            _ => continue,
        };
        each(result.map_err(|source| IsolationError::Protect {
            path: path.clone(),
            source,
        }))?;
    }
    Ok(())
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn errno_of(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn is_enosys(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOSYS)
}

/// A detached recursive copy of the tree at `path` (a final link followed).
fn clone_tree(path: &Path) -> io::Result<OwnedFd> {
    let c = c_path(path)?;
    // SAFETY: a NUL-terminated path; the flags ask for a detached clone, close-on-exec; the
    // returned descriptor is owned here.
    let fd = errno_of(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint,
        )
    })?;
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: `open_tree` just returned this descriptor, which nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Read-only, no-suid, no-dev on every mount of the detached tree.
fn set_read_only(tree: &OwnedFd) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: a descriptor owned by the caller, an empty NUL-terminated path with
    // AT_EMPTY_PATH, and a `mount_attr` of the size passed, alive for the call.
    errno_of(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// Attaches the detached tree at `path`, on the link itself when `path` is one.
fn attach(tree: &OwnedFd, path: &Path) -> io::Result<()> {
    let c = c_path(path)?;
    // SAFETY: descriptors and NUL-terminated paths valid for the call.
    errno_of(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
    .map(drop)
}

/// `path` (or, for a link, what it reaches — `/dev/null` when it dangles) bound read-only
/// onto `path`.
fn read_only(path: &Path, link: bool) -> io::Result<()> {
    let tree = match clone_tree(path) {
        Ok(tree) => tree,
        Err(e) if is_enosys(&e) && !link => return read_only_classic(path),
        Err(e) if is_enosys(&e) => return Err(too_old()),
        // A dangling link: nothing to copy, but its name must still be pinned.
        Err(e) if link && e.kind() == io::ErrorKind::NotFound => {
            clone_tree(Path::new("/dev/null"))?
        }
        Err(e) => return Err(e),
    };
    match set_read_only(&tree) {
        Ok(()) => attach(&tree, path),
        Err(e) if is_enosys(&e) => {
            // 5.2 to 5.11: attach, then remount through the path, which now leads to the copy.
            attach(&tree, path)?;
            remount_read_only(path)
        }
        Err(e) => Err(e),
    }
}

/// `path` bound onto itself, read-write.
fn pin(path: &Path) -> io::Result<()> {
    match clone_tree(path) {
        Ok(tree) => attach(&tree, path),
        Err(e) if is_enosys(&e) => {
            if std::fs::symlink_metadata(path)?.file_type().is_symlink() {
                return Err(too_old());
            }
            mount(
                Some(path),
                path,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(io::Error::from)
        }
        Err(e) => Err(e),
    }
}

fn too_old() -> io::Error {
    io::Error::other("a symbolic link's own name can be protected only with Linux 5.2 or newer")
}

fn read_only_classic(path: &Path) -> io::Result<()> {
    mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )?;
    remount_read_only(path)
}

/// Remounts the mount at `path` read-only, no-suid, no-dev, repeating the flags it has.
fn remount_read_only(path: &Path) -> io::Result<()> {
    let have = statvfs(path)?.flags();
    let mut flags = MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_RDONLY
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV;
    for (st, ms) in [
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if have.contains(st) {
            flags |= ms;
        }
    }
    mount(None::<&str>, path, None::<&str>, flags, None::<&str>).map_err(io::Error::from)
}

//! The init helper's part: the agent's mount namespace and network namespace.
#![allow(unsafe_code)]

use std::io;
use std::path::Path;

use nix::mount::{MsFlags, mount};

use super::IsolationError;
use super::protect::{self, Phase};
use crate::isolation::{IsolationMode, Plan};

const MASK_FLAGS: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NOEXEC);

/// Prepares the namespaces the helper was started in. With `best-effort`, a step that fails
/// is reported on stderr and skipped; with `required` it is an error.
pub fn apply_in_init(plan: &Plan) -> Result<(), IsolationError> {
    let tolerate = |result: Result<(), IsolationError>| -> Result<(), IsolationError> {
        match result {
            Err(err) if plan.mode == IsolationMode::BestEffort => {
                eprintln!("frona: isolation: skipped: {}", crate::error_chain(&err));
                Ok(())
            }
            other => other,
        }
    };
    // Where the agent starts, entered again once the mounts are made (see below).
    let cwd = plan.namespaces.mount.then(std::env::current_dir);
    if plan.namespaces.mount {
        // Nothing the agent's namespace mounts propagates back to the host.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_SLAVE,
            None::<&str>,
        )
        .map_err(|e| IsolationError::Propagation(e.into()))?;
    }
    if plan.fresh_proc {
        tolerate(
            mount(
                Some("proc"),
                "/proc",
                Some("proc"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                None::<&str>,
            )
            .map_err(|e| IsolationError::Proc(e.into())),
        )?;
    }
    let protect = plan
        .persistence
        .as_ref()
        .map_or(&[][..], |p| p.mounts.as_slice());
    protect::apply(protect, Phase::BeforeMasks, &tolerate)?;
    for path in &plan.hide {
        tolerate(hide(path).map_err(|source| IsolationError::Hide {
            path: path.clone(),
            source,
        }))?;
    }
    for masked in &plan.mask_files {
        tolerate(
            show_as(&masked.path, &masked.copy).map_err(|source| IsolationError::Hide {
                path: masked.path.clone(),
                source,
            }),
        )?;
    }
    protect::apply(protect, Phase::AfterMasks, &tolerate)?;
    if let Some(cwd) = cwd {
        // The working directory this process inherited is the one *under* any mount made on
        // it or an ancestor: a relative path from there would miss the protection.
        tolerate(
            cwd.and_then(std::env::set_current_dir)
                .map_err(IsolationError::Cwd),
        )?;
    }
    if plan.loopback {
        tolerate(loopback_up().map_err(IsolationError::Loopback))?;
    }
    Ok(())
}

/// Masks `path`: a directory with an empty read-only tmpfs, a file with a read-only
/// `/dev/null` (reads as empty; writes fail). A path that does not exist, or that the caller
/// (and so the agent) cannot even look up, is left alone — also when it goes away while it is
/// being hidden (a socket another process removes between the plan and the mount).
fn hide(path: &Path) -> io::Result<()> {
    match mask(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        done => done,
    }
}

fn mask(path: &Path) -> io::Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
            ) =>
        {
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    if meta.is_dir() {
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MASK_FLAGS | MsFlags::MS_NODEV,
            Some("size=4k,nr_inodes=1,mode=0555"),
        )?;
    } else {
        mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )?;
        mount(
            None::<&str>,
            path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MASK_FLAGS,
            None::<&str>,
        )?;
    }
    Ok(())
}

/// Mounts `copy` read-only over the file `path` (writes to it fail with EROFS); hides `path`
/// when there is no copy (frona run did not write one).
fn show_as(path: &Path, copy: &Path) -> io::Result<()> {
    if copy.as_os_str().is_empty() {
        return hide(path);
    }
    mount(
        Some(copy),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )?;
    mount(
        None::<&str>,
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MASK_FLAGS,
        None::<&str>,
    )?;
    Ok(())
}

/// `ip link set lo up` in the new network namespace.
pub(super) fn loopback_up() -> io::Result<()> {
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: `ifreq` is plain data; the name is NUL-terminated; the ioctls read and write
    // only that struct.
    unsafe {
        use std::os::fd::AsRawFd as _;
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

//! Facts about this machine that the isolation plan depends on: who we are, where home and
//! the working directory are, and what the kernel offers. Cheap checks only (sysctls, one
//! `prctl`, one Landlock version query); `frona doctor` adds a real namespace probe.

use std::path::PathBuf;

use serde::Serialize;

use crate::environ::EnvSnapshot;

/// Why a feature is unavailable and what would make it available: `(reason, hint)`.
pub type Problem = (String, String);

/// What the running kernel offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KernelFeatures {
    /// Unprivileged user namespaces (needed when frona is not root).
    pub user_namespaces: Result<(), Problem>,
    /// Mount/pid/ipc/uts/net namespaces when frona is root.
    pub namespaces_as_root: Result<(), Problem>,
    pub seccomp: Result<(), Problem>,
    /// The Landlock ABI version.
    pub landlock_abi: Result<u32, Problem>,
}

impl KernelFeatures {
    /// Everything available (tests).
    pub fn all_available() -> Self {
        Self {
            user_namespaces: Ok(()),
            namespaces_as_root: Ok(()),
            seccomp: Ok(()),
            landlock_abi: Ok(6),
        }
    }

    /// Reads what this kernel offers.
    #[cfg(target_os = "linux")]
    pub fn detect() -> Self {
        Self {
            user_namespaces: user_namespaces(),
            namespaces_as_root: Ok(()),
            seccomp: seccomp(),
            landlock_abi: landlock_abi(),
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn detect() -> Self {
        let none = || {
            Err((
                "this is not Linux".to_owned(),
                "isolation needs Linux; use --isolation off here".to_owned(),
            ))
        };
        Self {
            user_namespaces: none(),
            namespaces_as_root: none(),
            seccomp: none(),
            landlock_abi: none().map(|()| 0),
        }
    }
}

/// Everything [`super::plan`] needs to know about the caller and the machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Facts {
    pub uid: u32,
    pub gid: u32,
    pub home: Option<PathBuf>,
    pub cwd: PathBuf,
    pub tmpdir: Option<PathBuf>,
    pub xdg_cache_home: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
    pub xdg_data_home: Option<PathBuf>,
    pub xdg_state_home: Option<PathBuf>,
    pub kernel: KernelFeatures,
}

impl Facts {
    /// Gathers the facts from frona's environment snapshot and the running system.
    pub fn gather(env: &EnvSnapshot) -> Self {
        let path = |name: &str| {
            env.get(name).filter(|v| v.first() == Some(&b'/')).map(|v| {
                use std::os::unix::ffi::OsStrExt as _;
                PathBuf::from(std::ffi::OsStr::from_bytes(v))
            })
        };
        Self {
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            home: path("HOME"),
            cwd: std::env::current_dir().unwrap_or_else(|_| "/".into()),
            tmpdir: path("TMPDIR"),
            xdg_cache_home: path("XDG_CACHE_HOME"),
            xdg_config_home: path("XDG_CONFIG_HOME")
                .or_else(|| path("HOME").map(|h| h.join(".config"))),
            xdg_data_home: path("XDG_DATA_HOME"),
            xdg_state_home: path("XDG_STATE_HOME"),
            kernel: KernelFeatures::detect(),
        }
    }
}

#[cfg(target_os = "linux")]
fn read_sysctl(path: &str) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(target_os = "linux")]
fn user_namespaces() -> Result<(), Problem> {
    if read_sysctl("/proc/sys/user/max_user_namespaces") == Some(0) {
        return Err((
            "user.max_user_namespaces is 0".into(),
            "allow them with `sysctl -w user.max_user_namespaces=15000`, or use --isolation best-effort".into(),
        ));
    }
    if read_sysctl("/proc/sys/kernel/unprivileged_userns_clone") == Some(0) {
        return Err((
            "kernel.unprivileged_userns_clone is 0".into(),
            "allow them with `sysctl -w kernel.unprivileged_userns_clone=1`, or use --isolation best-effort".into(),
        ));
    }
    if read_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == Some(1) {
        return Err((
            "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1)".into(),
            "install an AppArmor profile for frona that allows `userns`, or `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`".into(),
        ));
    }
    Ok(())
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn seccomp() -> Result<(), Problem> {
    // SAFETY: PR_GET_SECCOMP takes no pointers; it returns the current mode or fails with
    // EINVAL when the kernel was built without seccomp.
    let mode = unsafe { libc::prctl(libc::PR_GET_SECCOMP) };
    if mode < 0 {
        return Err((
            "the kernel has no seccomp support".into(),
            "use a kernel built with CONFIG_SECCOMP_FILTER".into(),
        ));
    }
    Ok(())
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn landlock_abi() -> Result<u32, Problem> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a NULL attribute pointer, size 0 and the VERSION flag the syscall only
    // returns the ABI version; it creates nothing.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    match u32::try_from(abi) {
        Ok(abi) if abi > 0 => Ok(abi),
        _ => Err((
            "the kernel does not offer Landlock".into(),
            "use Linux 5.13 or newer with `landlock` in the `lsm=` boot parameter".into(),
        )),
    }
}

/// Really tries to create the namespaces `frona run` uses, in a short-lived child (for
/// `frona doctor`). `Err` carries the kernel's answer.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn try_namespaces(with_user: bool) -> Result<(), String> {
    let mut flags =
        libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    if with_user {
        flags |= libc::CLONE_NEWUSER;
    }
    // SAFETY: the child makes one system call and exits with _exit; the parent waits for it.
    unsafe {
        let pid = libc::fork();
        if pid < 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        if pid == 0 {
            let code = if libc::unshare(flags) == 0 {
                0
            } else {
                *libc::__errno_location()
            };
            libc::_exit(code.clamp(0, 255));
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        match libc::WEXITSTATUS(status) {
            0 => Ok(()),
            errno => Err(std::io::Error::from_raw_os_error(errno).to_string()),
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn try_namespaces(_with_user: bool) -> Result<(), String> {
    Err("namespaces exist only on Linux".into())
}

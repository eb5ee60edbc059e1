//! Facts about this machine that the isolation plan depends on: who we are, where home and
//! the working directory are, the git repository around it, and what the kernel offers. Cheap
//! checks only (sysctls, one `prctl`, one Landlock version query); `frona doctor` adds a real
//! namespace probe.
//!
//! The kernel checks read below a root directory ([`KernelFeatures::detect_at`]), so that tests
//! can point them at a fake `/proc` and `/sys`; each reason comes with the exact fix as a hint.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::environ::EnvSnapshot;
use crate::isolation::persistence::{self, Repo};

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
        let exe = std::env::current_exe().unwrap_or_else(|_| "/usr/local/bin/frona".into());
        Self::detect_at(Path::new("/"), &exe)
    }

    /// Reads what the kernel offers from the `proc/` and `sys/` below `root`; `exe` is the frona
    /// binary an AppArmor profile would name. The system calls (`prctl`, Landlock's version
    /// query) ask the running kernel, whatever `root` is.
    #[cfg(target_os = "linux")]
    pub fn detect_at(root: &Path, exe: &Path) -> Self {
        let limits = namespace_limits(root);
        Self {
            user_namespaces: limits.clone().and_then(|()| user_namespaces(root, exe)),
            namespaces_as_root: limits,
            seccomp: seccomp(),
            landlock_abi: landlock_from(
                landlock_syscall(),
                read_text(root, "sys/kernel/security/lsm"),
            ),
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
    /// Where zsh reads its startup files, when not `$HOME`.
    pub zdotdir: Option<PathBuf>,
    /// The git repository holding the working directory.
    pub repo: Option<Repo>,
    pub kernel: KernelFeatures,
    /// `$XDG_RUNTIME_DIR`, where the session's sockets are.
    pub runtime_dir: Option<PathBuf>,
    /// Frona's own `SSH_AUTH_SOCK`.
    pub ssh_auth_sock: Option<PathBuf>,
    /// Every path a Unix socket is bound to as frona starts ([`super::ambient::bound_sockets`]).
    pub bound_sockets: Vec<PathBuf>,
    /// The project's `.env` files ([`crate::dotenv::find`]).
    pub env_files: Vec<PathBuf>,
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
        let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
        let home = path("HOME");
        let xdg_config_home =
            path("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config")));
        let repo = persistence::git::discover(&cwd, home.as_deref(), xdg_config_home.as_deref());
        let env_files = crate::dotenv::find(&cwd, repo.as_ref().map(|r| r.root.as_path()));
        Self {
            runtime_dir: path("XDG_RUNTIME_DIR"),
            ssh_auth_sock: path("SSH_AUTH_SOCK"),
            bound_sockets: super::ambient::bound_sockets(),
            env_files,
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            zdotdir: path("ZDOTDIR").filter(|z| Some(z) != home.as_ref()),
            home,
            cwd,
            tmpdir: path("TMPDIR"),
            xdg_cache_home: path("XDG_CACHE_HOME"),
            xdg_config_home,
            xdg_data_home: path("XDG_DATA_HOME"),
            xdg_state_home: path("XDG_STATE_HOME"),
            repo,
            kernel: KernelFeatures::detect(),
        }
    }
}

#[cfg(target_os = "linux")]
fn read_text(root: &Path, rel: &str) -> Option<String> {
    std::fs::read_to_string(root.join(rel)).ok()
}

#[cfg(target_os = "linux")]
fn read_sysctl(root: &Path, rel: &str) -> Option<i64> {
    read_text(root, rel)?.trim().parse().ok()
}

/// `user.max_*_namespaces` set to 0 forbids that kind of namespace to everyone, root included.
#[cfg(target_os = "linux")]
fn namespace_limits(root: &Path) -> Result<(), Problem> {
    for kind in ["mnt", "pid", "ipc", "uts"] {
        if read_sysctl(root, &format!("proc/sys/user/max_{kind}_namespaces")) == Some(0) {
            return Err((
                format!("user.max_{kind}_namespaces is 0"),
                format!("allow them with `sudo sysctl -w user.max_{kind}_namespaces=15000`"),
            ));
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn user_namespaces(root: &Path, exe: &Path) -> Result<(), Problem> {
    if read_sysctl(root, "proc/sys/user/max_user_namespaces") == Some(0) {
        return Err((
            "user.max_user_namespaces is 0".into(),
            "allow them with `sudo sysctl -w user.max_user_namespaces=15000` (and in /etc/sysctl.d/ to keep it)".into(),
        ));
    }
    if read_sysctl(root, "proc/sys/kernel/unprivileged_userns_clone") == Some(0) {
        return Err((
            "kernel.unprivileged_userns_clone is 0".into(),
            "allow them with `sudo sysctl -w kernel.unprivileged_userns_clone=1` (and in /etc/sysctl.d/ to keep it)".into(),
        ));
    }
    if read_sysctl(
        root,
        "proc/sys/kernel/apparmor_restrict_unprivileged_userns",
    ) == Some(1)
    {
        // Under a profile of its own (`frona (unconfined)`), the profile decides; the
        // restriction hits programs AppArmor labels `unconfined`.
        let label = read_text(root, "proc/self/attr/apparmor/current")
            .or_else(|| read_text(root, "proc/self/attr/current"))
            .map(|l| l.trim_end_matches(['\n', '\0']).trim().to_owned());
        if label.as_deref().is_none_or(|l| l == "unconfined") {
            return Err((
                "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1) and frona has no AppArmor profile".into(),
                apparmor_hint(exe),
            ));
        }
    }
    Ok(())
}

/// The exact commands that install frona's AppArmor profile (the one shipped as
/// `packaging/apparmor/frona`) for the binary at `exe`, or lift the restriction for everyone.
pub fn apparmor_hint(exe: &Path) -> String {
    let exe = exe.display().to_string();
    // AppArmor quotes a path with spaces; printf needs `%` doubled; the shell needs `'` closed.
    let attach = if exe.contains([' ', '\t', '"']) {
        format!("\"{}\"", exe.replace('"', "\\\""))
    } else {
        exe
    };
    let attach = attach
        .replace('\\', "\\\\")
        .replace('%', "%%")
        .replace('\'', "'\\''");
    format!(
        "install an AppArmor profile that lets frona create user namespaces (packaging/apparmor/frona): \
         printf 'abi <abi/4.0>,\\ninclude <tunables/global>\\nprofile frona {attach} flags=(unconfined) {{\\n  userns,\\n}}\\n' | sudo tee /etc/apparmor.d/frona && sudo apparmor_parser -r /etc/apparmor.d/frona; \
         or allow them for every program with `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`"
    )
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
            "use a kernel built with CONFIG_SECCOMP_FILTER, or run with --isolation best-effort"
                .into(),
        ));
    }
    Ok(())
}

/// Landlock's ABI version, or the errno of the version query.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn landlock_syscall() -> Result<i64, i32> {
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
    if abi < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(abi)
    }
}

/// What the version query's answer means, with the active LSM list (`/sys/kernel/security/lsm`)
/// to tell "not built" from "not enabled at boot".
#[cfg(target_os = "linux")]
fn landlock_from(answer: Result<i64, i32>, lsm: Option<String>) -> Result<u32, Problem> {
    match answer {
        Ok(abi) if abi > 0 => u32::try_from(abi).map_err(|_| {
            (
                format!("Landlock answered ABI {abi}"),
                "report this to frona".to_owned(),
            )
        }),
        Err(libc::EOPNOTSUPP) => {
            let active = lsm.map(|l| l.trim().to_owned()).unwrap_or_default();
            Err((
                "Landlock is built into this kernel but not enabled".into(),
                if active.is_empty() {
                    "add `landlock` to the `lsm=` kernel boot parameter".into()
                } else {
                    format!("add `landlock` to the `lsm=` kernel boot parameter, e.g. lsm=landlock,{active}")
                },
            ))
        }
        _ => Err((
            "the kernel does not offer Landlock".into(),
            "use Linux 5.13 or newer built with CONFIG_SECURITY_LANDLOCK and `landlock` in the `lsm=` boot parameter".into(),
        )),
    }
}

/// Whether frona itself runs in a container (Docker, Podman, Kubernetes, LXC), whose seccomp
/// profile or missing capabilities often refuse namespaces.
pub fn in_container(root: &Path) -> bool {
    root.join(".dockerenv").exists()
        || root.join("run/.containerenv").exists()
        || std::fs::read_to_string(root.join("proc/1/cgroup")).is_ok_and(|c| {
            ["docker", "kubepods", "containerd", "libpod", "lxc"]
                .iter()
                .any(|n| c.contains(n))
        })
}

/// The hint for a namespace probe the kernel refused although no sysctl explains it.
pub fn namespace_refused_hint(root: &Path) -> String {
    if in_container(root) {
        "frona runs in a container that refuses namespaces: run the container with `--security-opt seccomp=unconfined --security-opt apparmor=unconfined` (Docker, Podman) or allow CLONE_NEWUSER in its seccomp profile; or use --isolation best-effort".into()
    } else {
        "a security module (AppArmor, SELinux) or a seccomp filter around frona refuses namespaces; `dmesg` names the denial; or use --isolation best-effort".into()
    }
}

/// Really tries to create the namespaces `frona run` uses, in a short-lived child (for
/// `frona doctor`): with a user namespace, it also maps its ids and changes a mount there, as
/// the init helper does, which is what AppArmor's restriction of unprivileged user namespaces
/// refuses (creating the namespace itself still succeeds there). `Err` says what failed.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn try_namespaces(with_user: bool) -> Result<(), String> {
    /// Exit statuses of the child past the errno range.
    const MAP_FAILED: i32 = 200;
    const MOUNT_FAILED: i32 = 201;
    let mut flags =
        libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    if with_user {
        flags |= libc::CLONE_NEWUSER;
    }
    // Everything the child writes is made before the fork: it only makes system calls.
    let uid_map = format!("0 {} 1\n", nix::unistd::getuid().as_raw());
    let gid_map = format!("0 {} 1\n", nix::unistd::getgid().as_raw());
    let files: [(&std::ffi::CStr, &[u8]); 3] = [
        (c"/proc/self/setgroups", b"deny"),
        (c"/proc/self/uid_map", uid_map.as_bytes()),
        (c"/proc/self/gid_map", gid_map.as_bytes()),
    ];
    // SAFETY: the child makes only system calls (unshare, open, write, close, mount) on data
    // prepared before the fork, and exits with _exit; the parent waits for it.
    unsafe {
        let pid = libc::fork();
        if pid < 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        if pid == 0 {
            if libc::unshare(flags) != 0 {
                libc::_exit((*libc::__errno_location()).clamp(1, 199));
            }
            if with_user {
                for (path, data) in files {
                    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 || libc::write(fd, data.as_ptr().cast(), data.len()) < 0 {
                        libc::_exit(MAP_FAILED);
                    }
                    libc::close(fd);
                }
            }
            let rc = libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            );
            libc::_exit(if rc == 0 { 0 } else { MOUNT_FAILED });
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        match libc::WEXITSTATUS(status) {
            0 => Ok(()),
            MAP_FAILED => Err("created a user namespace but could not map ids in it".into()),
            MOUNT_FAILED => Err(
                "created the namespaces but may not mount in them (AppArmor's user namespace restriction, or a container's seccomp profile)".into(),
            ),
            errno => Err(std::io::Error::from_raw_os_error(errno).to_string()),
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn try_namespaces(_with_user: bool) -> Result<(), String> {
    Err("namespaces exist only on Linux".into())
}

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use super::*;

    /// A fake root with the given `proc/`/`sys/` files.
    struct FakeRoot(PathBuf);

    impl FakeRoot {
        fn new(name: &str, files: &[(&str, &str)]) -> Self {
            let dir =
                std::env::temp_dir().join(format!("frona-probe-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            for (rel, text) in files {
                let path = dir.join(rel);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, text).unwrap();
            }
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn detect(&self) -> KernelFeatures {
            KernelFeatures::detect_at(&self.0, Path::new("/usr/local/bin/frona"))
        }
    }

    impl Drop for FakeRoot {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn ubuntu_apparmor_restriction_is_detected_with_the_profile_as_hint() {
        let root = FakeRoot::new(
            "apparmor",
            &[
                (
                    "proc/sys/kernel/apparmor_restrict_unprivileged_userns",
                    "1\n",
                ),
                ("proc/sys/user/max_user_namespaces", "63229\n"),
                ("proc/self/attr/apparmor/current", "unconfined\n"),
            ],
        );
        let (reason, hint) = root.detect().user_namespaces.unwrap_err();
        assert!(
            reason.contains("apparmor_restrict_unprivileged_userns=1"),
            "{reason}"
        );
        assert!(
            hint.contains("profile frona /usr/local/bin/frona flags=(unconfined)"),
            "{hint}"
        );
        assert!(hint.contains("userns,"), "{hint}");
        assert!(
            hint.contains("sudo apparmor_parser -r /etc/apparmor.d/frona"),
            "{hint}"
        );
        assert!(hint.contains("sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"));
        // Root needs no user namespace: unaffected.
        assert_eq!(root.detect().namespaces_as_root, Ok(()));

        // Under a profile of its own, the profile decides.
        let profiled = FakeRoot::new(
            "apparmor-profiled",
            &[
                (
                    "proc/sys/kernel/apparmor_restrict_unprivileged_userns",
                    "1\n",
                ),
                ("proc/self/attr/apparmor/current", "frona (unconfined)\n"),
            ],
        );
        assert_eq!(profiled.detect().user_namespaces, Ok(()));
        let lifted = FakeRoot::new(
            "apparmor-off",
            &[(
                "proc/sys/kernel/apparmor_restrict_unprivileged_userns",
                "0\n",
            )],
        );
        assert_eq!(lifted.detect().user_namespaces, Ok(()));
    }

    #[test]
    fn sysctls_that_forbid_namespaces() {
        let debian = FakeRoot::new(
            "debian",
            &[("proc/sys/kernel/unprivileged_userns_clone", "0\n")],
        );
        let (reason, hint) = debian.detect().user_namespaces.unwrap_err();
        assert_eq!(reason, "kernel.unprivileged_userns_clone is 0");
        assert!(hint.contains("sudo sysctl -w kernel.unprivileged_userns_clone=1"));

        let none = FakeRoot::new("max", &[("proc/sys/user/max_user_namespaces", "0")]);
        let (reason, hint) = none.detect().user_namespaces.unwrap_err();
        assert_eq!(reason, "user.max_user_namespaces is 0");
        assert!(hint.contains("user.max_user_namespaces=15000"));

        let no_mnt = FakeRoot::new("mnt", &[("proc/sys/user/max_mnt_namespaces", "0")]);
        let features = no_mnt.detect();
        assert_eq!(
            features.namespaces_as_root.unwrap_err().0,
            "user.max_mnt_namespaces is 0"
        );
        assert!(features.user_namespaces.is_err());

        let fine = FakeRoot::new("fine", &[]);
        assert_eq!(fine.detect().user_namespaces, Ok(()));
    }

    #[test]
    fn landlock_absent_or_not_enabled() {
        assert_eq!(landlock_from(Ok(6), None), Ok(6));
        let (reason, hint) = landlock_from(
            Err(libc::EOPNOTSUPP),
            Some("lockdown,capability,apparmor\n".into()),
        )
        .unwrap_err();
        assert!(reason.contains("not enabled"), "{reason}");
        assert!(
            hint.contains("lsm=landlock,lockdown,capability,apparmor"),
            "{hint}"
        );
        let (reason, _) = landlock_from(Err(libc::ENOSYS), None).unwrap_err();
        assert!(reason.contains("does not offer Landlock"));
    }

    #[test]
    fn containers_are_recognised() {
        let docker = FakeRoot::new("docker", &[(".dockerenv", "")]);
        assert!(in_container(&docker.0));
        assert!(namespace_refused_hint(&docker.0).contains("seccomp=unconfined"));
        let k8s = FakeRoot::new(
            "k8s",
            &[("proc/1/cgroup", "0::/kubepods/besteffort/pod1\n")],
        );
        assert!(in_container(&k8s.0));
        let host = FakeRoot::new("host", &[("proc/1/cgroup", "0::/init.scope\n")]);
        assert!(!in_container(&host.0));
    }

    /// The profile the hint writes is the one shipped in the repository.
    #[test]
    fn the_hint_installs_the_shipped_profile() {
        let shipped = include_str!("../../../../packaging/apparmor/frona");
        let hint = apparmor_hint(Path::new("/usr/local/bin/frona"));
        let printf = hint
            .split("printf '")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .unwrap();
        for line in printf.split("\\n").filter(|l| !l.is_empty()) {
            assert!(
                shipped.contains(line.trim()),
                "{line:?} not in packaging/apparmor/frona"
            );
        }
    }

    #[test]
    fn the_hint_quotes_odd_binary_paths() {
        let hint = apparmor_hint(Path::new("/opt/my tools/frona"));
        assert!(
            hint.contains(r#"profile frona "/opt/my tools/frona" flags"#),
            "{hint}"
        );
        let hint = apparmor_hint(Path::new("/opt/100%/it's/frona"));
        assert!(hint.contains(r#"/opt/100%%/it'\''s/frona"#), "{hint}");
    }
}

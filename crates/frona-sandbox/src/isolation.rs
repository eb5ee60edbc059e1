//! Isolating the agent: what `frona run` applies, computed as a pure, serialisable [`Plan`],
//! then applied in the single-threaded init helper (namespaces, mounts) and in the agent's last
//! moments before `exec` (capabilities, no_new_privs, Landlock, seccomp).
//!
//! [`plan`] is pure: it takes the user's [`IsolationOptions`] and the [`Facts`] of this machine
//! and decides; nothing is probed or changed there, so the plan is testable and printable
//! (`frona doctor`). `--isolation required` (the default) turns every unavailable feature into
//! an error with a hint; `best-effort` records it in [`Plan::skipped`]; `off` plans nothing.

pub mod ambient;
pub mod persistence;
pub mod probe;
#[cfg(target_os = "linux")]
pub mod seccomp;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(target_os = "linux"))]
mod unsupported;

#[cfg(target_os = "linux")]
pub use linux::{EgressListener, IsolationError, apply_in_agent, apply_in_init, enter_namespaces};
#[cfg(not(target_os = "linux"))]
pub use unsupported::{
    EgressListener, IsolationError, apply_in_agent, apply_in_init, enter_namespaces,
};

use std::path::{Path, PathBuf};

/// The compiled seccomp filter, built once in the helper before the agent is forked.
#[cfg(target_os = "linux")]
pub type SeccompProgram = Vec<libc::sock_filter>;
#[cfg(not(target_os = "linux"))]
pub type SeccompProgram = Vec<()>;

/// Builds the seccomp program for `plan` ([`seccomp::program`] on Linux; nothing elsewhere).
pub fn seccomp_program(plan: &Plan) -> SeccompProgram {
    #[cfg(target_os = "linux")]
    return seccomp::program(seccomp::Profile {
        private_network: plan.namespaces.net,
    });
    #[cfg(not(target_os = "linux"))]
    return {
        let _ = plan;
        Vec::new()
    };
}

use serde::{Deserialize, Serialize};

pub use probe::{Facts, KernelFeatures};

/// How hard `frona run` insists on isolation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IsolationMode {
    /// Fail closed when a feature is unavailable.
    #[default]
    Required,
    /// Apply what the kernel offers and say what was skipped.
    BestEffort,
    /// No isolation: scrubbing and supervision only.
    Off,
}

/// The agent's network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetMode {
    /// The host's network (agents call APIs).
    #[default]
    Host,
    /// A network namespace of its own with loopback only.
    None,
    /// A network namespace of its own with loopback and, on [`PROXY_PORT`], frona's egress
    /// proxy: the only way out, to the hosts the policy allows.
    Proxy,
}

impl NetMode {
    /// Whether the agent gets a network namespace of its own.
    pub fn is_private(self) -> bool {
        self != NetMode::Host
    }

    pub fn flag(self) -> &'static str {
        match self {
            NetMode::Host => "--net host",
            NetMode::None => "--net none",
            NetMode::Proxy => "--net proxy",
        }
    }
}

/// The port of the egress relay on the agent's loopback under `--net proxy`
/// (`HTTP_PROXY=http://127.0.0.1:3128`). The namespace is the agent's alone, so nothing else
/// can hold the port.
pub const PROXY_PORT: u16 = 3128;

/// The `--net proxy` listener the init helper binds on `127.0.0.1:port` in the agent's network
/// namespace and hands over the Unix socket `socket` to the broker's egress proxy, outside the
/// namespace, which accepts the agent's connections on it ([`EgressListener`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressListenerPlan {
    pub port: u16,
    /// The broker's socket that takes the agent's listener ([`EgressListener`]). Filled in by
    /// `frona run` once the broker listens; [`plan`] cannot know it.
    pub socket: PathBuf,
}

/// The user's isolation choices (`frona run` flags).
#[derive(Clone, Debug, Default)]
pub struct IsolationOptions {
    pub mode: IsolationMode,
    pub net: NetMode,
    /// Extra paths to hide (`--hide`).
    pub hide: Vec<PathBuf>,
    /// Paths to remove from the hidden list (`--unhide`).
    pub unhide: Vec<PathBuf>,
    /// Where the agent may write (`--fs-write`); empty means [`default_writable`].
    pub fs_write: Vec<PathBuf>,
    /// Extra paths the agent may not create or change (`--protect`; see [`persistence`]).
    pub protect: Vec<PathBuf>,
    /// Paths to remove from the protected list (`--writable`).
    pub writable: Vec<PathBuf>,
    /// Sockets the agent may reach although they are outside its sandbox (`--allow-socket`).
    pub allow_socket: Vec<PathBuf>,
    /// `.env` files shown as they are (`--reveal`).
    pub reveal: Vec<PathBuf>,
}

/// A file the agent sees as another: `copy`, read-only, mounted over `path`. `copy` is
/// written by `frona run` once the plan is made (the placeholders are not known before);
/// while it is empty the file is hidden instead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskedFile {
    pub path: PathBuf,
    pub copy: PathBuf,
}

/// Namespaces the agent gets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Namespaces {
    /// A user namespace mapping the caller's uid/gid (only when frona is not root).
    pub user: Option<IdMap>,
    pub mount: bool,
    pub pid: bool,
    pub ipc: bool,
    pub uts: bool,
    pub net: bool,
}

/// The caller's ids, mapped to themselves inside the agent's user namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdMap {
    pub uid: u32,
    pub gid: u32,
}

/// Landlock filesystem rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandlockPlan {
    /// The only places the agent may write.
    pub writable: Vec<PathBuf>,
    /// Fail if the kernel cannot enforce it (the user asked for `--fs-write`).
    pub required: bool,
}

/// A feature the plan leaves out, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Skipped {
    pub feature: String,
    pub reason: String,
}

/// Everything `frona run` will do to isolate the agent. Pure data: serialised to the init
/// helper on its command line, printed by `frona doctor`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub mode: IsolationMode,
    pub namespaces: Namespaces,
    /// Mount a fresh `/proc` for the new pid namespace.
    pub fresh_proc: bool,
    /// Paths masked in the agent's mount namespace (those that exist at start).
    pub hide: Vec<PathBuf>,
    /// `.env` files shown to the agent as a copy without values ([`crate::dotenv`]).
    #[serde(default)]
    pub mask_files: Vec<MaskedFile>,
    /// Bring up loopback in the new network namespace.
    pub loopback: bool,
    /// `--net proxy`: the listener handed to frona's egress proxy (see [`EgressListenerPlan`]).
    pub egress_listener: Option<EgressListenerPlan>,
    /// Empty the bounding, permitted, effective, inheritable and ambient capability sets.
    pub drop_capabilities: bool,
    pub no_new_privs: bool,
    /// Install [`seccomp`]'s deny-list filter.
    pub seccomp: bool,
    pub landlock: Option<LandlockPlan>,
    /// Persistence protection: read-only mounts over shell startup files, git hooks and the
    /// like (see [`persistence`]); needs the mount namespace.
    #[serde(default)]
    pub persistence: Option<persistence::PersistencePlan>,
    pub skipped: Vec<Skipped>,
}

impl Plan {
    /// The plan without namespaces (and what needs them), for `best-effort` when the kernel
    /// refused to create them at spawn time.
    pub fn without_namespaces(&self, reason: String) -> Plan {
        // `--net none` cannot be honoured without a namespace: callers check `namespaces.net`.
        let mut plan = Plan {
            namespaces: Namespaces::default(),
            fresh_proc: false,
            hide: Vec::new(),
            mask_files: Vec::new(),
            loopback: false,
            egress_listener: None,
            persistence: None,
            ..self.clone()
        };
        if self.persistence.is_some() {
            plan.skipped.push(Skipped {
                feature: "persistence protection".into(),
                reason: "it needs a mount namespace".into(),
            });
        }
        plan.skipped.push(Skipped {
            feature: "namespaces".into(),
            reason,
        });
        plan
    }

    /// Whether the plan asks for any namespace.
    pub fn has_namespaces(&self) -> bool {
        self.namespaces != Namespaces::default()
    }

    /// Whether the plan isolates anything at all.
    pub fn is_empty(&self) -> bool {
        *self
            == Plan {
                mode: self.mode,
                skipped: self.skipped.clone(),
                ..Plan::default()
            }
    }
}

/// A feature `--isolation required` needs and this machine lacks.
#[derive(Debug, thiserror::Error)]
#[error("{feature} is not available: {reason}")]
pub struct Unavailable {
    pub feature: String,
    pub reason: String,
    pub hint: String,
}

/// Where the agent may write by default: the working directory, temp dirs, the user's cache,
/// and the device files every program writes to.
pub fn default_writable(facts: &Facts) -> Vec<PathBuf> {
    let mut paths = vec![
        facts.cwd.clone(),
        "/tmp".into(),
        "/var/tmp".into(),
        "/dev/shm".into(),
    ];
    paths.extend(facts.tmpdir.clone());
    match (&facts.xdg_cache_home, &facts.home) {
        (Some(cache), _) => paths.push(cache.clone()),
        (None, Some(home)) => paths.push(home.join(".cache")),
        (None, None) => {}
    }
    paths
}

/// Device files that must stay writable (and ioctl-able) under any `--fs-write` list.
pub const WRITABLE_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/pts",
    "/dev/ptmx",
];

/// Decides what to apply. Pure: same inputs, same plan.
pub fn plan(options: &IsolationOptions, facts: &Facts) -> Result<Plan, Unavailable> {
    let mut plan = Plan {
        mode: options.mode,
        ..Plan::default()
    };
    if options.mode == IsolationMode::Off {
        if options.net.is_private() {
            return Err(Unavailable {
                feature: options.net.flag().into(),
                reason: "it needs a network namespace, and --isolation off creates none".into(),
                hint: "drop --isolation off".into(),
            });
        }
        return Ok(plan);
    }
    let kernel = &facts.kernel;
    let need = |plan: &mut Plan,
                feature: &str,
                problem: Option<(String, String)>|
     -> Result<bool, Unavailable> {
        match problem {
            None => Ok(true),
            Some((reason, hint)) if options.mode == IsolationMode::Required => Err(Unavailable {
                feature: feature.to_owned(),
                reason,
                hint,
            }),
            Some((reason, _)) => {
                plan.skipped.push(Skipped {
                    feature: feature.to_owned(),
                    reason,
                });
                Ok(false)
            }
        }
    };

    let namespaces_ok = if facts.uid == 0 {
        need(
            &mut plan,
            "namespaces",
            kernel.namespaces_as_root.clone().err(),
        )?
    } else {
        need(
            &mut plan,
            "user namespaces",
            kernel.user_namespaces.clone().err(),
        )?
    };
    if namespaces_ok {
        plan.namespaces = Namespaces {
            user: (facts.uid != 0).then_some(IdMap {
                uid: facts.uid,
                gid: facts.gid,
            }),
            mount: true,
            pid: true,
            ipc: true,
            uts: true,
            net: options.net.is_private(),
        };
        plan.fresh_proc = true;
        plan.loopback = options.net.is_private();
        plan.egress_listener = (options.net == NetMode::Proxy).then(|| EgressListenerPlan {
            port: PROXY_PORT,
            socket: PathBuf::new(),
        });
        plan.hide = hidden_paths(options, facts, &mut plan.skipped);
        plan.mask_files = facts
            .env_files
            .iter()
            .filter(|f| {
                !options
                    .reveal
                    .iter()
                    .any(|r| absolute(r, &facts.cwd) == **f)
            })
            .map(|f| MaskedFile {
                path: f.clone(),
                copy: PathBuf::new(),
            })
            .collect();
        plan.persistence = Some(persistence::plan(options, facts));
    } else if options.net.is_private() {
        return Err(Unavailable {
            feature: options.net.flag().into(),
            reason: "it needs a network namespace, and namespaces are unavailable".into(),
            hint: "run `frona doctor` to see why namespaces cannot be created".into(),
        });
    } else {
        plan.skipped.push(Skipped {
            feature: "persistence protection".into(),
            reason: "it needs a mount namespace".into(),
        });
    }

    plan.drop_capabilities = true;
    plan.no_new_privs = true;
    plan.seccomp = need(&mut plan, "seccomp", kernel.seccomp.clone().err())?;

    let explicit = !options.fs_write.is_empty();
    let landlock_problem = kernel.landlock_abi.clone().err();
    let landlock_ok = if explicit {
        need(&mut plan, "landlock", landlock_problem)?
    } else if let Some((reason, _)) = landlock_problem {
        plan.skipped.push(Skipped {
            feature: "landlock".into(),
            reason,
        });
        false
    } else {
        true
    };
    if landlock_ok {
        let mut writable: Vec<PathBuf> = if explicit {
            options
                .fs_write
                .iter()
                .map(|p| absolute(p, &facts.cwd))
                .collect()
        } else {
            default_writable(facts)
        };
        writable.extend(WRITABLE_DEVICES.iter().map(PathBuf::from));
        dedup(&mut writable);
        plan.landlock = Some(LandlockPlan {
            writable,
            required: explicit,
        });
    }
    Ok(plan)
}

/// The documented credential paths under `$HOME`, frona's own config and state dirs, plus
/// `--hide`, minus `--unhide` (which also lifts anything beneath it).
/// The ambient credentials ([`ambient`]), frona's own directories, `--hide`, and every socket
/// bound outside the sandbox; less `--unhide` and `--allow-socket`.
fn hidden_paths(
    options: &IsolationOptions,
    facts: &Facts,
    skipped: &mut Vec<Skipped>,
) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = Vec::new();
    if let Some(home) = &facts.home {
        paths.extend(ambient::IN_HOME.iter().map(|e| home.join(e.path)));
        paths.extend(
            [".config/frona", ".local/share/frona", ".local/state/frona"]
                .iter()
                .map(|rel| home.join(rel)),
        );
    }
    for dir in [
        &facts.xdg_config_home,
        &facts.xdg_data_home,
        &facts.xdg_state_home,
    ]
    .into_iter()
    .flatten()
    {
        paths.push(dir.join("frona"));
    }
    if let Some(dir) = &facts.runtime_dir {
        paths.extend(ambient::IN_RUNTIME_DIR.iter().map(|e| dir.join(e.path)));
    }
    paths.extend(ambient::SYSTEM.iter().map(|e| PathBuf::from(e.path)));
    // Deny by default: any socket bound when frona starts (frona's own session socket is
    // bound later, in a directory of its own).
    paths.extend(facts.ssh_auth_sock.iter().cloned());
    paths.extend(
        facts
            .bound_sockets
            .iter()
            .filter(|s| !ambient::is_harmless(s))
            .cloned(),
    );
    paths.extend(options.hide.iter().map(|p| absolute(p, &facts.cwd)));
    let unhide: Vec<PathBuf> = options
        .unhide
        .iter()
        .map(|p| absolute(p, &facts.cwd))
        .collect();
    paths.retain(|p| !unhide.iter().any(|u| p.starts_with(u)));
    let allowed: Vec<PathBuf> = options
        .allow_socket
        .iter()
        .map(|p| absolute(p, &facts.cwd))
        .collect();
    paths.retain(|p| !allowed.iter().any(|a| p.starts_with(a)));
    // An allowed socket inside a hidden directory stays out of reach: unhiding the directory
    // would open everything else in it (`~/.ssh`), so that takes an `--unhide` of its own.
    for socket in &allowed {
        if let Some(dir) = paths.iter().find(|p| socket.starts_with(p)) {
            skipped.push(Skipped {
                feature: format!("--allow-socket {}", socket.display()),
                reason: format!(
                    "it is inside `{}`, which stays hidden; add --unhide {} to open that too",
                    dir.display(),
                    dir.display()
                ),
            });
        }
    }
    dedup(&mut paths);
    paths
}

fn absolute(path: &Path, cwd: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    }
}

fn dedup(paths: &mut Vec<PathBuf>) {
    let mut seen = std::collections::HashSet::new();
    paths.retain(|p| seen.insert(p.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(uid: u32) -> Facts {
        Facts {
            uid,
            gid: uid,
            home: Some("/home/dev".into()),
            cwd: "/home/dev/src/app".into(),
            tmpdir: None,
            xdg_cache_home: None,
            xdg_config_home: Some("/home/dev/.config".into()),
            xdg_data_home: None,
            xdg_state_home: None,
            zdotdir: None,
            repo: None,
            kernel: KernelFeatures::all_available(),
            runtime_dir: None,
            ssh_auth_sock: None,
            bound_sockets: Vec::new(),
            env_files: Vec::new(),
        }
    }

    #[test]
    fn default_plan_for_an_unprivileged_user() {
        let plan = plan(&IsolationOptions::default(), &facts(1000)).unwrap();
        assert_eq!(
            plan.namespaces,
            Namespaces {
                user: Some(IdMap {
                    uid: 1000,
                    gid: 1000
                }),
                mount: true,
                pid: true,
                ipc: true,
                uts: true,
                net: false
            }
        );
        assert!(plan.fresh_proc && plan.drop_capabilities && plan.no_new_privs && plan.seccomp);
        assert!(plan.hide.contains(&PathBuf::from("/home/dev/.aws")));
        assert!(plan.hide.contains(&PathBuf::from("/home/dev/.ssh")));
        assert!(
            plan.hide
                .contains(&PathBuf::from("/home/dev/.config/frona"))
        );
        let landlock = plan.landlock.unwrap();
        assert!(!landlock.required);
        assert_eq!(
            &landlock.writable[..5],
            [
                "/home/dev/src/app",
                "/tmp",
                "/var/tmp",
                "/dev/shm",
                "/home/dev/.cache"
            ]
            .map(PathBuf::from)
        );
        assert!(plan.skipped.is_empty());
    }

    #[test]
    fn root_gets_no_user_namespace() {
        let plan = plan(&IsolationOptions::default(), &facts(0)).unwrap();
        assert_eq!(plan.namespaces.user, None);
        assert!(plan.namespaces.pid && plan.drop_capabilities);
    }

    #[test]
    fn hide_and_unhide() {
        let options = IsolationOptions {
            hide: vec!["secrets.env".into(), "/etc/app/token".into()],
            unhide: vec!["/home/dev/.ssh".into()],
            ..IsolationOptions::default()
        };
        let plan = plan(&options, &facts(1000)).unwrap();
        assert!(
            plan.hide
                .contains(&PathBuf::from("/home/dev/src/app/secrets.env"))
        );
        assert!(plan.hide.contains(&PathBuf::from("/etc/app/token")));
        assert!(!plan.hide.contains(&PathBuf::from("/home/dev/.ssh")));
    }

    #[test]
    fn required_fails_closed_and_best_effort_records() {
        let mut f = facts(1000);
        f.kernel.user_namespaces =
            Err(("user namespaces are disabled".into(), "sysctl ...".into()));
        let err = plan(&IsolationOptions::default(), &f).unwrap_err();
        assert_eq!(err.feature, "user namespaces");
        let options = IsolationOptions {
            mode: IsolationMode::BestEffort,
            ..IsolationOptions::default()
        };
        let plan = plan(&options, &f).unwrap();
        assert_eq!(plan.namespaces, Namespaces::default());
        assert!(plan.hide.is_empty());
        assert!(plan.seccomp);
        assert_eq!(plan.skipped[0].feature, "user namespaces");
    }

    #[test]
    fn landlock_is_required_only_when_fs_write_is_given() {
        let mut f = facts(1000);
        f.kernel.landlock_abi = Err(("no landlock".into(), "enable it".into()));
        let plan_default = plan(&IsolationOptions::default(), &f).unwrap();
        assert_eq!(plan_default.landlock, None);
        assert_eq!(plan_default.skipped[0].feature, "landlock");
        let options = IsolationOptions {
            fs_write: vec!["out".into()],
            ..IsolationOptions::default()
        };
        assert!(plan(&options, &f).is_err());
    }

    #[test]
    fn off_plans_nothing_and_net_none_adds_a_namespace() {
        let off = IsolationOptions {
            mode: IsolationMode::Off,
            ..IsolationOptions::default()
        };
        assert!(plan(&off, &facts(1000)).unwrap().is_empty());
        let off_none = IsolationOptions {
            net: NetMode::None,
            ..off
        };
        assert!(plan(&off_none, &facts(1000)).is_err());
        let none = IsolationOptions {
            net: NetMode::None,
            ..IsolationOptions::default()
        };
        let plan = plan(&none, &facts(1000)).unwrap();
        assert!(plan.namespaces.net && plan.loopback);
        assert_eq!(plan.egress_listener, None);
    }

    #[test]
    fn net_proxy_adds_a_namespace_and_the_relay() {
        let proxy = IsolationOptions {
            net: NetMode::Proxy,
            ..IsolationOptions::default()
        };
        let planned = plan(&proxy, &facts(1000)).unwrap();
        assert!(planned.namespaces.net && planned.loopback);
        assert_eq!(
            planned.egress_listener,
            Some(EgressListenerPlan {
                port: PROXY_PORT,
                socket: PathBuf::new()
            })
        );
        let off = IsolationOptions {
            mode: IsolationMode::Off,
            ..proxy.clone()
        };
        assert_eq!(plan(&off, &facts(1000)).unwrap_err().feature, "--net proxy");
        let mut f = facts(1000);
        f.kernel.user_namespaces = Err(("disabled".into(), "sysctl".into()));
        let best_effort = IsolationOptions {
            mode: IsolationMode::BestEffort,
            ..proxy
        };
        assert_eq!(plan(&best_effort, &f).unwrap_err().feature, "--net proxy");
    }

    #[test]
    fn plan_round_trips_through_json() {
        let plan = plan(&IsolationOptions::default(), &facts(1000)).unwrap();
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), plan);
        assert!(serde_json::from_str::<Plan>(r#"{"mode":"off","bogus":1}"#).is_err());
    }
}

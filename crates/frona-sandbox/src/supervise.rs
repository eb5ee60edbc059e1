//! Supervising the agent like a good init.
//!
//! Two processes share the work (see README, "How `frona run` is built"):
//! - **frona** ([`supervise_init`]) starts the init helper, forwards signals to it and exits
//!   with its status. It never forks frona code: later it holds secrets and threads.
//! - **the init helper** ([`run_init`], frona re-executed as `frona __init`) is a child
//!   subreaper, dies with frona (parent-death signal with the race check), starts the agent,
//!   forwards signals, reaps orphans, stops the agent with SIGTERM then SIGKILL after the stop
//!   timeout, and when the agent exits tears down whatever the agent left running.
//!
//! All processes share the caller's process group, so a terminal's Ctrl-C, Ctrl-Z and window
//! resize reach the agent directly, exactly as without frona; signals the kernel generated are
//! therefore not forwarded again.

mod signals;
mod tree;

use std::ffi::OsString;
use std::io;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

pub use signals::FORWARDED as FORWARDED_SIGNALS;
use signals::{Received, SignalSet};
use tree::{Reaper, shell_status, signal_descendants, signal_one};

/// frona itself failed (bad usage, internal error).
pub const EXIT_FRONA_ERROR: i32 = 125;
/// The agent command exists but cannot be executed.
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
/// The agent command was not found.
pub const EXIT_NOT_FOUND: i32 = 127;

/// What the init helper needs; passed on its command line (no secrets in it).
#[derive(Clone, Debug)]
pub struct InitConfig {
    /// Pid of the frona process that started the helper, for the parent-death race check.
    pub parent: i32,
    /// How long the agent gets between SIGTERM and SIGKILL.
    pub stop_timeout: Duration,
    /// The agent's program and arguments.
    pub command: Vec<OsString>,
}

#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("cannot set up signal handling")]
    Signals(#[source] io::Error),
    #[error("cannot become the agent's subreaper")]
    Subreaper(#[source] nix::Error),
    #[error("frona exited before the agent started")]
    ParentGone,
    #[error("no command given")]
    NoCommand,
    #[error("`{program}`: command not found")]
    NotFound { program: String },
    #[error("cannot execute `{program}`")]
    CannotExecute {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot start `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("lost track of the agent")]
    Wait(#[source] nix::Error),
}

impl SuperviseError {
    /// The documented exit status for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            SuperviseError::NotFound { .. } => EXIT_NOT_FOUND,
            SuperviseError::CannotExecute { .. } => EXIT_CANNOT_EXECUTE,
            _ => EXIT_FRONA_ERROR,
        }
    }
}

fn signal_from(signo: i32) -> Option<Signal> {
    Signal::try_from(signo).ok()
}

/// frona's side: starts `init` (the helper command), forwards every signal a process sends
/// frona, and returns the helper's status, which is the agent's status.
pub fn supervise_init(mut init: Command) -> Result<i32, SuperviseError> {
    let set = SignalSet::of(&[FORWARDED_SIGNALS, &[libc::SIGCHLD, libc::SIGALRM]].concat());
    set.block().map_err(SuperviseError::Signals)?;
    let child = init.spawn().map_err(|source| SuperviseError::Spawn {
        program: "frona __init".into(),
        source,
    })?;
    let pid = Pid::from_raw(child.id() as i32);
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(status) => {
                if let Some(code) = shell_status(status) {
                    return Ok(code);
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(SuperviseError::Wait(e)),
        }
        match set.wait(None).map_err(SuperviseError::Signals)? {
            Some(Received {
                signo,
                from_kernel: false,
            }) if signo != libc::SIGCHLD => {
                if let Some(signal) = signal_from(signo) {
                    signal_one(pid, signal);
                }
            }
            _ => {}
        }
    }
}

/// The init helper's side: runs the agent to completion and returns its shell status.
pub fn run_init(config: &InitConfig) -> Result<i32, SuperviseError> {
    let mut watched = vec![libc::SIGCHLD, libc::SIGALRM];
    watched.extend_from_slice(FORWARDED_SIGNALS);
    #[cfg(target_os = "linux")]
    watched.push(signals::parent_died());
    let set = SignalSet::of(&watched);
    set.block().map_err(SuperviseError::Signals)?;
    platform::tie_to_parent(config.parent)?;

    let agent = spawn_agent(&config.command)?;
    let mut reaper = Reaper::new(agent);
    let mut kill_at: Option<Instant> = None;
    let mut killed = false;
    loop {
        reaper.reap();
        if let Some(status) = reaper.agent_status {
            finish_leftovers(&set, &mut reaper, config.stop_timeout, killed);
            return Ok(status);
        }
        let timeout = kill_at.map(|at| at.saturating_duration_since(Instant::now()));
        match set.wait(timeout).map_err(SuperviseError::Signals)? {
            None => {
                tracing::warn!(timeout = ?config.stop_timeout, "agent ignored SIGTERM; sending SIGKILL");
                signal_one(agent, Signal::SIGKILL);
                kill_at = None;
                killed = true;
            }
            Some(received) if platform::is_parent_death(received.signo) => {
                kill_everything(&set, &mut reaper);
                return Ok(EXIT_FRONA_ERROR);
            }
            Some(Received { signo, from_kernel }) => {
                if signo == libc::SIGCHLD || signo == libc::SIGALRM || from_kernel {
                    continue;
                }
                if let Some(signal) = signal_from(signo) {
                    signal_one(agent, signal);
                }
                if signo == libc::SIGTERM && kill_at.is_none() && !killed {
                    kill_at = Some(Instant::now() + config.stop_timeout);
                }
            }
        }
    }
}

fn spawn_agent(command: &[OsString]) -> Result<Pid, SuperviseError> {
    let (program, args) = command.split_first().ok_or(SuperviseError::NoCommand)?;
    let name = program.to_string_lossy().into_owned();
    let mut cmd = Command::new(program);
    cmd.args(args);
    platform::prepare_agent(&mut cmd);
    match cmd.spawn() {
        Ok(child) => Ok(Pid::from_raw(child.id() as i32)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(SuperviseError::NotFound { program: name })
        }
        Err(e)
            if e.kind() == io::ErrorKind::PermissionDenied
                || e.raw_os_error() == Some(libc::ENOEXEC)
                || e.raw_os_error() == Some(libc::EISDIR) =>
        {
            Err(SuperviseError::CannotExecute {
                program: name,
                source: e,
            })
        }
        Err(source) => Err(SuperviseError::Spawn {
            program: name,
            source,
        }),
    }
}

/// After the agent exited: SIGTERM (and SIGCONT, for stopped ones) to what it left behind,
/// up to `stop_timeout` for them to go, then SIGKILL. Skips straight to SIGKILL when the agent
/// itself had to be killed.
fn finish_leftovers(set: &SignalSet, reaper: &mut Reaper, stop_timeout: Duration, killing: bool) {
    if !reaper.reap() {
        return;
    }
    if !killing {
        signal_descendants(Signal::SIGTERM);
        signal_descendants(Signal::SIGCONT);
        let deadline = Instant::now() + stop_timeout;
        while reaper.reap() {
            let left = deadline.saturating_duration_since(Instant::now());
            match set.wait(Some(left)) {
                Ok(Some(r)) if !platform::is_parent_death(r.signo) => {}
                _ => break,
            }
        }
    }
    kill_everything(set, reaper);
}

/// SIGKILL to every descendant until none is left. A process forked between the scan and the
/// kill is re-parented to us when its parent dies and caught by the next round.
fn kill_everything(set: &SignalSet, reaper: &mut Reaper) {
    signal_one(reaper.agent, Signal::SIGKILL);
    while reaper.reap() {
        if signal_descendants(Signal::SIGKILL) == 0 && !cfg!(target_os = "linux") {
            break;
        }
        let _ = set.wait(Some(Duration::from_millis(20)));
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod platform {
    use std::os::unix::process::CommandExt;

    use nix::sys::prctl;
    use nix::sys::signal::Signal;
    use nix::unistd::getppid;

    use super::{SuperviseError, signals};

    /// Subreaper, parent-death signal, then the race check: if frona died before the prctl,
    /// no signal will ever come, so look at who our parent is now.
    pub fn tie_to_parent(parent: i32) -> Result<(), SuperviseError> {
        prctl::set_child_subreaper(true).map_err(SuperviseError::Subreaper)?;
        // SAFETY: PR_SET_PDEATHSIG with a valid signal number takes no pointers.
        let rc = unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                signals::parent_died() as libc::c_ulong,
            )
        };
        if rc != 0 {
            return Err(SuperviseError::Signals(std::io::Error::last_os_error()));
        }
        if getppid().as_raw() != parent {
            return Err(SuperviseError::ParentGone);
        }
        Ok(())
    }

    pub fn is_parent_death(signo: i32) -> bool {
        signo == signals::parent_died()
    }

    /// The agent starts with no blocked signals and gets SIGKILL if the init helper dies,
    /// with the same race check.
    pub fn prepare_agent(cmd: &mut std::process::Command) {
        let init = nix::unistd::getpid();
        // SAFETY: the closure runs between fork and exec and makes only async-signal-safe
        // system calls (sigprocmask, prctl, getppid); it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                super::signals::unblock_all()?;
                prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
                if getppid() != init {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod platform {
    use super::SuperviseError;

    /// No subreaper or parent-death signal outside Linux: `frona doctor` says so.
    pub fn tie_to_parent(_parent: i32) -> Result<(), SuperviseError> {
        tracing::debug!("parent-death teardown is unavailable on this platform");
        Ok(())
    }

    pub fn is_parent_death(_signo: i32) -> bool {
        false
    }

    #[allow(unsafe_code)]
    pub fn prepare_agent(cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        // SAFETY: sigprocmask is async-signal-safe and allocates nothing.
        unsafe { cmd.pre_exec(super::signals::unblock_all) };
    }
}

//! Supervising the agent like a good init.
//!
//! Two processes share the work (see README, "How `frona run` is built"):
//! - **frona** ([`supervise_init`]) starts the init helper, forwards signals to it and exits
//!   with its status. It never forks frona code: later it holds secrets and threads.
//! - **the init helper** ([`run_init`], frona re-executed as `frona __init`) enters the
//!   agent's namespaces, is a child subreaper, dies with frona (parent-death signal with the
//!   race check), starts the agent, forwards signals, reaps orphans, stops the agent with
//!   SIGTERM then SIGKILL after the stop timeout, and when the agent exits tears down whatever
//!   the agent left running. With a pid namespace it forks once, and its child does this work
//!   as PID 1 of the namespace while the helper relays signals to it.
//!
//! All processes share the caller's process group, so a terminal's Ctrl-C, Ctrl-Z and window
//! resize reach the agent directly, exactly as without frona; signals the kernel generated are
//! therefore not forwarded again.
//!
//! frona's caller hears what happens through [`Events`]: the helper's pid, the moment the
//! agent's `execve` succeeded (a byte on a pipe from the helper, [`Started`]), and a request
//! to stop. `frona run` turns these into service-manager notifications.

mod signals;
mod tree;

use std::ffi::OsString;
use std::io::{self, Read as _};
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::{ForkResult, Pid};

use crate::isolation::{self, IsolationError, IsolationMode, Plan};
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
    /// Pid of the frona process that started the helper (as frona sees it).
    pub parent: i32,
    /// How long the agent gets between SIGTERM and SIGKILL.
    pub stop_timeout: Duration,
    /// The isolation to apply.
    pub plan: Plan,
    /// The agent's program and arguments.
    pub command: Vec<OsString>,
}

impl InitConfig {
    /// The helper's argv, `frona __init …`, as the binary's hidden subcommand parses it.
    pub fn to_args(&self) -> Vec<OsString> {
        let plan = serde_json::to_string(&self.plan).unwrap_or_default();
        let mut args: Vec<OsString> = ["frona", "__init", "--parent"].map(OsString::from).into();
        args.push(self.parent.to_string().into());
        args.push("--stop-timeout".into());
        args.push(format!("{}ms", self.stop_timeout.as_millis()).into());
        args.push("--plan".into());
        args.push(plan.into());
        args.push("--".into());
        args.extend(self.command.iter().cloned());
        args
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("cannot set up signal handling")]
    Signals(#[source] io::Error),
    #[error("cannot become the agent's subreaper")]
    Subreaper(#[source] nix::Error),
    #[error("frona exited before the agent started")]
    ParentGone,
    #[error(transparent)]
    Hardening(#[from] crate::hardening::HardeningError),
    #[error("no command given")]
    NoCommand,
    #[error(transparent)]
    Isolation(#[from] IsolationError),
    #[error("cannot isolate the agent (see the message above)")]
    AgentIsolation,
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
    #[error("cannot set up the pipe that reports the agent's start")]
    StartPipe(#[source] io::Error),
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

/// The errno the agent's pre-exec step returns when isolation failed (it has printed why);
/// `execve` itself never fails with it.
const ISOLATION_FAILED: i32 = libc::ECANCELED;

fn signal_from(signo: i32) -> Option<Signal> {
    Signal::try_from(signo).ok()
}

/// Blocks the signals frona forwards, in the calling thread and every thread it starts later,
/// so that they all reach [`supervise_init`]'s wait and none a broker thread. Call it before
/// starting any thread.
pub fn block_forwarded_signals() -> Result<(), SuperviseError> {
    SignalSet::of(&[FORWARDED_SIGNALS, &[libc::SIGCHLD, libc::SIGALRM]].concat())
        .block()
        .map_err(SuperviseError::Signals)
}

/// What [`supervise_init`] tells its caller while the agent runs.
pub trait Events {
    /// Whether [`Events::spawned`] should get a [`Started`] (it costs a pipe to the helper).
    fn wants_started(&self) -> bool {
        false
    }

    /// The init helper runs as `pid`; `started`, when asked for, says when the agent does.
    fn spawned(&mut self, pid: i32, started: Option<Started>);

    /// A process asked frona to stop (SIGTERM); called before the signal is forwarded.
    fn stopping(&mut self) {}
}

/// The read end of the pipe on which the init helper reports the agent's start: one byte once
/// the agent's `execve` succeeded. End of file without it means the agent never started.
#[derive(Debug)]
pub struct Started(io::PipeReader);

impl Started {
    /// Blocks until the agent started (`true`) or never will (`false`).
    pub fn wait(mut self) -> bool {
        let mut byte = [0u8; 1];
        loop {
            match self.0.read(&mut byte) {
                Ok(n) => return n == 1,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
    }
}

/// The running binary, by a path that survives the file being replaced during an upgrade: what
/// frona re-executes as its init helper (for the agent, and for each tool the broker runs).
pub fn self_exe() -> std::path::PathBuf {
    if cfg!(target_os = "linux") {
        "/proc/self/exe".into()
    } else {
        std::env::current_exe().unwrap_or_else(|_| "frona".into())
    }
}

/// frona's side: starts the init helper (`exe`, environment `env`) with `config`, tells
/// `events` its pid (and, if asked, when the agent started), forwards every signal a process
/// sends frona, and returns the helper's status, which is the agent's.
pub fn supervise_init(
    exe: &Path,
    env: &[(OsString, OsString)],
    config: &InitConfig,
    events: &mut dyn Events,
) -> Result<i32, SuperviseError> {
    let set = SignalSet::of(&[FORWARDED_SIGNALS, &[libc::SIGCHLD, libc::SIGALRM]].concat());
    set.block().map_err(SuperviseError::Signals)?;
    let pipe = if events.wants_started() {
        Some(io::pipe().map_err(SuperviseError::StartPipe)?)
    } else {
        None
    };
    let mut args = config.to_args();
    if let Some((_, writer)) = &pipe {
        // The helper inherits the write end (its number is on its command line); it marks it
        // close-on-exec at once, so the agent never holds it. frona's other threads start no
        // process while this flag is off: tools run only for the agent, which does not exist yet.
        nix::fcntl::fcntl(
            writer,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .map_err(|e| SuperviseError::StartPipe(e.into()))?;
        let at = args.iter().position(|a| a == "__init").map_or(1, |i| i + 1);
        args.splice(
            at..at,
            ["--started-fd".into(), writer.as_raw_fd().to_string().into()],
        );
    }
    let mut cmd = Command::new(exe);
    cmd.arg0(&args[0])
        .args(&args[1..])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)));
    let spawned = cmd.spawn();
    // frona's copy of the write end goes, so that the helper's exit reads as end of file.
    let started = pipe.map(|(reader, _writer)| Started(reader));
    let child = spawned.map_err(|source| SuperviseError::Spawn {
        program: "frona __init".into(),
        source,
    })?;
    events.spawned(child.id() as i32, started);
    relay(&set, Pid::from_raw(child.id() as i32), false, events)
}

/// The helper's side of [`Started`]: takes the inherited write end `fd` and marks it
/// close-on-exec, so that neither the agent nor anything it starts inherits it.
///
/// # Safety
///
/// `fd` must be a descriptor nothing else in this process owns or will close (the one `frona
/// run` passed to this helper in `--started-fd`): the returned `OwnedFd` closes it on drop.
#[allow(unsafe_code)]
pub unsafe fn take_started_fd(fd: RawFd) -> Result<OwnedFd, SuperviseError> {
    use std::os::fd::FromRawFd as _;
    let bad = || SuperviseError::StartPipe(io::Error::from_raw_os_error(libc::EBADF));
    if fd <= libc::STDERR_FILENO {
        return Err(bad());
    }
    // SAFETY: F_SETFD takes no pointer; on a descriptor that is not open it fails with EBADF.
    let open = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == 0;
    if !open {
        return Err(bad());
    }
    // SAFETY: the descriptor is open (checked above) and, by this function's contract, owned
    // by nothing else in this process.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Forwards process-sent signals to `child` until it exits; returns its shell status. With
/// `parent_death`, frona's death kills the child (and with it the pid namespace it leads).
fn relay(
    set: &SignalSet,
    child: Pid,
    parent_death: bool,
    events: &mut dyn Events,
) -> Result<i32, SuperviseError> {
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(status) => {
                if let Some(code) = shell_status(status) {
                    return Ok(code);
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(SuperviseError::Wait(e)),
        }
        match set.wait(None).map_err(SuperviseError::Signals)? {
            Some(r) if parent_death && platform::is_parent_death(r.signo) => {
                signal_one(child, Signal::SIGKILL);
            }
            Some(Received {
                signo,
                from_kernel: false,
                ..
            }) if signo != libc::SIGCHLD => {
                if signo == libc::SIGTERM {
                    events.stopping();
                }
                if let Some(signal) = signal_from(signo) {
                    signal_one(child, signal);
                }
            }
            _ => {}
        }
    }
}

/// Marks every descriptor above stderr close-on-exec. The helper is single-threaded, so none
/// can appear meanwhile; the directory listing's own descriptor is gone before the loop.
#[allow(unsafe_code)]
fn close_inherited_on_exec() {
    let listing = if cfg!(target_os = "linux") {
        "/proc/self/fd"
    } else {
        "/dev/fd"
    };
    let fds: Vec<RawFd> = std::fs::read_dir(listing)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > libc::STDERR_FILENO)
        .collect();
    for fd in fds {
        // SAFETY: F_SETFD takes no pointer; a descriptor that is no longer open (the
        // listing's) answers EBADF, which is ignored.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

/// The helper's own events: none are reported further up.
struct Silent;

impl Events for Silent {
    fn spawned(&mut self, _pid: i32, _started: Option<Started>) {}
}

/// The init helper's side: enters the agent's namespaces, isolates and runs the agent to
/// completion, and returns its status. `started` (from [`take_started_fd`]) gets one byte once
/// the agent's `execve` succeeded. The agent gets stdin, stdout and stderr only: every other
/// descriptor the helper inherited (sockets systemd passed to frona with `LISTEN_FDS`, a
/// directory a caller left open, which would reach past the mount masks) is closed at its exec.
///
/// With a pid namespace the helper forks once: the child is PID 1 of the new namespace and
/// supervises the agent; the helper relays signals to it and dies with frona (and PID 1's
/// death ends everything in the namespace). Under `best-effort`, a kernel that refuses the
/// namespaces gets a plan without them.
#[allow(unsafe_code)]
pub fn run_init(config: &InitConfig, started: Option<OwnedFd>) -> Result<i32, SuperviseError> {
    let mut watched = vec![libc::SIGCHLD, libc::SIGALRM];
    watched.extend_from_slice(FORWARDED_SIGNALS);
    #[cfg(target_os = "linux")]
    watched.push(signals::parent_died());
    let set = SignalSet::of(&watched);
    set.block().map_err(SuperviseError::Signals)?;
    close_inherited_on_exec();
    platform::tie_to_parent(config.parent)?;
    platform::set_name();

    let mut plan = config.plan.clone();
    if plan.has_namespaces() {
        match isolation::enter_namespaces(&plan.namespaces) {
            Ok(()) => {}
            Err(err) if plan.mode == IsolationMode::BestEffort && !plan.namespaces.net => {
                let reason = crate::error_chain(&err);
                eprintln!("frona: isolation: skipped: {reason}");
                plan = plan.without_namespaces(reason);
            }
            Err(err) => return Err(err.into()),
        }
    }
    // The id maps are written; from here on nobody else may read this process.
    crate::hardening::harden_self().map_err(SuperviseError::Hardening)?;
    if plan.namespaces.pid {
        // Close-on-exec, like every descriptor here: the agent must not hold PID 1's end.
        let alive = io::pipe()
            .map(|(read, write)| (OwnedFd::from(read), OwnedFd::from(write)))
            .map_err(SuperviseError::Signals)?;
        // SAFETY: the helper is single-threaded, so the child may run any code.
        match unsafe { nix::unistd::fork() }.map_err(|e| SuperviseError::Signals(e.into()))? {
            ForkResult::Parent { child } => {
                drop(alive.0);
                // PID 1 holds the only other copy: its exit reads as end of file in frona.
                drop(started);
                let status = relay(&set, child, true, &mut Silent);
                drop(alive.1);
                return status;
            }
            ForkResult::Child => {
                drop(alive.1);
                platform::tie_to_forking_parent(&alive.0)?;
                return supervise_agent(&set, &plan, config, 0, started);
            }
        }
    }
    supervise_agent(&set, &plan, config, config.parent, started)
}

/// Applies the init-side isolation, starts the agent and supervises it. Signals are obeyed
/// only from `trusted` (0: from outside the pid namespace), never from inside the sandbox.
fn supervise_agent(
    set: &SignalSet,
    plan: &Plan,
    config: &InitConfig,
    trusted: i32,
    started: Option<OwnedFd>,
) -> Result<i32, SuperviseError> {
    isolation::apply_in_init(plan)?;
    // `--net proxy`: the agent's listener exists, and is the broker's, before the agent does,
    // so that its first connection finds it and the agent never holds it. See
    // `isolation::EgressListener`.
    if let Some(relay) = &plan.egress_listener {
        isolation::EgressListener::bind(relay)?.hand_over()?;
    }
    let agent = spawn_agent(&config.command, plan)?;
    // `spawn` returns once the agent's `execve` succeeded. If frona is gone the write fails,
    // and the parent-death signal ends us anyway.
    if let Some(fd) = started {
        let _ = nix::unistd::write(&fd, b"1");
    }
    let mut reaper = Reaper::new(agent);
    let mut kill_at: Option<Instant> = None;
    let mut killed = false;
    let from_frona = |r: &Received| !r.from_kernel && (r.sender == 0 || r.sender == trusted);
    loop {
        reaper.reap();
        if let Some(status) = reaper.agent_status {
            finish_leftovers(set, &mut reaper, config.stop_timeout, killed);
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
            Some(r) if r.signo == libc::SIGCHLD || r.signo == libc::SIGALRM || !from_frona(&r) => {}
            Some(r) if platform::is_parent_death(r.signo) => {
                kill_everything(set, &mut reaper);
                return Ok(EXIT_FRONA_ERROR);
            }
            Some(r) => {
                if let Some(signal) = signal_from(r.signo) {
                    signal_one(agent, signal);
                }
                if r.signo == libc::SIGTERM && kill_at.is_none() && !killed {
                    kill_at = Some(Instant::now() + config.stop_timeout);
                }
            }
        }
    }
}

fn spawn_agent(command: &[OsString], plan: &Plan) -> Result<Pid, SuperviseError> {
    let (program, args) = command.split_first().ok_or(SuperviseError::NoCommand)?;
    let name = program.to_string_lossy().into_owned();
    let mut cmd = Command::new(program);
    cmd.args(args);
    platform::prepare_agent(&mut cmd, plan.clone(), isolation::seccomp_program(plan));
    match cmd.spawn() {
        Ok(child) => Ok(Pid::from_raw(child.id() as i32)),
        Err(e) if e.raw_os_error() == Some(ISOLATION_FAILED) => Err(SuperviseError::AgentIsolation),
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
    use std::os::fd::{AsFd as _, OwnedFd};
    use std::os::unix::process::CommandExt;

    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::prctl;
    use nix::sys::signal::Signal;
    use nix::unistd::getppid;

    use super::{ISOLATION_FAILED, SuperviseError, signals};
    use crate::isolation::{self, Plan, SeccompProgram};

    /// Subreaper and parent-death signal, then the race check: if frona died before the
    /// prctl, no signal will ever come, so check that our parent is still frona.
    pub fn tie_to_parent(parent: i32) -> Result<(), SuperviseError> {
        prctl::set_child_subreaper(true).map_err(SuperviseError::Subreaper)?;
        set_parent_death_signal()?;
        if getppid().as_raw() != parent {
            return Err(SuperviseError::ParentGone);
        }
        Ok(())
    }

    /// The same for PID 1 of a new pid namespace, whose parent is invisible (`getppid()` is
    /// 0): the race check is the pipe from its parent, which hangs up when the parent dies.
    pub fn tie_to_forking_parent(alive: &OwnedFd) -> Result<(), SuperviseError> {
        set_parent_death_signal()?;
        let mut fds = [PollFd::new(alive.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::ZERO);
        if fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
        {
            return Err(SuperviseError::ParentGone);
        }
        Ok(())
    }

    fn set_parent_death_signal() -> Result<(), SuperviseError> {
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
        Ok(())
    }

    pub fn is_parent_death(signo: i32) -> bool {
        signo == signals::parent_died()
    }

    /// `frona-init` in `ps` and `/proc/<pid>/comm`, instead of `exe`.
    pub fn set_name() {
        let _ = prctl::set_name(c"frona-init");
    }

    /// Between fork and exec of the agent: no blocked signals, SIGKILL if the helper dies
    /// (with the race check), then the plan's isolation. The helper is single-threaded, so
    /// this may allocate.
    pub fn prepare_agent(cmd: &mut std::process::Command, plan: Plan, seccomp: SeccompProgram) {
        let init = nix::unistd::getpid();
        // SAFETY: runs in the forked child of the single-threaded helper.
        unsafe {
            cmd.pre_exec(move || {
                signals::unblock_all()?;
                prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
                if getppid() != init {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                isolation::apply_in_agent(&plan, &seccomp)
                    .map_err(|_| std::io::Error::from_raw_os_error(ISOLATION_FAILED))
            });
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod platform {
    use super::SuperviseError;
    use crate::isolation::{Plan, SeccompProgram};

    /// No subreaper or parent-death signal outside Linux: `frona doctor` says so.
    pub fn tie_to_parent(_parent: i32) -> Result<(), SuperviseError> {
        tracing::debug!("parent-death teardown is unavailable on this platform");
        Ok(())
    }

    pub fn tie_to_forking_parent(_alive: &std::os::fd::OwnedFd) -> Result<(), SuperviseError> {
        Ok(())
    }

    pub fn is_parent_death(_signo: i32) -> bool {
        false
    }

    pub fn set_name() {}

    #[allow(unsafe_code)]
    pub fn prepare_agent(cmd: &mut std::process::Command, _plan: Plan, _seccomp: SeccompProgram) {
        use std::os::unix::process::CommandExt;
        // SAFETY: sigprocmask is async-signal-safe and allocates nothing.
        unsafe { cmd.pre_exec(super::signals::unblock_all) };
    }
}

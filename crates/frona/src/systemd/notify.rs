//! `Type=notify` for `frona run`, sent with the `sd-notify` crate (Linux only; elsewhere there
//! is no notifier): `READY=1` once the broker is serving and the agent's `execve` succeeded,
//! `STATUS=` lines for `systemctl status`, `WATCHDOG=1` at half of `WATCHDOG_USEC`, and
//! `STOPPING=1` when frona starts shutting down (a SIGTERM came, or the agent exited). Nothing
//! at all when `NOTIFY_SOCKET` is unset.
//!
//! The agent never gets `NOTIFY_SOCKET` or the watchdog variables (they are stripped as
//! service-manager plumbing), and a unit should say `NotifyAccess=main`: only frona speaks for
//! the service. Messages go out under one lock, and none after `STOPPING=1`, so the service
//! manager sees them in order. A `STATUS=` names the agent's program only, never its
//! arguments: `systemctl status` shows it to every user.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use frona_sandbox::EnvSnapshot;
use frona_sandbox::supervise::Started;

use crate::env_vars::{NOTIFY_SOCKET, WATCHDOG_PID, WATCHDOG_USEC};

/// How often to ping the watchdog: half its timeout (as `sd_watchdog_enabled(3)` advises), when
/// systemd asked for one and asked it of this process (`WATCHDOG_PID` unset or ours).
pub fn watchdog_interval(usec: Option<&[u8]>, pid: Option<&[u8]>, own: u32) -> Option<Duration> {
    let number = |v: &[u8]| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok();
    let usec = usec.and_then(number).filter(|&u| u > 0)?;
    match pid {
        Some(pid) if number(pid) != Some(u64::from(own)) => None,
        _ => Some(Duration::from_micros(usec / 2)),
    }
}

/// What frona tells the service manager.
#[derive(Clone, Copy, Debug)]
enum Message<'a> {
    Ready,
    Status(&'a str),
    Watchdog,
    Stopping,
}

/// Whether STOPPING=1 went out; held while a message is sent.
#[derive(Debug, Default)]
struct Line {
    stopping: bool,
}

/// Talks to the service manager for one `frona run`.
#[derive(Debug)]
pub struct Notifier {
    line: Arc<Mutex<Line>>,
    watchdog: Option<Duration>,
    /// Dropped to wake the watchdog thread and end it.
    stop: Option<mpsc::Sender<()>>,
    /// The agent's program name, for `STATUS=`.
    program: String,
    broker: bool,
}

impl Notifier {
    /// A notifier when systemd gave frona a notify socket (on Linux); `None` otherwise.
    pub fn from_env(env: &EnvSnapshot, program: &std::ffi::OsStr, broker: bool) -> Option<Self> {
        if !cfg!(target_os = "linux") {
            return None;
        }
        env.get(NOTIFY_SOCKET).filter(|v| !v.is_empty())?;
        let program = one_line(
            &std::path::Path::new(program)
                .file_name()
                .unwrap_or(program)
                .to_string_lossy(),
        );
        Some(Self {
            line: Arc::default(),
            watchdog: watchdog_interval(
                env.get(WATCHDOG_USEC),
                env.get(WATCHDOG_PID),
                std::process::id(),
            ),
            stop: None,
            program,
            broker,
        })
    }

    /// The init helper runs as `helper`: once the agent started, READY=1 and a status, then
    /// watchdog pings until [`Notifier::stopping`].
    pub fn spawned(&mut self, helper: i32, started: Started) {
        let line = Arc::clone(&self.line);
        let status = format!(
            "agent `{}` running under frona-init (pid {helper}), {}",
            self.program,
            if self.broker {
                "broker serving"
            } else {
                "no broker"
            }
        );
        let watchdog = self.watchdog;
        let (stop, stopped) = mpsc::channel::<()>();
        self.stop = Some(stop);
        let thread = std::thread::Builder::new()
            .name("frona-notify".into())
            .spawn(move || {
                if !started.wait() {
                    return;
                }
                if !send_unless_stopping(&line, &[Message::Ready, Message::Status(&status)]) {
                    return;
                }
                let Some(every) = watchdog else { return };
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    if !send_unless_stopping(&line, &[Message::Watchdog]) {
                        return;
                    }
                }
            });
        if let Err(e) = thread {
            tracing::error!("cannot start the thread that notifies systemd: {e}");
        }
    }

    /// frona is shutting down (`why` goes into the status): STOPPING=1, once; nothing after it.
    pub fn stopping(&mut self, why: &str) {
        self.stop = None;
        let mut line = self.line.lock().unwrap_or_else(PoisonError::into_inner);
        if line.stopping {
            return;
        }
        line.stopping = true;
        send(&[
            Message::Stopping,
            Message::Status(&format!("stopping: {}", one_line(why))),
        ]);
    }
}

/// `text` with control characters replaced: a newline would start another `KEY=value` line.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Sends `states` unless STOPPING=1 went out already; says whether it sent.
fn send_unless_stopping(line: &Mutex<Line>, states: &[Message<'_>]) -> bool {
    let line = line.lock().unwrap_or_else(PoisonError::into_inner);
    if line.stopping {
        return false;
    }
    send(states);
    true
}

/// One datagram to `NOTIFY_SOCKET`. A failure is logged, never fatal: the agent runs on, and
/// systemd's own timeouts say what a missing message means. `sd-notify` reads the socket's
/// path from frona's environment, which `frona run` leaves in place for it (it is no secret).
#[cfg(target_os = "linux")]
fn send(messages: &[Message<'_>]) {
    use sd_notify::NotifyState;
    let states: Vec<NotifyState<'_>> = messages
        .iter()
        .map(|m| match *m {
            Message::Ready => NotifyState::Ready,
            Message::Status(text) => NotifyState::Status(text),
            Message::Watchdog => NotifyState::Watchdog,
            Message::Stopping => NotifyState::Stopping,
        })
        .collect();
    if let Err(e) = sd_notify::notify(&states) {
        tracing::warn!("cannot notify systemd: {e}");
    }
}

#[cfg(not(target_os = "linux"))]
fn send(_messages: &[Message<'_>]) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_is_pinged_at_half_its_timeout_and_only_for_us() {
        let half = Some(Duration::from_millis(100));
        assert_eq!(watchdog_interval(Some(b"200000"), None, 7), half);
        assert_eq!(watchdog_interval(Some(b"200000"), Some(b"7"), 7), half);
        assert_eq!(watchdog_interval(Some(b"200000"), Some(b"8"), 7), None);
        assert_eq!(watchdog_interval(Some(b"200000"), Some(b"x"), 7), None);
        assert_eq!(watchdog_interval(Some(b"0"), None, 7), None);
        assert_eq!(watchdog_interval(Some(b"soon"), None, 7), None);
        assert_eq!(watchdog_interval(None, Some(b"7"), 7), None);
    }

    #[test]
    fn no_notify_socket_no_notifier() {
        let env = EnvSnapshot::from_pairs([("WATCHDOG_USEC".into(), b"200000".to_vec())]);
        assert!(Notifier::from_env(&env, "agent".as_ref(), true).is_none());
        let env = EnvSnapshot::from_pairs([("NOTIFY_SOCKET".into(), Vec::new())]);
        assert!(Notifier::from_env(&env, "agent".as_ref(), true).is_none());
    }

    #[test]
    fn a_status_cannot_smuggle_another_line() {
        assert_eq!(one_line("agent\nREADY=1"), "agent?READY=1");
    }

    #[test]
    fn status_names_the_program_not_its_path_or_arguments() {
        let env = EnvSnapshot::from_pairs([("NOTIFY_SOCKET".into(), b"/run/notify".to_vec())]);
        let notifier = Notifier::from_env(&env, "/opt/agents/bin/coder".as_ref(), false).unwrap();
        assert_eq!(notifier.program, "coder");
        assert_eq!(notifier.watchdog, None);
    }
}

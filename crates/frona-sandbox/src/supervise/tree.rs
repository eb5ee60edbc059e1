//! The agent's process tree: reaping every child, and signalling every descendant.
//!
//! The init helper is a child subreaper, so orphans of the agent's tree are re-parented to it
//! and reaped here. To tear the tree down it walks `/proc` for every descendant, because a
//! process group or session can be left by the agent (`setsid`) but parentage cannot.

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// Exit status as a shell reports it: the code, or 128 + N for death by signal N.
pub fn shell_status(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, signal, _) => Some(128 + signal as i32),
        _ => None,
    }
}

/// Reaps children and remembers the agent's status when it goes.
#[derive(Debug)]
pub struct Reaper {
    pub agent: Pid,
    pub agent_status: Option<i32>,
}

impl Reaper {
    pub fn new(agent: Pid) -> Self {
        Self {
            agent,
            agent_status: None,
        }
    }

    /// Reaps every child that has exited. Returns whether any child is still alive.
    pub fn reap(&mut self) -> bool {
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => return true,
                Ok(status) => {
                    if status.pid() == Some(self.agent)
                        && let Some(code) = shell_status(status)
                    {
                        self.agent_status = Some(code);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(_) => return false, // ECHILD: no children left
            }
        }
    }
}

/// Sends `signal` to every descendant of this process. Returns how many were signalled.
#[cfg(target_os = "linux")]
pub fn signal_descendants(signal: Signal) -> usize {
    let me = std::process::id() as i32;
    let mut sent = 0;
    for pid in descendants(me) {
        if kill(Pid::from_raw(pid), signal).is_ok() {
            sent += 1;
        }
    }
    sent
}

/// Without `/proc` only the agent itself can be reached; see [`Reaper`].
#[cfg(not(target_os = "linux"))]
pub fn signal_descendants(_signal: Signal) -> usize {
    0
}

/// Every descendant of `root`, parents before children, read from `/proc/<pid>/stat`.
#[cfg(target_os = "linux")]
fn descendants(root: i32) -> Vec<i32> {
    let mut parent_of: Vec<(i32, i32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                && let Some(ppid) = parse_ppid(&stat)
            {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parent_of
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// The parent pid from a `/proc/<pid>/stat` line: `pid (comm) state ppid …`. The command name
/// may hold spaces and parentheses, so parse from the last `)`.
#[cfg(target_os = "linux")]
fn parse_ppid(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// Sends `signal` to one process, ignoring a process that is already gone.
pub fn signal_one(pid: Pid, signal: Signal) {
    let _ = kill(pid, signal);
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn parses_ppid_with_odd_command_names() {
        assert_eq!(parse_ppid("42 (a) b) c) S 7 42 42 0"), Some(7));
        assert_eq!(parse_ppid("1 (init) S 0 1 1"), Some(0));
        assert_eq!(parse_ppid("garbage"), None);
    }

    #[test]
    fn finds_own_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let found = descendants(std::process::id() as i32);
        assert!(found.contains(&(child.id() as i32)));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

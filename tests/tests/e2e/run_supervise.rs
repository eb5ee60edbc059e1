//! `frona run` as a supervisor: exit status, signals, stop timeout, reaping, parent death.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::{Running, alive, exists, frona, frona_run, wait_until};

fn status_of(agent_args: &[&str]) -> i32 {
    frona_run(&["--quiet"], agent_args)
        .status()
        .unwrap()
        .code()
        .unwrap()
}

#[test]
fn exit_status_passes_through() {
    assert_eq!(status_of(&["exit", "0"]), 0);
    assert_eq!(status_of(&["exit", "1"]), 1);
    assert_eq!(status_of(&["exit", "42"]), 42);
}

#[test]
fn death_by_signal_is_128_plus_n() {
    assert_eq!(status_of(&["raise", "9"]), 137);
    assert_eq!(status_of(&["raise", "15"]), 143);
    assert_eq!(status_of(&["raise", "11"]), 139);
}

#[test]
fn cannot_execute_is_126_and_not_found_is_127() {
    let plain_file = std::env::temp_dir().join(format!("frona-noexec-{}", std::process::id()));
    std::fs::write(&plain_file, "not a program\n").unwrap();
    let output = frona()
        .arg("run")
        .arg("--")
        .arg(&plain_file)
        .output()
        .unwrap();
    std::fs::remove_file(&plain_file).unwrap();
    assert_eq!(output.status.code(), Some(126), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot execute `") && stderr.contains("hint:"),
        "{stderr}"
    );
    let output = frona().args(["run", "--", "/"]).output().unwrap();
    assert_eq!(output.status.code(), Some(126), "a directory: {output:?}");

    let output = frona()
        .args(["run", "--", "no-such-agent-xyz"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(127));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`no-such-agent-xyz`: command not found") && stderr.contains("hint:"),
        "{stderr}"
    );
}

/// Every forwarded signal reaches the agent exactly once and its own handler runs.
#[test]
fn signals_are_forwarded_to_the_agent() {
    let mut running = Running::start(frona_run(&["--quiet"], &["signals", "SIGTERM"]));
    running.expect_line("ready");
    for signal in [
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ] {
        running.signal(signal);
        running.expect_line(&format!("got {}", signal.as_str()));
    }
    running.signal(Signal::SIGTERM);
    running.expect_line("got SIGTERM");
    let (code, stderr) = running.finish();
    assert_eq!(code, 0, "the agent's handler exits 0: {stderr}");
}

#[test]
fn agent_ignoring_sigterm_is_killed_after_the_stop_timeout() {
    let mut running = Running::start(frona_run(
        &["--quiet", "--stop-timeout", "300ms"],
        &["ignore-term"],
    ));
    running.expect_line("ready");
    let sent = Instant::now();
    running.signal(Signal::SIGTERM);
    let (code, _) = running.finish();
    let took = sent.elapsed();
    assert_eq!(code, 137);
    assert!(
        took >= Duration::from_millis(300),
        "killed before the timeout: {took:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "stop timeout not honoured: {took:?}"
    );
}

fn tree_pids(running: &mut Running) -> Vec<i32> {
    let pids: Vec<i32> = serde_json::from_str(&running.line()).unwrap();
    assert_eq!(pids.len(), 4, "agent, child, grandchild, escaped: {pids:?}");
    assert!(pids.iter().all(|&p| alive(p)));
    pids
}

/// `kill -9 <frona>`: the agent and its whole tree (even a process that left the session with
/// setsid) die within a second.
#[test]
fn killing_frona_kills_the_whole_agent_tree() {
    let mut running = Running::start(frona_run(&["--quiet"], &["tree"]));
    let pids = tree_pids(&mut running);
    running.signal(Signal::SIGKILL);
    let took = wait_until(Duration::from_secs(1), || pids.iter().all(|&p| !alive(p)));
    let survivors: Vec<_> = pids.iter().filter(|&&p| alive(p)).collect();
    assert!(
        took.is_some(),
        "still alive 1 s after frona was killed: {survivors:?}"
    );
    eprintln!("agent tree gone {:?} after SIGKILL to frona", took.unwrap());
    running.finish();
}

/// When the agent exits (here: killed from outside), whatever it left running is stopped
/// before frona exits.
#[test]
fn leftovers_are_stopped_when_the_agent_exits() {
    let mut running = Running::start(frona_run(&["--quiet"], &["tree"]));
    let pids = tree_pids(&mut running);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pids[3]), Signal::SIGKILL).unwrap();
    let (code, _) = running.finish();
    assert_eq!(code, 137);
    assert!(pids.iter().all(|&p| !alive(p)), "leftovers survived frona");
}

/// An orphaned grandchild is re-parented to frona's init and reaped: no zombie remains while
/// the agent keeps running.
#[test]
fn orphaned_grandchildren_are_reaped() {
    let mut running = Running::start(frona_run(&["--quiet"], &["orphan", "200", "3000"]));
    let orphan: i32 = running.line().parse().unwrap();
    let reaped = wait_until(Duration::from_secs(2), || !exists(orphan));
    assert!(reaped.is_some(), "orphan {orphan} left as a zombie");
    assert!(
        running.child.try_wait().unwrap().is_none(),
        "frona still running"
    );
    running.signal(Signal::SIGTERM);
    assert_eq!(running.finish().0, 143);
}

/// frona's own process tree: frona -> init helper -> agent, nothing more.
#[test]
fn agent_runs_under_the_init_helper() {
    let mut running = Running::start(frona_run(&["--quiet"], &["tree"]));
    let pids = tree_pids(&mut running);
    let parent_of = |pid: i32| -> i32 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        stat.rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
    };
    let agent = *pids.last().unwrap();
    let helper = parent_of(agent);
    assert_eq!(parent_of(helper), running.pid());
    let cmdline = std::fs::read(format!("/proc/{helper}/cmdline")).unwrap();
    assert!(String::from_utf8_lossy(&cmdline).contains("__init"));
    running.signal(Signal::SIGTERM);
    assert_eq!(running.finish().0, 143);
}

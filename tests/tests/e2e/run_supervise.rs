//! `frona run` as a supervisor: exit status, signals, stop timeout, reaping, parent death.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::{
    ISOLATION_MODES, Running, alive, descendants, exists, frona, frona_run, parent_of,
    wait_for_descendants, wait_until,
};

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

/// Starts the `tree` agent and returns frona and every (host) pid below it once all are up:
/// the helper(s), the agent, its child and grandchild, and one that left the session.
fn start_tree(flags: &[&str]) -> (Running, Vec<i32>) {
    let mut all = vec!["--quiet"];
    all.extend_from_slice(flags);
    let mut running = Running::start(frona_run(&all, &["tree"]));
    let _ = running.line(); // the agent prints its own (namespace) pids once the tree is up
    let helpers = if flags.is_empty() { 2 } else { 1 };
    let pids = wait_for_descendants(running.pid(), helpers + 4);
    (running, pids)
}

/// The host pid of the process running `frona-test-agent ARG` below `root`.
fn agent_pid(root: i32, arg: &str) -> i32 {
    descendants(root)
        .into_iter()
        .find(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            args.len() >= 2 && args[0].ends_with(b"frona-test-agent") && args[1] == arg.as_bytes()
        })
        .expect("agent process")
}

/// `kill -9 <frona>`: the agent and its whole tree (even a process that left the session with
/// setsid) die within a second, isolated or not.
#[test]
fn killing_frona_kills_the_whole_agent_tree() {
    for flags in ISOLATION_MODES {
        let (running, pids) = start_tree(flags);
        running.signal(Signal::SIGKILL);
        let took = wait_until(Duration::from_secs(1), || pids.iter().all(|&p| !alive(p)));
        let survivors: Vec<_> = pids.iter().filter(|&&p| alive(p)).collect();
        assert!(
            took.is_some(),
            "{flags:?}: still alive 1 s after frona was killed: {survivors:?}"
        );
        eprintln!(
            "{flags:?}: agent tree gone {:?} after SIGKILL to frona",
            took.unwrap()
        );
        running.finish();
    }
}

/// When the agent exits (here: killed from outside), whatever it left running is stopped
/// before frona exits.
#[test]
fn leftovers_are_stopped_when_the_agent_exits() {
    for flags in ISOLATION_MODES {
        let (running, pids) = start_tree(flags);
        let agent = agent_pid(running.pid(), "tree");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(agent), Signal::SIGKILL).unwrap();
        let (code, _) = running.finish();
        assert_eq!(code, 137, "{flags:?}");
        assert!(
            pids.iter().all(|&p| !alive(p)),
            "{flags:?}: leftovers survived frona"
        );
    }
}

/// An orphaned grandchild is re-parented to frona's init and reaped: no zombie remains while
/// the agent keeps running.
#[test]
fn orphaned_grandchildren_are_reaped() {
    for flags in ISOLATION_MODES {
        let mut all = vec!["--quiet"];
        all.extend_from_slice(flags);
        let mut running = Running::start(frona_run(&all, &["orphan", "200", "3000"]));
        let _orphan_in_namespace = running.line();
        std::thread::sleep(Duration::from_millis(600));
        let zombies: Vec<i32> = descendants(running.pid())
            .into_iter()
            .filter(|&p| exists(p) && !alive(p))
            .collect();
        assert!(zombies.is_empty(), "{flags:?}: zombies left: {zombies:?}");
        assert!(
            running.child.try_wait().unwrap().is_none(),
            "frona still running"
        );
        running.signal(Signal::SIGTERM);
        assert_eq!(running.finish().0, 143);
    }
}

/// frona's own process tree: frona -> helper -> (PID 1 of the sandbox) -> agent.
#[test]
fn agent_runs_under_the_init_helper() {
    for flags in ISOLATION_MODES {
        let (running, _) = start_tree(flags);
        let agent = agent_pid(running.pid(), "tree");
        let mut chain = vec![agent];
        while let Some(parent) = parent_of(*chain.last().unwrap()) {
            if parent == running.pid() {
                break;
            }
            chain.push(parent);
        }
        let helpers = &chain[1..];
        assert_eq!(
            helpers.len(),
            if flags.is_empty() { 2 } else { 1 },
            "{flags:?}: {chain:?}"
        );
        for helper in helpers {
            let comm = std::fs::read_to_string(format!("/proc/{helper}/comm")).unwrap();
            assert_eq!(comm.trim(), "frona-init");
        }
        running.signal(Signal::SIGTERM);
        assert_eq!(running.finish().0, 143);
    }
}

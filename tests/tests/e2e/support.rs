//! Support for frona's end-to-end tests: where the binaries are, how to start frona with a
//! controlled environment, and how to watch processes come and go.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

/// The fake agent (built with this package).
pub fn agent_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_frona-test-agent"))
}

/// The real `frona` binary, built from the workspace once per test run so it is never stale.
pub fn frona_bin() -> PathBuf {
    static BUILD: Once = Once::new();
    let profile_dir = agent_bin().parent().unwrap().to_path_buf();
    BUILD.call_once(|| {
        let target_dir = profile_dir.parent().unwrap();
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "--quiet", "-p", "frona", "--bin", "frona"]);
        // The same profile as the tests (`cargo test --release` for the load figures).
        if !cfg!(debug_assertions) {
            build.arg("--release");
        }
        let status = build
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo to build frona");
        assert!(status.success(), "building frona failed");
    });
    profile_dir.join("frona")
}

/// `frona` with an empty environment but for a PATH, so tests control every variable.
pub fn frona() -> Command {
    let mut cmd = Command::new(frona_bin());
    cmd.env_clear().env("PATH", "/usr/local/bin:/usr/bin:/bin");
    cmd
}

/// Any program, with the same controlled environment as [`frona`].
pub fn command(program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin");
    cmd
}

/// `frona run [flags] -- frona-test-agent ARGS…`.
pub fn frona_run(flags: &[&str], agent_args: &[&str]) -> Command {
    let mut cmd = frona();
    cmd.arg("run")
        .args(flags)
        .arg("--")
        .arg(agent_bin())
        .args(agent_args);
    cmd
}

/// A started frona whose stdout is read line by line.
pub struct Running {
    pub child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl Running {
    pub fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self { child, lines }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The next stdout line (panics at EOF, with what frona said on stderr).
    pub fn line(&mut self) -> String {
        match self.lines.next() {
            Some(line) => line.unwrap(),
            None => {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                }
                panic!("agent closed stdout; stderr: {stderr}");
            }
        }
    }

    pub fn expect_line(&mut self, expected: &str) {
        assert_eq!(self.line(), expected);
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).unwrap();
    }

    /// Waits for frona to exit; returns its exit code and stderr.
    pub fn finish(mut self) -> (i32, String) {
        let status = self.child.wait().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut self.child.stderr.take().unwrap(), &mut stderr).unwrap();
        (status.code().unwrap_or(-1), stderr)
    }
}

/// Whether `pid` is a live process (a zombie counts as dead: it runs no code).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z" | "X"))
        }
        Err(_) => false,
    }
}

/// Whether `pid` still exists at all, zombie included.
pub fn exists(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Polls `cond` until it holds or `limit` passes; returns the time it took.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond().then(|| start.elapsed())
}

/// The parent pid of `pid`, from `/proc/<pid>/stat`.
pub fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Every descendant of `root` (host pids), parents first.
pub fn descendants(root: i32) -> Vec<i32> {
    let all: Vec<(i32, i32)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, parent_of(pid)?)))
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(all.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    found.remove(0);
    found
}

/// Waits until `root` has at least `count` live descendants and returns them.
pub fn wait_for_descendants(root: i32, count: usize) -> Vec<i32> {
    let mut pids = Vec::new();
    let seen = wait_until(Duration::from_secs(10), || {
        pids = descendants(root)
            .into_iter()
            .filter(|&p| alive(p))
            .collect();
        pids.len() >= count
    });
    assert!(
        seen.is_some(),
        "expected {count} descendants of {root}, saw {pids:?}"
    );
    pids
}

/// The isolation flag sets every supervision test runs under.
pub const ISOLATION_MODES: &[&[&str]] = &[&[], &["--isolation", "off"]];

/// A command's stdout and stderr together, for assertions and failure messages.
pub fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The records of the audit log at `path`, parsed (none when there is no log yet).
pub fn audit_records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

//! frona as a systemd service: the shipped unit files pass `systemd-analyze verify`; `frona
//! run` speaks the notify protocol (to a test `NOTIFY_SOCKET`) in the right order; the agent
//! gets none of the service manager's plumbing, cannot read the unit's credentials, and does
//! not inherit the pipe that reports its start; the `systemd-creds` backend serves a tool call;
//! the `frona-master-key` credential opens the local store.

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::credentials::{Dirs, fingerprint};
use crate::support::{Running, agent_bin, descendants, frona, frona_bin, frona_run, text};

/// A value only a leak can reveal.
const MARKER: &str = "FRONA-SYSTEMD-SECRET-5c1e";
const VALUE: &str = "sk_live_SystemdCredsValue0123456789ab";

/// The variables systemd sets for frona that the agent must never get.
const PLUMBING: &[&str] = &[
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "FDSTORE",
    "CREDENTIALS_DIRECTORY",
    "SYSTEMD_EXEC_PID",
    "MANAGERPID",
];

/// A private temporary directory under cargo's target dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("frona-systemd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A credentials directory as systemd makes it: world-traversable here (so only frona's mask
/// can stop the agent), each file 0400.
fn credentials_dir(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    let creds = dir.join("credentials");
    std::fs::create_dir_all(&creds).unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (name, value) in files {
        let path = creds.join(name);
        std::fs::write(&path, value).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    }
    creds
}

/// A test service manager: the Unix datagram socket `NOTIFY_SOCKET` names.
struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
    _dir: TempDir,
}

impl NotifySocket {
    fn bind(name: &str) -> Self {
        let dir = TempDir::new(name);
        let path = dir.0.join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        Self {
            socket,
            path,
            _dir: dir,
        }
    }

    /// The lines of the datagrams that arrive within `wait` (each datagram holds one or more
    /// `KEY=value` lines).
    fn lines(&self, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        let mut lines = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return lines;
            }
            self.socket.set_read_timeout(Some(left)).unwrap();
            match self.socket.recv(&mut buf) {
                Ok(n) => lines.extend(
                    String::from_utf8_lossy(&buf[..n])
                        .lines()
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned),
                ),
                Err(_) => return lines,
            }
        }
    }

    /// Waits for a line starting with `prefix`; returns every line seen until then.
    fn until(&self, prefix: &str, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        while !seen.iter().any(|l: &String| l.starts_with(prefix)) {
            assert!(
                Instant::now() < deadline,
                "no `{prefix}` within {limit:?}; saw {seen:?}"
            );
            seen.extend(self.lines(Duration::from_millis(50)));
        }
        seen
    }
}

fn agent_env(output: &Output) -> serde_json::Map<String, Value> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no environment printed: {}", text(output)));
    match serde_json::from_str(line).unwrap() {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// `systemd-analyze` when installed; `None` (the test says why it skips) otherwise.
fn systemd_analyze() -> Option<&'static str> {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!(
            "skipped: systemd-analyze is not installed (scripts/test.sh installs the `systemd` package)"
        );
    }
    found.then_some("systemd-analyze")
}

/// `systemd-analyze verify` on `units` (file name in `dir` → text), as `verify NAMES…`. The
/// units run `/usr/local/bin/frona`, which verify requires to exist: the copies run the frona
/// just built instead. Returns the exit status and everything it printed.
fn verify(dir: &Path, units: &[(&str, String)], names: &[&str]) -> (bool, String) {
    let frona = frona_bin();
    for (file, unit) in units {
        let unit = unit.replace("/usr/local/bin/frona", frona.to_str().unwrap());
        std::fs::write(dir.join(file), unit).unwrap();
    }
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(names.iter().map(|n| dir.join(n)))
        .current_dir(dir)
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()
        .unwrap();
    (output.status.success(), text(&output))
}

fn repo_file(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::fs::read_to_string(root.join(path)).unwrap()
}

/// Every shipped unit verifies with no message at all; a misspelt setting, which systemd only
/// warns about and ignores, makes the same check fail (so the check can fail); the sysusers
/// file is accepted by `systemd-sysusers`.
#[test]
fn unit_files_pass_systemd_analyze_verify() {
    let Some(_) = systemd_analyze() else { return };
    let dir = TempDir::new("verify");
    let template = repo_file("systemd/frona@.service");
    let example = repo_file("systemd/examples/frona-coder.service");
    let units = [
        ("frona@.service", template.clone()),
        ("frona-coder.service", example),
    ];
    let (ok, said) = verify(
        &dir.0,
        &units,
        &["frona@coder.service", "frona-coder.service"],
    );
    assert!(
        ok && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );

    for (typo, needle) in [
        ("ProtectSystem=strict", "ProtectSytem=strict"),
        ("Type=notify", "Type=notfy"),
        ("RestrictNamespaces=user", "RestrictNamespaces=usr"),
    ] {
        let broken = template.replacen(typo, needle, 1);
        assert_ne!(broken, template, "`{typo}` is not in the template");
        let (ok, said) = verify(
            &dir.0,
            &[("frona@.service", broken)],
            &["frona@coder.service"],
        );
        assert!(
            !ok || !said.trim().is_empty(),
            "`{needle}` went unnoticed: {said}"
        );
    }

    let root = TempDir::new("sysusers");
    std::fs::create_dir_all(root.0.join("etc")).unwrap();
    let sysusers = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("systemd/sysusers.d/frona.conf");
    let output = Command::new("systemd-sysusers")
        .arg("--dry-run")
        .arg(format!("--root={}", root.0.display()))
        .arg(&sysusers)
        .output()
        .unwrap();
    assert!(
        output.status.success() && text(&output).contains("Creating user 'frona'"),
        "systemd-sysusers: {}",
        text(&output)
    );
}

/// What the template's mount settings do (ProtectSystem=strict, ProtectHome=yes, PrivateTmp=yes,
/// ProtectControlGroups=yes, NoNewPrivileges=yes, an unprivileged user), done by hand in a
/// private mount namespace: frona still gives the agent its own /proc, so it sees no process
/// of the host. With /proc/sys mounted over, as ProtectKernelTunables= does, the kernel refuses
/// that /proc and frona refuses to start: why the units leave that setting off.
#[test]
fn the_units_mount_settings_keep_frona_sandbox_and_proc_masks_would_break_it() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "skipped: needs root to build a mount namespace and switch to an unprivileged user"
        );
        return;
    }
    let probe = crate::support::command(
        "setpriv",
        &["--reuid=65534", "--regid=65534", "--clear-groups", "--"],
    )
    .arg(frona_bin())
    .args(["doctor", "--json"])
    .current_dir("/")
    .output()
    .unwrap();
    let doc: Value = serde_json::from_slice(&probe.stdout).unwrap_or_default();
    if doc["namespaces_probe"]["ok"] != true {
        eprintln!("skipped: this kernel refuses unprivileged user namespaces: {doc}");
        return;
    }
    const SCRIPT: &str = r#"
        set -e
        mount --make-rprivate /
        mount -o remount,bind,ro /
        mount -t tmpfs -o mode=000 tmpfs /home
        mount -t tmpfs -o mode=1777 tmpfs /tmp
        if [ -d /sys/fs/cgroup ]; then
            mount --bind /sys/fs/cgroup /sys/fs/cgroup
            mount -o remount,bind,ro /sys/fs/cgroup
        fi
        if [ "$1" = tunables ]; then
            mount --bind /proc/sys /proc/sys
            mount -o remount,bind,ro /proc/sys
        fi
        cd /
        exec setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs -- \
            "$2" run --quiet --no-broker -- "$3" attack find-frona
    "#;
    let run = |mode: &str| {
        crate::support::command("unshare", &["-m", "sh", "-c", SCRIPT, "sh", mode])
            .arg(frona_bin())
            .arg(agent_bin())
            .output()
            .unwrap()
    };
    let as_unit = run("unit");
    assert_eq!(as_unit.status.code(), Some(0), "{}", text(&as_unit));
    assert!(
        String::from_utf8_lossy(&as_unit.stdout).starts_with("blocked:"),
        "the agent has its own /proc: {}",
        text(&as_unit)
    );
    let masked = run("tunables");
    assert_eq!(masked.status.code(), Some(125), "{}", text(&masked));
    assert!(
        text(&masked).contains("cannot mount a fresh /proc"),
        "{}",
        text(&masked)
    );
    for setting in [
        "ProtectKernelTunables=yes",
        "ProtectKernelLogs=yes",
        "ProtectProc=",
        "ProcSubset=",
    ] {
        for unit in [
            "systemd/frona@.service",
            "systemd/examples/frona-coder.service",
        ] {
            let set = repo_file(unit)
                .lines()
                .any(|l| l.trim_start().starts_with(setting));
            assert!(
                !set,
                "{unit} sets {setting}, which breaks the agent's /proc"
            );
        }
    }
}

/// READY=1 and a status once the agent runs, watchdog pings at half WATCHDOG_USEC, then
/// STOPPING=1 and why, last; the agent sees none of the plumbing.
#[test]
fn notify_protocol_in_order_and_no_plumbing_for_the_agent() {
    let notify = NotifySocket::bind("order");
    let dir = TempDir::new("order-creds");
    let creds = credentials_dir(&dir.0, &[("vault-token", MARKER)]);
    let agent = agent_bin();
    let output = frona()
        .args(["run", "--", "sh", "-c", "\"$0\" env; sleep 0.7"])
        .arg(&agent)
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "200000")
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDNAMES", "broker")
        .env("FDSTORE", "4")
        .env("CREDENTIALS_DIRECTORY", &creds)
        .env("SYSTEMD_EXEC_PID", "1")
        .env("MANAGERPID", "1")
        .env("INVOCATION_ID", "5f1c2b8e0d0f4c5e9a7b3c2d1e0f9a8b")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let lines = notify.lines(Duration::from_millis(200));

    assert_eq!(
        lines.first().map(String::as_str),
        Some("READY=1"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("STATUS=agent `sh` running under frona-init (pid "),
        "{lines:?}"
    );
    let pings = lines.iter().filter(|l| *l == "WATCHDOG=1").count();
    assert!(pings >= 3, "pings every 100 ms for 700 ms: {lines:?}");
    assert_eq!(
        lines[lines.len() - 2..],
        [
            "STOPPING=1".to_owned(),
            "STATUS=stopping: agent exited with status 0".to_owned()
        ],
        "STOPPING=1 comes last: {lines:?}"
    );
    assert_eq!(lines.len(), 2 + pings + 2, "nothing else: {lines:?}");

    let env = agent_env(&output);
    for name in PLUMBING {
        assert!(!env.contains_key(*name), "the agent got {name}: {env:?}");
    }
    assert!(env.contains_key("INVOCATION_ID"), "{env:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("NOTIFY_SOCKET (set by systemd for frona: its notify socket)"),
        "{stderr}"
    );
    assert!(!text(&output).contains(MARKER));
}

/// A stop (SIGTERM) is announced at once, before the agent is gone, and nothing follows it.
#[test]
fn sigterm_sends_stopping_first() {
    let notify = NotifySocket::bind("sigterm");
    let mut cmd = frona_run(&["--quiet"], &["sleep", "20000"]);
    cmd.env("NOTIFY_SOCKET", &notify.path);
    let running = Running::start(cmd);
    let seen = notify.until("READY=1", Duration::from_secs(10));
    assert_eq!(seen[0], "READY=1", "{seen:?}");
    running.signal(nix::sys::signal::Signal::SIGTERM);
    let stopping = notify.until("STOPPING=1", Duration::from_secs(10));
    let (code, stderr) = running.finish();
    assert_eq!(code, 143, "{stderr}");
    let after = notify.lines(Duration::from_millis(200));
    assert_eq!(
        [stopping, after].concat(),
        ["STOPPING=1", "STATUS=stopping: SIGTERM received"],
        "no watchdog configured, and nothing after STOPPING=1"
    );
}

/// A watchdog meant for another process (WATCHDOG_PID) gets no pings from frona.
#[test]
fn watchdog_for_another_process_is_not_pinged() {
    let notify = NotifySocket::bind("watchdog-pid");
    let output = frona_run(&["--quiet"], &["sleep", "500"])
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "100000")
        .env("WATCHDOG_PID", "1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let lines = notify.lines(Duration::from_millis(200));
    assert!(lines.contains(&"READY=1".to_owned()), "{lines:?}");
    assert!(!lines.iter().any(|l| l == "WATCHDOG=1"), "{lines:?}");
}

/// The helper gets the start pipe only under systemd, and the agent never holds it, nor any
/// other descriptor frona inherited (cargo's jobserver pipes, here): it has stdin, stdout and
/// stderr only.
#[test]
fn the_start_pipe_exists_only_with_a_notify_socket_and_the_agent_never_holds_it() {
    let notify = NotifySocket::bind("pipe");
    // The shell's descriptors, as it got them (`ls` lists them from its own process).
    let script = "ls -l /proc/$$/fd; echo listed; sleep 20";
    for with_socket in [true, false] {
        let mut cmd = frona();
        cmd.args(["run", "--quiet", "--", "sh", "-c", script]);
        if with_socket {
            cmd.env("NOTIFY_SOCKET", &notify.path);
        }
        let mut running = Running::start(cmd);
        let mut fds = Vec::new();
        loop {
            let line = running.line();
            if line == "listed" {
                break;
            }
            fds.push(line);
        }
        let helper = descendants(running.pid())[0];
        let cmdline = std::fs::read(format!("/proc/{helper}/cmdline")).unwrap();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(cmdline.contains(" __init "), "{cmdline}");
        assert_eq!(
            cmdline.contains("--started-fd"),
            with_socket,
            "with NOTIFY_SOCKET: {with_socket}: {cmdline}"
        );
        running.signal(nix::sys::signal::Signal::SIGTERM);
        running.finish();
        let numbers: Vec<&str> = fds
            .iter()
            .filter_map(|l| l.split_once(" -> "))
            .filter_map(|(left, _)| left.rsplit(' ').next())
            .collect();
        assert_eq!(
            numbers,
            ["0", "1", "2"],
            "the agent holds a descriptor it was not given: {fds:?}"
        );
    }
}

/// `$CREDENTIALS_DIRECTORY` is hidden like frona's own directories: a file in it cannot be
/// read by name. Without isolation the same attack works, so the test can fail.
#[test]
fn the_agent_cannot_read_the_units_credentials() {
    let dir = TempDir::new("hidden");
    let creds = credentials_dir(&dir.0, &[("vault-token", MARKER)]);
    let file = creds.join("vault-token");
    let attack = |flags: &[&str]| {
        let mut all = vec!["--quiet"];
        all.extend_from_slice(flags);
        frona_run(
            &all,
            &["attack", "read-files", MARKER, file.to_str().unwrap()],
        )
        .env("CREDENTIALS_DIRECTORY", &creds)
        .output()
        .unwrap()
    };
    let blocked = attack(&[]);
    assert_eq!(blocked.status.code(), Some(0), "{}", text(&blocked));
    assert!(
        String::from_utf8_lossy(&blocked.stdout).starts_with("blocked:"),
        "{}",
        text(&blocked)
    );
    let open = attack(&["--isolation", "off"]);
    assert_eq!(
        open.status.code(),
        Some(1),
        "without isolation the file is readable: {}",
        text(&open)
    );
}

const POLICY: &str = r#"
rules:
  - name: sh-with-stripe
    tool: sh
    credentials: [stripe-key]
    effect: permit
"#;

/// A credential of the `systemd-creds` backend reaches a permitted tool through the broker;
/// the agent and frona's output never see the value; health and errors say what is wrong.
#[test]
fn systemd_creds_backend_serves_a_tool_call() {
    let dirs = Dirs::new("systemd-creds");
    let creds = credentials_dir(&dirs.root, &[("stripe-key", &format!("{VALUE}\n"))]);
    let register = dirs
        .cmd(&[
            "credential",
            "register",
            "--name",
            "stripe-key",
            "--backend",
            "systemd-creds",
            "--path",
            "stripe-key",
            "--env",
            "STRIPE_API_KEY",
        ])
        .output()
        .unwrap();
    assert!(register.status.success(), "{}", text(&register));
    std::fs::create_dir_all(dirs.root.join("config/policies")).unwrap();
    std::fs::write(dirs.root.join("config/policies/policy.yaml"), POLICY).unwrap();

    let frona = frona_bin();
    let script = format!(
        "echo agent=${{STRIPE_API_KEY:-unset}} creds=${{CREDENTIALS_DIRECTORY:-unset}}; \
         {} tool --credential stripe-key -- sh -c 'echo tool=$STRIPE_API_KEY; echo len=${{#STRIPE_API_KEY}}'; echo rc=$?",
        frona.display()
    );
    let output = dirs
        .cmd(&["run", "--quiet", "--", "sh", "-c", &script])
        .env("FRONA_STATE_DIR", dirs.root.join("state"))
        .env("CREDENTIALS_DIRECTORY", &creds)
        .output()
        .unwrap();
    let out = text(&output);
    assert!(!out.contains(VALUE), "the value leaked: {out}");
    assert!(out.contains("agent=unset creds=unset"), "{out}");
    assert!(out.contains("tool=[REDACTED]"), "{out}");
    assert!(
        out.contains(&format!("len={}", VALUE.len())),
        "the tool had the value, newline trimmed: {out}"
    );
    assert!(out.contains("rc=0"), "{out}");

    let tested = dirs
        .cmd(&["credential", "test", "--name", "stripe-key"])
        .env("CREDENTIALS_DIRECTORY", &creds)
        .output()
        .unwrap();
    assert!(
        text(&tested).contains(&format!("fingerprint {}", fingerprint(VALUE))),
        "{}",
        text(&tested)
    );
    let unset = dirs
        .cmd(&["credential", "test", "--name", "stripe-key"])
        .output()
        .unwrap();
    assert_eq!(unset.status.code(), Some(1));
    assert!(
        text(&unset).contains("CREDENTIALS_DIRECTORY is unset"),
        "{}",
        text(&unset)
    );

    let rotate = dirs
        .cmd(&["credential", "rotate", "--name", "stripe-key"])
        .env("CREDENTIALS_DIRECTORY", &creds)
        .output()
        .unwrap();
    assert_eq!(rotate.status.code(), Some(1), "{}", text(&rotate));
    assert!(
        text(&rotate).contains("systemd-creds: rotate is not supported"),
        "{}",
        text(&rotate)
    );

    let health = |dir: &Path| {
        let output = dirs
            .cmd(&["credential", "health", "--json"])
            .env("CREDENTIALS_DIRECTORY", dir)
            .output()
            .unwrap();
        let rows: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
        let row = rows
            .into_iter()
            .find(|r| r["backend"] == "systemd-creds")
            .unwrap_or_else(|| panic!("no systemd-creds row: {}", text(&output)));
        (output.status.code(), row)
    };
    let (code, row) = health(&creds);
    assert_eq!((code, &row["healthy"]), (Some(0), &Value::Bool(true)));
    let (code, row) = health(&dirs.root.join("gone"));
    assert_eq!((code, &row["healthy"]), (Some(1), &Value::Bool(false)));
    assert!(
        row["error"].as_str().unwrap().contains("cannot read"),
        "{row}"
    );

    let escape = dirs
        .cmd(&[
            "credential",
            "register",
            "--name",
            "escape",
            "--backend",
            "systemd-creds",
            "--path",
            "../stripe-key",
        ])
        .output()
        .unwrap();
    assert_eq!(escape.status.code(), Some(125), "{}", text(&escape));
    assert!(text(&escape).contains("contains `/`"), "{}", text(&escape));
}

/// The `frona-master-key` credential is the local store's key when FRONA_MASTER_KEY is unset
/// (no key file is made), and FRONA_MASTER_KEY still wins over it.
#[test]
fn the_master_key_credential_opens_the_local_store() {
    let key = "8a9b0c1d2e3f405162738495a6b7c8d9e0f1021324354657687980a1b2c3d4e5";
    let other = key.replace('8', "0");
    let dirs = Dirs::new("master-key-credential");
    let creds = credentials_dir(&dirs.root, &[("frona-master-key", &format!("{key}\n"))]);
    let secret = |args: &[&str], key_env: Option<&str>, creds_dir: Option<&Path>| {
        let mut cmd = dirs.cmd(args);
        if let Some(k) = key_env {
            cmd.env("FRONA_MASTER_KEY", k);
        }
        if let Some(d) = creds_dir {
            cmd.env("CREDENTIALS_DIRECTORY", d);
        }
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        // `secret list` may exit before reading: a failed write is no failure.
        let _ = std::io::Write::write_all(&mut child.stdin.take().unwrap(), VALUE.as_bytes());
        child.wait_with_output().unwrap()
    };
    let set = secret(&["secret", "set", "stripe"], None, Some(&creds));
    assert!(set.status.success(), "{}", text(&set));
    assert!(
        !dirs.root.join("config/master.key").exists(),
        "the credential was the key: no key file"
    );
    let by_env = secret(&["secret", "list"], Some(key), None);
    assert!(
        text(&by_env).contains("stripe"),
        "the store was sealed with the credential's key: {}",
        text(&by_env)
    );
    let other_creds_dir = TempDir::new("other-key");
    let other_creds = credentials_dir(&other_creds_dir.0, &[("frona-master-key", &other)]);
    let wrong = secret(&["secret", "list"], None, Some(&other_creds));
    assert_eq!(wrong.status.code(), Some(125), "{}", text(&wrong));
    let env_wins = secret(&["secret", "list"], Some(key), Some(&other_creds));
    assert!(env_wins.status.success(), "{}", text(&env_wins));
    assert!(!text(&set).contains(key) && !text(&wrong).contains(key));
}

//! `frona run` isolation on Linux: a hostile agent tries every route to a credential or out of
//! its sandbox, and each attempt must fail. Each attack is also run with `--isolation off`
//! where that shows the test can fail (the attack works there).

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{Running, agent_bin, command, frona, frona_run};

/// A fake `$HOME` full of credential files, each holding a marker only a leak can reveal.
struct FakeHome {
    dir: PathBuf,
}

const MARKER: &str = "FRONA-TEST-SECRET-7f3a";

const CREDENTIAL_FILES: &[&str] = &[
    ".aws/credentials",
    ".config/gcloud/credentials.db",
    ".azure/msal_token_cache.json",
    ".docker/config.json",
    ".kube/config",
    ".netrc",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    ".config/gh/hosts.yml",
    ".ssh/id_ed25519",
    ".gnupg/private-keys-v1.d/key.key",
    ".vault-token",
    ".config/op/config",
    ".terraform.d/credentials.tfrc.json",
    ".cargo/credentials.toml",
    ".config/frona/master.key",
    // The agents' logins and the tool credential files beyond the first list.
    ".claude/.credentials.json",
    ".codex/auth.json",
    ".gemini/oauth_creds.json",
    ".local/share/opencode/auth.json",
    ".pgpass",
    ".my.cnf",
    ".s3cfg",
    ".boto",
    ".config/rclone/rclone.conf",
    ".m2/settings.xml",
    ".gradle/gradle.properties",
    ".config/composer/auth.json",
    ".config/helm/repositories.yaml",
    ".config/containers/auth.json",
    ".password-store/github.gpg",
    ".local/share/keyrings/login.keyring",
    ".cache/huggingface/token",
];

impl FakeHome {
    /// In cargo's per-target temp dir: world-traversable, so an unprivileged agent could read
    /// the files but for the masks.
    fn new(name: &str) -> Self {
        Self::new_in(Path::new(env!("CARGO_TARGET_TMPDIR")), name)
    }

    fn new_in(parent: &Path, name: &str) -> Self {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = parent.join(format!("frona-home-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for rel in CREDENTIAL_FILES {
            let path = dir.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, format!("{MARKER} {rel}\n")).unwrap();
        }
        // World-readable on purpose: only the mask may stop an unprivileged agent.
        for entry in walk(&dir) {
            let mode = if entry.is_dir() { 0o755 } else { 0o644 };
            std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { dir }
    }

    fn paths(&self) -> Vec<String> {
        CREDENTIAL_FILES
            .iter()
            .map(|rel| self.dir.join(rel).display().to_string())
            .collect()
    }
}

impl Drop for FakeHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

/// `frona run [flags] -- frona-test-agent attack NAME ARGS…` with `HOME` set.
fn attack(flags: &[&str], home: &Path, name: &str, args: &[&str]) -> Output {
    let mut agent_args = vec!["attack", name];
    agent_args.extend_from_slice(args);
    let mut all = vec!["--quiet"];
    all.extend_from_slice(flags);
    frona_run(&all, &agent_args)
        .env("HOME", home)
        .output()
        .unwrap()
}

fn verdict(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn assert_blocked(output: &Output, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{what} was not blocked: {}",
        verdict(output)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).starts_with("blocked:"),
        "{what}: {}",
        verdict(output)
    );
}

fn assert_succeeded(output: &Output, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(1),
        "{what} should work without isolation: {}",
        verdict(output)
    );
}

#[test]
fn credential_files_are_hidden() {
    let home = FakeHome::new("hidden");
    let paths = home.paths();
    let mut args = vec![MARKER];
    args.extend(paths.iter().map(String::as_str));
    assert_blocked(
        &attack(&[], &home.dir, "read-files", &args),
        "reading credential files",
    );
    // Each file alone works without isolation: the test can fail.
    for path in &paths {
        assert_succeeded(
            &attack(
                &["--isolation", "off"],
                &home.dir,
                "read-files",
                &[MARKER, path],
            ),
            path,
        );
    }
}

#[test]
fn hide_and_unhide_adjust_the_list() {
    let home = FakeHome::new("adjust");
    let extra = home.dir.join("project.env");
    std::fs::write(&extra, format!("{MARKER}\n")).unwrap();
    let extra = extra.display().to_string();
    let npmrc = home.dir.join(".npmrc").display().to_string();
    assert_blocked(
        &attack(
            &["--hide", &extra],
            &home.dir,
            "read-files",
            &[MARKER, &extra],
        ),
        "--hide",
    );
    assert_succeeded(
        &attack(
            &["--unhide", &npmrc],
            &home.dir,
            "read-files",
            &[MARKER, &npmrc],
        ),
        "--unhide",
    );
}

#[test]
fn masks_cannot_be_undone_from_inside() {
    let home = FakeHome::new("uncover");
    let creds = home.dir.join(".aws/credentials").display().to_string();
    let dir = home.dir.join(".aws").display().to_string();
    assert_blocked(
        &attack(&[], &home.dir, "uncover", &[&creds, MARKER]),
        "unmounting a file mask",
    );
    assert_blocked(
        &attack(&[], &home.dir, "uncover", &[&dir, MARKER]),
        "unmounting a directory mask",
    );
    assert_blocked(
        &attack(&[], &home.dir, "remount-proc", &[]),
        "remounting /proc",
    );
    assert_blocked(
        &attack(&[], &home.dir, "new-userns", &[]),
        "creating a user namespace",
    );
    assert_succeeded(
        &attack(&["--isolation", "off"], &home.dir, "new-userns", &[]),
        "creating a user namespace",
    );
}

/// The agent cannot find frona, read its environment or memory, or kill it.
#[test]
fn frona_is_out_of_reach() {
    let home = FakeHome::new("reach");
    let secret = "sk-proj-Zq8vK2mN4pL6xR1tY3wB5cD7eF9gH0jK";
    assert_blocked(&attack(&[], &home.dir, "find-frona", &[]), "finding frona");
    assert_succeeded(
        &attack(&["--isolation", "off"], &home.dir, "find-frona", &[]),
        "finding frona",
    );

    // frona's real pid, and its helper PID 1 inside, with a secret in frona's environment.
    let mut cmd = frona_run(&["--quiet"], &["signals", "SIGUSR1"]);
    cmd.env("HOME", &home.dir).env("OPENAI_API_KEY", secret);
    let mut running = Running::start(cmd);
    running.expect_line("ready");
    let frona_pid = running.pid().to_string();
    for (name, args) in [
        ("read-environ", vec![frona_pid.as_str(), secret]),
        ("read-environ", vec!["1", secret]),
        ("read-mem", vec![frona_pid.as_str()]),
        ("read-mem", vec!["1"]),
        ("ptrace", vec!["1"]),
    ] {
        let output = frona_run(&["--quiet"], &[&["attack", name][..], &args].concat())
            .env("HOME", &home.dir)
            .output()
            .unwrap();
        assert_blocked(&output, &format!("{name} {args:?}"));
    }
    let output = frona_run(&["--quiet"], &["attack", "kill", &frona_pid])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", verdict(&output));
    assert!(
        running.child.try_wait().unwrap().is_none(),
        "the agent killed frona"
    );
    running.signal(nix::sys::signal::Signal::SIGUSR1);
    assert_eq!(running.finish().0, 0);
}

#[test]
fn dangerous_system_calls_fail() {
    let home = FakeHome::new("syscalls");
    for name in [
        "ptrace-child",
        "vm-readv-child",
        "load-module",
        "bpf",
        "perf",
        "keyctl",
        "userfaultfd",
    ] {
        assert_blocked(&attack(&[], &home.dir, name, &[]), name);
    }
    // Root in CI can do these without isolation: the seccomp filter is what stops them.
    if nix::unistd::Uid::effective().is_root() {
        for name in ["ptrace-child", "vm-readv-child", "bpf", "keyctl"] {
            assert_succeeded(&attack(&["--isolation", "off"], &home.dir, name, &[]), name);
        }
    }
}

#[test]
fn terminal_injection_is_refused() {
    let home = FakeHome::new("tiocsti");
    let output = crate::run_tty::in_pty(
        frona()
            .args(["run", "--quiet", "--"])
            .arg(agent_bin())
            .args(["attack", "tiocsti"])
            .env("HOME", &home.dir),
    );
    assert!(
        output.contains("blocked: ioctl(TIOCSTI): Operation not permitted"),
        "{output}"
    );
}

/// A directory outside everything the agent may write by default (temp dirs, the working
/// directory), to stand in for `$HOME`; `None` when this checkout offers none.
fn outside_default_writable() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    let writable = [
        Path::new("/tmp"),
        Path::new("/var/tmp"),
        Path::new("/dev/shm"),
        &cwd,
    ];
    [
        Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR"))),
        std::env::var_os("HOME").map(PathBuf::from),
    ]
    .into_iter()
    .flatten()
    .find(|dir| !writable.iter().any(|w| dir.starts_with(w)))
}

#[test]
fn landlock_limits_writes() {
    let Some(parent) = outside_default_writable() else {
        eprintln!(
            "SKIPPED landlock_limits_writes: no directory outside /tmp and the working directory"
        );
        return;
    };
    let home = FakeHome::new_in(&parent, "landlock");
    let allowed = home.dir.join("allowed");
    std::fs::create_dir_all(&allowed).unwrap();
    let inside = allowed.join("out.txt").display().to_string();
    let outside = home.dir.join(".bashrc").display().to_string();
    let write_to = |flags: &[&str], path: &str| attack(flags, &home.dir, "write-file", &[path]);
    let fs_write = ["--fs-write", allowed.to_str().unwrap()];
    assert_succeeded(&write_to(&fs_write, &inside), "writing beneath --fs-write");
    assert_blocked(&write_to(&fs_write, &outside), "writing outside --fs-write");
    // Default: the working directory and temp dirs are writable, $HOME is not.
    assert_blocked(&write_to(&[], &outside), "writing to $HOME by default");
    let tmp = std::env::temp_dir().join(format!("frona-landlock-{}", std::process::id()));
    assert_succeeded(
        &write_to(&[], tmp.to_str().unwrap()),
        "writing to /tmp by default",
    );
    let _ = std::fs::remove_file(tmp);
}

#[test]
fn net_none_leaves_loopback_only() {
    let output = frona_run(&["--quiet", "--net", "none"], &["net"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "interfaces=lo loopback=true",
        "{}",
        verdict(&output)
    );
    let host = frona_run(&["--quiet"], &["net"]).output().unwrap();
    assert_ne!(
        String::from_utf8_lossy(&host.stdout).trim(),
        "interfaces=lo loopback=true",
        "host network shared"
    );
    let conflict = frona()
        .args(["run", "--net", "none", "--isolation", "off", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(conflict.status.code(), Some(125), "{}", verdict(&conflict));
}

/// Real programs run normally under the default profile.
#[test]
fn real_programs_run_isolated() {
    let cases: &[(&str, &[&str], &str)] = &[
        ("sh", &["-c", "echo sh-ok $((6*7))"], "sh-ok 42"),
        (
            "python3",
            &[
                "-c",
                "import subprocess,threading; print('py-ok', subprocess.run(['echo','x'],capture_output=True).stdout)",
            ],
            "py-ok b'x\\n'",
        ),
        (
            "node",
            &[
                "-e",
                "require('child_process').execSync('true'); console.log('node-ok', 6*7)",
            ],
            "node-ok 42",
        ),
        (
            "git",
            &[
                "-c",
                "init.defaultBranch=main",
                "init",
                "-q",
                "/tmp/frona-git-test",
            ],
            "",
        ),
        (
            "git",
            &["-C", "/tmp/frona-git-test", "status", "--short", "--branch"],
            "## No commits yet on main",
        ),
    ];
    for (program, args, expected) in cases {
        let output = frona()
            .args(["run", "--quiet", "--", program])
            .args(*args)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{program}: {}",
            verdict(&output)
        );
        assert!(
            String::from_utf8_lossy(&output.stdout).contains(expected),
            "{program}: {}",
            verdict(&output)
        );
    }
    let _ = std::fs::remove_dir_all("/tmp/frona-git-test");
}

#[test]
fn a_static_binary_runs_isolated() {
    let dir = std::env::temp_dir().join(format!("frona-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("hello.c");
    std::fs::write(&source, "#include <stdio.h>\n#include <unistd.h>\nint main(void){ if (fork()==0) return 0; printf(\"static-ok\\n\"); return 0; }\n").unwrap();
    let binary = dir.join("hello");
    let built = command(
        "cc",
        &[
            "-static",
            "-O1",
            "-o",
            binary.to_str().unwrap(),
            source.to_str().unwrap(),
        ],
    )
    .output();
    match built {
        Ok(out) if out.status.success() => {}
        other => {
            eprintln!(
                "SKIPPED a_static_binary_runs_isolated: cannot build a static binary with cc: {other:?}"
            );
            return;
        }
    }
    let output = frona()
        .args(["run", "--quiet", "--"])
        .arg(&binary)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "static-ok",
        "{}",
        verdict(&output)
    );
}

/// The same defences hold for an unprivileged caller (user namespace path), when this kernel
/// lets unprivileged users create user namespaces.
#[test]
fn unprivileged_caller_is_isolated_too() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!(
            "SKIPPED unprivileged_caller_is_isolated_too: needs root to switch to an unprivileged user"
        );
        return;
    }
    let doctor = command(
        "setpriv",
        &["--reuid=65534", "--regid=65534", "--clear-groups", "--"],
    )
    .arg(crate::support::frona_bin())
    .args(["doctor", "--json"])
    .current_dir("/")
    .output()
    .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    if doc["namespaces_probe"]["ok"] != true {
        eprintln!(
            "SKIPPED unprivileged_caller_is_isolated_too: this kernel refuses unprivileged user namespaces: {doc}"
        );
        return;
    }
    let home = FakeHome::new("nobody");
    let as_nobody = |agent_args: &[&str]| -> Output {
        command(
            "setpriv",
            &["--reuid=65534", "--regid=65534", "--clear-groups", "--"],
        )
        .arg(crate::support::frona_bin())
        .args(["run", "--quiet", "--"])
        .arg(agent_bin())
        .args(agent_args)
        .env("HOME", &home.dir)
        .current_dir("/tmp")
        .output()
        .unwrap()
    };
    let paths = home.paths();
    let mut read = vec!["attack", "read-files", MARKER];
    read.extend(paths.iter().map(String::as_str));
    assert_blocked(&as_nobody(&read), "unprivileged: reading credential files");
    for name in ["find-frona", "ptrace-child", "new-userns", "remount-proc"] {
        assert_blocked(
            &as_nobody(&["attack", name]),
            &format!("unprivileged: {name}"),
        );
    }
    let env = as_nobody(&["env"]);
    assert_eq!(env.status.code(), Some(0), "{}", verdict(&env));
    let id = command(
        "setpriv",
        &["--reuid=65534", "--regid=65534", "--clear-groups", "--"],
    )
    .arg(crate::support::frona_bin())
    .args(["run", "--quiet", "--", "id", "-u"])
    .current_dir("/tmp")
    .output()
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&id.stdout).trim(),
        "65534",
        "the agent keeps the caller's uid: {}",
        verdict(&id)
    );
}

#[test]
fn doctor_reports_the_kernel_and_the_plan() {
    let output = frona().args(["doctor", "--json"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", verdict(&output));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["os"], "linux");
    assert!(doc["landlock_abi"].get("ok").is_some());
    assert_eq!(doc["plan"]["mode"], "required");
    assert_eq!(doc["plan"]["seccomp"], true);
    let text = frona().arg("doctor").output().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("frona run would apply"));
}

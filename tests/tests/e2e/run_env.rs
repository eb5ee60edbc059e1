//! `frona run` and `frona env check`: what reaches the agent's environment, and what frona says.

use std::process::Output;

use serde_json::Value;

use crate::support::{Running, frona, frona_run};

const OPENAI: &str = "sk-proj-Zq8vK2mN4pL6xR1tY3wB5cD7eF9gH0jK";
const GITHUB: &str = "ghp_R4nd0mL00k1ngT0k3nV4lu3F0rT3st1ng00";
const DB_URL: &str = "postgres://app:Sup3rS3cretPw@db.internal:5432/app";

/// Every secret a test plants; none may ever appear in frona's output.
const SECRETS: &[&str] = &[
    OPENAI,
    GITHUB,
    "Sup3rS3cretPw",
    "hunter2-pass-value",
    "aws-secret-zzz",
];

fn agent_env(output: &Output) -> serde_json::Map<String, Value> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no agent output; stderr: {}", stderr(output)));
    match serde_json::from_str(line).unwrap() {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_no_secret_in(text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "secret leaked into output:\n{text}");
    }
}

fn planted() -> Vec<(&'static str, &'static str)> {
    vec![
        ("OPENAI_API_KEY", OPENAI),
        ("AWS_SECRET_ACCESS_KEY", "aws-secret-zzz"),
        ("DB_PASSWORD", "hunter2-pass-value"),
        ("INNOCENT_LOOKING", GITHUB),
        ("DATABASE_URL", DB_URL),
        ("HOME", "/home/agent"),
        ("EDITOR", "vi"),
        ("LANG", "C.UTF-8"),
    ]
}

#[test]
fn credentials_are_stripped_by_name_and_value_and_the_rest_passes() {
    let output = frona_run(&[], &["env"]).envs(planted()).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let env = agent_env(&output);
    for gone in [
        "OPENAI_API_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "DB_PASSWORD",
        "INNOCENT_LOOKING",
        "DATABASE_URL",
    ] {
        assert!(!env.contains_key(gone), "{gone} reached the agent");
    }
    assert_eq!(env["HOME"], "/home/agent");
    assert_eq!(env["EDITOR"], "vi");
    assert_eq!(env["PATH"], "/usr/local/bin:/usr/bin:/bin");
    assert_eq!(env.len(), 4, "unexpected variables: {env:?}");

    let report = stderr(&output);
    assert_no_secret_in(&report);
    assert_no_secret_in(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(report.lines().count(), 1, "one-line report: {report}");
    for expected in [
        "OPENAI_API_KEY (name matches *_API_KEY)",
        "AWS_SECRET_ACCESS_KEY (name matches AWS_SECRET_ACCESS_KEY)",
        "DB_PASSWORD (name matches *PASSWORD*)",
        "INNOCENT_LOOKING (value looks like a GitHub token)",
        "DATABASE_URL (value looks like a URL with a password)",
    ] {
        assert!(
            report.contains(expected),
            "missing `{expected}` in {report}"
        );
    }
}

#[test]
fn quiet_silences_the_report() {
    let output = frona_run(&["--quiet"], &["env"])
        .envs(planted())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stderr(&output), "");
}

#[test]
fn keep_passes_a_named_variable_and_strip_adds_a_glob() {
    let output = frona_run(
        &["--keep", "INNOCENT_LOOKING", "--strip", "edit*"],
        &["env"],
    )
    .envs(planted())
    .output()
    .unwrap();
    let env = agent_env(&output);
    assert_eq!(env["INNOCENT_LOOKING"], GITHUB);
    assert!(!env.contains_key("EDITOR"));
    assert!(!env.contains_key("OPENAI_API_KEY"));
    assert!(stderr(&output).contains("EDITOR (--strip edit*)"));
}

#[test]
fn allowlist_mode_passes_only_the_base_list_and_keep() {
    let output = frona_run(&["--env-mode", "allowlist", "--keep", "EDITOR"], &["env"])
        .envs(planted())
        .env("DISPLAY", ":0")
        .env("LC_TIME", "C")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let env = agent_env(&output);
    let mut names: Vec<&str> = env.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["EDITOR", "HOME", "LANG", "LC_TIME", "PATH"]);
    let report = stderr(&output);
    assert!(
        report.contains("1 variable not in the allowlist"),
        "{report}"
    );
    assert_no_secret_in(&report);
}

#[test]
fn env_check_reports_without_running_and_json_is_stable() {
    let output = frona()
        .args(["env", "check", "--json"])
        .envs(planted())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_no_secret_in(&stdout);
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["mode"], "default");
    let stripped: Vec<(&str, &str)> = doc["stripped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["reason"].as_str().unwrap()))
        .collect();
    assert!(stripped.contains(&("OPENAI_API_KEY", "name")));
    assert!(stripped.contains(&("INNOCENT_LOOKING", "value")));
    assert_eq!(stripped.len(), 5);

    let table = frona()
        .args(["env", "check"])
        .envs(planted())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert_no_secret_in(&text);
    assert!(
        text.contains("INNOCENT_LOOKING") && text.contains("value looks like a GitHub token"),
        "{text}"
    );
    assert!(text.contains("5 stripped, 4 passed"), "{text}");
}

/// The values must be gone from frona's own `/proc/<pid>/environ` while the agent runs (root
/// can always read that file, so the block itself must be clean).
#[test]
fn frona_environ_holds_no_stripped_value() {
    let mut cmd = frona_run(&["--quiet"], &["signals", "SIGUSR1"]);
    cmd.envs(planted());
    let mut running = Running::start(cmd);
    running.expect_line("ready");
    let environ = std::fs::read(format!("/proc/{}/environ", running.pid())).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        environ.contains("EDITOR=vi"),
        "read the real block: {environ}"
    );
    assert_no_secret_in(&environ);
    running.signal(nix::sys::signal::Signal::SIGUSR1);
    assert_eq!(running.finish().0, 0);
}

#[test]
fn usage_errors_exit_125_and_help_exits_0() {
    let output = frona().args(["run", "--bogus"]).output().unwrap();
    assert_eq!(output.status.code(), Some(125));
    let output = frona()
        .args(["run", "--strip", "A=B", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(125));
    assert!(stderr(&output).contains("hint:"));
    let output = frona().args(["run", "--help"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("--env-mode"));
}

/// frona is non-dumpable: a process of the same user (the agent's) cannot read its environ or
/// memory. Run as an unprivileged user, since root bypasses the check.
#[test]
fn same_user_cannot_read_frona_process_files() {
    let as_nobody = |mut cmd: std::process::Command| -> std::process::Command {
        if nix::unistd::Uid::effective().is_root() {
            let mut wrapped = std::process::Command::new("setpriv");
            wrapped.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
            wrapped.arg(cmd.get_program()).args(cmd.get_args());
            wrapped
                .env_clear()
                .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))));
            cmd = wrapped;
        }
        cmd
    };
    let mut running = Running::start(as_nobody(frona_run(&["--quiet"], &["signals", "SIGUSR1"])));
    running.expect_line("ready");
    for file in ["environ", "mem"] {
        let path = format!("/proc/{}/{file}", running.pid());
        let read = as_nobody(crate::support::command("cat", &[&path]))
            .output()
            .unwrap();
        assert!(!read.status.success(), "same user could read {path}");
        assert!(
            String::from_utf8_lossy(&read.stderr).contains("Permission denied"),
            "{read:?}"
        );
    }
    running.signal(nix::sys::signal::Signal::SIGUSR1);
    assert_eq!(running.finish().0, 0);
}

//! The command line's conventions: shell completions, the man page, `--json` on status
//! commands, JSON logs on stderr.

use std::io::Write as _;
use std::process::Stdio;

use serde_json::Value;

use crate::support::{Running, frona, frona_run, text};

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let output = frona().args(["completions", shell]).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        let script = String::from_utf8_lossy(&output.stdout);
        assert!(script.len() > 1000, "{shell}: {script}");
        for word in ["credential", "config", "isolation"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
        assert!(
            !script.contains("__init"),
            "{shell} completes the hidden helper"
        );
    }
}

#[test]
fn bash_completion_is_valid_bash() {
    let output = frona().args(["completions", "bash"]).output().unwrap();
    let mut bash = std::process::Command::new("bash")
        .arg("-n")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    bash.stdin
        .take()
        .unwrap()
        .write_all(&output.stdout)
        .unwrap();
    let checked = bash.wait_with_output().unwrap();
    assert!(checked.status.success(), "{}", text(&checked));
}

#[test]
fn man_page_has_every_subcommand() {
    let output = frona().arg("man").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let page = String::from_utf8_lossy(&output.stdout);
    assert!(page.contains(".TH frona 1"), "{page}");
    for sub in [
        "RUN",
        "ENV CHECK",
        "DOCTOR",
        "SECRET SET",
        "CREDENTIAL REGISTER",
        "TOOL",
        "CALL",
        "APPROVALS",
        "GRANT LIST",
        "AUDIT",
        "POLICY EXPLAIN",
        "CONFIG SHOW",
        "COMPLETIONS",
    ] {
        assert!(page.contains(&format!(".SH \"FRONA {sub}\"")), "no {sub}");
    }
    assert!(
        page.contains("\\-\\-stop\\-timeout"),
        "run's options missing"
    );
}

/// With `FRONA_LOG_FORMAT=json` every line frona logs on stderr is one JSON object.
#[test]
fn json_logs_on_stderr() {
    // A warning from the supervisor: the agent ignored SIGTERM.
    let mut cmd = frona_run(
        &["--quiet", "--isolation", "off", "--stop-timeout", "100ms"],
        &["ignore-term"],
    );
    cmd.env("FRONA_LOG_FORMAT", "json");
    let mut running = Running::start(cmd);
    running.expect_line("ready");
    running.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, stderr) = running.finish();
    assert_eq!(code, 137, "{stderr}");
    let lines: Vec<Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["level"] == "WARN"
            && l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("SIGKILL"))),
        "{stderr}"
    );
    // And a warning of frona's own, from the main process.
    let output = frona()
        .args(["env", "check"])
        .env("FRONA_LOG", "loud")
        .env("FRONA_LOG_FORMAT", "json")
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&output.stderr);
    let first: Value = serde_json::from_str(line.lines().next().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(first["level"], "WARN");
    assert!(first["timestamp"].is_string());
}

/// Status commands print JSON documents with the documented fields.
#[test]
fn status_commands_print_json() {
    let state = std::env::temp_dir().join(format!("frona-cli-json-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).unwrap();
    let json = |args: &[&str]| -> Value {
        let output = frona()
            .args(args)
            .env("FRONA_STATE_DIR", &state)
            .env("FRONA_CONFIG_DIR", &state)
            .env("FRONA_DATA_DIR", &state)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&output)))
    };
    let verify = json(&["audit", "verify", "--json"]);
    assert_eq!(verify["intact"], true, "{verify}");
    assert_eq!(verify["records"], 0);
    assert!(json(&["approvals", "--json"]).is_array());
    assert!(json(&["grant", "list", "--json"]).is_array());
    assert!(json(&["credential", "list", "--json"]).is_array());
    let check = json(&["env", "check", "--json"]);
    assert!(
        check["stripped"].is_array() && check["kept"].is_array(),
        "{check}"
    );
    assert!(json(&["config", "show", "--json"])["settings"].is_array());
    let _ = std::fs::remove_dir_all(&state);
}

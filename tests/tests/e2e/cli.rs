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

/// `frona credential list | head -1`: when the reader goes away frona ends quietly with 141,
/// as `cat` would, not with a panic and its backtrace.
#[test]
fn a_closed_pipe_ends_a_listing_quietly() {
    use std::io::BufRead as _;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("frona-pipe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("config")).unwrap();
    // More than a pipe holds (64 KiB), so that frona is still writing when the reader leaves.
    let mut registry = String::from("credentials:\n");
    for i in 0..3000 {
        registry.push_str(&format!(
            "- name: credential-{i}\n  backend: local\n  path: some/long/path/to/secret-{i}\n"
        ));
    }
    std::fs::write(dir.join("config/credentials.yaml"), registry).unwrap();
    let mut child = frona()
        .args(["credential", "list"])
        .env("FRONA_CONFIG_DIR", dir.join("config"))
        .env("FRONA_DATA_DIR", dir.join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("NAME\t"), "{first}");
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(141), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
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

/// A scratch directory with `policies/net.yaml` and frona's own directories, removed on drop.
struct PolicyDir(std::path::PathBuf);

impl PolicyDir {
    fn new(name: &str, policy: &str) -> Self {
        let root = std::env::temp_dir().join(format!("frona-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("policies")).unwrap();
        std::fs::write(root.join("policies/net.yaml"), policy).unwrap();
        Self(root)
    }

    fn frona(&self, args: &[&str]) -> std::process::Output {
        frona()
            .args(args)
            .arg("--policy")
            .arg(self.0.join("policies"))
            .env("FRONA_CONFIG_DIR", &self.0)
            .env("FRONA_STATE_DIR", &self.0)
            .env("FRONA_DATA_DIR", &self.0)
            .env("FRONA_SYSTEM_CONFIG", self.0.join("no-system.yaml"))
            .output()
            .unwrap()
    }
}

impl Drop for PolicyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const NETWORK: &str = "network:
  - name: github
    allow: [github.com, \"*.github.com\"]
  - name: no-gists
    deny: gist.github.com
    reason: gists can publish code
";

/// `frona policy test` decides `connect:` cases as the egress proxy does; a failing one makes
/// it exit 1, named with what happened instead.
#[test]
fn policy_test_decides_egress_cases() {
    let dir = PolicyDir::new("egress-cases", NETWORK);
    let cases = dir.0.join("cases.yaml");
    std::fs::write(
        &cases,
        "cases:
  - name: the API
    connect: api.github.com
    expect: permit
    rule: github
  - name: gists
    connect: http://gist.github.com/acme
    expect: deny
    rule: no-gists
",
    )
    .unwrap();
    let output = dir.frona(&["policy", "test", &cases.display().to_string()]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        text(&output).contains("ok    the API\n"),
        "{}",
        text(&output)
    );
    assert!(
        text(&output).contains("2 passed, 0 failed"),
        "{}",
        text(&output)
    );

    std::fs::write(
        &cases,
        "cases:
  - name: the API
    connect: api.github.com
    expect: permit
  - name: ssh to github is expected to work
    connect: github.com:22
    expect: permit
",
    )
    .unwrap();
    let output = dir.frona(&["policy", "test", &cases.display().to_string()]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains(
            "FAIL  ssh to github is expected to work: expected Permit, got Deny by no rule \
             (port 22 of `github.com` is not allowed)"
        ),
        "{}",
        text(&output)
    );
    let output = dir.frona(&["policy", "test", "--json", &cases.display().to_string()]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (doc["passed"].clone(), doc["failed"].clone()),
        (1.into(), 1.into())
    );
    assert_eq!(doc["cases"][1]["name"], "ssh to github is expected to work");

    // A malformed case is an error in the file, not a failed case.
    std::fs::write(
        &cases,
        "cases:\n  - name: asks\n    connect: github.com\n    expect: ask\n",
    )
    .unwrap();
    let output = dir.frona(&["policy", "test", &cases.display().to_string()]);
    assert_eq!(output.status.code(), Some(125), "{}", text(&output));
    assert!(text(&output).contains("never asked"), "{}", text(&output));
}

/// `frona policy explain --connect` decides as the egress proxy: the host and port, then
/// each address the name resolves to (`localhost` is in /etc/hosts).
#[test]
fn policy_explain_connect_decides_as_the_egress_proxy() {
    let dir = PolicyDir::new("explain-connect", NETWORK);
    let explain = |args: &[&str]| -> Value {
        let output = dir.frona(&[&["policy", "explain", "--json", "--connect"][..], args].concat());
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", text(&output));
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&output)))
    };
    let doc = explain(&["gist.github.com"]);
    assert_eq!(doc["decision"]["effect"], "deny");
    assert_eq!(doc["decision"]["rule"], "no-gists");
    assert_eq!(doc["decision"]["reason"], "gists can publish code");
    assert!(
        doc["addresses"].is_null(),
        "nothing resolved for a refused host: {doc}"
    );

    let doc = explain(&["http://api.github.com/repos", "--no-resolve"]);
    assert_eq!(doc["decision"]["effect"], "permit");
    assert_eq!(doc["decision"]["rule"], "github");
    assert_eq!(doc["connect"]["port"], 80);
    assert_eq!(doc["connect"]["plain_http"], true);
    assert!(doc["addresses"].is_null(), "{doc}");

    // A name does not vouch for a loopback address; the address pattern does.
    let doc = explain(&["localhost:8443", "--allow-host", "localhost:8443"]);
    assert_eq!(doc["host_decision"]["allowed"], true, "{doc}");
    assert_eq!(doc["decision"]["effect"], "deny", "{doc}");
    assert!(doc["decision"]["rule"].is_null());
    assert_eq!(doc["allow_host_source"], "flag");
    let addresses = doc["addresses"].as_array().unwrap();
    let v4 = addresses
        .iter()
        .find(|a| a["address"] == "127.0.0.1")
        .unwrap();
    assert_eq!(
        (v4["class"].clone(), v4["allowed"].clone()),
        ("loopback".into(), false.into())
    );
    assert!(
        v4["reason"]
            .as_str()
            .unwrap()
            .contains("--allow-host 127.0.0.1:8443"),
        "{v4}"
    );
    let doc = explain(&[
        "localhost:8443",
        "--allow-host",
        "localhost:8443",
        "--allow-host",
        "127.0.0.1:8443",
    ]);
    assert_eq!(doc["decision"]["effect"], "permit", "{doc}");
    assert_eq!(doc["decision"]["rule"], "--allow-host");

    // `--proxy-resolve` answers as it does for `frona run`.
    let doc = explain(&[
        "build.github.com",
        "--proxy-resolve",
        "build.github.com=169.254.169.254",
    ]);
    assert_eq!(doc["decision"]["effect"], "deny", "{doc}");
    assert_eq!(doc["addresses"][0]["class"], "metadata");

    // The text form names the deciding rule, or says "not allowed".
    let output = dir.frona(&["policy", "explain", "--connect", "example.com:8443"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        text(&output).contains("Deny, not allowed: `example.com` is not allowed"),
        "{}",
        text(&output)
    );
    let output = dir.frona(&["policy", "explain", "--connect", "ftp://example.com"]);
    assert_eq!(output.status.code(), Some(125), "{}", text(&output));
    assert!(text(&output).contains("hint:"), "{}", text(&output));
}

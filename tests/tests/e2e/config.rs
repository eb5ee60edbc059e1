//! Layered configuration: precedence (flags > FRONA_* > project > user > system), `frona config
//! show`, and the attacks a hostile agent can make by writing `.frona/config.yaml` in the
//! working tree for the next run.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::{agent_bin, frona, text};

const OPENAI: &str = "sk-proj-Zq8vK2mN4pL6xR1tY3wB5cD7eF9gH0jK";

/// `root/home` (HOME, with the user file in `.config/frona`), `root/etc/config.yaml` (the
/// system file) and `root/home/proj` (the agent's working tree).
struct Layout {
    root: PathBuf,
}

impl Layout {
    fn new(name: &str) -> Self {
        let root = std::env::temp_dir().join(format!("frona-cfg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for dir in ["etc", "home/.config/frona", "home/proj"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        Self { root }
    }

    fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    fn proj(&self) -> PathBuf {
        self.root.join("home/proj")
    }

    fn user_file(&self) -> PathBuf {
        self.root.join("home/.config/frona/config.yaml")
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    fn user(&self, text: &str) -> &Self {
        Self::write(&self.user_file(), text);
        self
    }

    fn system(&self, text: &str) -> &Self {
        Self::write(&self.root.join("etc/config.yaml"), text);
        self
    }

    fn project(&self, text: &str) -> &Self {
        Self::write(&self.proj().join(".frona/config.yaml"), text);
        self
    }

    /// `frona ARGS` in the project, with this layout's HOME and system file.
    fn frona(&self, args: &[&str]) -> Command {
        let mut cmd = frona();
        cmd.args(args)
            .current_dir(self.proj())
            .env("HOME", self.home())
            .env("FRONA_SYSTEM_CONFIG", self.root.join("etc/config.yaml"));
        cmd
    }

    /// `frona run [flags] -- frona-test-agent env` with a credential in the environment.
    fn run_env(&self, flags: &[&str]) -> Output {
        let mut cmd = self.frona(&["run"]);
        cmd.args(flags)
            .arg("--")
            .arg(agent_bin())
            .arg("env")
            .env("OPENAI_API_KEY", OPENAI)
            .env("MY_VAR", "plain")
            .env("EDITOR", "vi");
        cmd.output().unwrap()
    }
}

impl Drop for Layout {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn agent_env(output: &Output) -> serde_json::Map<String, Value> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no agent output: {}", text(output)));
    match serde_json::from_str(line).unwrap() {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// Asserts that frona refused to start because of `key` in the project file, pointing to the
/// user file, and that nothing ran.
fn assert_refused(output: &Output, key: &str, layout: &Layout) {
    let all = text(output);
    assert_eq!(output.status.code(), Some(125), "{all}");
    assert!(output.stdout.is_empty(), "the agent ran: {all}");
    assert!(all.contains(&format!("`{key}")), "key not named: {all}");
    assert!(all.contains("project file"), "{all}");
    assert!(
        all.contains(&format!("user file `{}`", layout.user_file().display())),
        "no hint to the user file: {all}"
    );
    assert!(!all.contains(OPENAI), "secret in output: {all}");
}

/// The whole attack: an agent writes `.frona/config.yaml` asking for no isolation. Isolated as
/// usual it cannot (persistence protection keeps `.frona/` read-only); with that lifted
/// (`--writable .frona`), the next `frona run` in that tree refuses to start instead of obeying.
#[test]
fn agent_written_project_file_cannot_turn_isolation_off() {
    let layout = Layout::new("iso-off");
    let plant = |flags: &[&str]| {
        layout
            .frona(
                &[
                    &["run", "--quiet", "--isolation", "best-effort"][..],
                    flags,
                    &["--"],
                ]
                .concat(),
            )
            .args([
                "sh",
                "-c",
                "mkdir -p .frona && printf 'run:\\n  isolation: off\\n' > .frona/config.yaml",
            ])
            .output()
            .unwrap()
    };
    let refused = plant(&[]);
    assert_ne!(refused.status.code(), Some(0), "{}", text(&refused));
    assert!(!layout.proj().join(".frona").exists());
    let write = plant(&["--writable", ".frona"]);
    assert_eq!(write.status.code(), Some(0), "{}", text(&write));
    assert!(layout.proj().join(".frona/config.yaml").is_file());
    assert_refused(&layout.run_env(&[]), "run.isolation: off", &layout);
    // Nor through best-effort, nor against a user file that asked for required.
    layout.project("run: {isolation: best-effort}\n");
    assert_refused(&layout.run_env(&[]), "run.isolation: best-effort", &layout);
    // A loosening project file is an error even when a flag would override it: it is hostile.
    let output = layout.run_env(&["--isolation", "best-effort", "--quiet"]);
    assert_refused(&output, "run.isolation", &layout);
}

/// The system file is outside the working tree, but may be somewhere the agent can write (here
/// under /tmp, which Landlock allows): `frona run` hides it, so the agent cannot rewrite the
/// next run's defaults.
#[cfg(target_os = "linux")]
#[test]
fn agent_cannot_rewrite_the_system_file() {
    let layout = Layout::new("system-file");
    layout.system("run: {isolation: required}\n");
    let system = layout.root.join("etc/config.yaml");
    let output = layout
        .frona(&["run", "--quiet", "--"])
        .args([
            "sh",
            "-c",
            "echo 'run: {isolation: off}' > \"$1\"; cat \"$1\"",
            "sh",
        ])
        .arg(&system)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    // The agent saw an empty file, and its write went nowhere.
    assert!(output.stdout.is_empty(), "{}", text(&output));
    assert_eq!(
        std::fs::read_to_string(&system).unwrap(),
        "run: {isolation: required}\n"
    );
}

/// A project file cannot keep a credential in the agent's environment, nor loosen the env mode
/// the user chose.
#[test]
fn project_file_cannot_keep_a_secret_env_var() {
    let layout = Layout::new("keep");
    layout.project("run:\n  keep: [OPENAI_API_KEY]\n");
    assert_refused(&layout.run_env(&[]), "run.keep", &layout);
    layout.user("run: {env_mode: allowlist}\n");
    layout.project("run: {env_mode: default}\n");
    assert_refused(&layout.run_env(&[]), "run.env_mode: default", &layout);
    layout.project("run: {unhide: [/]}\n");
    assert_refused(&layout.run_env(&[]), "run.unhide", &layout);
}

/// A project file cannot point a backend at a server of the agent's choosing: frona refuses
/// before it connects anywhere.
#[test]
fn project_file_cannot_redirect_a_backend() {
    let layout = Layout::new("backend");
    let attacker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    attacker.set_nonblocking(true).unwrap();
    let addr = format!("http://{}", attacker.local_addr().unwrap());
    layout.project(&format!("backends:\n  vault:\n    addr: {addr}\n"));
    for args in [&["credential", "health"][..], &["config", "show"]] {
        let output = layout
            .frona(args)
            .env("VAULT_TOKEN", "hvs.token-for-the-real-vault")
            .output()
            .unwrap();
        assert_refused(&output, "backends.vault.addr", &layout);
    }
    assert!(
        attacker.accept().is_err(),
        "frona connected to the agent's server"
    );
}

/// Each key that could loosen protection is refused in a project file, whatever its value.
#[test]
fn project_file_keys_that_could_loosen_are_refused() {
    let layout = Layout::new("keys");
    for (yaml, key) in [
        ("run: {fs_write: [/]}", "run.fs_write"),
        ("run: {agent: trusted-ci}", "run.agent"),
        ("run: {policy: /tmp}", "run.policy"),
        ("run: {quiet: true}", "run.quiet"),
        ("run: {stop_timeout: 1h}", "run.stop_timeout"),
        (
            "backends: {onepassword: {token_file: /tmp/x}}",
            "backends.onepassword.token_file",
        ),
    ] {
        layout.project(yaml);
        assert_refused(&layout.run_env(&[]), key, &layout);
    }
}

/// Tightening is welcome: a project file may strip more, hide more, and narrow the env mode.
#[test]
fn project_file_may_tighten() {
    let layout = Layout::new("tighten");
    layout.project("run: {strip: [MY_*], env_mode: allowlist, isolation: required}\n");
    let output = layout.run_env(&["--quiet"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let env = agent_env(&output);
    assert!(!env.contains_key("MY_VAR"), "{env:?}");
    assert!(
        !env.contains_key("EDITOR"),
        "allowlist not applied: {env:?}"
    );
    assert!(!env.contains_key("OPENAI_API_KEY"));
}

/// A project file someone else could have written is refused; so is a link (which could make
/// frona quote another file in its error).
#[test]
fn project_file_must_be_the_users_own_plain_file() {
    let layout = Layout::new("owner");
    layout.project("run: {strip: [X_*]}\n");
    let path = layout.proj().join(".frona/config.yaml");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).unwrap();
    let output = layout.run_env(&[]);
    assert_eq!(output.status.code(), Some(125), "{}", text(&output));
    assert!(text(&output).contains("writable by other users"));

    std::fs::remove_file(&path).unwrap();
    let secret = layout.root.join("secret.yaml");
    std::fs::write(&secret, format!("aws_secret: {OPENAI}\n")).unwrap();
    std::os::unix::fs::symlink(&secret, &path).unwrap();
    let output = layout.run_env(&[]);
    assert_eq!(output.status.code(), Some(125), "{}", text(&output));
    assert!(text(&output).contains("symbolic link"), "{}", text(&output));
    assert!(!text(&output).contains(OPENAI));

    std::fs::remove_file(&path).unwrap();
    layout.project("run: {strip: [X_*]}\n");
    if nix::unistd::Uid::effective().is_root() {
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        let output = layout.run_env(&[]);
        assert_eq!(output.status.code(), Some(125), "{}", text(&output));
        assert!(text(&output).contains("not by you"), "{}", text(&output));
    } else {
        eprintln!("skipping the other-owner case: creating a file of another user needs root");
    }
}

/// The isolation level `frona doctor` (and so `frona run`) would use.
fn planned_mode(layout: &Layout, flags: &[&str], vars: &[(&str, &str)]) -> String {
    let mut cmd = layout.frona(&["doctor", "--json"]);
    cmd.args(flags).envs(vars.iter().copied());
    let output = cmd.output().unwrap();
    let doc: Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&output)));
    doc["plan"]["mode"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn precedence_is_flag_env_project_user_system() {
    let layout = Layout::new("precedence");
    layout.system("run: {isolation: best-effort}\n");
    assert_eq!(planned_mode(&layout, &[], &[]), "best-effort");
    layout.user("run: {isolation: off}\n");
    assert_eq!(planned_mode(&layout, &[], &[]), "off");
    layout.project("run: {isolation: best-effort}\n");
    assert_eq!(planned_mode(&layout, &[], &[]), "best-effort");
    let env = [("FRONA_ISOLATION", "off")];
    assert_eq!(planned_mode(&layout, &[], &env), "off");
    assert_eq!(
        planned_mode(&layout, &["--isolation", "best-effort"], &env),
        "best-effort"
    );
}

#[test]
fn config_show_names_sources_and_hides_secrets() {
    let layout = Layout::new("show");
    layout
        .system("run: {stop_timeout: 20s}\n")
        .user(
            "run: {strip: [ACME_*]}\nbackends:\n  vault: {addr: \"https://frona:Sup3rS3cretPw@vault:8200\", token_file: ~/vt, role_id: my-role}\n",
        )
        .project("run: {net: none, strip: [PROJ_*]}\n");
    let output = layout
        .frona(&["config", "show", "--json", "--agent", "ci"])
        .env("FRONA_QUIET", "1")
        .env("VAULT_TOKEN", "hvs.the-real-token-value")
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    for secret in ["Sup3rS3cretPw", "hvs.the-real-token-value", "my-role"] {
        assert!(!all.contains(secret), "{secret} shown: {all}");
    }
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    let settings = doc["settings"].as_array().unwrap();
    let find = |key: &str| -> Vec<&Value> { settings.iter().filter(|s| s["key"] == key).collect() };
    let one = |key: &str| -> &Value {
        let found = find(key);
        assert_eq!(found.len(), 1, "{key}: {found:?}");
        found[0]
    };
    assert_eq!(one("run.stop_timeout")["source"], "system");
    assert_eq!(one("run.net")["source"], "project");
    assert_eq!(one("run.net")["value"], "none");
    assert_eq!(one("run.quiet")["source"], "env");
    assert_eq!(one("run.quiet")["env"], "FRONA_QUIET");
    assert_eq!(one("run.agent")["source"], "flag");
    assert_eq!(one("run.agent")["flag"], "--agent");
    assert_eq!(one("run.isolation")["source"], "default");
    assert_eq!(one("backends.vault.addr")["value"], "<set>");
    assert_eq!(one("backends.vault.role_id")["value"], "<set>");
    assert_eq!(one("backends.vault.token_file")["source"], "env");
    assert_eq!(one("backends.vault.token_file")["env"], "VAULT_TOKEN");
    assert_eq!(one("backends.vault.token_file")["value"], "<set>");
    assert_eq!(
        one("run.policy")["value"],
        layout
            .home()
            .join(".config/frona/policies")
            .display()
            .to_string()
    );
    let strips = find("run.strip");
    assert_eq!(strips.len(), 2, "{strips:?}");
    assert_eq!(strips[0]["source"], "user");
    assert_eq!(strips[0]["path"], layout.user_file().display().to_string());
    assert_eq!(strips[1]["source"], "project");
    let files = doc["files"].as_array().unwrap();
    let layers: Vec<&str> = files.iter().filter_map(|f| f["layer"].as_str()).collect();
    assert_eq!(layers, ["system", "user", "project"]);

    // The table says the same.
    let output = layout.frona(&["config", "show"]).output().unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("run.net") && l.contains("project ")),
        "{table}"
    );
}

/// `run.allow_host` names where it came from, as other keys do; `frona policy explain
/// --connect` decides with the same patterns as `frona run` unless `--allow-host` is given.
#[test]
fn allow_host_names_its_source() {
    let layout = Layout::new("allow-host");
    layout.user("run: {allow_host: [api.github.com]}\n");
    let show = |flags: &[&str]| -> Value {
        let output = layout
            .frona(&[&["config", "show", "--json"][..], flags].concat())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
        let settings = doc["settings"].as_array().unwrap();
        let found: Vec<&Value> = settings
            .iter()
            .filter(|s| s["key"] == "run.allow_host")
            .collect();
        assert_eq!(found.len(), 1, "{found:?}");
        found[0].clone()
    };
    let setting = show(&[]);
    assert_eq!(setting["source"], "user", "{setting}");
    assert_eq!(setting["path"], layout.user_file().display().to_string());
    assert_eq!(setting["value"], serde_json::json!(["api.github.com"]));
    let setting = show(&["--allow-host", "*.npmjs.org"]);
    assert_eq!(setting["source"], "flag", "{setting}");
    assert_eq!(setting["flag"], "--allow-host");
    assert_eq!(setting["value"], serde_json::json!(["*.npmjs.org"]));

    let explain = |flags: &[&str]| -> Value {
        let output = layout
            .frona(
                &[
                    &[
                        "policy",
                        "explain",
                        "--json",
                        "--no-resolve",
                        "--connect",
                        "api.github.com",
                    ][..],
                    flags,
                ]
                .concat(),
            )
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let doc = explain(&[]);
    assert_eq!(doc["decision"]["effect"], "permit", "{doc}");
    assert_eq!(doc["allow_host_source"], "user");
    let doc = explain(&["--allow-host", "*.npmjs.org"]);
    assert_eq!(
        doc["decision"]["effect"], "deny",
        "the flag replaces the list: {doc}"
    );
    assert_eq!(doc["allow_host_source"], "flag");
}

/// The shipped example parses, and every key in it is one frona knows.
#[test]
fn example_config_parses() {
    let layout = Layout::new("example");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/config.yaml");
    let text_of = std::fs::read_to_string(&example).unwrap();
    layout.user(&text_of);
    let output = layout.frona(&["config", "show"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
}

/// An unknown key is an error naming the file.
#[test]
fn config_typos_are_errors() {
    let layout = Layout::new("typo");
    layout.user("run: {isolaton: off}\n");
    let output = layout.frona(&["env", "check"]).output().unwrap();
    assert_eq!(output.status.code(), Some(125));
    let all = text(&output);
    assert!(all.contains("isolaton"), "{all}");
    assert!(
        all.contains(&layout.user_file().display().to_string()),
        "{all}"
    );
}

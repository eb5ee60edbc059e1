use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use super::*;
use crate::env_vars::{
    FRONA_AGENT, FRONA_ISOLATION, FRONA_QUIET, FRONA_STOP_TIMEOUT, FRONA_SYSTEM_CONFIG,
};
use crate::settings::value::{EnvModeArg, IsolationArg, NetArg, Timeout};

/// What the tests look at: the layers' merged values below the flags (`file`), every entry
/// with its origin (`settings`), the files looked for, and what was loaded.
#[derive(Debug)]
struct Config {
    file: Merged,
    settings: Vec<Entry>,
    files: Vec<LayerFile>,
    loaded: Loaded,
}

#[derive(Debug)]
struct Merged {
    run: RunLayer,
    backends: BackendsSection,
}

impl Config {
    fn new(loaded: Loaded) -> Self {
        let none = RunLayer::default();
        let backends = loaded.resolve(&none).unwrap().backends;
        Self {
            file: Merged {
                run: loaded.merged(&none),
                backends,
            },
            settings: loaded.entries(&none),
            files: loaded
                .files
                .iter()
                .map(|f| LayerFile {
                    layer: f.layer,
                    path: f.path.clone(),
                    found: f.found,
                })
                .collect(),
            loaded,
        }
    }

    /// The settings with `flags` on top.
    fn resolve(&self, flags: &RunLayer) -> Run {
        self.loaded.resolve(flags).unwrap().run
    }
}

/// The flags of `frona ARGS`.
fn run_flags(args: &[&str]) -> RunLayer {
    use clap::Parser as _;
    let cli = crate::cli::Cli::try_parse_from(args).unwrap();
    let crate::cli::Command::Run(args) = cli.command else {
        panic!("not run")
    };
    args.flags()
}

/// A scratch tree: `home/` (HOME), `etc/config.yaml` (the system file),
/// `home/.config/frona/config.yaml` (the user file) and `home/proj` (a project).
struct Tree {
    root: PathBuf,
}

impl Tree {
    fn new(name: &str) -> Self {
        let root = std::env::temp_dir().join(format!("frona-layers-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("home/.config/frona")).unwrap();
        std::fs::create_dir_all(root.join("home/proj/.frona")).unwrap();
        std::fs::create_dir_all(root.join("home/proj/sub")).unwrap();
        Self { root }
    }

    fn write(&self, rel: &str, text: &str) -> &Self {
        let path = self.root.join(rel);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        self
    }

    fn system(&self, text: &str) -> &Self {
        self.write("etc/config.yaml", text)
    }

    fn user(&self, text: &str) -> &Self {
        self.write("home/.config/frona/config.yaml", text)
    }

    fn project(&self, text: &str) -> &Self {
        self.write("home/proj/.frona/config.yaml", text)
    }

    fn load_with(&self, vars: &[(&str, &str)]) -> Result<Config, Failure> {
        let mut pairs = vec![
            (
                "HOME".to_owned(),
                self.root.join("home").display().to_string(),
            ),
            (
                FRONA_SYSTEM_CONFIG.to_owned(),
                self.root.join("etc/config.yaml").display().to_string(),
            ),
        ];
        pairs.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let env =
            EnvSnapshot::from_pairs(pairs.into_iter().map(|(k, v)| (k.into(), v.into_bytes())));
        load_from(&env, &self.root.join("home/proj/sub")).map(Config::new)
    }

    fn load(&self) -> Result<Config, Failure> {
        self.load_with(&[])
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn origin_of<'a>(config: &'a Config, key: &str) -> &'a Origin {
    &config
        .settings
        .iter()
        .rfind(|s| s.key == key)
        .unwrap_or_else(|| panic!("no {key}"))
        .origin
}

/// `frona run` without a flag runs with the defaults, and `--help` shows them (`defs`).
#[test]
fn defaults_match_the_flags() {
    let tree = Tree::new("defaults");
    let config = tree.load().unwrap();
    let args = config.resolve(&run_flags(&["frona", "run", "--", "x"]));
    let run = &config.file.run;
    assert_eq!(
        serde_json::to_value(run.isolation).unwrap(),
        serde_json::to_value(Some(args.isolation.isolation)).unwrap()
    );
    assert_eq!(
        serde_json::to_value(run.net).unwrap(),
        serde_json::to_value(Some(args.isolation.net)).unwrap()
    );
    assert_eq!(
        serde_json::to_value(run.env_mode).unwrap(),
        serde_json::to_value(Some(args.env.env_mode)).unwrap()
    );
    assert_eq!(run.stop_timeout, Some(Timeout(args.stop_timeout)));
    assert_eq!(run.quiet, Some(args.quiet));
    assert_eq!(run.agent.as_deref(), Some(args.agent.as_str()));
    assert_eq!(origin_of(&config, "run.isolation"), &Origin::Default);
}

#[test]
fn layers_override_per_key() {
    let tree = Tree::new("per-key");
    tree.system(
        "run: {isolation: off, net: none, agent: sys}\nbackends: {vault: {addr: http://sys}}",
    )
    .user("run: {isolation: best-effort}\nbackends: {vault: {namespace: ns}}")
    .project("run: {isolation: required}");
    let config = tree.load_with(&[(FRONA_AGENT, "from-env")]).unwrap();
    let run = &config.file.run;
    assert!(matches!(run.isolation, Some(IsolationArg::Required)));
    assert!(matches!(run.net, Some(NetArg::None)));
    assert_eq!(run.agent.as_deref(), Some("from-env"));
    assert_eq!(
        config.file.backends.vault.addr.as_deref(),
        Some("http://sys")
    );
    assert_eq!(config.file.backends.vault.namespace.as_deref(), Some("ns"));
    assert!(matches!(
        origin_of(&config, "run.isolation"),
        Origin::File(Layer::Project, _)
    ));
    assert!(matches!(
        origin_of(&config, "run.net"),
        Origin::File(Layer::System, _)
    ));
    assert_eq!(origin_of(&config, "run.agent"), &Origin::Env(FRONA_AGENT));
    assert!(config.files.iter().all(|f| f.found));
}

#[test]
fn strip_and_hide_accumulate() {
    let tree = Tree::new("accumulate");
    tree.system("run: {strip: [SYS_*]}")
        .user("run: {strip: [USER_*], hide: [~/secret]}")
        .project("run: {strip: [PROJ_*], hide: [local]}");
    let config = tree.load().unwrap();
    assert_eq!(
        config.file.run.strip,
        Some(vec!["SYS_*".into(), "USER_*".into(), "PROJ_*".into()])
    );
    assert_eq!(
        config.file.run.hide,
        Some(vec![
            tree.root.join("home/secret"),
            tree.root.join("home/proj/local")
        ])
    );
    assert_eq!(
        config
            .settings
            .iter()
            .filter(|s| s.key == "run.strip")
            .count(),
        3
    );
    // Flags add to them too.
    let args = config.resolve(&RunLayer {
        strip: Some(vec!["FLAG_*".into()]),
        ..RunLayer::default()
    });
    assert_eq!(args.env.strip, ["SYS_*", "USER_*", "PROJ_*", "FLAG_*"]);
}

/// A project file may tighten what the layers below set ...
#[test]
fn project_may_tighten() {
    let tree = Tree::new("tighten");
    tree.user("run: {isolation: off, quiet: true, stop_timeout: 1m}")
        .project("run: {isolation: best-effort, net: none, env_mode: allowlist, quiet: false, stop_timeout: 5s}");
    let run = tree.load().unwrap().file.run;
    assert!(matches!(run.isolation, Some(IsolationArg::BestEffort)));
    assert!(matches!(run.env_mode, Some(EnvModeArg::Allowlist)));
    assert_eq!(run.quiet, Some(false));
    assert_eq!(run.stop_timeout, Some(Timeout(Duration::from_secs(5))));
}

/// ... and nothing else: each of these is an error naming the key and the user file.
#[test]
fn project_may_not_loosen_or_set_other_keys() {
    for (text, key) in [
        ("run: {isolation: off}", "run.isolation"),
        ("run: {isolation: best-effort}", "run.isolation"),
        ("run: {net: host}", ""),
        ("run: {quiet: true}", "run.quiet"),
        ("run: {stop_timeout: 1h}", "run.stop_timeout"),
        ("run: {keep: [OPENAI_API_KEY]}", "run.keep"),
        ("run: {unhide: [~/.ssh]}", "run.unhide"),
        (
            "run: {allow_socket: [/var/run/docker.sock]}",
            "run.allow_socket",
        ),
        ("run: {reveal: [.env]}", "run.reveal"),
        ("run: {fs_write: [/]}", "run.fs_write"),
        ("run: {writable: [.git/hooks]}", "run.writable"),
        ("run: {agent: trusted}", "run.agent"),
        ("run: {policy: /tmp/permissive}", "run.policy"),
        (
            "backends: {vault: {addr: https://evil.example}}",
            "backends.vault.addr",
        ),
        (
            "backends: {vault: {token_file: /tmp/t}}",
            "backends.vault.token_file",
        ),
        (
            "backends: {aws: {endpoint_url: https://evil.example}}",
            "backends.aws.endpoint_url",
        ),
    ] {
        let tree = Tree::new("loosen");
        tree.project(text);
        match tree.load() {
            Ok(_) if key.is_empty() => {} // `net: host` is the default: not a loosening
            Ok(config) => panic!("{text} was accepted: {:?}", config.file.run),
            Err(err) => {
                assert!(!key.is_empty(), "{text}: {err:?}");
                assert!(err.message.contains(&format!("`{key}")), "{text}: {err:?}");
                let hint = err.hint.unwrap_or_default();
                assert!(hint.contains("user file"), "{hint}");
                assert!(hint.contains(".config/frona/config.yaml"), "{hint}");
            }
        }
    }
}

/// Tightening is judged against the layers below, not the defaults alone.
#[test]
fn loosening_is_judged_against_the_user_file() {
    let tree = Tree::new("against-user");
    tree.user("run: {net: none}").project("run: {net: host}");
    let err = tree.load().unwrap_err();
    assert!(err.message.contains("`run.net: host`"), "{err:?}");
    assert!(err.message.contains("user "), "{err:?}");
}

#[test]
fn env_values_are_checked() {
    let tree = Tree::new("env");
    let err = tree
        .load_with(&[(FRONA_ISOLATION, "sometimes")])
        .unwrap_err();
    assert!(err.message.contains("FRONA_ISOLATION"), "{err:?}");
    let err = tree.load_with(&[(FRONA_QUIET, "perhaps")]).unwrap_err();
    assert!(err.message.contains("FRONA_QUIET"), "{err:?}");
    let config = tree
        .load_with(&[(FRONA_QUIET, "1"), (FRONA_STOP_TIMEOUT, "250ms")])
        .unwrap();
    assert_eq!(config.file.run.quiet, Some(true));
    assert_eq!(
        config.file.run.stop_timeout,
        Some(Timeout(Duration::from_millis(250)))
    );
}

#[test]
fn flags_win() {
    let tree = Tree::new("flags");
    tree.user("run: {isolation: best-effort, agent: cfg, keep: [A], stop_timeout: 3s}");
    let config = tree.load().unwrap();
    let args = config.resolve(&run_flags(&[
        "frona",
        "run",
        "--isolation",
        "off",
        "--",
        "x",
    ]));
    assert!(matches!(args.isolation.isolation, IsolationArg::Off));
    assert_eq!(args.agent, "cfg");
    assert_eq!(args.env.keep, [OsString::from("A")]);
    assert_eq!(args.stop_timeout, Duration::from_secs(3));
}

#[test]
fn a_bad_file_names_itself() {
    let tree = Tree::new("bad");
    tree.user("run: {isolaton: off}");
    let err = tree.load().unwrap_err();
    assert!(err.message.starts_with("user config `"), "{err:?}");
    assert!(err.message.contains("isolaton"), "{err:?}");
}

/// `run.net` ranks host < proxy < none, and a project file may only drop `run.allow_host`
/// patterns, never add one.
#[test]
fn net_proxy_and_allow_host_in_a_project() {
    let tree = Tree::new("net-proxy");
    tree.user("run: {allow_host: [api.github.com, \"*.npmjs.org\"]}")
        .project("run: {net: proxy, allow_host: [api.github.com]}");
    let run = tree.load().unwrap().file.run;
    assert!(matches!(run.net, Some(NetArg::Proxy)));
    assert_eq!(
        run.allow_host
            .map(|h| h.into_iter().map(|p| p.0).collect::<Vec<_>>()),
        Some(vec!["api.github.com".to_owned()])
    );

    let tree = Tree::new("net-proxy-none");
    tree.user("run: {net: proxy}").project("run: {net: none}");
    assert!(tree.load().is_ok(), "proxy → none tightens");
    tree.project("run: {net: host}");
    let err = tree.load().unwrap_err();
    assert!(err.message.contains("`run.net: host`"), "{err:?}");

    let tree = Tree::new("allow-add");
    tree.user("run: {allow_host: [api.github.com]}")
        .project("run: {allow_host: [api.github.com, evil.example.com]}");
    let err = tree.load().unwrap_err();
    assert!(err.message.contains("adds `evil.example.com`"), "{err:?}");
    assert!(err.hint.unwrap_or_default().contains("user file"));

    let tree = Tree::new("allow-bad");
    tree.user("run: {allow_host: [\"*.com\"]}");
    let err = tree.load().unwrap_err();
    assert!(err.message.contains("whole top-level domain"), "{err:?}");
}

/// `run.protect` accumulates like `run.hide`: a project file adds to it, flags too.
#[test]
fn protect_accumulates_and_a_project_may_add() {
    let tree = Tree::new("protect");
    tree.user("run: {protect: [~/.cache/pre-commit], writable: [.vscode]}")
        .project("run: {protect: [Makefile]}");
    let config = tree.load().unwrap();
    assert_eq!(
        config.file.run.protect,
        Some(vec![
            tree.root.join("home/.cache/pre-commit"),
            tree.root.join("home/proj/Makefile")
        ])
    );
    let args = config.resolve(&run_flags(&["frona", "run", "--protect", "x", "--", "a"]));
    assert_eq!(args.isolation.protect.len(), 3);
    // A relative path in the user file is taken from its directory.
    assert_eq!(
        args.isolation.writable,
        [tree.root.join("home/.config/frona/.vscode")]
    );
}

/// `run.aws_credential` comes from the user or system file; a project file (which the agent
/// can write) may not choose which role the agent's SDKs get.
#[test]
fn aws_credential_only_below_the_project() {
    let tree = Tree::new("aws-credential");
    tree.user("run: {aws_credential: aws-deploy}");
    let run = tree.load().unwrap().file.run;
    assert_eq!(run.aws_credential.as_deref(), Some("aws-deploy"));
    tree.project("run: {aws_credential: aws-admin}");
    let err = tree.load().unwrap_err();
    assert!(
        err.message
            .contains("`run.aws_credential` cannot be set in the project file"),
        "{err:?}"
    );
}

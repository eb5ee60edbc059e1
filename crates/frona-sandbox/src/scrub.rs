//! Which environment variables are credentials, and the environment the agent gets instead.
//!
//! A variable is stripped when its **name** matches [`CREDENTIAL_NAME_PATTERNS`] or a `--strip`
//! glob, when it is service-manager plumbing meant for frona itself ([`SERVICE_MANAGER_VARS`]),
//! or when its **value** has a credential shape ([`detect`]). In [`EnvMode::Allowlist`] only
//! [`ALLOWLIST_BASE`] and `--keep` names pass. `--keep NAME` wins over everything: it is the
//! user naming one variable they want the agent to see.
//!
//! The analysis never copies or reports a value: [`ScrubReport`] holds names and reasons only.

mod detect;

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use frona_policy::glob::{self, Case};
use serde::Serialize;

use crate::environ::EnvSnapshot;

pub use detect::detect as detect_credential_value;

/// Names stripped in every mode: case-insensitive globs, the documented list.
pub const CREDENTIAL_NAME_PATTERNS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "AZURE_CLIENT_SECRET",
    "VAULT_TOKEN",
    "OP_SERVICE_ACCOUNT_TOKEN",
    "OP_CONNECT_TOKEN",
    "INFISICAL_TOKEN",
    "FRONA_MASTER_KEY",
    "FRONA_PASSPHRASE",
    "*_API_KEY",
    "*_APIKEY",
    "*_ACCESS_KEY",
    "*_ACCESS_KEY_ID",
    "*_TOKEN",
    "*SECRET*",
    "*PASSWORD*",
    "*PASSWD*",
    "*_PASS",
    "*CREDENTIAL*",
    "*_PRIVATE_KEY",
    "*_MASTER_KEY",
    "*PASSPHRASE*",
    "*_DSN",
];

/// What systemd sets for the service it started (frona), with what each one hands over. The
/// agent must not get them: with them it could talk to the service manager in frona's name
/// (readiness, watchdog, stop), take over sockets passed to frona, or find frona's own
/// credentials. Exact names, stripped in every mode. `INVOCATION_ID` and `JOURNAL_STREAM` pass:
/// they identify the unit and its log stream and grant nothing.
pub const SERVICE_MANAGER_VARS: &[(&str, &str)] = &[
    ("NOTIFY_SOCKET", "its notify socket"),
    ("WATCHDOG_USEC", "its watchdog"),
    ("WATCHDOG_PID", "its watchdog"),
    ("LISTEN_FDS", "sockets passed to it"),
    ("LISTEN_PID", "sockets passed to it"),
    ("LISTEN_FDNAMES", "sockets passed to it"),
    ("FDSTORE", "its file descriptor store"),
    ("CREDENTIALS_DIRECTORY", "its credentials"),
    ("SYSTEMD_EXEC_PID", "its process id"),
    ("MANAGERPID", "the service manager's process id"),
];

/// Variables that point the agent at a socket acting for the user, and what it grants. Each is
/// stripped unless `--allow-socket` passes the socket it names: isolation hides the socket
/// ([`crate::isolation::ambient`]), and a variable pointing at nothing only misleads tools.
pub const SOCKET_VARS: &[(&str, &str)] = &[
    ("SSH_AUTH_SOCK", "an ssh-agent"),
    ("GPG_AGENT_INFO", "gpg-agent"),
    ("DBUS_SESSION_BUS_ADDRESS", "the session bus"),
    ("DOCKER_HOST", "a Docker daemon"),
    ("CONTAINER_HOST", "a Podman service"),
];

/// The socket path a [`SOCKET_VARS`] value names, when it names one by path. `None` for a
/// value that is not a local socket (`DOCKER_HOST=tcp://…`).
fn socket_path<'a>(name: &str, value: &'a [u8]) -> Option<Option<&'a Path>> {
    let text = std::str::from_utf8(value).ok()?;
    let path = match name {
        "SSH_AUTH_SOCK" => Some(text),
        "GPG_AGENT_INFO" => text.split(':').next(),
        "DOCKER_HOST" | "CONTAINER_HOST" => Some(text.strip_prefix("unix://")?),
        // `unix:path=/run/user/1000/bus,guid=…`; `unix:abstract=…` and the like name no path.
        "DBUS_SESSION_BUS_ADDRESS" => {
            if !text.starts_with("unix:") {
                return None;
            }
            text.split([':', ',', ';'])
                .find_map(|part| part.strip_prefix("path="))
        }
        _ => return None,
    };
    Some(path.map(Path::new).filter(|p| p.is_absolute()))
}

/// What `name` hands over when it is one of [`SERVICE_MANAGER_VARS`].
pub fn service_manager_var(name: &OsStr) -> Option<&'static str> {
    SERVICE_MANAGER_VARS
        .iter()
        .find(|(n, _)| name.as_bytes() == n.as_bytes())
        .map(|(_, what)| *what)
}

/// Names that pass in [`EnvMode::Allowlist`] (globs), unless their value looks like a credential.
pub const ALLOWLIST_BASE: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LC_*", "TZ", "TMPDIR", "PWD",
];

/// How the agent's environment is built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvMode {
    /// Everything passes except credentials.
    #[default]
    Default,
    /// Only [`ALLOWLIST_BASE`] and `--keep` names pass.
    Allowlist,
}

/// The user's adjustments to the built-in rules.
#[derive(Clone, Debug, Default)]
pub struct ScrubOptions {
    pub mode: EnvMode,
    /// Exact names that always pass (`--keep`).
    pub keep: Vec<OsString>,
    /// Extra globs to strip (`--strip`).
    pub strip: Vec<String>,
    /// Sockets passed to the agent (`--allow-socket`): a [`SOCKET_VARS`] variable naming one
    /// (or one beneath one) passes.
    pub allow_socket: Vec<PathBuf>,
}

/// Why a variable was stripped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum Reason {
    /// Name matches a built-in credential pattern.
    Name { pattern: &'static str },
    /// Value has a credential shape.
    Value { looks_like: &'static str },
    /// Name matches a `--strip` glob.
    Strip { pattern: String },
    /// Set by the service manager for frona itself ([`SERVICE_MANAGER_VARS`]).
    ServiceManager { what: &'static str },
    /// Points at a socket that acts for the user ([`SOCKET_VARS`]).
    Socket { what: &'static str },
    /// Allowlist mode and the name is not allowed.
    NotAllowed,
}

impl Reason {
    /// Whether the variable looked like a credential, as opposed to merely not being allowed.
    pub fn is_credential(&self) -> bool {
        !matches!(self, Reason::NotAllowed)
    }
}

/// Human wording, as in the stderr report: "name matches *_TOKEN".
impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Name { pattern } => write!(f, "name matches {pattern}"),
            Reason::Value { looks_like } => write!(f, "value looks like {looks_like}"),
            Reason::Strip { pattern } => write!(f, "--strip {pattern}"),
            Reason::ServiceManager { what } => write!(f, "set by systemd for frona: {what}"),
            Reason::Socket { what } => write!(f, "points at {what}; pass it with --allow-socket"),
            Reason::NotAllowed => f.write_str("not in the allowlist"),
        }
    }
}

/// Why a variable passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeepReason {
    /// Default mode, nothing credential-like about it.
    Ordinary,
    /// Allowlist mode, name in [`ALLOWLIST_BASE`].
    Allowlisted,
    /// Named by `--keep`.
    Keep,
}

/// The verdict on one variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Keep(KeepReason),
    Strip(Reason),
}

/// The verdict on every variable, by name; holds no values.
#[derive(Clone, Debug)]
pub struct ScrubReport {
    pub mode: EnvMode,
    pub entries: Vec<(OsString, Decision)>,
}

/// Whether `name` matches an environment variable glob: the policy's glob language
/// ([`frona_policy::glob`]), ignoring ASCII case as variable names are compared by users.
fn env_glob(pattern: &str, name: &[u8]) -> bool {
    glob::matches(pattern.as_bytes(), name, Case::Insensitive)
}

/// Whether `pattern` is a usable variable glob: non-empty and free of `=` and NUL, which no
/// name holds.
fn valid_env_glob(pattern: &str) -> bool {
    !pattern.is_empty() && !pattern.contains(['=', '\0'])
}

/// A glob given to `--strip` that can never match a name.
#[derive(Debug, thiserror::Error)]
#[error("invalid --strip pattern `{0}`: must be non-empty and contain no `=`")]
pub struct InvalidPattern(pub String);

impl ScrubOptions {
    /// Checks the user's patterns once, so that [`decide`] cannot fail.
    pub fn validate(&self) -> Result<(), InvalidPattern> {
        match self.strip.iter().find(|p| !valid_env_glob(p)) {
            Some(bad) => Err(InvalidPattern(bad.clone())),
            None => Ok(()),
        }
    }
}

/// Decides one variable. The value is only inspected, never stored.
pub fn decide(name: &OsStr, value: &[u8], options: &ScrubOptions) -> Decision {
    let name_bytes = name.as_bytes();
    if options.keep.iter().any(|k| k == name) {
        return Decision::Keep(KeepReason::Keep);
    }
    if let Some(pattern) = options.strip.iter().find(|p| env_glob(p, name_bytes)) {
        return Decision::Strip(Reason::Strip {
            pattern: pattern.clone(),
        });
    }
    // Before the name patterns, which would catch CREDENTIALS_DIRECTORY with a vaguer reason.
    if let Some(what) = service_manager_var(name) {
        return Decision::Strip(Reason::ServiceManager { what });
    }
    if let Some((var, what)) = SOCKET_VARS.iter().find(|(n, _)| name_bytes == n.as_bytes())
        && let Some(path) = socket_path(var, value)
        && !path.is_some_and(|p| options.allow_socket.iter().any(|a| p.starts_with(a)))
    {
        return Decision::Strip(Reason::Socket { what });
    }
    if let Some(pattern) = CREDENTIAL_NAME_PATTERNS
        .iter()
        .find(|p| env_glob(p, name_bytes))
    {
        return Decision::Strip(Reason::Name { pattern });
    }
    if let Some(looks_like) = detect::detect(value) {
        return Decision::Strip(Reason::Value { looks_like });
    }
    match options.mode {
        EnvMode::Default => Decision::Keep(KeepReason::Ordinary),
        EnvMode::Allowlist if ALLOWLIST_BASE.iter().any(|p| env_glob(p, name_bytes)) => {
            Decision::Keep(KeepReason::Allowlisted)
        }
        EnvMode::Allowlist => Decision::Strip(Reason::NotAllowed),
    }
}

/// Decides every variable of `env` and returns the report and the environment the agent gets.
pub fn scrub(
    env: &EnvSnapshot,
    options: &ScrubOptions,
) -> (ScrubReport, Vec<(OsString, OsString)>) {
    let mut entries = Vec::with_capacity(env.len());
    let mut kept = Vec::with_capacity(env.len());
    for (name, value) in env.iter() {
        let decision = decide(name, value, options);
        if matches!(decision, Decision::Keep(_)) {
            kept.push((name.to_owned(), OsStr::from_bytes(value).to_owned()));
        }
        entries.push((name.to_owned(), decision));
    }
    (
        ScrubReport {
            mode: options.mode,
            entries,
        },
        kept,
    )
}

impl ScrubReport {
    /// Names and reasons of the stripped variables, in environment order.
    pub fn stripped(&self) -> impl Iterator<Item = (&OsStr, &Reason)> {
        self.entries.iter().filter_map(|(n, d)| match d {
            Decision::Strip(r) => Some((n.as_os_str(), r)),
            Decision::Keep(_) => None,
        })
    }

    /// Names of the variables that pass.
    pub fn kept(&self) -> impl Iterator<Item = (&OsStr, KeepReason)> {
        self.entries.iter().filter_map(|(n, d)| match d {
            Decision::Keep(r) => Some((n.as_os_str(), *r)),
            Decision::Strip(_) => None,
        })
    }

    /// The one-line stderr report: names and reasons, never values. `None` when nothing was
    /// stripped. Variables merely absent from the allowlist are counted, not listed.
    pub fn summary_line(&self) -> Option<String> {
        let mut credentials = self
            .stripped()
            .filter(|(_, r)| r.is_credential())
            .peekable();
        let not_allowed = self.stripped().filter(|(_, r)| !r.is_credential()).count();
        if credentials.peek().is_none() && not_allowed == 0 {
            return None;
        }
        let mut line = String::from("frona: stripped ");
        let mut first = true;
        for (name, reason) in credentials {
            if !first {
                line.push_str(", ");
            }
            first = false;
            let _ = write!(line, "{} ({reason})", name.to_string_lossy());
        }
        if not_allowed > 0 {
            let sep = if first { "" } else { ", and " };
            let noun = if not_allowed == 1 {
                "variable"
            } else {
                "variables"
            };
            let _ = write!(line, "{sep}{not_allowed} {noun} not in the allowlist");
        }
        Some(line)
    }

    /// The machine-readable form used by `frona env check --json`.
    pub fn to_json_value(&self) -> JsonReport<'_> {
        JsonReport {
            mode: self.mode,
            stripped: self
                .stripped()
                .map(|(name, reason)| JsonStripped {
                    name: name.to_string_lossy().into_owned(),
                    detail: reason.to_string(),
                    reason,
                })
                .collect(),
            kept: self
                .kept()
                .map(|(name, reason)| JsonKept {
                    name: name.to_string_lossy().into_owned(),
                    reason,
                })
                .collect(),
        }
    }
}

/// `frona env check --json` document. Field names are stable.
#[derive(Debug, Serialize)]
pub struct JsonReport<'a> {
    pub mode: EnvMode,
    pub stripped: Vec<JsonStripped<'a>>,
    pub kept: Vec<JsonKept>,
}

#[derive(Debug, Serialize)]
pub struct JsonStripped<'a> {
    pub name: String,
    #[serde(flatten)]
    pub reason: &'a Reason,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct JsonKept {
    pub name: String,
    pub reason: KeepReason,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(pairs: &[(&str, &str)]) -> EnvSnapshot {
        EnvSnapshot::from_pairs(
            pairs
                .iter()
                .map(|(n, v)| (OsString::from(n), v.as_bytes().to_vec())),
        )
    }

    fn stripped_names(report: &ScrubReport) -> Vec<String> {
        report
            .stripped()
            .map(|(n, _)| n.to_string_lossy().into_owned())
            .collect()
    }

    /// A realistic desktop + CI environment must pass untouched.
    #[test]
    fn no_false_positives_on_a_realistic_environment() {
        let env = snapshot(&[
            (
                "PATH",
                "/home/dev/.cargo/bin:/usr/local/bin:/usr/bin:/bin:/usr/games",
            ),
            ("HOME", "/home/dev"),
            ("USER", "dev"),
            ("LOGNAME", "dev"),
            ("SHELL", "/bin/bash"),
            ("TERM", "xterm-256color"),
            ("COLORTERM", "truecolor"),
            ("LANG", "en_US.UTF-8"),
            ("LC_ALL", "en_US.UTF-8"),
            (
                "LS_COLORS",
                "rs=0:di=01;34:ln=01;36:mh=00:pi=40;33:so=01;35:do=01;35:bd=40;33;01:cd=40;33;01:or=40;31;01:mi=00:su=37;41:sg=30;43:ca=00:tw=30;42:ow=34;42:st=37;44:ex=01;32:*.tar=01;31:*.tgz=01;31",
            ),
            ("XDG_RUNTIME_DIR", "/run/user/1000"),
            ("XDG_SESSION_TYPE", "wayland"),
            ("XDG_CONFIG_DIRS", "/etc/xdg/xdg-ubuntu:/etc/xdg"),
            (
                "XDG_DATA_DIRS",
                "/usr/share/ubuntu:/usr/local/share/:/usr/share/",
            ),
            ("DBUS_SESSION_BUS_ADDRESS", "unix:path=/run/user/1000/bus"),
            ("SSH_AUTH_SOCK", "/run/user/1000/keyring/ssh"),
            ("SSH_AGENT_PID", "2412"),
            ("SSH_ASKPASS", "/usr/bin/ssh-askpass"),
            ("GPG_AGENT_INFO", "/run/user/1000/gnupg/S.gpg-agent:0:1"),
            ("DISPLAY", ":0"),
            ("WAYLAND_DISPLAY", "wayland-0"),
            ("EDITOR", "nvim"),
            ("PAGER", "less -R"),
            ("LESSOPEN", "| /usr/bin/lesspipe %s"),
            (
                "SESSION_MANAGER",
                "local/dev-laptop:@/tmp/.ICE-unix/2200,unix/dev-laptop:/tmp/.ICE-unix/2200",
            ),
            ("GIT_COMMIT", "3f786850e387550fdab836ed7e6dc881de23001b"),
            ("GITHUB_SHA", "9fceb02d0ae598e95dc970b74767f19372d61af8"),
            ("GITHUB_REPOSITORY", "frona-dev/frona"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_RUN_ID", "7123456789"),
            ("RUNNER_TEMP", "/home/runner/work/_temp"),
            ("CI", "true"),
            ("CARGO_HOME", "/home/dev/.cargo"),
            ("RUSTUP_TOOLCHAIN", "stable-x86_64-unknown-linux-gnu"),
            ("VIRTUAL_ENV", "/home/dev/src/app/.venv"),
            ("NVM_DIR", "/home/dev/.nvm"),
            ("HISTCONTROL", "ignoreboth"),
            ("INVOCATION_ID", "5f1c2b8e0d0f4c5e9a7b3c2d1e0f9a8b"),
            ("JOURNAL_STREAM", "8:44321"),
            ("DATABASE_URL", "postgres://localhost:5432/app_dev"),
            ("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"),
            ("KUBECONFIG", "/home/dev/.kube/config"),
            ("TMPDIR", "/tmp"),
            ("PWD", "/home/dev/src/app"),
            ("OLDPWD", "/home/dev"),
            ("SHLVL", "2"),
            ("_", "/usr/bin/env"),
        ]);
        let (report, kept) = scrub(&env, &ScrubOptions::default());
        // Only the sockets that act for the user go, each with what it grants.
        let sockets = [
            "DBUS_SESSION_BUS_ADDRESS",
            "SSH_AUTH_SOCK",
            "GPG_AGENT_INFO",
        ];
        assert_eq!(stripped_names(&report), sockets);
        assert_eq!(kept.len(), env.len() - sockets.len());
        assert_eq!(
            report.summary_line().unwrap(),
            "frona: stripped DBUS_SESSION_BUS_ADDRESS (points at the session bus; pass it with \
             --allow-socket), SSH_AUTH_SOCK (points at an ssh-agent; pass it with --allow-socket), \
             GPG_AGENT_INFO (points at gpg-agent; pass it with --allow-socket)"
        );
    }

    #[test]
    fn socket_variables_pass_only_with_their_socket_allowed() {
        let env = snapshot(&[
            ("SSH_AUTH_SOCK", "/tmp/ssh-XYZ/agent.42"),
            ("DOCKER_HOST", "unix:///run/user/1000/docker.sock"),
            ("CONTAINER_HOST", "tcp://10.0.0.5:8888"),
            (
                "DBUS_SESSION_BUS_ADDRESS",
                "unix:abstract=/tmp/dbus-x,guid=1",
            ),
        ]);
        let (report, _) = scrub(&env, &ScrubOptions::default());
        assert_eq!(
            stripped_names(&report),
            ["SSH_AUTH_SOCK", "DOCKER_HOST", "DBUS_SESSION_BUS_ADDRESS"]
        );
        let options = ScrubOptions {
            allow_socket: vec!["/tmp/ssh-XYZ".into(), "/run/user/1000/docker.sock".into()],
            ..ScrubOptions::default()
        };
        let (report, _) = scrub(&env, &options);
        assert_eq!(stripped_names(&report), ["DBUS_SESSION_BUS_ADDRESS"]);
    }

    #[test]
    fn strips_by_name_and_by_value() {
        let env = snapshot(&[
            ("OPENAI_API_KEY", "x"),
            ("GITHUB_TOKEN", "x"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("DB_PASSWORD", "x"),
            ("SENTRY_DSN", "x"),
            ("MY_VAR", "ghp_0123456789abcdefghijABCDEFGHIJ012345"),
            ("CACHE_URL", "redis://:s3cr3t@cache:6379"),
            ("PATH", "/usr/bin"),
        ]);
        let (report, kept) = scrub(&env, &ScrubOptions::default());
        assert_eq!(
            stripped_names(&report),
            [
                "OPENAI_API_KEY",
                "GITHUB_TOKEN",
                "AWS_SECRET_ACCESS_KEY",
                "DB_PASSWORD",
                "SENTRY_DSN",
                "MY_VAR",
                "CACHE_URL"
            ]
        );
        assert_eq!(kept, [(OsString::from("PATH"), OsString::from("/usr/bin"))]);
        let line = report.summary_line().unwrap();
        assert!(
            line.contains("OPENAI_API_KEY (name matches *_API_KEY)"),
            "{line}"
        );
        assert!(
            line.contains("MY_VAR (value looks like a GitHub token)"),
            "{line}"
        );
        assert!(
            line.contains("CACHE_URL (value looks like a URL with a password)"),
            "{line}"
        );
        assert!(!line.contains("ghp_") && !line.contains("s3cr3t"), "{line}");
    }

    #[test]
    fn name_patterns_ignore_case() {
        let env = snapshot(&[("openai_api_key", "x"), ("Db_Password", "x")]);
        let (report, _) = scrub(&env, &ScrubOptions::default());
        assert_eq!(report.stripped().count(), 2);
    }

    #[test]
    fn keep_wins_and_strip_adds() {
        let env = snapshot(&[
            ("GITHUB_TOKEN", "x"),
            ("INTERNAL_HOST", "h"),
            ("OTHER", "o"),
        ]);
        let options = ScrubOptions {
            keep: vec!["GITHUB_TOKEN".into()],
            strip: vec!["internal_*".into()],
            ..ScrubOptions::default()
        };
        let (report, kept) = scrub(&env, &options);
        assert_eq!(stripped_names(&report), ["INTERNAL_HOST"]);
        assert_eq!(
            kept.iter()
                .map(|(n, _)| n.to_str().unwrap())
                .collect::<Vec<_>>(),
            ["GITHUB_TOKEN", "OTHER"]
        );
        assert!(
            report
                .summary_line()
                .unwrap()
                .contains("INTERNAL_HOST (--strip internal_*)")
        );
    }

    #[test]
    fn allowlist_mode() {
        let env = snapshot(&[
            ("PATH", "/usr/bin"),
            ("HOME", "/h"),
            ("LC_TIME", "C"),
            ("EDITOR", "vi"),
            ("DISPLAY", ":0"),
            ("GITHUB_TOKEN", "x"),
            ("TERM", "sk-proj-abcDEF1234567890abcdefGHIJ"),
        ]);
        let options = ScrubOptions {
            mode: EnvMode::Allowlist,
            keep: vec!["EDITOR".into()],
            ..ScrubOptions::default()
        };
        let (report, kept) = scrub(&env, &options);
        let kept: Vec<_> = kept.iter().map(|(n, _)| n.to_str().unwrap()).collect();
        assert_eq!(kept, ["PATH", "HOME", "LC_TIME", "EDITOR"]);
        assert_eq!(
            report.summary_line().unwrap(),
            "frona: stripped GITHUB_TOKEN (name matches *_TOKEN), TERM (value looks like an OpenAI API key), \
             and 1 variable not in the allowlist"
        );
    }

    #[test]
    fn json_report_has_names_and_reasons_only() {
        let env = snapshot(&[
            ("STRIPE", "sk_live_0123456789abcdefghijABCD"),
            ("PATH", "/bin"),
        ]);
        let (report, _) = scrub(&env, &ScrubOptions::default());
        let json = serde_json::to_string(&report.to_json_value()).unwrap();
        assert_eq!(
            json,
            r#"{"mode":"default","stripped":[{"name":"STRIPE","reason":"value","looks_like":"a Stripe key","detail":"value looks like a Stripe key"}],"kept":[{"name":"PATH","reason":"ordinary"}]}"#
        );
    }

    /// systemd's plumbing for frona never reaches the agent, in either mode, with its own
    /// reason; what merely identifies the unit passes; `--keep` still wins.
    #[test]
    fn service_manager_plumbing_is_stripped() {
        let env = snapshot(&[
            ("NOTIFY_SOCKET", "/run/systemd/notify"),
            ("WATCHDOG_USEC", "30000000"),
            ("WATCHDOG_PID", "4242"),
            ("LISTEN_FDS", "1"),
            ("LISTEN_PID", "4242"),
            ("LISTEN_FDNAMES", "broker"),
            (
                "CREDENTIALS_DIRECTORY",
                "/run/credentials/frona@coder.service",
            ),
            ("INVOCATION_ID", "5f1c2b8e0d0f4c5e9a7b3c2d1e0f9a8b"),
            ("JOURNAL_STREAM", "8:44321"),
            ("PATH", "/usr/bin"),
        ]);
        for mode in [EnvMode::Default, EnvMode::Allowlist] {
            let options = ScrubOptions {
                mode,
                ..ScrubOptions::default()
            };
            let (report, kept) = scrub(&env, &options);
            let kept: Vec<_> = kept.iter().map(|(n, _)| n.to_str().unwrap()).collect();
            assert!(
                !kept
                    .iter()
                    .any(|n| service_manager_var(OsStr::new(n)).is_some()),
                "{kept:?}"
            );
            assert!(kept.contains(&"PATH"));
            for (name, reason) in report.stripped() {
                if let Some(what) = service_manager_var(name) {
                    assert_eq!(reason, &Reason::ServiceManager { what });
                }
            }
        }
        let (report, kept) = scrub(&env, &ScrubOptions::default());
        assert_eq!(report.stripped().count(), 7);
        assert_eq!(kept.len(), 3, "INVOCATION_ID, JOURNAL_STREAM and PATH pass");
        let line = report.summary_line().unwrap();
        assert!(
            line.contains("CREDENTIALS_DIRECTORY (set by systemd for frona: its credentials)"),
            "{line}"
        );
        let json = serde_json::to_value(report.to_json_value()).unwrap();
        assert_eq!(json["stripped"][0]["reason"], "service-manager");
        assert_eq!(json["stripped"][0]["what"], "its notify socket");
        let keep = ScrubOptions {
            keep: vec!["NOTIFY_SOCKET".into()],
            ..ScrubOptions::default()
        };
        assert_eq!(
            decide(OsStr::new("NOTIFY_SOCKET"), b"/run/systemd/notify", &keep),
            Decision::Keep(KeepReason::Keep)
        );
    }

    #[test]
    fn invalid_strip_pattern_is_rejected() {
        let options = ScrubOptions {
            strip: vec!["A=B".into()],
            ..ScrubOptions::default()
        };
        assert!(options.validate().is_err());
    }
}

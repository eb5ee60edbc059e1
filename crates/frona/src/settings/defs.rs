//! Every run setting, once: the `run:` keys of the config files, their `frona run` flags, their
//! `FRONA_*` variables, defaults, doc lines, which lists accumulate, and what a project file may
//! do with each. In `--help` order.
//!
//! Adding a setting: a field in [`RunLayer`](super::layer::RunLayer), an entry here, and where it
//! is used, a field in [`Run`](super::resolved::Run).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::layer::RunLayer;
use super::setting::{Def, Flag, Group, Project, Setting, field};
use super::value::{HostPatternText, Timeout, VarName};
use crate::env_vars::{
    FRONA_AGENT, FRONA_CACHE_TTL, FRONA_ENV_MODE, FRONA_ISOLATION, FRONA_NET, FRONA_POLICY,
    FRONA_QUIET, FRONA_STOP_TIMEOUT,
};
use crate::settings::value::{EnvModeArg, IsolationArg, NetArg};

/// A flag of `group` with a value named `value_name`.
const fn flag(long: &'static str, value_name: &'static str, group: Group) -> Option<Flag> {
    Some(Flag {
        long,
        short: None,
        value_name: Some(value_name),
        default_help: None,
        long_help: None,
        group,
    })
}

/// [`flag`], whose `--help` shows `default` (the setting's default, printed).
const fn flag_with_default(
    long: &'static str,
    value_name: &'static str,
    default: &'static str,
    group: Group,
) -> Option<Flag> {
    Some(Flag {
        long,
        short: None,
        value_name: Some(value_name),
        default_help: Some(default),
        long_help: None,
        group,
    })
}

/// Shorter is stricter: a project may make frona stop sooner or forget values sooner.
fn shorter(timeout: &Timeout) -> i128 {
    -(timeout.0.as_millis() as i128)
}

/// The run settings, in `--help` order.
pub static RUN: &[&dyn Setting] = &[
    &Def::<EnvModeArg> {
        key: "run.env_mode",
        flag: flag_with_default("--env-mode", "MODE", "default", Group::Env),
        env: Some(FRONA_ENV_MODE),
        doc: "`default` strips credentials; `allowlist` passes only a base list and --keep names",
        accumulates: false,
        project: Project::Tighter(|mode| match mode {
            EnvModeArg::Default => 0,
            EnvModeArg::Allowlist => 1,
        }),
        default: Some(|_| EnvModeArg::Default),
        field: field!(env_mode),
    },
    &Def::<Vec<VarName>> {
        key: "run.keep",
        flag: flag("--keep", "NAME", Group::Env),
        env: None,
        doc: "Pass this variable to the agent even if it looks like a credential (repeatable)",
        accumulates: false,
        project: Project::Never,
        default: None,
        field: field!(keep),
    },
    &Def::<Vec<String>> {
        key: "run.strip",
        flag: flag("--strip", "GLOB", Group::Env),
        env: None,
        doc: "Also strip variables whose name matches this glob, case-insensitive (repeatable)",
        accumulates: true,
        project: Project::Adds,
        default: None,
        field: field!(strip),
    },
    &Def::<IsolationArg> {
        key: "run.isolation",
        flag: flag_with_default("--isolation", "LEVEL", "required", Group::Isolation),
        env: Some(FRONA_ISOLATION),
        doc: "`required` fails when a feature is unavailable; `best-effort` applies what it can \
              and says what it skipped; `off` only scrubs and supervises",
        accumulates: false,
        project: Project::Tighter(|level| match level {
            IsolationArg::Off => 0,
            IsolationArg::BestEffort => 1,
            IsolationArg::Required => 2,
        }),
        default: Some(|_| IsolationArg::Required),
        field: field!(isolation),
    },
    &Def::<NetArg> {
        key: "run.net",
        flag: flag_with_default("--net", "MODE", "host", Group::Isolation),
        env: Some(FRONA_NET),
        doc: "`host` shares the host's network; `none` gives the agent loopback only; `proxy` \
              (recommended) gives it loopback and frona's egress proxy, which reaches only the \
              hosts `--allow-host` and the policies' `network:` entries allow",
        accumulates: false,
        project: Project::Tighter(|net| match net {
            NetArg::Host => 0,
            NetArg::Proxy => 1,
            NetArg::None => 2,
        }),
        default: Some(|_| NetArg::Host),
        field: field!(net),
    },
    &Def::<Vec<std::path::PathBuf>> {
        key: "run.hide",
        flag: flag("--hide", "PATH", Group::Isolation),
        env: None,
        doc: "Also hide this file or directory from the agent (repeatable)",
        accumulates: true,
        project: Project::Adds,
        default: None,
        field: field!(hide),
    },
    &Def::<Vec<std::path::PathBuf>> {
        key: "run.unhide",
        flag: flag("--unhide", "PATH", Group::Isolation),
        env: None,
        doc: "Do not hide this path (or anything beneath it) from the agent (repeatable)",
        accumulates: false,
        project: Project::Never,
        default: None,
        field: field!(unhide),
    },
    &Def::<Vec<std::path::PathBuf>> {
        key: "run.allow_socket",
        flag: flag("--allow-socket", "PATH", Group::Isolation),
        env: None,
        doc: "Let the agent reach this Unix socket (or the sockets beneath this directory), \
              which frona hides by default like every socket outside the sandbox, and pass \
              the variable naming it (SSH_AUTH_SOCK, DOCKER_HOST …) (repeatable)",
        accumulates: false,
        project: Project::Never,
        default: None,
        field: field!(allow_socket),
    },
    &Def::<Vec<std::path::PathBuf>> {
        key: "run.reveal",
        flag: flag("--reveal", "PATH", Group::Isolation),
        env: None,
        doc: "Show this project `.env` file to the agent as it is, values included (by default \
              the agent sees it with every value removed) (repeatable)",
        accumulates: false,
        project: Project::Never,
        default: None,
        field: field!(reveal),
    },
    &Def::<Vec<std::path::PathBuf>> {
        key: "run.fs_write",
        flag: flag("--fs-write", "PATH", Group::Isolation),
        env: None,
        doc: "The agent may write only beneath these paths, enforced with Landlock (repeatable; \
              default: working directory, temp dirs, the user's cache)",
        accumulates: false,
        project: Project::Never,
        default: None,
        field: field!(fs_write),
    },
    &Def::<Vec<std::path::PathBuf>> {
        key: "run.protect",
        flag: Some(Flag {
            long: "--protect",
            short: None,
            value_name: Some("PATH"),
            default_help: None,
            long_help: Some(crate::settings::value::protect_help),
            group: Group::Isolation,
        }),
        env: None,
        doc: "Also keep the agent from creating or changing this path, even where it may write \
              (repeatable; persistence protection, see `--help`)",
        accumulates: true,
        project: Project::Adds,
        default: None,
        field: field!(protect),
    },
    &Def::<Vec<std::path::PathBuf>> {
        key: "run.writable",
        flag: flag("--writable", "PATH", Group::Isolation),
        env: None,
        doc: "Let the agent create and change this protected path and anything beneath it \
              (repeatable)",
        accumulates: false,
        project: Project::Never,
        default: None,
        field: field!(writable),
    },
    &Def::<bool> {
        key: "run.quiet",
        flag: Some(Flag {
            long: "--quiet",
            short: Some('q'),
            value_name: None,
            default_help: None,
            long_help: None,
            group: Group::Run,
        }),
        env: Some(FRONA_QUIET),
        doc: "Do not print the report of stripped variables",
        accumulates: false,
        // Skipped protection is always reported.
        project: Project::Tighter(|quiet| i128::from(!quiet)),
        default: Some(|_| false),
        field: field!(quiet),
    },
    &Def::<String> {
        key: "run.agent",
        flag: flag_with_default("--agent", "NAME", "default", Group::Run),
        env: Some(FRONA_AGENT),
        doc: "The agent's id, which policies and credential scopes match on",
        accumulates: false,
        project: Project::Never,
        default: Some(|_| "default".to_owned()),
        field: field!(agent),
    },
    &Def::<std::path::PathBuf> {
        key: "run.policy",
        flag: flag("--policy", "DIR", Group::Run),
        env: Some(FRONA_POLICY),
        doc: "The policy directory for the broker (default: `run.policy` in the config, else \
              $XDG_CONFIG_HOME/frona/policies). The broker starts only when this directory \
              exists",
        accumulates: false,
        project: Project::Never,
        default: Some(crate::dirs::policy_dir),
        field: field!(policy),
    },
    &Def::<Vec<HostPatternText>> {
        key: "run.allow_host",
        flag: flag("--allow-host", "PATTERN", Group::Run),
        env: None,
        doc: "With `--net proxy`: a host the agent may reach, as `api.github.com`, \
              `*.github.com`, an address or network (`10.1.2.3`, `10.0.0.0/8`), with an \
              optional `:PORT` (default 443 and 80) (repeatable; adds to the policies' \
              `network:` entries, whose denials win)",
        accumulates: false,
        project: Project::Subset,
        default: None,
        field: field!(allow_host),
    },
    &Def::<Timeout> {
        key: "run.stop_timeout",
        flag: flag_with_default("--stop-timeout", "DURATION", "10s", Group::Run),
        env: Some(FRONA_STOP_TIMEOUT),
        doc: "Time the agent gets to exit after SIGTERM before it is killed (e.g. 10s, 500ms, 2m, \
              1h30m)",
        accumulates: false,
        project: Project::Tighter(shorter),
        default: Some(|_| Timeout(Duration::from_secs(10))),
        field: field!(stop_timeout),
    },
    &Def::<Timeout> {
        key: "run.cache_ttl",
        flag: None,
        env: Some(FRONA_CACHE_TTL),
        doc: "How long the broker keeps a fetched static value before asking the backend again",
        accumulates: false,
        project: Project::Tighter(shorter),
        default: Some(|_| Timeout(Duration::from_secs(60))),
        field: field!(cache_ttl),
    },
    &Def::<String> {
        key: "run.aws_credential",
        flag: flag("--aws-credential", "NAME", Group::RunOnly),
        env: None,
        doc: "With `--net proxy`: serve this `aws-sts` credential (an AWS role) to the agent's \
              AWS SDKs at the container credentials endpoint (default: the one `aws-sts` \
              credential that applies, if there is exactly one). Each fetch is decided by the \
              policy (tool `aws-credentials`)",
        accumulates: false,
        project: Project::Never,
        default: None,
        field: field!(aws_credential),
    },
];

/// The setting of `key` (`run.net`).
pub fn get(key: &str) -> Option<&'static dyn Setting> {
    RUN.iter().copied().find(|def| def.key() == key)
}

/// What the table does with layers.
impl RunLayer {
    /// The built-in defaults: what `frona run` does with no flag and no config.
    pub fn defaults(env: &frona_sandbox::EnvSnapshot) -> RunLayer {
        let mut layer = RunLayer::default();
        for def in RUN {
            def.set_default(env, &mut layer);
        }
        layer
    }

    /// Lays a higher layer over this one, key by key.
    pub fn overlay(&mut self, higher: &RunLayer) {
        for def in RUN {
            def.overlay(self, higher);
        }
    }

    /// This layer over `lower` (uv's `Combine`: `self` wins, accumulating lists add up).
    pub fn combine(self, mut lower: RunLayer) -> RunLayer {
        lower.overlay(&self);
        lower
    }

    /// Makes every path absolute with `fix`.
    pub fn resolve_paths(&mut self, fix: &dyn Fn(&Path) -> PathBuf) {
        for def in RUN {
            def.resolve_paths(self, fix);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::layer::RunLayer;

    /// Every list that accumulates adds to what a higher layer gives, and every key is unique.
    #[test]
    fn the_table_is_consistent() {
        let mut keys: Vec<&str> = RUN.iter().map(|d| d.key()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), RUN.len());
        for def in RUN {
            assert!(def.key().starts_with("run."), "{}", def.key());
            if let Some(flag) = def.flag() {
                assert_eq!(
                    flag.long.trim_start_matches('-').replace('-', "_"),
                    def.name(),
                    "the flag is the key"
                );
            }
        }
        let env =
            frona_sandbox::EnvSnapshot::from_pairs(Vec::<(std::ffi::OsString, Vec<u8>)>::new());
        for def in RUN {
            // A `--help` default is the default, printed.
            if let Some(shown) = def.flag().and_then(|f| f.default_help) {
                let mut layer = RunLayer::default();
                def.set_default(&env, &mut layer);
                assert_eq!(
                    def.json(&layer),
                    Some(serde_json::Value::from(shown)),
                    "{}",
                    def.key()
                );
            }
        }
    }

    /// Every field of a config file's `run:` section is in the table, and each entry reads
    /// its own field.
    #[test]
    fn every_key_has_a_definition() {
        for def in RUN {
            let yaml = format!("{{{}: {}}}", def.name(), sample(def.name()));
            let layer: RunLayer = frona_policy::yaml::from_str(&yaml).unwrap();
            for other in RUN {
                assert_eq!(
                    other.json(&layer).is_some(),
                    other.key() == def.key(),
                    "{} read from `{yaml}`",
                    other.key()
                );
            }
        }
        // serde lists the struct's fields when it refuses an unknown one.
        let err = frona_policy::yaml::from_str::<RunLayer>("{bogus: 1}")
            .unwrap_err()
            .message;
        let (_, expected) = err.split_once("expected one of ").unwrap();
        let mut fields: Vec<&str> = expected
            .split(", ")
            .map(|f| f.trim_matches(|c: char| c == '`' || !c.is_ascii() || c.is_whitespace()))
            .map(|f| f.split('`').next().unwrap_or_default())
            .collect();
        let mut names: Vec<&str> = RUN.iter().map(|d| d.name()).collect();
        fields.sort_unstable();
        names.sort_unstable();
        assert_eq!(fields, names);
    }

    fn sample(name: &str) -> &'static str {
        match name {
            "isolation" => "off",
            "net" => "none",
            "env_mode" => "allowlist",
            "quiet" => "true",
            "stop_timeout" | "cache_ttl" => "1s",
            "agent" | "policy" | "aws_credential" => "x",
            "allow_host" => "[api.github.com]",
            _ => "[x]",
        }
    }

    /// docs/configuration.md documents every key and variable of the table.
    #[test]
    fn every_setting_is_documented() {
        let docs = include_str!("../../../../docs/configuration.md");
        for def in RUN {
            assert!(
                docs.contains(&format!("| `{}` |", def.name())),
                "docs/configuration.md lacks `{}`",
                def.key()
            );
            if let Some(var) = def.env_var() {
                assert!(docs.contains(var), "docs/configuration.md lacks {var}");
            }
            if let Some(flag) = def.flag() {
                assert!(
                    docs.contains(flag.long),
                    "docs/configuration.md lacks {}",
                    flag.long
                );
            }
        }
    }
}

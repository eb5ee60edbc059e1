//! frona's layered configuration: which layers there are, how they combine, and the rule that
//! keeps a project file from weakening the protection of the next run.
//!
//! Precedence, highest first: command-line flags, `FRONA_*` environment variables (see
//! `env_vars`), the project file, the user file, the system file, built-in defaults.
//!
//! - system: `/etc/frona/config.yaml` (`FRONA_SYSTEM_CONFIG` overrides the path);
//! - user: `config.yaml` in frona's config directory (`$FRONA_CONFIG_DIR`, else
//!   `$XDG_CONFIG_HOME/frona`, else `~/.config/frona`);
//! - project: `.frona/config.yaml` in the working directory or its nearest ancestor that has
//!   one, searched up to (not including) the home directory and `/`.
//!
//! A layer overrides only the keys it sets. `run.strip`, `run.hide` and `run.protect` are the
//! exception: they accumulate across every layer (flags included), so that no layer takes away
//! what another strips, hides or protects.
//!
//! **The project rule.** A project file lives in a working tree the agent can write: a hostile
//! agent can write `.frona/config.yaml` for the next run. So a project file may only tighten
//! what the layers below it (system, user, defaults) set:
//!
//! - `run.isolation` only towards `required` (off < best-effort < required);
//! - `run.net` only towards `none` (host < proxy < none), `run.env_mode` only to `allowlist`,
//!   `run.quiet` only to `false`, `run.stop_timeout` only shorter;
//! - `run.allow_host` only to a subset of what the layers below allow (it may drop hosts,
//!   never add one);
//! - `run.strip`, `run.hide` and `run.protect` add to the lists.
//!
//! Any other key (`run.keep`, `run.unhide`, `run.fs_write`, `run.writable`, `run.agent`,
//! `run.policy`, `run.aws_credential`, every
//! `backends.*`, and whatever key is added later) is an error in a project file naming the
//! key, and so is a value that would loosen; the hint says to put it in the user file. A
//! project file must also be a regular file (not a link) owned by the invoking user and not
//! writable by group or others (see [`files`]). The rule cannot make the agent keep a
//! tightening: it can delete the file. Protection you rely on belongs in the user or system
//! file, both of which `frona run` hides from the agent.

mod files;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ArgMatches;
use clap::parser::ValueSource;
use frona_sandbox::EnvSnapshot;
use serde_json::{Map, Value, json};

pub use files::{Layer, PROJECT_FILE};

use crate::cli::{EnvArgs, EnvModeArg, IsolationArg, IsolationArgs, NetArg, RunArgs, RunSettings};
use crate::config_file::{ConfigFile, RunSection, Timeout};
use crate::env_vars::*;
use crate::failure::Failure;

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(Layer, PathBuf),
    Env(&'static str),
    Flag(&'static str),
}

impl Origin {
    /// `default`, `system`, `user`, `project`, `env` or `flag` (stable, for `--json`).
    pub fn source(&self) -> &'static str {
        match self {
            Origin::Default => "default",
            Origin::File(layer, _) => layer.name(),
            Origin::Env(_) => "env",
            Origin::Flag(_) => "flag",
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(layer, path) => write!(f, "{} {}", layer.name(), path.display()),
            Origin::Env(name) => write!(f, "env {name}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// One key's value from one layer (`run.isolation`, `backends.vault.addr`).
#[derive(Clone, Debug)]
pub struct Setting {
    pub key: String,
    pub value: Value,
    pub origin: Origin,
}

/// A config file frona looked for.
#[derive(Debug)]
pub struct LayerFile {
    pub layer: Layer,
    pub path: PathBuf,
    pub found: bool,
}

/// The effective configuration (without flags, which each command applies last).
#[derive(Debug)]
pub struct Config {
    pub file: ConfigFile,
    /// Every value in effect, with its origin; an accumulating list has one entry per layer.
    pub settings: Vec<Setting>,
    pub files: Vec<LayerFile>,
}

/// Lists that every layer adds to.
const ACCUMULATING: &[&str] = &["run.strip", "run.hide", "run.protect"];

/// The `run:` keys that have a `FRONA_*` variable.
const RUN_ENV: &[(&str, &str)] = &[
    ("isolation", FRONA_ISOLATION),
    ("net", FRONA_NET),
    ("env_mode", FRONA_ENV_MODE),
    ("stop_timeout", FRONA_STOP_TIMEOUT),
    ("cache_ttl", FRONA_CACHE_TTL),
    ("quiet", FRONA_QUIET),
    ("agent", FRONA_AGENT),
    ("policy", FRONA_POLICY),
];

/// How strict a value is, for the keys a project file may tighten (higher is stricter);
/// `None` for every key a project file may not set at all.
fn strictness(key: &str) -> Option<fn(&Value) -> Option<i128>> {
    fn rank(value: &Value, order: &[&str]) -> Option<i128> {
        let text = value.as_str()?;
        order.iter().position(|o| *o == text).map(|p| p as i128)
    }
    Some(match key {
        "run.isolation" => |v| rank(v, &["off", "best-effort", "required"]),
        "run.net" => |v| rank(v, &["host", "proxy", "none"]),
        "run.env_mode" => |v| rank(v, &["default", "allowlist"]),
        "run.quiet" => |v| v.as_bool().map(|quiet| i128::from(!quiet)),
        // Shorter is stricter: a project may make frona stop sooner or forget values sooner.
        "run.stop_timeout" | "run.cache_ttl" => |v| {
            let text = v.as_str()?;
            frona_policy::duration::parse(text)
                .ok()
                .map(|d| -(d.as_millis() as i128))
        },
        _ => return None,
    })
}

/// The built-in defaults: what `frona run` does with no flag and no config.
fn defaults(env: &EnvSnapshot) -> RunSection {
    RunSection {
        isolation: Some(IsolationArg::Required),
        net: Some(NetArg::Host),
        env_mode: Some(EnvModeArg::Default),
        stop_timeout: Some(Timeout(Duration::from_secs(10))),
        cache_ttl: Some(Timeout(Duration::from_secs(60))),
        quiet: Some(false),
        agent: Some("default".into()),
        policy: Some(crate::dirs::policy_dir(env)),
        ..RunSection::default()
    }
}

/// Loads every layer below the flags, for the current working directory.
pub fn load(env: &EnvSnapshot) -> Result<Config, Failure> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    load_from(env, &cwd)
}

fn load_from(env: &EnvSnapshot, cwd: &Path) -> Result<Config, Failure> {
    let home = crate::dirs::home(env);
    let user_path = crate::dirs::user_config_file(env);
    let mut candidates = vec![
        (Layer::System, crate::dirs::system_config_file(env)),
        (Layer::User, user_path.clone()),
    ];
    let project = files::find_project(cwd, &home);
    if let Some(dir) = &project {
        candidates.push((Layer::Project, dir.join(PROJECT_FILE)));
    }
    let mut merged = Merged::default();
    let mut default_file = ConfigFile {
        run: defaults(env),
        ..ConfigFile::default()
    };
    default_file.backends.timeout =
        Some(Timeout(frona_backends::config::Limits::default().timeout));
    merged.add(Origin::Default, flatten(&to_value(&default_file)?), None)?;
    let mut found = Vec::new();
    for (layer, path) in candidates {
        let text = files::read(&path, layer)?;
        found.push(LayerFile {
            layer,
            path: path.clone(),
            found: text.is_some(),
        });
        let Some(text) = text else { continue };
        let mut file = ConfigFile::parse(&text).map_err(|e| {
            Failure::new(
                125,
                format!("{} config `{}`: {e}", layer.name(), path.display()),
            )
            .with_hint("docs/configuration.md lists every key; unknown keys are errors")
        })?;
        let base = match layer {
            Layer::Project => project.clone().unwrap_or_else(|| cwd.to_path_buf()),
            _ => path.parent().map_or_else(|| "/".into(), Path::to_path_buf),
        };
        file.resolve_paths(&base, &home);
        let guard = (layer == Layer::Project).then_some(user_path.as_path());
        merged.add(Origin::File(layer, path), flatten(&to_value(&file)?), guard)?;
    }
    for (key, var) in RUN_ENV {
        if let Some(value) = env_value(env, key, var)? {
            merged.add(Origin::Env(var), vec![(format!("run.{key}"), value)], None)?;
        }
    }
    let file: ConfigFile = serde_json::from_value(unflatten(&merged.values))
        .map_err(|e| Failure::new(125, format!("the merged configuration is invalid: {e}")))?;
    Ok(Config {
        file,
        settings: merged.settings,
        files: found,
    })
}

/// A `FRONA_*` variable's value, checked as the config file's key would be.
fn env_value(env: &EnvSnapshot, key: &str, var: &'static str) -> Result<Option<Value>, Failure> {
    let Some(raw) = env.get(var).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(raw).trim().to_owned();
    let value = if key == "quiet" {
        match text.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" => Value::Bool(true),
            "0" | "false" | "no" => Value::Bool(false),
            _ => {
                return Err(Failure::new(125, format!("`{var}` is not a boolean"))
                    .with_hint(format!("set `{var}` to 1 or 0")));
            }
        }
    } else {
        Value::String(text)
    };
    serde_json::from_value::<RunSection>(json!({ key: value.clone() })).map_err(|e| {
        Failure::new(125, format!("`{var}`: {e}")).with_hint(format!(
            "it sets `run.{key}`; docs/configuration.md lists the values"
        ))
    })?;
    Ok(Some(value))
}

fn to_value(file: &ConfigFile) -> Result<Value, Failure> {
    serde_json::to_value(file).map_err(|e| Failure::from_error(&e))
}

/// `{run: {net: none}}` → `[("run.net", "none")]`; lists and scalars are leaves.
fn flatten(value: &Value) -> Vec<(String, Value)> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            Value::Null => {}
            other => out.push((prefix.to_owned(), other.clone())),
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    out
}

fn unflatten(values: &BTreeMap<String, Value>) -> Value {
    fn insert(map: &mut Map<String, Value>, parts: &[&str], value: Value) {
        match parts {
            [] => {}
            [last] => {
                map.insert((*last).to_owned(), value);
            }
            [first, rest @ ..] => {
                let entry = map
                    .entry((*first).to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(next) = entry {
                    insert(next, rest, value);
                }
            }
        }
    }
    let mut root = Map::new();
    for (key, value) in values {
        let parts: Vec<&str> = key.split('.').collect();
        insert(&mut root, &parts, value.clone());
    }
    Value::Object(root)
}

/// The layers merged so far.
#[derive(Debug, Default)]
struct Merged {
    values: BTreeMap<String, Value>,
    settings: Vec<Setting>,
}

impl Merged {
    /// Adds one layer. `project_guard` is the user file's path when the layer is a project
    /// file: its keys are then held to the project rule.
    fn add(
        &mut self,
        origin: Origin,
        entries: Vec<(String, Value)>,
        project_guard: Option<&Path>,
    ) -> Result<(), Failure> {
        for (key, value) in entries {
            if let Some(user_file) = project_guard {
                self.check_project(&key, &value, &origin, user_file)?;
            }
            overlay(&mut self.settings, &key, value.clone(), origin.clone());
            match (self.values.get_mut(&key), value) {
                (Some(Value::Array(list)), Value::Array(more))
                    if ACCUMULATING.contains(&key.as_str()) =>
                {
                    list.extend(more);
                }
                (_, value) => {
                    self.values.insert(key, value);
                }
            }
        }
        Ok(())
    }

    fn check_project(
        &self,
        key: &str,
        value: &Value,
        origin: &Origin,
        user_file: &Path,
    ) -> Result<(), Failure> {
        let Origin::File(_, path) = origin else {
            return Ok(());
        };
        let hint = format!(
            "a project file is writable by the agent, so it may only tighten protection; put `{key}` in the user file `{}`",
            user_file.display()
        );
        if ACCUMULATING.contains(&key) {
            return Ok(());
        }
        if key == "run.allow_host" {
            // Tightening is dropping hosts: every pattern must already be allowed below.
            let below: &[Value] = match self.values.get(key) {
                Some(Value::Array(list)) => list,
                _ => &[],
            };
            let added = match value {
                Value::Array(list) => list.iter().find(|p| !below.contains(p)),
                other => Some(other),
            };
            return match added {
                None => Ok(()),
                Some(pattern) => Err(Failure::new(
                    125,
                    format!(
                        "`run.allow_host` in the project file `{}` adds `{}`, which no other layer allows",
                        path.display(),
                        show_scalar(pattern)
                    ),
                )
                .with_hint(hint)),
            };
        }
        let Some(rank) = strictness(key) else {
            return Err(Failure::new(
                125,
                format!(
                    "`{key}` cannot be set in the project file `{}`",
                    path.display()
                ),
            )
            .with_hint(hint));
        };
        let below = self.values.get(key);
        let weaker = match (rank(value), below.and_then(rank)) {
            (Some(new), Some(old)) => new < old,
            _ => true,
        };
        if weaker {
            let from = self
                .settings
                .iter()
                .rev()
                .find(|s| s.key == key)
                .map_or_else(|| "the default".to_owned(), |s| s.origin.to_string());
            return Err(Failure::new(
                125,
                format!(
                    "`{key}: {}` in the project file `{}` would loosen `{}` (from {from})",
                    show_scalar(value),
                    path.display(),
                    below.map(show_scalar).unwrap_or_default()
                ),
            )
            .with_hint(hint));
        }
        Ok(())
    }
}

/// Records `value` for `key` from `origin`: it replaces the key's earlier entry, except for an
/// accumulating list, which gets one more entry.
pub fn overlay(settings: &mut Vec<Setting>, key: &str, value: Value, origin: Origin) {
    if !ACCUMULATING.contains(&key) {
        settings.retain(|s| s.key != key);
    }
    settings.push(Setting {
        key: key.to_owned(),
        value,
        origin,
    });
}

fn show_scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether a flag was given on the command line (clap fills in defaults for the others).
#[derive(Clone, Copy, Debug)]
pub struct Given<'a>(pub Option<&'a ArgMatches>);

impl Given<'_> {
    pub fn has(&self, id: &str) -> bool {
        self.0
            .is_some_and(|m| m.value_source(id) == Some(ValueSource::CommandLine))
    }
}

impl Config {
    /// Fills the flags of `frona env check`/`frona run` that were not given.
    pub fn apply_env(&self, given: Given<'_>, args: &mut EnvArgs) {
        let run = &self.file.run;
        if !given.has("env_mode")
            && let Some(mode) = run.env_mode
        {
            args.env_mode = mode;
        }
        if !given.has("keep")
            && let Some(keep) = &run.keep
        {
            args.keep = keep.iter().map(OsString::from).collect();
        }
        let mut strip = run.strip.clone().unwrap_or_default();
        strip.append(&mut args.strip);
        args.strip = strip;
    }

    /// Fills the flags of `frona doctor`/`frona run` that were not given.
    pub fn apply_isolation(&self, given: Given<'_>, args: &mut IsolationArgs) {
        let run = &self.file.run;
        if !given.has("isolation")
            && let Some(level) = run.isolation
        {
            args.isolation = level;
        }
        if !given.has("net")
            && let Some(net) = run.net
        {
            args.net = net;
        }
        if !given.has("unhide")
            && let Some(unhide) = &run.unhide
        {
            args.unhide = unhide.clone();
        }
        if !given.has("fs_write")
            && let Some(fs_write) = &run.fs_write
        {
            args.fs_write = fs_write.clone();
        }
        if !given.has("writable")
            && let Some(writable) = &run.writable
        {
            args.writable = writable.clone();
        }
        let mut protect = run.protect.clone().unwrap_or_default();
        protect.append(&mut args.protect);
        args.protect = protect;
        let mut hide = run.hide.clone().unwrap_or_default();
        hide.append(&mut args.hide);
        args.hide = hide;
    }

    /// Fills the flags of `frona run` that were not given.
    pub fn apply_run(&self, given: Given<'_>, args: &mut RunArgs) {
        self.apply_settings(given, &mut args.settings);
        if !given.has("aws_credential") && self.file.run.aws_credential.is_some() {
            args.aws_credential
                .clone_from(&self.file.run.aws_credential);
        }
    }

    /// Fills the settings of `frona run` (shared with `config show`) that were not given.
    pub fn apply_settings(&self, given: Given<'_>, args: &mut RunSettings) {
        self.apply_env(given, &mut args.env);
        self.apply_isolation(given, &mut args.isolation);
        let run = &self.file.run;
        if !given.has("quiet")
            && let Some(quiet) = run.quiet
        {
            args.quiet = quiet;
        }
        if !given.has("agent")
            && let Some(agent) = &run.agent
        {
            args.agent.clone_from(agent);
        }
        if !given.has("policy") && run.policy.is_some() {
            args.policy.clone_from(&run.policy);
        }
        if !given.has("stop_timeout")
            && let Some(timeout) = run.stop_timeout
        {
            args.stop_timeout = timeout.0;
        }
        if !given.has("allow_host")
            && let Some(hosts) = &run.allow_host
        {
            args.allow_host = hosts.iter().map(|h| h.0.clone()).collect();
        }
    }

    /// The policy directory: `given`, else `run.policy` (which defaults to
    /// `$XDG_CONFIG_HOME/frona/policies`).
    pub fn policy_dir(&self, given: Option<PathBuf>, env: &EnvSnapshot) -> PathBuf {
        given
            .or_else(|| self.file.run.policy.clone())
            .unwrap_or_else(|| crate::dirs::policy_dir(env))
    }
}

#[cfg(test)]
mod tests;

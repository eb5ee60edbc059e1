//! frona's settings: each run setting defined once ([`defs`]), read from typed layers
//! ([`RunLayer`]), combined key by key, and resolved once per command into [`Settings`], which
//! is passed down (to the broker and the backends too). Also which layers there are, and the
//! rule that keeps a project file from weakening the protection of the next run ([`project`]).
//!
//! Modules: [`defs`] the table of run settings; [`setting`] what an entry of it is; [`value`]
//! the types settings hold; [`layer`] one layer's values; [`file`] a config file's schema;
//! [`files`] finding and reading the files; [`flags`] the flags, made from the table;
//! [`project`] the project rule; [`resolved`] the settings as commands use them. Each
//! backend's section and variables are its descriptor's (`crate::backends`).
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
//! exception (`accumulates` in [`defs`]): they accumulate across every layer (flags included),
//! so that no layer takes away what another strips, hides or protects.
//!
//! **The project rule.** A project file lives in a working tree the agent can write: a hostile
//! agent can write `.frona/config.yaml` for the next run. So a project file may only tighten
//! what the layers below it (system, user, defaults) set:
//!
//! - `run.isolation` only towards `required` (off < best-effort < required);
//! - `run.net` only towards `none` (host < proxy < none), `run.env_mode` only to `allowlist`,
//!   `run.quiet` only to `false`, `run.stop_timeout` and `run.cache_ttl` only shorter;
//! - `run.allow_host` only to a subset of what the layers below allow (it may drop hosts,
//!   never add one);
//! - `run.strip`, `run.hide` and `run.protect` add to the lists.
//!
//! Any other key (`run.keep`, `run.unhide`, `run.fs_write`, `run.writable`, `run.agent`,
//! `run.policy`, `run.aws_credential`, every `backends.*`, and whatever key is added later) is
//! an error in a project file naming the key, and so is a value that would loosen; the hint
//! says to put it in the user file. Each key's rule is its `project` in [`defs`]. A project
//! file must also be a regular file (not a link) owned by the invoking user and not writable by
//! group or others (see [`files`]). The rule cannot make the agent keep a tightening: it can
//! delete the file. Protection you rely on belongs in the user or system file, both of which
//! `frona run` hides from the agent.

mod defs;
mod file;
mod files;
mod flags;
mod layer;
mod project;
mod resolved;
mod setting;
pub mod value;

use std::path::{Path, PathBuf};

use frona_sandbox::EnvSnapshot;
use serde_json::Value as Json;

pub use file::ConfigFile;
pub use files::{Layer, PROJECT_FILE};
pub use flags::{EnvFlags, Flags, IsolationFlags, RunOnlyFlags, SharedFlags};
pub use layer::RunLayer;
pub use resolved::Run;

use crate::backends::BackendsSection;
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

/// One key's value from one layer (`run.isolation`, `backends.vault.addr`), as `config show`
/// prints it.
#[derive(Clone, Debug)]
pub struct Entry {
    pub key: String,
    pub value: Json,
    pub origin: Origin,
}

/// A config file frona looked for.
#[derive(Debug)]
pub struct LayerFile {
    pub layer: Layer,
    pub path: PathBuf,
    pub found: bool,
}

/// The config files and the `FRONA_*` variables, read once: every layer below the flags, each
/// with where it came from, lowest first.
#[derive(Debug)]
pub struct Loaded {
    /// The defaults, each file found, the `FRONA_*` variables.
    run: Vec<(Source, RunLayer)>,
    /// The defaults, each file found.
    backends: Vec<(Origin, BackendsSection)>,
    pub files: Vec<LayerFile>,
}

/// Where a layer of run settings came from: one place, or each setting's own `FRONA_*`
/// variable.
#[derive(Clone, Debug)]
enum Source {
    Layer(Origin),
    EnvVars,
}

impl Source {
    fn origin(&self, def: &dyn setting::Setting) -> Origin {
        match self {
            Source::Layer(origin) => origin.clone(),
            Source::EnvVars => Origin::Env(def.env_var().unwrap_or_default()),
        }
    }
}

/// What a command gets: the run settings resolved (flags included), and the config files'
/// merged `backends:` section, which the backends' own variables and flags still override
/// (`crate::backends`).
#[derive(Debug)]
pub struct Settings {
    pub run: Run,
    pub backends: BackendsSection,
}

/// Loads every layer below the flags, for the current working directory.
pub fn load(env: &EnvSnapshot) -> Result<Loaded, Failure> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    load_from(env, &cwd)
}

fn load_from(env: &EnvSnapshot, cwd: &Path) -> Result<Loaded, Failure> {
    let home = crate::dirs::home(env);
    let user_path = crate::dirs::user_config_file(env);
    let mut candidates = vec![
        (Layer::System, crate::dirs::system_config_file(env)),
        (Layer::User, user_path.clone()),
    ];
    let project_dir = files::find_project(cwd, &home);
    if let Some(dir) = &project_dir {
        candidates.push((Layer::Project, dir.join(PROJECT_FILE)));
    }
    let mut loaded = Loaded {
        run: vec![(Source::Layer(Origin::Default), RunLayer::defaults(env))],
        backends: vec![(Origin::Default, crate::backends::defaults())],
        files: Vec::new(),
    };
    for (layer, path) in candidates {
        let text = files::read(&path, layer)?;
        loaded.files.push(LayerFile {
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
            Layer::Project => project_dir.clone().unwrap_or_else(|| cwd.to_path_buf()),
            _ => path.parent().map_or_else(|| "/".into(), Path::to_path_buf),
        };
        file.resolve_paths(&base, &home);
        if layer == Layer::Project {
            project::check(&loaded.run, &file, &path, &user_path)?;
        }
        let origin = Origin::File(layer, path);
        loaded.run.push((Source::Layer(origin.clone()), file.run));
        loaded.backends.push((origin, file.backends));
    }
    loaded.run.push((Source::EnvVars, env_layer(env)?));
    Ok(loaded)
}

/// The `FRONA_*` variables, each checked as its config key would be.
fn env_layer(env: &EnvSnapshot) -> Result<RunLayer, Failure> {
    let mut layer = RunLayer::default();
    for def in defs::RUN {
        let Some(var) = def.env_var() else { continue };
        let Some(raw) = env.get(var).filter(|v| !v.is_empty()) else {
            continue;
        };
        let text = String::from_utf8_lossy(raw).trim().to_owned();
        def.set_from_env(&text, &mut layer).map_err(|e| {
            Failure::new(125, format!("`{var}`: {e}")).with_hint(format!(
                "it sets `{}`; docs/configuration.md lists the values",
                def.key()
            ))
        })?;
    }
    Ok(layer)
}

impl Loaded {
    /// Every layer's run settings, with `flags` on top, merged.
    fn merged(&self, flags: &RunLayer) -> RunLayer {
        let mut merged = RunLayer::default();
        for (_, layer) in &self.run {
            merged.overlay(layer);
        }
        merged.overlay(flags);
        merged
    }

    /// The settings with `flags` (the command line's layer) on top.
    pub fn resolve(&self, flags: &RunLayer) -> Result<Settings, Failure> {
        let backends = self
            .backends
            .iter()
            .fold(BackendsSection::default(), |lower, (_, section)| {
                section.clone().combine(lower)
            });
        Ok(Settings {
            run: Run::from_layer(self.merged(flags))?,
            backends,
        })
    }

    /// Every value in effect, with its origin, the `flags` layer on top; an accumulating list
    /// has one entry per layer that adds to it. In layer order.
    pub fn entries(&self, flags: &RunLayer) -> Vec<Entry> {
        let mut entries = Vec::new();
        for (source, layer) in &self.run {
            for def in defs::RUN {
                if let Some(value) = def.json(layer) {
                    overlay(&mut entries, def.key(), value, source.origin(*def));
                }
            }
        }
        for (origin, section) in &self.backends {
            for (key, value) in section_entries(section) {
                overlay(&mut entries, &key, value, origin.clone());
            }
        }
        for def in defs::RUN {
            if let (Some(value), Some(flag)) = (def.json(flags), def.flag()) {
                overlay(&mut entries, def.key(), value, Origin::Flag(flag.long));
            }
        }
        entries
    }

    /// Where the value of `key` in effect below the flags came from.
    pub fn origin(&self, key: &str) -> Option<Origin> {
        self.entries(&RunLayer::default())
            .into_iter()
            .rfind(|e| e.key == key)
            .map(|e| e.origin)
    }
}

/// Records `value` for `key` from `origin`: it replaces the key's earlier entry, except for an
/// accumulating list, which gets one more entry.
pub fn overlay(entries: &mut Vec<Entry>, key: &str, value: Json, origin: Origin) {
    if !defs::get(key).is_some_and(|def| def.accumulates()) {
        entries.retain(|e| e.key != key);
    }
    entries.push(Entry {
        key: key.to_owned(),
        value,
        origin,
    });
}

/// `backends.vault.addr` and its value, for each key a `backends:` section sets.
pub fn section_entries(section: &BackendsSection) -> Vec<(String, Json)> {
    fn walk(prefix: &str, value: &Json, out: &mut Vec<(String, Json)>) {
        match value {
            Json::Object(map) => {
                for (k, v) in map {
                    walk(&format!("{prefix}.{k}"), v, out);
                }
            }
            Json::Null => {}
            other => out.push((prefix.to_owned(), other.clone())),
        }
    }
    let mut out = Vec::new();
    if let Ok(value) = serde_json::to_value(section) {
        walk("backends", &value, &mut out);
    }
    out
}

#[cfg(test)]
mod tests;

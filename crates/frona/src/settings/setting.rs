//! One run setting, defined once ([`Def`]): its config key, flag, `FRONA_*` variable, default,
//! doc line, whether layers add to it, and what a project file may do with it; and
//! [`Setting`], the interface the table in [`super::defs`] is made of. Defaults, the `FRONA_*`
//! layer, the flags (clap arguments and their values), merging, the project rule and
//! `config show` all go through it.

use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches};
use frona_sandbox::EnvSnapshot;
use serde_json::Value as Json;

use super::layer::RunLayer;
use super::value::Value;

/// Which commands take a flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// How the agent's environment is built: `run`, `env check`, `config show`.
    Env,
    /// How the agent is isolated: `run`, `doctor`, `config show`.
    Isolation,
    /// The rest of the settings `run` and `config show` share.
    Run,
    /// `run` only.
    RunOnly,
}

/// A setting's flag.
#[derive(Debug)]
pub struct Flag {
    /// `--net`.
    pub long: &'static str,
    pub short: Option<char>,
    pub value_name: Option<&'static str>,
    /// What `--help` shows as the default: the setting's default, printed.
    pub default_help: Option<&'static str>,
    /// `--help`'s longer text, where it says more than the doc line.
    pub long_help: Option<fn() -> String>,
    pub group: Group,
}

/// What a project file may do with a setting (see [`super::project`]).
#[derive(Debug)]
pub enum Project<T> {
    /// Nothing: the key is an error in a project file.
    Never,
    /// Add to it (an accumulating list).
    Adds,
    /// Drop items of the list the layers below give, never add one.
    Subset,
    /// Make it stricter: its rank (higher is stricter) may not fall.
    Tighter(fn(&T) -> i128),
}

/// Where a setting's value is in a [`RunLayer`].
#[derive(Debug)]
pub struct Field<T: 'static> {
    pub get: fn(&RunLayer) -> &Option<T>,
    pub get_mut: fn(&mut RunLayer) -> &mut Option<T>,
}

/// `Field` of the `RunLayer` field `$name`.
macro_rules! field {
    ($name:ident) => {
        $crate::settings::setting::Field {
            get: |layer| &layer.$name,
            get_mut: |layer| &mut layer.$name,
        }
    };
}
pub(crate) use field;

/// One run setting.
#[derive(Debug)]
pub struct Def<T: 'static> {
    /// `run.net`: the config file's key; without `run.`, the clap id and the field.
    pub key: &'static str,
    pub flag: Option<Flag>,
    pub env: Option<&'static str>,
    /// One line: the flag's help, and what `config show` documents.
    pub doc: &'static str,
    /// A list every layer adds to (flags included), instead of replacing it.
    pub accumulates: bool,
    pub project: Project<T>,
    /// What `frona run` does without any layer setting it.
    pub default: Option<fn(&EnvSnapshot) -> T>,
    pub field: Field<T>,
}

/// How a project file's value compares with what the layers below it give.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Allowed,
    /// The key may not be set in a project file at all.
    NotAllowed,
    /// The value is weaker than `below`'s.
    Loosens {
        value: Json,
        below: Option<Json>,
    },
    /// This item is allowed by no layer below.
    Adds(Json),
}

/// A [`Def`] of any type: what the table holds.
pub trait Setting: Sync + std::fmt::Debug {
    fn key(&self) -> &'static str;
    fn flag(&self) -> Option<&Flag>;
    fn env_var(&self) -> Option<&'static str>;
    fn accumulates(&self) -> bool;
    /// The value `layer` gives, as `config show` prints it.
    fn json(&self, layer: &RunLayer) -> Option<Json>;
    fn set_default(&self, env: &EnvSnapshot, layer: &mut RunLayer);
    /// Sets it from its `FRONA_*` variable's text.
    fn set_from_env(&self, text: &str, layer: &mut RunLayer) -> Result<(), String>;
    /// The clap argument of its flag.
    fn arg(&self) -> Option<Arg>;
    /// Sets it from its flag, when that was given on the command line.
    fn set_from_matches(&self, matches: &ArgMatches, layer: &mut RunLayer);
    /// Lays `over`'s value (a higher layer's) over `base`'s: replaces it, or adds to it.
    fn overlay(&self, base: &mut RunLayer, over: &RunLayer);
    fn resolve_paths(&self, layer: &mut RunLayer, fix: &dyn Fn(&Path) -> PathBuf);
    /// The project rule for this key: `project`'s value against `below`'s.
    fn judge_project(&self, below: &RunLayer, project: &RunLayer) -> Verdict;

    /// The clap id and the field: the key without `run.`.
    fn name(&self) -> &'static str {
        let key = self.key();
        key.strip_prefix("run.").unwrap_or(key)
    }
}

impl<T: Value> Setting for Def<T> {
    fn key(&self) -> &'static str {
        self.key
    }

    fn flag(&self) -> Option<&Flag> {
        self.flag.as_ref()
    }

    fn env_var(&self) -> Option<&'static str> {
        self.env
    }

    fn accumulates(&self) -> bool {
        self.accumulates
    }

    fn json(&self, layer: &RunLayer) -> Option<Json> {
        (self.field.get)(layer).as_ref().map(Value::json)
    }

    fn set_default(&self, env: &EnvSnapshot, layer: &mut RunLayer) {
        if let Some(default) = self.default {
            *(self.field.get_mut)(layer) = Some(default(env));
        }
    }

    fn set_from_env(&self, text: &str, layer: &mut RunLayer) -> Result<(), String> {
        *(self.field.get_mut)(layer) = Some(T::from_env(text)?);
        Ok(())
    }

    fn arg(&self) -> Option<Arg> {
        let flag = self.flag.as_ref()?;
        let mut arg = Arg::new(self.name())
            .long(flag.long.trim_start_matches('-'))
            .help(self.doc);
        if let Some(short) = flag.short {
            arg = arg.short(short);
        }
        if let Some(name) = flag.value_name {
            arg = arg.value_name(name);
        }
        if let Some(default) = flag.default_help {
            arg = arg.default_value(default);
        }
        if let Some(long_help) = flag.long_help {
            arg = arg.long_help(long_help());
        }
        Some(T::arg(arg))
    }

    fn set_from_matches(&self, matches: &ArgMatches, layer: &mut RunLayer) {
        if matches.value_source(self.name()) == Some(ValueSource::CommandLine) {
            *(self.field.get_mut)(layer) = T::from_matches(matches, self.name());
        }
    }

    fn overlay(&self, base: &mut RunLayer, over: &RunLayer) {
        let Some(value) = (self.field.get)(over) else {
            return;
        };
        match (self.field.get_mut)(base) {
            Some(old) if self.accumulates => old.append(value.clone()),
            slot => *slot = Some(value.clone()),
        }
    }

    fn resolve_paths(&self, layer: &mut RunLayer, fix: &dyn Fn(&Path) -> PathBuf) {
        if let Some(value) = (self.field.get_mut)(layer) {
            value.resolve_paths(fix);
        }
    }

    fn judge_project(&self, below: &RunLayer, project: &RunLayer) -> Verdict {
        let Some(value) = (self.field.get)(project) else {
            return Verdict::Allowed;
        };
        let below = (self.field.get)(below).as_ref();
        match &self.project {
            Project::Never => Verdict::NotAllowed,
            Project::Adds => Verdict::Allowed,
            Project::Subset => {
                let allowed = match below.map(Value::json) {
                    Some(Json::Array(items)) => items,
                    _ => Vec::new(),
                };
                let added = match value.json() {
                    Json::Array(items) => items.into_iter().find(|p| !allowed.contains(p)),
                    other => Some(other),
                };
                added.map_or(Verdict::Allowed, Verdict::Adds)
            }
            Project::Tighter(rank) => match below {
                Some(old) if rank(value) >= rank(old) => Verdict::Allowed,
                _ => Verdict::Loosens {
                    value: value.json(),
                    below: below.map(Value::json),
                },
            },
        }
    }
}

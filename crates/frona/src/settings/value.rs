//! The types run settings hold, and what each does as a setting: how `config show` prints it,
//! how a `FRONA_*` variable spells it, how clap parses its flag, whether it is a path (made
//! absolute from a config file's base) and whether layers add to it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::builder::{EnumValueParser, ValueParser};
use clap::{Arg, ArgAction, ArgMatches, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// A value a run setting holds.
pub trait Value: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// As `config show` prints it (paths lossily, durations as `10s`).
    fn json(&self) -> Json;
    /// From a `FRONA_*` variable's text, checked as the config key would be.
    fn from_env(text: &str) -> Result<Self, String>;
    /// The flag's action and value parser.
    fn arg(arg: Arg) -> Arg;
    /// The flag's value, when it was given.
    fn from_matches(matches: &ArgMatches, id: &str) -> Option<Self>;
    /// Adds a higher layer's value to this one (an accumulating list); replaces by default.
    fn append(&mut self, more: Self) {
        *self = more;
    }
    /// Makes the paths in it absolute (`fix`); nothing for a value that holds none.
    fn resolve_paths(&mut self, _fix: &dyn Fn(&Path) -> PathBuf) {}
}

/// One item of a list setting (`--hide PATH`, repeatable).
pub trait Item: Clone + std::fmt::Debug + Send + Sync + 'static {
    fn json(&self) -> Json;
    fn parser() -> ValueParser;
    fn resolve_path(&mut self, _fix: &dyn Fn(&Path) -> PathBuf) {}
}

/// A value given as text, parsed the way a config file's value is.
fn from_text<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_value(Json::String(text.to_owned())).map_err(|e| e.to_string())
}

fn to_json<T: Serialize>(value: &T) -> Json {
    serde_json::to_value(value).unwrap_or(Json::Null)
}

macro_rules! value_enum {
    ($($ty:ty),*) => {$(
        impl Value for $ty {
            fn json(&self) -> Json {
                to_json(self)
            }
            fn from_env(text: &str) -> Result<Self, String> {
                from_text(text)
            }
            fn arg(arg: Arg) -> Arg {
                arg.action(ArgAction::Set).value_parser(EnumValueParser::<$ty>::new())
            }
            fn from_matches(matches: &ArgMatches, id: &str) -> Option<Self> {
                matches.get_one::<$ty>(id).copied()
            }
        }
    )*};
}

value_enum!(IsolationArg, NetArg, EnvModeArg);

impl Value for bool {
    fn json(&self) -> Json {
        Json::Bool(*self)
    }
    /// `1`/`true`/`yes` or `0`/`false`/`no`.
    fn from_env(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" => Ok(true),
            "0" | "false" | "no" => Ok(false),
            _ => Err(format!(
                "`{text}` is not a boolean (1, true, yes, 0, false or no)"
            )),
        }
    }
    fn arg(arg: Arg) -> Arg {
        arg.action(ArgAction::SetTrue)
    }
    fn from_matches(matches: &ArgMatches, id: &str) -> Option<Self> {
        Some(matches.get_flag(id))
    }
}

/// A scalar setting that is one [`Item`] (`--agent NAME`, `--policy DIR`).
macro_rules! scalar {
    ($($ty:ty),*) => {$(
        impl Value for $ty {
            fn json(&self) -> Json {
                Item::json(self)
            }
            fn from_env(text: &str) -> Result<Self, String> {
                from_text(text)
            }
            fn arg(arg: Arg) -> Arg {
                arg.action(ArgAction::Set).value_parser(<$ty as Item>::parser())
            }
            fn from_matches(matches: &ArgMatches, id: &str) -> Option<Self> {
                matches.get_one::<$ty>(id).cloned()
            }
            fn resolve_paths(&mut self, fix: &dyn Fn(&Path) -> PathBuf) {
                self.resolve_path(fix);
            }
        }
    )*};
}

scalar!(String, PathBuf, Timeout);

impl<T: Item> Value for Vec<T> {
    fn json(&self) -> Json {
        Json::Array(self.iter().map(Item::json).collect())
    }
    fn from_env(_: &str) -> Result<Self, String> {
        Err("a list has no environment variable".into())
    }
    fn arg(arg: Arg) -> Arg {
        arg.action(ArgAction::Append).value_parser(T::parser())
    }
    fn from_matches(matches: &ArgMatches, id: &str) -> Option<Self> {
        matches
            .get_many::<T>(id)
            .map(|items| items.cloned().collect())
    }
    fn append(&mut self, more: Self) {
        self.extend(more);
    }
    fn resolve_paths(&mut self, fix: &dyn Fn(&Path) -> PathBuf) {
        self.iter_mut().for_each(|item| item.resolve_path(fix));
    }
}

impl Item for String {
    fn json(&self) -> Json {
        Json::String(self.clone())
    }
    fn parser() -> ValueParser {
        ValueParser::string()
    }
}

impl Item for PathBuf {
    fn json(&self) -> Json {
        Json::String(self.to_string_lossy().into_owned())
    }
    fn parser() -> ValueParser {
        ValueParser::path_buf()
    }
    fn resolve_path(&mut self, fix: &dyn Fn(&Path) -> PathBuf) {
        *self = fix(self);
    }
}

impl Item for Timeout {
    fn json(&self) -> Json {
        Json::String(String::from(*self))
    }
    fn parser() -> ValueParser {
        ValueParser::new(|text: &str| frona_policy::duration::parse(text).map(Timeout))
    }
}

impl Item for HostPatternText {
    fn json(&self) -> Json {
        Json::String(self.0.clone())
    }
    fn parser() -> ValueParser {
        ValueParser::new(|text: &str| parse_host_pattern(text).map(HostPatternText))
    }
}

impl Item for VarName {
    fn json(&self) -> Json {
        Json::String(self.0.to_string_lossy().into_owned())
    }
    fn parser() -> ValueParser {
        use clap::builder::TypedValueParser as _;
        ValueParser::new(clap::builder::OsStringValueParser::new().map(VarName))
    }
}

/// A duration in frona's one syntax (`10s`, `500ms`, `1h30m`, `1d`; see
/// `frona_policy::duration`) or a number of seconds; printed as `10s` or `1500ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "DurationText", into = "String")]
pub struct Timeout(pub Duration);

#[derive(Deserialize)]
#[serde(untagged)]
enum DurationText {
    Seconds(u64),
    Text(String),
}

impl TryFrom<DurationText> for Timeout {
    type Error = String;
    fn try_from(text: DurationText) -> Result<Self, String> {
        match text {
            DurationText::Seconds(s) => Ok(Self(Duration::from_secs(s))),
            DurationText::Text(t) => frona_policy::duration::parse(&t)
                .map(Self)
                .map_err(|e| e.to_string()),
        }
    }
}

impl From<Timeout> for String {
    fn from(t: Timeout) -> String {
        let ms = t.0.as_millis();
        if ms.is_multiple_of(1000) {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        }
    }
}

/// An `--allow-host` pattern, checked when it is read.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostPatternText(pub String);

impl TryFrom<String> for HostPatternText {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        parse_host_pattern(&text).map(Self)
    }
}

impl From<HostPatternText> for String {
    fn from(pattern: HostPatternText) -> String {
        pattern.0
    }
}

/// A variable's name (`--keep NAME`): any bytes on the command line, text in a config file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(from = "String", into = "String")]
pub struct VarName(pub OsString);

impl From<String> for VarName {
    fn from(name: String) -> Self {
        Self(name.into())
    }
}

impl From<VarName> for String {
    fn from(name: VarName) -> String {
        name.0.to_string_lossy().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_forms_are_stable() {
        assert_eq!(String::from(Timeout(Duration::from_millis(1500))), "1500ms");
        assert_eq!(String::from(Timeout(Duration::from_secs(10))), "10s");
        assert_eq!(IsolationArg::BestEffort.json(), Json::from("best-effort"));
        assert_eq!(
            vec![PathBuf::from("/a"), PathBuf::from("b")].json(),
            serde_json::json!(["/a", "b"])
        );
    }

    #[test]
    fn env_texts() {
        assert_eq!(bool::from_env("YES"), Ok(true));
        assert_eq!(bool::from_env("0"), Ok(false));
        assert!(bool::from_env("perhaps").is_err());
        assert_eq!(
            Timeout::from_env("250ms"),
            Ok(Timeout(Duration::from_millis(250)))
        );
        assert!(NetArg::from_env("sometimes").is_err());
    }
}

#[derive(Clone, Copy, Debug, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IsolationArg {
    Required,
    BestEffort,
    Off,
}

#[derive(Clone, Copy, Debug, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetArg {
    Host,
    None,
    Proxy,
}

#[derive(Clone, Copy, Debug, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnvModeArg {
    /// Pass everything except credentials.
    Default,
    /// Pass only PATH HOME USER LOGNAME SHELL TERM LANG LC_* TZ TMPDIR PWD and --keep names.
    Allowlist,
}

/// `--protect`'s long help: the protected list, from the sandbox crate's own constants.
pub fn protect_help() -> String {
    use frona_sandbox::isolation::persistence::{
        PROTECTED_IN_CONFIG, PROTECTED_IN_HOME, PROTECTED_IN_PROJECT,
    };
    let home: Vec<String> = PROTECTED_IN_HOME
        .iter()
        .map(|(rel, _)| format!("~/{rel}"))
        .chain(
            PROTECTED_IN_CONFIG
                .iter()
                .map(|rel| format!("~/.config/{rel}")),
        )
        .collect();
    format!(
        "Also keep the agent from creating or changing this path, even where it may write \
         (repeatable; also `run.protect` in any config file).\n\n\
         Persistence protection: by default the agent can neither create nor change (write, \
         append, truncate, rename over, delete and recreate, link, chmod) these paths, whether \
         or not they exist yet:\n\
         - in $HOME: {}, and the same under $XDG_CONFIG_HOME and $ZDOTDIR;\n\
         - in the working directory and the root of its git repository: .git/hooks/, \
         .git/config (the whole .git where there is no repository), core.hooksPath, \
         submodules' hooks and config, {};\n\
         - frona's configuration, data, state and policy directories.\n\
         `--writable PATH` lifts a path (and what is beneath it). See docs/persistence.md.",
        home.join(" "),
        PROTECTED_IN_PROJECT.join(" "),
    )
}

/// Checks an `--allow-host` pattern (see `frona_policy::network`).
pub fn parse_host_pattern(text: &str) -> Result<String, String> {
    frona_policy::network::HostPattern::parse(text)
        .map(|_| text.to_owned())
        .map_err(|e| e.to_string())
}

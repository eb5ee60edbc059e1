//! The project rule (see [`super`]): a project file may only tighten what the layers below it
//! give, each key as its `project` in [`super::defs`] says, and may set no `backends.*` key.
//! A breach is an error even when a flag would override the key: a loosening project file is
//! a sign that something wrote it on purpose.

use std::path::Path;

use serde_json::Value as Json;

use super::defs::RUN;
use super::file::ConfigFile;
use super::layer::RunLayer;
use super::setting::Verdict;
use super::{Source, section_entries};
use crate::failure::Failure;

/// Checks the project file at `path` against the layers `below` it (defaults, system and user
/// files); the hint names `user_file`, where such a setting belongs.
pub(super) fn check(
    below: &[(Source, RunLayer)],
    file: &ConfigFile,
    path: &Path,
    user_file: &Path,
) -> Result<(), Failure> {
    let refuse = |key: &str, message: String| {
        Failure::new(125, message).with_hint(format!(
            "a project file is writable by the agent, so it may only tighten protection; put `{key}` in the user file `{}`",
            user_file.display()
        ))
    };
    let not_allowed = |key: &str| {
        refuse(
            key,
            format!(
                "`{key}` cannot be set in the project file `{}`",
                path.display()
            ),
        )
    };
    if let Some((key, _)) = section_entries(&file.backends).first() {
        return Err(not_allowed(key));
    }
    let mut merged = RunLayer::default();
    for (_, layer) in below {
        merged.overlay(layer);
    }
    let mut defs = RUN.to_vec();
    defs.sort_by_key(|def| def.key());
    for def in defs {
        let key = def.key();
        match def.judge_project(&merged, &file.run) {
            Verdict::Allowed => {}
            Verdict::NotAllowed => return Err(not_allowed(key)),
            Verdict::Adds(item) => {
                return Err(refuse(
                    key,
                    format!(
                        "`{key}` in the project file `{}` adds `{}`, which no other layer allows",
                        path.display(),
                        scalar(&item)
                    ),
                ));
            }
            Verdict::Loosens { value, below: old } => {
                let from = below
                    .iter()
                    .rev()
                    .find(|(_, layer)| def.json(layer).is_some())
                    .map_or_else(
                        || "the default".to_owned(),
                        |(source, _)| source.origin(def).to_string(),
                    );
                return Err(refuse(
                    key,
                    format!(
                        "`{key}: {}` in the project file `{}` would loosen `{}` (from {from})",
                        scalar(&value),
                        path.display(),
                        old.as_ref().map(scalar).unwrap_or_default()
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn scalar(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

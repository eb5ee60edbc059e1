//! A policy directory: every `*.yaml` (or `.yml`) file directly in it, read in name order and
//! loaded as one policy set. `frona run`, `frona call` and every `frona policy` command read
//! policies here.

use std::path::Path;

use frona_policy::PolicySet;

use crate::failure::Failure;

/// Reads every `*.yaml` file directly in `dir`, sorted by name.
pub fn read_dir(dir: &Path) -> Result<Vec<(String, String)>, Failure> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Failure::from_error(&e).with_hint(format!(
            "create `{}` with policy files, or pass another directory",
            dir.display()
        ))
    })?;
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let text = std::fs::read_to_string(&path).map_err(|e| Failure::from_error(&e))?;
            files.push((
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                text,
            ));
        }
    }
    files.sort();
    Ok(files)
}

pub fn load(dir: &Path) -> Result<PolicySet, Failure> {
    let files = read_dir(dir)?;
    PolicySet::load(files.iter().map(|(n, t)| (n.as_str(), t.as_str()))).map_err(|e| {
        Failure::new(
            frona_sandbox::supervise::EXIT_FRONA_ERROR,
            format!("{}/{e}", dir.display()),
        )
    })
}

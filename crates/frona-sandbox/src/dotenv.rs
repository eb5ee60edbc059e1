//! Project `.env` files as the agent sees them: the same keys, comments and layout, with every
//! value replaced (by a placeholder when the key is a credential frona binds to hosts, so that
//! a tool reading `.env` under `--net proxy` still works; otherwise by nothing).
//!
//! Which files: `.env` and `.env.*` in the working directory and each parent up to the root of
//! its git repository (the working directory alone outside a repository), except the examples
//! that are meant to be read (`.env.example`, `.env.sample`, `.env.template`).
//!
//! The masker errs towards hiding: a line it cannot read as `[export] KEY=VALUE`, a comment or
//! a blank line is replaced by a note, and a comment that holds something shaped like a
//! credential ([`crate::scrub::detect_credential_value`]) is too.

use std::path::{Path, PathBuf};

use crate::scrub::detect_credential_value;

/// `.env.*` files that are documentation, not configuration: shown as they are.
pub const EXAMPLES: &[&str] = &[".env.example", ".env.sample", ".env.template", ".env.dist"];

/// Whether a file name is one frona masks.
pub fn is_env_file(name: &str) -> bool {
    (name == ".env" || name.starts_with(".env.")) && !EXAMPLES.contains(&name)
}

/// The `.env` files the agent would see from `cwd`: in `cwd` and its parents up to `root`
/// (the repository's top level; `None`: `cwd` alone). Only regular files (a symlink is
/// followed: the agent would read its target).
pub fn find(cwd: &Path, root: Option<&Path>) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dir = Some(cwd);
    while let Some(d) = dir {
        if let Ok(entries) = std::fs::read_dir(d) {
            let mut here: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| e.file_name().to_str().is_some_and(is_env_file))
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            here.sort();
            found.extend(here);
        }
        match root {
            Some(root) if d != root && d.starts_with(root) => dir = d.parent(),
            _ => dir = None,
        }
    }
    found
}

/// The masked copy of a `.env` file. `placeholder` gives the placeholder of a key frona binds
/// to hosts; every other value becomes empty.
pub fn mask(text: &[u8], placeholder: &dyn Fn(&str) -> Option<String>) -> String {
    let text = String::from_utf8_lossy(text);
    let mut out = String::with_capacity(text.len());
    let mut lines = text.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            out.push_str(line);
        } else if trimmed.starts_with('#') {
            match detect_credential_value(trimmed.as_bytes()) {
                Some(kind) => out.push_str(&format!(
                    "# frona: comment hidden (it holds what looks like {kind})"
                )),
                None => out.push_str(line),
            }
        } else if let Some((prefix, key, value)) = assignment(trimmed) {
            // A quoted value may go on over several lines: drop them with it.
            if let Some(quote) = value
                .chars()
                .next()
                .filter(|c| matches!(c, '"' | '\'' | '`'))
                && !closes(&value[1..], quote)
            {
                for (_, next) in lines.by_ref() {
                    if closes(next, quote) {
                        break;
                    }
                }
            }
            out.push_str(prefix);
            out.push_str(key);
            out.push('=');
            if let Some(p) = placeholder(key) {
                out.push_str(&p);
            }
        } else {
            out.push_str(&format!(
                "# frona: line {} hidden (not KEY=VALUE)",
                index + 1
            ));
        }
        out.push('\n');
    }
    out
}

/// `export KEY=VALUE` → (`"export "`, `KEY`, `VALUE`), spaces around `=` allowed.
fn assignment(line: &str) -> Option<(&'static str, &str, &str)> {
    let (prefix, rest) = match line.strip_prefix("export ") {
        Some(rest) => ("export ", rest.trim_start()),
        None => ("", line),
    };
    let (key, value) = rest.split_once('=')?;
    let key = key.trim_end();
    let mut chars = key.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    valid.then_some((prefix, key, value.trim_start()))
}

/// Whether `rest` holds the unescaped closing `quote`.
fn closes(rest: &str, quote: char) -> bool {
    let mut escaped = false;
    for c in rest.chars() {
        match c {
            '\\' if quote == '"' && !escaped => escaped = true,
            c if c == quote && !escaped => return true,
            _ => escaped = false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(text: &str) -> String {
        mask(text.as_bytes(), &|key| {
            (key == "OPENAI_API_KEY").then(|| "frona-placeholder-1".to_owned())
        })
    }

    #[test]
    fn values_go_keys_and_comments_stay() {
        let text = "# database\nDB_HOST=db.internal\nexport DB_PASSWORD = 'hunter2'\n\nOPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwxyz0123456789\n";
        assert_eq!(
            masked(text),
            "# database\nDB_HOST=\nexport DB_PASSWORD=\n\nOPENAI_API_KEY=frona-placeholder-1\n"
        );
    }

    #[test]
    fn multi_line_values_are_dropped_whole() {
        let text = "KEY=\"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\"\nNEXT=1\n";
        assert_eq!(masked(text), "KEY=\nNEXT=\n");
        let escaped = "A=\"one \\\" still\nsecret\"\nB=2\n";
        assert_eq!(masked(escaped), "A=\nB=\n");
    }

    #[test]
    fn what_cannot_be_read_is_hidden() {
        let text =
            "just-a-secret-line\n# old key sk-proj-abcdefghijklmnopqrstuvwxyz0123456789\n1BAD=x\n";
        let out = masked(text);
        assert!(!out.contains("just-a-secret-line"));
        assert!(!out.contains("sk-proj"));
        assert!(!out.contains("=x"));
        assert_eq!(out.lines().count(), 3);
    }

    #[test]
    fn examples_are_not_masked() {
        assert!(is_env_file(".env"));
        assert!(is_env_file(".env.local"));
        assert!(is_env_file(".env.production"));
        assert!(!is_env_file(".env.example"));
        assert!(!is_env_file(".envrc"));
        assert!(!is_env_file("env"));
    }

    #[test]
    fn found_up_to_the_repository_root_only() {
        let top = std::env::temp_dir().join(format!("frona-dotenv-{}", std::process::id()));
        let sub = top.join("repo/pkg");
        std::fs::create_dir_all(&sub).unwrap();
        for f in [
            top.join(".env"),
            top.join("repo/.env"),
            top.join("repo/.env.example"),
            sub.join(".env.local"),
        ] {
            std::fs::write(f, "A=1\n").unwrap();
        }
        let found = find(&sub, Some(&top.join("repo")));
        assert_eq!(found, [sub.join(".env.local"), top.join("repo/.env")]);
        assert_eq!(find(&sub, None), [sub.join(".env.local")]);
        std::fs::remove_dir_all(&top).unwrap();
    }
}

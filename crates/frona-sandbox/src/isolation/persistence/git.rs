//! Finding the git repository around the working directory, as git itself would, and the few
//! settings that say where git runs code from: `core.hooksPath` and
//! `extensions.worktreeConfig`. Read-only; `GIT_DIR` and config `include`s are not followed.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// A repository whose hooks and config [`super::plan`] protects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Repo {
    /// The top of the working tree (the repository itself when it is bare).
    pub root: PathBuf,
    /// `<root>/.git` is a file pointing elsewhere (a linked worktree or a submodule).
    pub dot_git_file: bool,
    /// This working tree's git directory.
    pub git_dir: PathBuf,
    /// Where hooks, config, objects and refs live (`git_dir`, except in a linked worktree).
    pub common_dir: PathBuf,
    /// `core.hooksPath`, absolute, when the repository's or the user's config sets it.
    pub hooks_path: Option<PathBuf>,
    /// `extensions.worktreeConfig` is on: git reads `config.worktree` files too.
    pub worktree_config: bool,
    /// Submodules' git directories (`<common_dir>/modules/…`), each with hooks and config.
    pub modules: Vec<PathBuf>,
}

/// How far [`discover`] looks for submodules' git directories.
const MAX_MODULES: usize = 256;
const MAX_MODULE_DEPTH: usize = 6;
/// A gitfile or config file bigger than this is not read.
const MAX_READ: u64 = 1 << 20;

/// The repository that holds `cwd`, if any. `home` and `xdg_config_home` locate the user's git
/// config (for `core.hooksPath`).
pub fn discover(cwd: &Path, home: Option<&Path>, xdg_config_home: Option<&Path>) -> Option<Repo> {
    let (root, dot_git_file, git_dir) = find(cwd)?;
    let common_dir = match read_small(&git_dir.join("commondir")) {
        Some(text) => {
            let rel = text.trim();
            if rel.is_empty() {
                git_dir.clone()
            } else {
                git_dir.join(rel)
            }
        }
        None => git_dir.clone(),
    };
    let mut config_files: Vec<PathBuf> = vec!["/etc/gitconfig".into()];
    match (xdg_config_home, home) {
        (Some(xdg), _) => config_files.push(xdg.join("git/config")),
        (None, Some(home)) => config_files.push(home.join(".config/git/config")),
        (None, None) => {}
    }
    config_files.extend(home.map(|h| h.join(".gitconfig")));
    config_files.push(common_dir.join("config"));
    let texts: Vec<String> = config_files.iter().filter_map(|f| read_small(f)).collect();
    let last = |key: &str| texts.iter().flat_map(|t| config_values(t, key)).last();
    let worktree_config = last("extensions.worktreeconfig").is_some_and(|v| is_true(&v));
    let mut hooks_value = last("core.hookspath");
    if worktree_config
        && let Some(text) = read_small(&git_dir.join("config.worktree"))
        && let Some(value) = config_values(&text, "core.hookspath").pop()
    {
        hooks_value = Some(value);
    }
    let bare = root == git_dir;
    let hooks_path =
        hooks_value
            .filter(|v| !v.is_empty())
            .map(|value| match (value.strip_prefix("~/"), home) {
                (Some(rest), Some(home)) => home.join(rest),
                _ if Path::new(&value).is_absolute() => PathBuf::from(value),
                _ if bare => git_dir.join(value),
                _ => root.join(value),
            });
    let mut modules = Vec::new();
    find_modules(&common_dir.join("modules"), 0, &mut modules);
    Some(Repo {
        root,
        dot_git_file,
        git_dir,
        common_dir,
        hooks_path,
        worktree_config,
        modules,
    })
}

/// Walks up from `cwd` as git's discovery does: `DIR/.git` as a directory or a gitfile, then
/// `DIR` itself as a bare repository. Returns the root, whether `.git` is a file, the git dir.
fn find(cwd: &Path) -> Option<(PathBuf, bool, PathBuf)> {
    for dir in cwd.ancestors() {
        let dot = dir.join(".git");
        match std::fs::metadata(&dot) {
            Ok(meta) if meta.is_dir() && is_git_dir(&dot) => {
                return Some((dir.to_path_buf(), false, dot));
            }
            Ok(meta) if meta.is_file() => {
                // git stops at a gitfile it cannot read.
                let target = read_small(&dot).and_then(|t| gitfile_target(&t))?;
                return Some((dir.to_path_buf(), true, dir.join(target)));
            }
            _ => {}
        }
        if is_git_dir(dir) {
            return Some((dir.to_path_buf(), false, dir.to_path_buf()));
        }
    }
    None
}

/// `gitdir: PATH` (the gitfile format).
fn gitfile_target(text: &str) -> Option<PathBuf> {
    let path = text.lines().next()?.strip_prefix("gitdir:")?.trim();
    (!path.is_empty()).then(|| PathBuf::from(path))
}

/// What git requires of a git directory: `HEAD`, `objects/` and `refs/`.
fn is_git_dir(dir: &Path) -> bool {
    dir.join("HEAD").is_file() && dir.join("objects").is_dir() && dir.join("refs").is_dir()
}

fn find_modules(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if depth > MAX_MODULE_DEPTH || out.len() >= MAX_MODULES {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_dir()) || out.len() >= MAX_MODULES {
            continue;
        }
        if path.join("HEAD").is_file() {
            out.push(path.clone());
            find_modules(&path.join("modules"), depth + 1, out);
        } else {
            // A submodule's name may contain slashes: `modules/vendor/lib`.
            find_modules(&path, depth + 1, out);
        }
    }
}

fn read_small(path: &Path) -> Option<String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).ok()?;
    let mut text = String::new();
    file.take(MAX_READ).read_to_string(&mut text).ok()?;
    Some(text)
}

fn is_true(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "" | "true" | "yes" | "on" | "1"
    )
}

/// Every value of `key` (`section.name`, lower case, no subsection) in git config `text`, in
/// order. A bare `name` line has the value `""` (git's "true"). Subsections, includes and
/// continuation lines are skipped.
pub(crate) fn config_values(text: &str, key: &str) -> Vec<String> {
    let Some((want_section, want_name)) = key.split_once('.') else {
        return Vec::new();
    };
    let mut section = String::new();
    let mut out = Vec::new();
    for raw in text.lines() {
        let mut line = raw.trim();
        if let Some(rest) = line.strip_prefix('[') {
            let Some(end) = rest.find(']') else {
                section.clear();
                continue;
            };
            let header = rest[..end].trim();
            // `[section "sub"]` and `[section.sub]` are subsections: not what is wanted here.
            section = if header.contains(['"', '.', ' ']) {
                String::new()
            } else {
                header.to_ascii_lowercase()
            };
            line = rest[end + 1..].trim();
        }
        if line.is_empty() || line.starts_with(['#', ';']) || section != want_section {
            continue;
        }
        let (name, value) = match line.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value)),
            None => (line, None),
        };
        if !name.eq_ignore_ascii_case(want_name) {
            continue;
        }
        out.push(value.map(parse_value).unwrap_or_default());
    }
    out
}

/// A config value: quotes removed, `\"` `\\` `\n` `\t` unescaped, a comment cut off.
fn parse_value(raw: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    let mut chars = raw.trim().chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            },
            '#' | ';' if !quoted => break,
            c => out.push(c),
        }
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parsing() {
        let text = "[core]\n\tbare = false\n\thooksPath = .husky/_ # husky\n[remote \"origin\"]\n\thookspath = nope\n[Core] HooksPath = \"/abs/hooks\"\n[extensions]\n\tworktreeConfig\n";
        assert_eq!(
            config_values(text, "core.hookspath"),
            [".husky/_", "/abs/hooks"]
        );
        assert_eq!(config_values(text, "extensions.worktreeconfig"), [""]);
        assert!(is_true(""));
        assert!(config_values(text, "core.editor").is_empty());
        assert_eq!(parse_value(r#""a;b" ; c"#), "a;b");
        assert_eq!(
            gitfile_target("gitdir: ../main/.git/worktrees/x\n"),
            Some(PathBuf::from("../main/.git/worktrees/x"))
        );
        assert_eq!(gitfile_target("nonsense"), None);
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("frona-git-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn git_dir(at: &Path) {
        std::fs::create_dir_all(at.join("objects")).unwrap();
        std::fs::create_dir_all(at.join("refs")).unwrap();
        std::fs::write(at.join("HEAD"), "ref: refs/heads/main\n").unwrap();
    }

    #[test]
    fn discovers_repositories_worktrees_and_submodules() {
        let dir = scratch("discover");
        let main = dir.join("main");
        git_dir(&main.join(".git"));
        std::fs::write(
            main.join(".git/config"),
            "[core]\n\thooksPath = .githooks\n[extensions]\n\tworktreeConfig = true\n",
        )
        .unwrap();
        git_dir(&main.join(".git/modules/vendor/lib"));
        std::fs::create_dir_all(main.join("src/deep")).unwrap();
        let repo = discover(&main.join("src/deep"), None, None).unwrap();
        assert_eq!(repo.root, main);
        assert!(!repo.dot_git_file);
        assert_eq!(repo.common_dir, main.join(".git"));
        assert_eq!(repo.hooks_path, Some(main.join(".githooks")));
        assert!(repo.worktree_config);
        assert_eq!(repo.modules, [main.join(".git/modules/vendor/lib")]);

        // A linked worktree: `.git` is a file, the common dir is the main repository's.
        let wt = dir.join("wt");
        let wt_git = main.join(".git/worktrees/wt");
        std::fs::create_dir_all(&wt_git).unwrap();
        std::fs::write(wt_git.join("commondir"), "../..\n").unwrap();
        std::fs::create_dir_all(&wt).unwrap();
        std::fs::write(wt.join(".git"), format!("gitdir: {}\n", wt_git.display())).unwrap();
        let repo = discover(&wt, None, None).unwrap();
        assert!(repo.dot_git_file);
        assert_eq!(repo.root, wt);
        assert_eq!(repo.git_dir, wt_git);
        assert_eq!(repo.common_dir, wt_git.join("../.."));
        assert_eq!(repo.hooks_path, Some(wt.join(".githooks")));

        // The user's config: `~/` expands.
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(home.join(".gitconfig"), "[core]\nhooksPath = ~/hooks\n").unwrap();
        std::fs::write(main.join(".git/config"), "").unwrap();
        let repo = discover(&main, Some(&home), None).unwrap();
        assert_eq!(repo.hooks_path, Some(home.join("hooks")));

        // Not a repository (a `.git` directory that is not a git directory does not count).
        let plain = dir.join("plain");
        std::fs::create_dir_all(plain.join(".git")).unwrap();
        let found = discover(&plain, None, None);
        assert!(
            found.as_ref().is_none_or(|r| !r.root.starts_with(&dir)),
            "{found:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! Persistence protection: the agent must not plant code that a later, *unsandboxed* program
//! runs — a line appended to `~/.bashrc`, a `.git/hooks/pre-commit`, a `.git` with
//! `core.fsmonitor` where there was none, an `.envrc`, a `.vscode/tasks.json`.
//!
//! [`plan`] (pure) lists the protected paths: the shell startup files, git's and ssh's user
//! configuration and a few autostart directories under `$HOME` ([`PROTECTED_IN_HOME`],
//! [`PROTECTED_IN_CONFIG`]); `.git` hooks and config, `.gitmodules`, `.envrc`, `.vscode/`,
//! `.idea/` and `.frona/` in the working directory and in the root of the git repository that
//! holds it ([`PROTECTED_IN_PROJECT`]); frona's own directories (added by `frona run`); plus
//! `--protect`, minus `--writable`. [`prepare`] turns that list into mounts just before the agent
//! starts, and the init helper makes them (`linux/protect.rs`).
//!
//! # How, and why this way
//!
//! - **A path that exists** is bound read-only onto itself (`open_tree` + `mount_setattr` +
//!   `move_mount`; plain `mount(2)` on kernels before 5.12). Writing, appending, truncating and
//!   `chmod` fail with `EROFS`; creating anything inside a protected directory too. The path is
//!   now a mount point, and the kernel refuses to unlink, rename or rename over a mount point
//!   (`EBUSY`), so "delete and recreate", `mv evil ~/.bashrc` and `ln -s` fail; a hard link into
//!   it crosses mounts (`EXDEV`) or lands in a read-only directory.
//! - **A symbolic link** (`~/.bashrc -> dotfiles/bashrc`) is protected twice: its target is
//!   bound read-only where it lives, and the link's own name gets a mount (the new mount API
//!   can mount on a link without following it), so it can be neither replaced nor removed.
//! - **Parents.** A mount point cannot be renamed, but its parent can: `mv .git .git.old &&
//!   mkdir -p .git/hooks` would leave the read-only `hooks` behind. So every ancestor of a
//!   protected path that sits in a directory the agent may write is bound onto itself
//!   (read-write: git still writes `.git/objects`, `.git/index`, `.git/refs`), which makes it a
//!   mount point too ("pinned"). An ancestor in a directory Landlock keeps the agent from
//!   writing needs nothing.
//! - **A path that does not exist yet** is the hard case: a mount needs something to mount on,
//!   and Landlock grants by directory, so it cannot refuse one name in a writable directory.
//!   Where Landlock already keeps the agent from writing the parent (your home directory, by
//!   default), nothing is needed. Where it does not (the working directory; the home directory
//!   when you start frona there or pass `--fs-write ~`; anywhere without Landlock), frona
//!   creates an empty **placeholder** at the first missing component before the agent starts,
//!   binds it read-only, and removes it when the session ends. A placeholder is an empty
//!   directory (git ignores empty directories, so `git add -A` does not pick it up; a
//!   read-only directory blocks a file of that name as well as a directory), except for the
//!   startup files in `$HOME` and git config files, which get an empty file (an empty file is
//!   harmless to the shells and git outside the sandbox; a directory makes them print errors).
//!   It carries the extended attribute `user.frona.placeholder`, and a shared `flock` while a
//!   session uses it: the last session to end removes it, and a placeholder left behind by a
//!   killed frona is removed by the next session in that directory. Other ways were weighed:
//!   making the parent read-only except its existing children stops the agent from creating
//!   any new file in the working directory; an overlay over the working directory changes
//!   inode numbers and is undefined when the host writes there too; checking paths with a
//!   seccomp supervisor is racy (the kernel's own caveat); checking after the session is too
//!   late for a commit made in another terminal meanwhile.
//! - The agent's working directory is entered again after the mounts, so that a relative path
//!   cannot reach the directory underneath them.
//!
//! The cost: while a session runs, the placeholders are visible outside it (empty `.envrc/`,
//! `.vscode/` … in the project); renaming a file across a pinned directory's boundary fails
//! with `EXDEV` (tools copy instead); `git config`, `git remote add` and `git push -u` inside
//! the sandbox fail (they write `.git/config`), as does editing `.vscode/` (`--writable` lifts
//! it). The routes this does not close are listed in `docs/persistence.md`.

pub(crate) mod git;
mod prepare;

pub use git::Repo;
pub use prepare::{
    Disposition, Placeholders, PrepareError, Preview, is_placeholder, prepare, preview,
};

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Facts, IsolationOptions};

/// What a placeholder for a missing path is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    File,
    Dir,
}

/// One protected path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protected {
    pub path: PathBuf,
    pub kind: Kind,
}

/// Startup files and configuration under `$HOME` that other programs run or obey.
pub const PROTECTED_IN_HOME: &[(&str, Kind)] = &[
    (".bashrc", Kind::File),
    (".bash_profile", Kind::File),
    (".bash_login", Kind::File),
    (".profile", Kind::File),
    (".bash_logout", Kind::File),
    (".zshrc", Kind::File),
    (".zprofile", Kind::File),
    (".zshenv", Kind::File),
    (".zlogin", Kind::File),
    (".zlogout", Kind::File),
    (".gitconfig", Kind::File),
    (".ssh", Kind::Dir),
    (".gnupg", Kind::Dir),
];

/// Directories under `~/.config` (and `$XDG_CONFIG_HOME`, when it is elsewhere): fish's
/// startup files, git's user config, desktop autostart entries, systemd user units and their
/// environment.
pub const PROTECTED_IN_CONFIG: &[&str] = &["fish", "git", "autostart", "systemd", "environment.d"];

/// zsh's startup files, also protected in `$ZDOTDIR` when it is set.
const ZSH_FILES: &[&str] = &[".zshrc", ".zprofile", ".zshenv", ".zlogin", ".zlogout"];

/// In the working directory and the repository's root (besides `.git`, which [`plan`] treats
/// by what is there): files that git, direnv, editors and frona act on when you open the
/// project.
pub const PROTECTED_IN_PROJECT: &[&str] = &[".gitmodules", ".envrc", ".vscode", ".idea", ".frona"];

/// What `frona run` protects, and (once [`prepare`]d) how.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistencePlan {
    /// The protected paths, absolute: the documented list, `--protect`, minus `--writable`.
    pub protect: Vec<Protected>,
    /// Filled in by [`prepare`] just before the agent starts: the mounts the init helper makes.
    #[serde(default)]
    pub mounts: Vec<ProtectMount>,
    /// Some missing path is left to Landlock (its parent is not writable): the agent must not
    /// start without Landlock enforced.
    #[serde(default)]
    pub relies_on_landlock: bool,
}

/// One mount the init helper makes, in three phases (see `linux/protect.rs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProtectMount {
    /// Bound read-only onto itself (before the credential masks).
    ReadOnly(PathBuf),
    /// A symbolic link: its target, read-only, is mounted on the link itself (after the
    /// masks, so that the copy carries them).
    ReadOnlyLink(PathBuf),
    /// A directory (or link) bound onto itself, read-write, so that it cannot be renamed or
    /// removed (last).
    Pin(PathBuf),
}

/// The protected paths for these options on this machine. Pure.
pub fn plan(options: &IsolationOptions, facts: &Facts) -> PersistencePlan {
    let mut protect: Vec<Protected> = Vec::new();
    let mut add = |path: PathBuf, kind: Kind| protect.push(Protected { path, kind });
    if let Some(home) = &facts.home {
        for (rel, kind) in PROTECTED_IN_HOME {
            add(home.join(rel), *kind);
        }
        let mut config_dirs = vec![home.join(".config")];
        config_dirs.extend(facts.xdg_config_home.clone());
        for dir in config_dirs {
            for rel in PROTECTED_IN_CONFIG {
                add(dir.join(rel), Kind::Dir);
            }
        }
    }
    if let Some(zdotdir) = &facts.zdotdir {
        for rel in ZSH_FILES {
            add(zdotdir.join(rel), Kind::File);
        }
    }
    let mut projects = vec![facts.cwd.clone()];
    match &facts.repo {
        None => {
            // No repository: a `.git` created here or in any ancestor would become one.
            for dir in facts.cwd.ancestors() {
                add(dir.join(".git"), Kind::Dir);
            }
        }
        Some(repo) => {
            // A `.git` between the working directory and the root would shadow the repository.
            for dir in facts.cwd.ancestors().take_while(|d| *d != repo.root) {
                add(dir.join(".git"), Kind::Dir);
            }
            projects.push(repo.root.clone());
            if repo.dot_git_file {
                add(repo.root.join(".git"), Kind::File);
            }
            for dir in [&repo.common_dir, &repo.git_dir] {
                add(dir.join("hooks"), Kind::Dir);
                add(dir.join("config"), Kind::File);
                if repo.worktree_config {
                    add(dir.join("config.worktree"), Kind::File);
                }
            }
            for module in &repo.modules {
                add(module.join("hooks"), Kind::Dir);
                add(module.join("config"), Kind::File);
            }
            if let Some(hooks) = &repo.hooks_path {
                add(hooks.clone(), Kind::Dir);
            }
        }
    }
    for dir in &projects {
        for rel in PROTECTED_IN_PROJECT {
            add(dir.join(rel), Kind::Dir);
        }
    }
    for path in &options.protect {
        add(absolute(path, &facts.cwd), Kind::Dir);
    }
    let writable: Vec<PathBuf> = options
        .writable
        .iter()
        .map(|p| absolute(p, &facts.cwd))
        .collect();
    let mut seen = std::collections::HashSet::new();
    protect
        .retain(|p| !writable.iter().any(|w| p.path.starts_with(w)) && seen.insert(p.path.clone()));
    PersistencePlan {
        protect,
        mounts: Vec::new(),
        relies_on_landlock: false,
    }
}

/// `path` made absolute from `cwd`, with `.` and `..` resolved lexically.
fn absolute(path: &Path, cwd: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    };
    let mut out = PathBuf::from("/");
    for component in joined.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isolation::KernelFeatures;

    fn facts(repo: Option<Repo>) -> Facts {
        Facts {
            uid: 1000,
            gid: 1000,
            home: Some("/home/dev".into()),
            cwd: "/home/dev/src/app/web".into(),
            tmpdir: None,
            xdg_cache_home: None,
            xdg_config_home: Some("/home/dev/.config".into()),
            xdg_data_home: None,
            xdg_state_home: None,
            zdotdir: None,
            repo,
            kernel: KernelFeatures::all_available(),
            runtime_dir: None,
            ssh_auth_sock: None,
            bound_sockets: Vec::new(),
            env_files: Vec::new(),
        }
    }

    fn repo() -> Repo {
        Repo {
            root: "/home/dev/src/app".into(),
            dot_git_file: false,
            git_dir: "/home/dev/src/app/.git".into(),
            common_dir: "/home/dev/src/app/.git".into(),
            hooks_path: None,
            worktree_config: false,
            modules: Vec::new(),
        }
    }

    fn paths(plan: &PersistencePlan) -> Vec<String> {
        plan.protect
            .iter()
            .map(|p| p.path.display().to_string())
            .collect()
    }

    #[test]
    fn home_and_repository() {
        let plan = plan(&IsolationOptions::default(), &facts(Some(repo())));
        let paths = paths(&plan);
        for expected in [
            "/home/dev/.bashrc",
            "/home/dev/.bash_profile",
            "/home/dev/.zshrc",
            "/home/dev/.zshenv",
            "/home/dev/.config/fish",
            "/home/dev/.config/git",
            "/home/dev/.gitconfig",
            "/home/dev/.ssh",
            "/home/dev/.gnupg",
            // A `.git` in the working directory (a subdirectory) would shadow the repository.
            "/home/dev/src/app/web/.git",
            "/home/dev/src/app/.git/hooks",
            "/home/dev/src/app/.git/config",
            "/home/dev/src/app/web/.envrc",
            "/home/dev/src/app/.envrc",
            "/home/dev/src/app/.gitmodules",
            "/home/dev/src/app/.vscode",
            "/home/dev/src/app/.idea",
            "/home/dev/src/app/.frona",
        ] {
            assert!(
                paths.contains(&expected.to_owned()),
                "{expected} in {paths:?}"
            );
        }
        // Not the whole `.git`: git must still write objects, the index and refs.
        assert!(!paths.contains(&"/home/dev/src/app/.git".to_owned()));
        // Above the repository's root a `.git` changes nothing.
        assert!(!paths.contains(&"/home/dev/src/.git".to_owned()));
        let kind = |p: &str| {
            plan.protect
                .iter()
                .find(|x| x.path == Path::new(p))
                .unwrap()
                .kind
        };
        assert_eq!(kind("/home/dev/.bashrc"), Kind::File);
        assert_eq!(kind("/home/dev/src/app/.envrc"), Kind::Dir);
        assert_eq!(kind("/home/dev/src/app/.git/config"), Kind::File);
    }

    #[test]
    fn without_a_repository_every_ancestor_gets_no_git() {
        let plan = plan(&IsolationOptions::default(), &facts(None));
        let paths = paths(&plan);
        for dir in [
            "/home/dev/src/app/web",
            "/home/dev/src/app",
            "/home/dev",
            "/",
        ] {
            let git = Path::new(dir).join(".git").display().to_string();
            assert!(paths.contains(&git), "{git}");
        }
        assert!(!paths.iter().any(|p| p.contains("hooks")));
    }

    #[test]
    fn worktrees_submodules_and_hooks_path() {
        let mut r = repo();
        r.dot_git_file = true;
        r.git_dir = "/home/dev/src/main/.git/worktrees/app".into();
        r.common_dir = "/home/dev/src/main/.git".into();
        r.worktree_config = true;
        r.modules = vec!["/home/dev/src/main/.git/modules/lib".into()];
        r.hooks_path = Some("/home/dev/src/app/.husky/_".into());
        let plan = plan(&IsolationOptions::default(), &facts(Some(r)));
        let paths = paths(&plan);
        for expected in [
            "/home/dev/src/app/.git",
            "/home/dev/src/main/.git/hooks",
            "/home/dev/src/main/.git/config",
            "/home/dev/src/main/.git/config.worktree",
            "/home/dev/src/main/.git/worktrees/app/config.worktree",
            "/home/dev/src/main/.git/modules/lib/hooks",
            "/home/dev/src/main/.git/modules/lib/config",
            "/home/dev/src/app/.husky/_",
        ] {
            assert!(
                paths.contains(&expected.to_owned()),
                "{expected} in {paths:?}"
            );
        }
    }

    #[test]
    fn protect_adds_and_writable_removes() {
        let options = IsolationOptions {
            protect: vec!["Makefile".into(), "/etc/app/../app.conf".into()],
            writable: vec![".vscode".into(), "/home/dev/.config".into()],
            ..IsolationOptions::default()
        };
        let plan = plan(&options, &facts(None));
        let paths = paths(&plan);
        assert!(paths.contains(&"/home/dev/src/app/web/Makefile".to_owned()));
        assert!(paths.contains(&"/etc/app.conf".to_owned()));
        assert!(!paths.contains(&"/home/dev/src/app/web/.vscode".to_owned()));
        // Everything beneath a --writable path goes too.
        assert!(!paths.iter().any(|p| p.starts_with("/home/dev/.config/")));
        assert!(paths.contains(&"/home/dev/.bashrc".to_owned()));
        let unique: std::collections::HashSet<_> = paths.iter().collect();
        assert_eq!(unique.len(), paths.len());
    }

    /// Part of the default isolation; nothing without a mount namespace.
    #[test]
    fn the_isolation_plan_carries_it() {
        use crate::isolation::{IsolationMode, plan as isolation_plan};
        let planned = isolation_plan(&IsolationOptions::default(), &facts(None)).unwrap();
        assert!(planned.persistence.is_some_and(|p| !p.protect.is_empty()));
        let off = IsolationOptions {
            mode: IsolationMode::Off,
            ..IsolationOptions::default()
        };
        assert_eq!(
            isolation_plan(&off, &facts(None)).unwrap().persistence,
            None
        );
        let mut no_ns = facts(None);
        no_ns.kernel.user_namespaces = Err(("disabled".into(), "sysctl".into()));
        let best_effort = IsolationOptions {
            mode: IsolationMode::BestEffort,
            ..IsolationOptions::default()
        };
        let planned = isolation_plan(&best_effort, &no_ns).unwrap();
        assert_eq!(planned.persistence, None);
        assert!(
            planned
                .skipped
                .iter()
                .any(|s| s.feature == "persistence protection")
        );
        let json = serde_json::to_string(
            &isolation_plan(&IsolationOptions::default(), &facts(None)).unwrap(),
        )
        .unwrap();
        let back: crate::isolation::Plan = serde_json::from_str(&json).unwrap();
        assert!(back.persistence.is_some());
    }

    #[test]
    fn xdg_config_home_and_zdotdir_are_protected_too() {
        let mut f = facts(None);
        f.xdg_config_home = Some("/home/dev/.dotfiles/config".into());
        f.zdotdir = Some("/home/dev/.zsh".into());
        let paths = paths(&plan(&IsolationOptions::default(), &f));
        for expected in [
            "/home/dev/.config/git",
            "/home/dev/.dotfiles/config/git",
            "/home/dev/.dotfiles/config/fish",
            "/home/dev/.zsh/.zshrc",
        ] {
            assert!(paths.contains(&expected.to_owned()), "{expected}");
        }
    }
}

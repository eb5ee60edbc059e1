//! Persistence protection: an agent tries every route to plant code that a later, unsandboxed
//! shell or `git` would run — in `$HOME` and in the project, for paths that exist and paths
//! that do not exist yet. Each route is checked on the host after the session (the protected
//! file really is unchanged, the placeholders are gone), and each is also run with
//! `--isolation off`, where it must work: the test can fail.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{command, frona, text};

const ORIGINAL: &str = "# the user's own bashrc\n";

/// A scratch home and project outside every directory the agent may write by default, so that
/// only what frona does (Landlock, the mounts) decides.
struct World {
    root: PathBuf,
    home: PathBuf,
    /// A git repository with one commit and no `.git/hooks` directory.
    proj: PathBuf,
    /// A directory in no repository of its own.
    plain: PathBuf,
}

fn git(dir: &Path, args: &[&str]) {
    let output = command(
        "git",
        &["-c", "user.email=t@example.com", "-c", "user.name=t"],
    )
    .args(args)
    .current_dir(dir)
    .env("GIT_CONFIG_NOSYSTEM", "1")
    .output()
    .unwrap();
    assert!(output.status.success(), "git {args:?}: {}", text(&output));
}

impl World {
    fn new(name: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("frona-persist-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let home = root.join("home");
        let proj = root.join("proj");
        let plain = root.join("plain");
        for dir in [&home, &proj, &plain, &home.join(".config")] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(home.join(".bashrc"), ORIGINAL).unwrap();
        std::fs::set_permissions(home.join(".bashrc"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        git(&proj, &["init", "-q", "-b", "main"]);
        std::fs::write(proj.join("README"), "hello\n").unwrap();
        git(&proj, &["add", "README"]);
        git(&proj, &["commit", "-q", "-m", "init"]);
        std::fs::remove_dir_all(proj.join(".git/hooks")).unwrap();
        Self {
            root,
            home,
            proj,
            plain,
        }
    }

    fn dir(&self, cwd: Cwd) -> &Path {
        match cwd {
            Cwd::Home => &self.home,
            Cwd::Proj => &self.proj,
            Cwd::Plain => &self.plain,
        }
    }

    /// `frona run --quiet FLAGS -- sh -c SCRIPT` in `cwd`, with `HOME` here.
    fn run(&self, flags: &[&str], cwd: Cwd, script: &str) -> Output {
        frona()
            .arg("run")
            .arg("--quiet")
            .args(flags)
            .args(["--", "sh", "-c", script])
            .current_dir(self.dir(cwd))
            .env("HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap()
    }

    /// Every path under the root with its size, for "nothing changed".
    fn listing(&self) -> Vec<(PathBuf, u64)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, u64)>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                let meta = std::fs::symlink_metadata(&path).unwrap();
                out.push((path.clone(), if meta.is_dir() { 0 } else { meta.len() }));
                if meta.is_dir() && path.file_name() != Some(".git".as_ref()) {
                    walk(&path, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out.sort();
        out
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[derive(Clone, Copy, Debug)]
enum Cwd {
    Home,
    Proj,
    Plain,
}

fn contains(path: &Path, needle: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle))
}

/// One way to plant code: a script the agent runs, and whether it worked, seen from the host.
struct Route {
    name: &'static str,
    cwd: Cwd,
    script: &'static str,
    planted: fn(&World) -> bool,
}

fn bashrc_changed(w: &World) -> bool {
    let path = w.home.join(".bashrc");
    let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
    std::fs::read_to_string(&path).ok().as_deref() != Some(ORIGINAL) || mode.ok() != Some(0o644)
}

fn zshrc_planted(w: &World) -> bool {
    contains(&w.home.join(".zshrc"), "EVIL")
}

fn hook_planted(w: &World) -> bool {
    w.proj.join(".git/hooks/pre-commit").exists()
}

/// The routes into `$HOME` (`~/.bashrc` exists, `~/.zshrc` does not), run from `cwd`.
fn home_routes(cwd: Cwd) -> Vec<Route> {
    let r = |name, script, planted| Route {
        name,
        cwd,
        script,
        planted,
    };
    vec![
        r(
            "append",
            r#"echo 'echo EVIL' >> "$HOME/.bashrc""#,
            bashrc_changed,
        ),
        r(
            "overwrite",
            r#"echo 'echo EVIL' > "$HOME/.bashrc""#,
            bashrc_changed,
        ),
        r(
            "truncate",
            r#"truncate -s 0 "$HOME/.bashrc""#,
            bashrc_changed,
        ),
        r(
            "rename over",
            r#"echo 'echo EVIL' > evil && mv -f evil "$HOME/.bashrc""#,
            bashrc_changed,
        ),
        r(
            "unlink and recreate",
            r#"rm -f "$HOME/.bashrc"; echo 'echo EVIL' > "$HOME/.bashrc""#,
            bashrc_changed,
        ),
        r(
            "symlink swap",
            r#"echo 'echo EVIL' > evil; ln -sf "$PWD/evil" "$HOME/.bashrc""#,
            bashrc_changed,
        ),
        r(
            "hard link over",
            r#"echo 'echo EVIL' > evil; rm -f "$HOME/.bashrc"; ln evil "$HOME/.bashrc""#,
            bashrc_changed,
        ),
        r("chmod", r#"chmod 0666 "$HOME/.bashrc""#, bashrc_changed),
        r(
            "create missing",
            r#"echo 'echo EVIL' > "$HOME/.zshrc""#,
            zshrc_planted,
        ),
        r(
            "symlink missing",
            r#"echo 'echo EVIL' > "$PWD/evil"; ln -s "$PWD/evil" "$HOME/.zshrc""#,
            zshrc_planted,
        ),
        r(
            "hard link missing",
            r#"echo 'echo EVIL' > evil; ln evil "$HOME/.zshrc""#,
            zshrc_planted,
        ),
        r(
            "rename to missing",
            r#"echo 'echo EVIL' > evil; mv evil "$HOME/.zshrc""#,
            zshrc_planted,
        ),
        r(
            "rename the parent away and recreate",
            r#"mv "$HOME/.config" "$HOME/.config.old" && mkdir -p "$HOME/.config/git" && echo '[core] fsmonitor = echo EVIL' > "$HOME/.config/git/config""#,
            |w| contains(&w.home.join(".config/git/config"), "EVIL"),
        ),
    ]
}

/// The routes into the project (a repository without `.git/hooks`) and a plain directory.
fn project_routes() -> Vec<Route> {
    let r = |name, cwd, script, planted| Route {
        name,
        cwd,
        script,
        planted,
    };
    vec![
        r(
            "create a hook in a repository without hooks",
            Cwd::Proj,
            r#"mkdir -p .git/hooks && printf '#!/bin/sh\necho EVIL\n' > .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit"#,
            hook_planted,
        ),
        r(
            "hooks as a symlink to a writable directory",
            Cwd::Proj,
            r#"mkdir -p evilhooks && echo 'echo EVIL' > evilhooks/pre-commit && ln -s "$PWD/evilhooks" .git/hooks"#,
            hook_planted,
        ),
        r(
            "rename .git away and recreate it",
            Cwd::Proj,
            r#"mv .git .git.old && cp -r .git.old .git && mkdir -p .git/hooks && echo 'echo EVIL' > .git/hooks/pre-commit"#,
            hook_planted,
        ),
        r(
            ".git replaced by a symlink",
            Cwd::Proj,
            r#"mv .git elsewhere && mkdir -p elsewhere/hooks && echo 'echo EVIL' > elsewhere/hooks/pre-commit && ln -s "$PWD/elsewhere" .git"#,
            hook_planted,
        ),
        r(
            "hard link a hook",
            Cwd::Proj,
            r#"echo 'echo EVIL' > evil && mkdir -p .git/hooks; ln evil .git/hooks/pre-commit"#,
            hook_planted,
        ),
        r(
            "append to .git/config",
            Cwd::Proj,
            r#"printf '[core]\n\tfsmonitor = echo EVIL\n' >> .git/config"#,
            |w| contains(&w.proj.join(".git/config"), "EVIL"),
        ),
        r(
            "rename over .git/config",
            Cwd::Proj,
            r#"cp .git/config c && printf '[core]\n\tfsmonitor = echo EVIL\n' >> c && mv -f c .git/config"#,
            |w| contains(&w.proj.join(".git/config"), "EVIL"),
        ),
        r(
            "create .envrc",
            Cwd::Proj,
            r#"echo 'echo EVIL' > .envrc"#,
            |w| contains(&w.proj.join(".envrc"), "EVIL"),
        ),
        r(
            "create .gitmodules",
            Cwd::Proj,
            r#"printf '[submodule "x"]\n\tpath = x\n\turl = ../EVIL\n' > .gitmodules"#,
            |w| contains(&w.proj.join(".gitmodules"), "EVIL"),
        ),
        r(
            "create .vscode/tasks.json",
            Cwd::Proj,
            r#"mkdir -p .vscode && echo '{"EVIL": 1}' > .vscode/tasks.json"#,
            |w| contains(&w.proj.join(".vscode/tasks.json"), "EVIL"),
        ),
        r(
            "create .idea",
            Cwd::Proj,
            r#"mkdir -p .idea && echo EVIL > .idea/workspace.xml"#,
            |w| contains(&w.proj.join(".idea/workspace.xml"), "EVIL"),
        ),
        r(
            "create .frona/config.yaml",
            Cwd::Proj,
            r#"mkdir -p .frona && echo '# EVIL' > .frona/config.yaml"#,
            |w| contains(&w.proj.join(".frona/config.yaml"), "EVIL"),
        ),
        r(
            "create .git where there is none",
            Cwd::Plain,
            r#"git init -q . 2>/dev/null || mkdir -p .git/hooks; echo 'echo EVIL' > .git/hooks/pre-commit"#,
            |w| w.plain.join(".git").exists(),
        ),
        r(
            "a relative path from the working directory",
            Cwd::Proj,
            r#"cd . && mkdir -p ./.git/hooks && echo 'echo EVIL' > ./.git/hooks/post-checkout"#,
            |w| w.proj.join(".git/hooks/post-checkout").exists(),
        ),
    ]
}

/// What the attack scripts create for themselves in the working directory.
const SCRATCH: &[&str] = &["evil", "evilhooks", "elsewhere", ".git.old", "c"];

/// Runs `route` on a fresh world with `flags`; returns whether the code was planted, the
/// session's output, and what is new or gone afterwards besides the scripts' scratch files
/// (a placeholder left behind, a file removed).
fn attempt(route: &Route, flags: &[&str]) -> (bool, String, Vec<PathBuf>) {
    let world = World::new("route");
    let before = world.listing();
    let output = world.run(flags, route.cwd, route.script);
    let planted = (route.planted)(&world);
    let after = world.listing();
    let scratch = |p: &Path| {
        p.strip_prefix(world.dir(route.cwd))
            .ok()
            .and_then(|rel| rel.components().next())
            .is_some_and(|first| SCRATCH.iter().any(|s| first.as_os_str() == *s))
    };
    let mut changed: Vec<PathBuf> = after
        .iter()
        .filter(|(p, _)| !before.iter().any(|(b, _)| b == p) && !scratch(p))
        .map(|(p, _)| p.clone())
        .collect();
    changed.extend(
        before
            .iter()
            .filter(|(b, _)| !after.iter().any(|(p, _)| p == b))
            .map(|(b, _)| b.clone()),
    );
    (planted, text(&output), changed)
}

fn check_routes(routes: &[Route]) {
    let mut failures = Vec::new();
    for route in routes {
        let (planted, output, changed) = attempt(route, &[]);
        if planted {
            failures.push(format!(
                "{} ({:?}): planted under default isolation: {output}",
                route.name, route.cwd
            ));
        }
        if !changed.is_empty() {
            failures.push(format!(
                "{} ({:?}): the session changed {changed:?}: {output}",
                route.name, route.cwd
            ));
        }
        let (planted_off, output_off, _) = attempt(route, &["--isolation", "off"]);
        if !planted_off {
            failures.push(format!(
                "{} ({:?}): did not work even with --isolation off (the test proves nothing): {output_off}",
                route.name, route.cwd
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// From the home directory itself, which Landlock then lets the agent write: the mounts and
/// placeholders are what stops each route.
#[test]
fn home_startup_files_cannot_be_planted_from_home() {
    check_routes(&home_routes(Cwd::Home));
}

/// From a project: Landlock keeps the agent out of `$HOME`, the read-only mounts stop `chmod`.
#[test]
fn home_startup_files_cannot_be_planted_from_a_project() {
    check_routes(&home_routes(Cwd::Proj));
}

#[test]
fn git_hooks_and_project_files_cannot_be_planted() {
    check_routes(&project_routes());
}

/// `chmod +x` on a disabled hook that is already there.
#[test]
fn an_existing_hook_cannot_be_enabled() {
    let route = Route {
        name: "enable a disabled hook",
        cwd: Cwd::Proj,
        script: "chmod +x .git/hooks/pre-commit",
        planted: |w| {
            std::fs::metadata(w.proj.join(".git/hooks/pre-commit"))
                .is_ok_and(|m| m.permissions().mode() & 0o100 != 0)
        },
    };
    for (flags, expect) in [(&[][..], false), (&["--isolation", "off"][..], true)] {
        let world = World::new("chmod-hook");
        std::fs::create_dir_all(world.proj.join(".git/hooks")).unwrap();
        std::fs::write(world.proj.join(".git/hooks/pre-commit"), "echo EVIL\n").unwrap();
        let output = world.run(flags, route.cwd, route.script);
        assert_eq!(
            (route.planted)(&world),
            expect,
            "{flags:?}: {}",
            text(&output)
        );
    }
}

/// Normal work still works: new files, `git commit` (objects, index, refs, logs), a new
/// repository in a subdirectory; the placeholders never reach a commit and are gone after.
#[test]
fn normal_work_and_git_commit_still_work() {
    let world = World::new("work");
    let script = r#"set -e
echo change >> README
echo new > new.txt
mkdir -p src && echo 'fn main() {}' > src/main.rs
git add -A
git -c user.email=a@example.com -c user.name=agent commit -q -m 'agent work'
git status --porcelain
git init -q sub && echo sub-ok
"#;
    let output = world.run(&[], Cwd::Proj, script);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "sub-ok",
        "{}",
        text(&output)
    );
    let log = command("git", &["show", "--stat", "--format=%s", "HEAD"])
        .current_dir(&world.proj)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(log.starts_with("agent work"), "{log}");
    for placeholder in [".envrc", ".gitmodules", ".vscode", ".idea", ".frona"] {
        assert!(!log.contains(placeholder), "{placeholder} committed: {log}");
        assert!(
            !world.proj.join(placeholder).exists(),
            "{placeholder} left behind"
        );
    }
    assert!(
        !world.proj.join(".git/hooks").exists(),
        "hooks placeholder left behind"
    );
    assert!(world.proj.join("sub/.git").is_dir());
}

#[test]
fn writable_and_protect_adjust_the_list() {
    let world = World::new("adjust");
    let output = world.run(
        &["--writable", ".envrc"],
        Cwd::Proj,
        "echo 'use nix' > .envrc",
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(contains(&world.proj.join(".envrc"), "use nix"));

    std::fs::write(world.proj.join("Makefile"), "all:\n").unwrap();
    let output = world.run(
        &["--protect", "Makefile"],
        Cwd::Proj,
        "echo EVIL >> Makefile",
    );
    assert_ne!(output.status.code(), Some(0), "{}", text(&output));
    assert!(!contains(&world.proj.join("Makefile"), "EVIL"));
}

/// `run.protect` may be set by a project file (it only tightens); `run.writable` may not.
#[test]
fn project_file_may_protect_but_not_lift() {
    let world = World::new("project-file");
    let frona_dir = world.proj.join(".frona");
    std::fs::create_dir_all(&frona_dir).unwrap();
    std::fs::set_permissions(&frona_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = frona_dir.join("config.yaml");
    std::fs::write(world.proj.join("Makefile"), "all:\n").unwrap();
    std::fs::write(&config, "run:\n  protect: [Makefile]\n").unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = world.run(&[], Cwd::Proj, "echo EVIL >> Makefile");
    assert_ne!(output.status.code(), Some(0), "{}", text(&output));
    assert!(!contains(&world.proj.join("Makefile"), "EVIL"));

    std::fs::write(&config, "run:\n  writable: [.git/hooks]\n").unwrap();
    let output = world.run(&[], Cwd::Proj, "true");
    assert_eq!(output.status.code(), Some(125), "{}", text(&output));
    assert!(text(&output).contains("run.writable"), "{}", text(&output));
}

/// `frona doctor` shows what would be protected, and how.
#[test]
fn doctor_shows_the_persistence_plan() {
    let world = World::new("doctor");
    let output = frona()
        .args(["doctor", "--json"])
        .current_dir(&world.proj)
        .env("HOME", &world.home)
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let paths = doc["persistence"]["paths"].as_array().unwrap();
    let state = |p: &Path| {
        paths
            .iter()
            .find(|e| e["path"] == p.display().to_string())
            .map(|e| e["disposition"].as_str().unwrap().to_owned())
    };
    assert_eq!(
        state(&world.home.join(".bashrc")).as_deref(),
        Some("read-only")
    );
    // Landlock keeps a missing file from being created when its directory is not writable;
    // a checkout under /tmp (writable by default) gets a placeholder instead. Either protects.
    let zshrc = state(&world.home.join(".zshrc"));
    assert!(
        matches!(zshrc.as_deref(), Some("landlock" | "placeholder")),
        "{zshrc:?}"
    );
    assert_eq!(
        state(&world.proj.join(".git/hooks")).as_deref(),
        Some("placeholder")
    );
    assert_eq!(
        state(&world.proj.join(".git/config")).as_deref(),
        Some("read-only")
    );
    assert!(
        !world.proj.join(".git/hooks").exists(),
        "doctor changed nothing"
    );
    let text_out = frona()
        .arg("doctor")
        .current_dir(&world.proj)
        .env("HOME", &world.home)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&text_out.stdout).contains("persistence:"));
    let help = frona().args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for listed in [
        "~/.bashrc",
        "~/.zshenv",
        "~/.config/git",
        ".git/hooks/",
        ".envrc",
        ".vscode",
    ] {
        assert!(help.contains(listed), "`frona run --help` lacks {listed}");
    }
}

/// The same protection for an unprivileged caller (user namespace, mounts made as root of it).
#[test]
fn unprivileged_caller_is_protected_too() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIPPED unprivileged_caller_is_protected_too: needs root to switch users");
        return;
    }
    let as_nobody = |world: &World, flags: &[&str], cwd: Cwd, script: &str| -> Output {
        command(
            "setpriv",
            &["--reuid=65534", "--regid=65534", "--clear-groups", "--"],
        )
        .arg(crate::support::frona_bin())
        .arg("run")
        .arg("--quiet")
        .args(flags)
        .args(["--", "sh", "-c", script])
        .current_dir(world.dir(cwd))
        .env("HOME", &world.home)
        .output()
        .unwrap()
    };
    let doctor = command(
        "setpriv",
        &["--reuid=65534", "--regid=65534", "--clear-groups", "--"],
    )
    .arg(crate::support::frona_bin())
    .args(["doctor", "--json"])
    .current_dir("/")
    .output()
    .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap_or_default();
    if doc["namespaces_probe"]["ok"] != true {
        eprintln!(
            "SKIPPED unprivileged_caller_is_protected_too: this kernel refuses unprivileged user namespaces: {doc}"
        );
        return;
    }
    for route in home_routes(Cwd::Home)
        .iter()
        .chain(project_routes().iter())
        .filter(|r| {
            [
                "append",
                "symlink swap",
                "create missing",
                "rename the parent away and recreate",
                "create a hook in a repository without hooks",
                "rename .git away and recreate it",
                "create .envrc",
                "create .git where there is none",
            ]
            .contains(&r.name)
        })
    {
        for (flags, expect) in [(&[][..], false), (&["--isolation", "off"][..], true)] {
            let world = World::new("nobody");
            chown_nobody(&world.root);
            let output = as_nobody(&world, flags, route.cwd, route.script);
            assert_eq!(
                (route.planted)(&world),
                expect,
                "unprivileged {} {flags:?}: {}",
                route.name,
                text(&output)
            );
        }
    }
}

fn chown_nobody(dir: &Path) {
    let status = command("chown", &["-R", "65534:65534"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Two users' sessions in one directory: the second holds the first one's placeholders (it
/// must be able to open them), so the first, ending, leaves them to it instead of pulling them
/// from under its mounts (which failed the second's start with "No such file or directory").
#[test]
fn another_users_session_keeps_the_placeholders_it_relies_on() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIPPED: needs root to switch users");
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("frona-two-users-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let envrc = dir.join(".envrc");
    let root_session = frona()
        .args(["run", "--quiet", "--", "sleep", "2"])
        .current_dir(&dir)
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !envrc.exists() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "no placeholder"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let nobody = command(
        "setpriv",
        &["--reuid=65534", "--regid=65534", "--clear-groups", "--"],
    )
    .arg(crate::support::frona_bin())
    .args([
        "run",
        "--quiet",
        "--",
        "sh",
        "-c",
        "sleep 4; echo still-protected",
    ])
    .current_dir(&dir)
    .env("HOME", &dir)
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let mut root_session = root_session;
    assert!(root_session.wait().unwrap().success());
    // The first session is gone; the second still relies on the placeholder.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        envrc.exists(),
        "the first session removed a placeholder the second holds"
    );
    let output = nobody.wait_with_output().unwrap();
    assert!(
        text(&output).contains("still-protected"),
        "{}",
        text(&output)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

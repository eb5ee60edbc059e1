//! The ambient channels that are not variables (`isolation/ambient.rs`, `dotenv.rs`): sockets
//! that act for the user, history files, project `.env` files, and the links and `/proc` paths
//! a hostile agent would try to reach them through. Each attack fails by default and works
//! with `--isolation off`, which shows the test can fail.

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::frona;

const MARKER: &str = "FRONA-TEST-AMBIENT-91c2";

/// A fake `$HOME`, `$XDG_RUNTIME_DIR` and project, removed on drop.
struct World {
    root: PathBuf,
}

impl World {
    fn new(name: &str) -> Self {
        use std::os::unix::fs::PermissionsExt as _;
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("frona-ambient-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for dir in ["home", "run", "project/pkg"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::set_permissions(root.join("run"), std::fs::Permissions::from_mode(0o700)).unwrap();
        let git = std::process::Command::new("git")
            .args(["init", "-q"])
            .current_dir(root.join("project"))
            .status()
            .unwrap();
        assert!(git.success());
        Self { root }
    }

    fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    fn runtime_dir(&self) -> PathBuf {
        self.root.join("run")
    }

    fn project(&self) -> PathBuf {
        self.root.join("project")
    }

    /// A listening socket at `path` (its directories made), kept while the listener lives.
    fn listen(&self, path: &Path) -> UnixListener {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(path);
        UnixListener::bind(path).unwrap()
    }

    fn write(&self, path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// `frona run FLAGS -- sh -c SCRIPT` in `cwd`, with this world's `HOME` and runtime dir.
    fn run(&self, flags: &[&str], cwd: &Path, vars: &[(&str, &str)], script: &str) -> Output {
        let mut cmd = frona();
        cmd.arg("run")
            .args(flags)
            .args(["--", "sh", "-c", script])
            .current_dir(cwd)
            .env("HOME", self.home())
            .env("XDG_RUNTIME_DIR", self.runtime_dir());
        for (name, value) in vars {
            cmd.env(name, value);
        }
        cmd.output().unwrap()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A shell script that tries to connect to each socket and prints `connected PATH` when one
/// answers (python3: sh has no way to connect to a Unix socket).
fn connect_script(paths: &[PathBuf]) -> String {
    let list: Vec<String> = paths.iter().map(|p| format!("'{}'", p.display())).collect();
    format!(
        "python3 -c '\nimport socket, sys\nfor p in sys.argv[1:]:\n    s = socket.socket(socket.AF_UNIX)\n    try:\n        s.connect(p); print(\"connected\", p)\n    except OSError as e:\n        print(\"refused\", p, e)\n' {}",
        list.join(" ")
    )
}

#[test]
fn sockets_outside_the_sandbox_refuse_connections() {
    let world = World::new("sockets");
    let rt = world.runtime_dir();
    let sockets = [
        // Known by name: the session bus, gpg-agent, the keyring's ssh agent.
        rt.join("bus"),
        rt.join("gnupg/S.gpg-agent"),
        rt.join("keyring/ssh"),
        // Known by nothing but being bound when frona starts: an ssh-agent in /tmp, a
        // database socket in the project the agent may otherwise write to.
        world.root.join("ssh-XYZ/agent.42"),
        world.project().join("db.sock"),
    ];
    let _listeners: Vec<UnixListener> = sockets.iter().map(|p| world.listen(p)).collect();
    let script = connect_script(&sockets);
    let isolated = world.run(&["--quiet"], &world.project(), &[], &script);
    let out = String::from_utf8_lossy(&isolated.stdout);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("refused ")).count(),
        sockets.len(),
        "{}",
        text(&isolated)
    );
    assert!(!out.contains("connected"), "{}", text(&isolated));
    let open = world.run(
        &["--quiet", "--isolation", "off"],
        &world.project(),
        &[],
        &script,
    );
    assert_eq!(
        String::from_utf8_lossy(&open.stdout)
            .matches("connected")
            .count(),
        sockets.len(),
        "{}",
        text(&open)
    );
}

#[test]
fn allow_socket_passes_that_socket_and_nothing_else() {
    let world = World::new("allow");
    let agent = world.root.join("ssh-ABC/agent.7");
    let other = world.root.join("other.sock");
    let _a = world.listen(&agent);
    let _b = world.listen(&other);
    let script = format!(
        "echo SSH_AUTH_SOCK=${{SSH_AUTH_SOCK:-unset}}; {}",
        connect_script(&[agent.clone(), other.clone()])
    );
    let vars = [("SSH_AUTH_SOCK", agent.to_str().unwrap())];
    let output = world.run(
        &["--allow-socket", agent.to_str().unwrap()],
        &world.project(),
        &vars,
        &script,
    );
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        out.contains(&format!("SSH_AUTH_SOCK={}", agent.display())),
        "{}",
        text(&output)
    );
    assert!(
        out.contains(&format!("connected {}", agent.display())),
        "{}",
        text(&output)
    );
    assert!(
        out.contains(&format!("refused {}", other.display())),
        "{}",
        text(&output)
    );
    // The warning says what passing it grants.
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("the agent can use ssh-agent as you"), "{err}");
}

#[test]
fn socket_variables_are_stripped_with_the_reason() {
    let world = World::new("vars");
    let bus = world.runtime_dir().join("bus");
    let bus_address = format!("unix:path={}", bus.display());
    let vars = [
        ("SSH_AUTH_SOCK", "/tmp/ssh-XYZ/agent.42"),
        ("DBUS_SESSION_BUS_ADDRESS", bus_address.as_str()),
        ("DOCKER_HOST", "unix:///var/run/docker.sock"),
    ];
    let script = "echo ${SSH_AUTH_SOCK-none} ${DBUS_SESSION_BUS_ADDRESS-none} ${DOCKER_HOST-none}";
    for flags in [&[][..], &["--isolation", "off"][..]] {
        let output = world.run(flags, &world.project(), &vars, script);
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "none none none\n",
            "{}",
            text(&output)
        );
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(
            err.contains("SSH_AUTH_SOCK (points at an ssh-agent"),
            "{err}"
        );
        assert!(
            err.contains("DOCKER_HOST (points at a Docker daemon"),
            "{err}"
        );
    }
}

#[test]
fn history_files_are_hidden() {
    let world = World::new("history");
    let files = [
        ".bash_history",
        ".zsh_history",
        ".local/share/fish/fish_history",
        ".python_history",
        ".psql_history",
        ".mysql_history",
        ".node_repl_history",
        ".sqlite_history",
        ".rediscli_history",
    ];
    for rel in files {
        world.write(&world.home().join(rel), &format!("export TOKEN={MARKER}\n"));
    }
    let script = "for f in $(cat \"$HOME/list\"); do cat \"$HOME/$f\" 2>/dev/null; done";
    world.write(&world.home().join("list"), &files.join("\n"));
    let isolated = world.run(&["--quiet"], &world.project(), &[], script);
    assert!(
        !String::from_utf8_lossy(&isolated.stdout).contains(MARKER),
        "{}",
        text(&isolated)
    );
    let open = world.run(
        &["--quiet", "--isolation", "off"],
        &world.project(),
        &[],
        script,
    );
    assert_eq!(
        String::from_utf8_lossy(&open.stdout)
            .matches(MARKER)
            .count(),
        files.len(),
        "{}",
        text(&open)
    );
}

#[test]
fn project_env_files_show_keys_without_values() {
    let world = World::new("dotenv");
    let project = world.project();
    let pkg = project.join("pkg");
    world.write(
        &project.join(".env"),
        &format!("# staging\nexport DB_PASSWORD='{MARKER}'\nAPI_URL=https://api.example.com\n"),
    );
    world.write(&pkg.join(".env.local"), &format!("TOKEN={MARKER}\n"));
    world.write(&project.join(".env.example"), "DB_PASSWORD=change-me\n");
    let script =
        "cat ../.env .env.local ../.env.example; echo more >> ../.env || echo write-refused";
    let isolated = world.run(&["--quiet"], &pkg, &[], script);
    let out = String::from_utf8_lossy(&isolated.stdout);
    assert!(!out.contains(MARKER), "{}", text(&isolated));
    assert!(
        out.contains("# staging\nexport DB_PASSWORD=\nAPI_URL=\n"),
        "{}",
        text(&isolated)
    );
    assert!(out.contains("TOKEN=\n"), "{}", text(&isolated));
    assert!(
        out.contains("DB_PASSWORD=change-me"),
        "examples are shown: {}",
        text(&isolated)
    );
    assert!(out.contains("write-refused"), "{}", text(&isolated));
    assert!(
        !std::fs::read_to_string(project.join(".env"))
            .unwrap()
            .contains("more"),
        "the real file was written"
    );
    // --reveal opts one file out.
    let revealed = world.run(
        &["--quiet", "--reveal", "../.env"],
        &pkg,
        &[],
        "cat ../.env .env.local",
    );
    let out = String::from_utf8_lossy(&revealed.stdout);
    assert_eq!(out.matches(MARKER).count(), 1, "{}", text(&revealed));
    let open = world.run(&["--quiet", "--isolation", "off"], &pkg, &[], script);
    assert_eq!(
        String::from_utf8_lossy(&open.stdout)
            .matches(MARKER)
            .count(),
        2,
        "{}",
        text(&open)
    );
}

#[test]
fn links_and_proc_paths_do_not_reach_hidden_files() {
    let world = World::new("links");
    let history = world.home().join(".bash_history");
    world.write(
        &history,
        &format!("curl -H 'Authorization: Bearer {MARKER}'\n"),
    );
    let project = world.project();
    // Planted from inside: a hard link and a symlink to the hidden file, read in a later run.
    let plant =
        "ln \"$HOME/.bash_history\" hard 2>/dev/null; ln -s \"$HOME/.bash_history\" soft; true";
    let read = "cat hard soft 2>/dev/null; cat /proc/$PPID/root$HOME/.bash_history /proc/$PPID/cwd/hard 2>/dev/null; true";
    let planted = world.run(&["--quiet"], &project, &[], plant);
    assert!(planted.status.success(), "{}", text(&planted));
    let isolated = world.run(&["--quiet"], &project, &[], read);
    assert!(
        !String::from_utf8_lossy(&isolated.stdout).contains(MARKER),
        "{}",
        text(&isolated)
    );
    // Through PID 1's (the init helper's) root and working directory.
    let via_init = world.run(
        &["--quiet"],
        &project,
        &[],
        "cat /proc/1/root$HOME/.bash_history /proc/1/cwd/soft 2>/dev/null; true",
    );
    assert!(
        !String::from_utf8_lossy(&via_init.stdout).contains(MARKER),
        "{}",
        text(&via_init)
    );
    let _ = std::fs::remove_file(project.join("hard"));
    let _ = std::fs::remove_file(project.join("soft"));
    let open = world.run(
        &["--quiet", "--isolation", "off"],
        &project,
        &[],
        &format!("{plant}; {read}"),
    );
    assert!(
        String::from_utf8_lossy(&open.stdout).contains(MARKER),
        "{}",
        text(&open)
    );
}

#[test]
fn env_check_lists_what_was_found_and_what_run_does() {
    let world = World::new("survey");
    world.write(&world.home().join(".bash_history"), "ls\n");
    world.write(&world.home().join(".pgpass"), "*:*:*:*:pw\n");
    world.write(&world.project().join(".env"), "A=1\n");
    let bound = world.root.join("ssh-Q/agent.1");
    let _l = world.listen(&bound);
    let output = frona()
        .args(["env", "check", "--json"])
        .current_dir(world.project())
        .env("HOME", world.home())
        .env("XDG_RUNTIME_DIR", world.runtime_dir())
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let found = doc["ambient"].as_array().unwrap();
    let action = |path: &Path| {
        found
            .iter()
            .find(|f| f["path"] == path.display().to_string())
            .map(|f| {
                (
                    f["kind"].as_str().unwrap().to_owned(),
                    f["action"].as_str().unwrap().to_owned(),
                )
            })
    };
    assert_eq!(
        action(&world.home().join(".bash_history")),
        Some(("history".into(), "hidden".into()))
    );
    assert_eq!(
        action(&world.home().join(".pgpass")),
        Some(("credentials".into(), "hidden".into()))
    );
    assert_eq!(
        action(&world.project().join(".env")),
        Some(("credentials".into(), "masked".into()))
    );
    assert_eq!(action(&bound), Some(("socket".into(), "hidden".into())));
}

/// The real `docker` CLI against a daemon socket: by default it is refused plainly (an error at
/// once, not a hang) and the daemon never sees a connection; with `--isolation off` it reaches
/// the daemon, which is root on the host.
#[test]
fn docker_is_refused_plainly() {
    let has_docker = std::process::Command::new("docker")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_docker {
        eprintln!("SKIPPED: no docker CLI");
        return;
    }
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let world = World::new("docker");
    let socket = world.root.join("docker/docker.sock");
    let listener = world.listen(&socket);
    listener.set_nonblocking(true).unwrap();
    let (accepted, stop) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let daemon = std::thread::spawn({
        let (accepted, stop) = (Arc::clone(&accepted), Arc::clone(&stop));
        move || {
            while !stop.load(Ordering::SeqCst) {
                // Accepted and closed at once: the CLI fails with EOF instead of waiting.
                if listener.accept().is_ok() {
                    accepted.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    });
    let script = format!("docker -H unix://{} version; echo rc=$?", socket.display());
    let started = std::time::Instant::now();
    let isolated = world.run(&["--quiet"], &world.project(), &[], &script);
    let took = started.elapsed();
    let out = text(&isolated);
    assert!(
        took < std::time::Duration::from_secs(30),
        "docker hung: {out}"
    );
    assert!(!out.contains("rc=0"), "{out}");
    assert!(
        out.contains("Cannot connect") || out.contains("connect"),
        "{out}"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "the daemon saw the agent: {out}"
    );
    let open = world.run(
        &["--quiet", "--isolation", "off"],
        &world.project(),
        &[],
        &script,
    );
    assert!(
        accepted.load(Ordering::SeqCst) > 0,
        "with isolation off the CLI reaches the daemon: {}",
        text(&open)
    );
    stop.store(true, Ordering::SeqCst);
    let _ = daemon.join();
}

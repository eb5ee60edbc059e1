//! The ambient credentials that are not environment variables: files that hold a login,
//! history files that hold what was typed, and sockets that act for the user (an ssh-agent
//! signs, a container daemon is root, the session bus reaches the keyring).
//!
//! One list, as data: the plan hides each entry that exists, `frona env check` and
//! `frona doctor` report what was found on this machine and what `frona run` does with it.
//! Sockets are also found by looking (see [`bound_sockets`]): every Unix socket bound to a path
//! when `frona run` starts is hidden unless it is frona's own or allowed, so that a socket this
//! list does not name is not reachable either.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// What an entry is, and so why the agent must not have it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A file or directory holding a login, a token, a key or a password.
    Credentials,
    /// Shell or REPL history: what was typed, `export TOKEN=…` and `curl -H "Authorization: …"`
    /// among it.
    History,
    /// A socket (or a directory of them) through which a process acts for the user.
    Socket,
}

/// One ambient credential: where it is and which tool it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Relative to `$HOME` in [`IN_HOME`], to `$XDG_RUNTIME_DIR` in [`IN_RUNTIME_DIR`],
    /// absolute in [`SYSTEM`].
    pub path: &'static str,
    pub tool: &'static str,
    pub kind: Kind,
}

const fn creds(path: &'static str, tool: &'static str) -> Entry {
    Entry {
        path,
        tool,
        kind: Kind::Credentials,
    }
}

const fn history(path: &'static str, tool: &'static str) -> Entry {
    Entry {
        path,
        tool,
        kind: Kind::History,
    }
}

const fn socket(path: &'static str, tool: &'static str) -> Entry {
    Entry {
        path,
        tool,
        kind: Kind::Socket,
    }
}

/// Hidden beneath `$HOME` (frona's own directories are added wherever they are).
pub const IN_HOME: &[Entry] = &[
    // Clouds and infrastructure.
    creds(".aws", "AWS CLI and SDKs"),
    creds(".config/gcloud", "Google Cloud CLI"),
    creds(".azure", "Azure CLI"),
    creds(".oci", "Oracle Cloud CLI"),
    creds(".kube", "kubectl"),
    creds(".config/helm", "Helm (repository passwords)"),
    creds(".docker/config.json", "Docker"),
    creds(".config/containers/auth.json", "Podman, Buildah, Skopeo"),
    creds(".terraform.d/credentials.tfrc.json", "Terraform"),
    creds(".pulumi/credentials.json", "Pulumi"),
    creds(".config/doctl", "DigitalOcean CLI"),
    creds(".fly", "Fly.io CLI"),
    creds(".config/rclone", "rclone"),
    creds(".s3cfg", "s3cmd"),
    creds(".boto", "boto, gsutil"),
    creds(".vault-token", "Vault CLI"),
    creds(".config/op", "1Password CLI"),
    creds(".config/sops", "SOPS (age keys)"),
    creds(".password-store", "pass"),
    creds(".local/share/keyrings", "GNOME Keyring"),
    creds(".local/share/kwalletd", "KWallet"),
    // Source hosting and package registries.
    creds(".ssh", "OpenSSH"),
    creds(".gnupg", "GnuPG"),
    creds(".git-credentials", "git credential store"),
    creds(".config/gh", "GitHub CLI"),
    creds(".config/hub", "hub"),
    creds(".config/glab-cli", "GitLab CLI"),
    creds(".netrc", "curl, git, ftp (netrc)"),
    creds(".npmrc", "npm"),
    creds(".yarnrc.yml", "Yarn"),
    creds(".pypirc", "twine, PyPI"),
    creds(".cargo/credentials.toml", "Cargo"),
    creds(".cargo/credentials", "Cargo"),
    creds(".gem/credentials", "RubyGems"),
    creds(".m2/settings.xml", "Maven"),
    creds(".m2/settings-security.xml", "Maven"),
    creds(".gradle/gradle.properties", "Gradle"),
    creds(".config/composer/auth.json", "Composer"),
    creds(".composer/auth.json", "Composer"),
    creds(".cache/huggingface/token", "Hugging Face"),
    creds(".huggingface/token", "Hugging Face"),
    // Databases.
    creds(".pgpass", "PostgreSQL"),
    creds(".my.cnf", "MySQL"),
    creds(".mylogin.cnf", "MySQL"),
    // The agents' own logins (a profile can give them back as placeholders).
    creds(".claude/.credentials.json", "Claude Code"),
    creds(".codex/auth.json", "Codex CLI"),
    creds(".gemini/oauth_creds.json", "Gemini CLI"),
    creds(".gemini/google_accounts.json", "Gemini CLI"),
    creds(".local/share/opencode/auth.json", "opencode"),
    creds(".config/github-copilot", "GitHub Copilot"),
    // History.
    history(".bash_history", "bash"),
    history(".zsh_history", "zsh"),
    history(".zhistory", "zsh"),
    history(".histfile", "zsh"),
    history(".sh_history", "sh, ksh"),
    history(".local/share/fish/fish_history", "fish"),
    history(".python_history", "Python"),
    history(".ipython/profile_default/history.sqlite", "IPython"),
    history(".node_repl_history", "Node.js"),
    history(".irb_history", "Ruby irb"),
    history(".pry_history", "Ruby pry"),
    history(".psql_history", "psql"),
    history(".mysql_history", "mysql"),
    history(".sqlite_history", "sqlite3"),
    history(".rediscli_history", "redis-cli"),
    history(".mongosh", "mongosh"),
    history(".dbshell", "mongo"),
    history(".Rhistory", "R"),
    history(".lesshst", "less"),
];

/// Hidden beneath `$XDG_RUNTIME_DIR`.
pub const IN_RUNTIME_DIR: &[Entry] = &[
    socket(
        "bus",
        "D-Bus session bus (and the Secret Service keyring through it)",
    ),
    socket("gnupg", "gpg-agent"),
    socket("keyring", "GNOME Keyring (ssh and secrets)"),
    socket("gcr", "GNOME Keyring ssh agent"),
    socket("ssh-agent.socket", "ssh-agent"),
    socket("openssh_agent", "ssh-agent"),
    socket(
        "docker.sock",
        "Docker (rootless): root-equivalent on its host",
    ),
    socket("podman", "Podman"),
    socket("containerd", "containerd"),
    socket("pipewire-0", "PipeWire (microphone, screen)"),
    socket("pulse", "PulseAudio (microphone)"),
    socket("wayland-0", "Wayland (keystrokes, screen)"),
    socket("wayland-1", "Wayland (keystrokes, screen)"),
];

/// Hidden wherever they are.
pub const SYSTEM: &[Entry] = &[
    socket("/var/run/docker.sock", "Docker: root on the host"),
    socket("/run/docker.sock", "Docker: root on the host"),
    socket("/run/podman", "Podman"),
    socket("/run/containerd", "containerd: root on the host"),
    socket("/run/crio", "CRI-O: root on the host"),
    socket("/run/k3s", "k3s: root on the host"),
    socket("/var/run/libvirt", "libvirt"),
    socket("/run/libvirt", "libvirt"),
    socket("/tmp/.X11-unix", "X11 (keystrokes, screen)"),
    socket("/run/dbus/system_bus_socket", "D-Bus system bus"),
    socket("/run/systemd/private", "systemd"),
    socket("/run/systemd/notify", "systemd notifications"),
];

/// Sockets that stay reachable although they are bound when `frona run` starts: they serve
/// every local process and grant nothing (logging, name and user lookup).
pub const HARMLESS_SOCKETS: &[&str] = &[
    "/dev/log",
    "/run/systemd/journal/",
    "/run/systemd/resolve/",
    "/run/systemd/userdb/",
    "/run/nscd/",
    "/var/run/nscd/",
];

/// What a socket at `path` would grant, when it is one this module knows.
pub fn known_socket(path: &Path, runtime_dir: Option<&Path>) -> Option<&'static str> {
    let named = |entries: &'static [Entry], base: Option<&Path>| {
        entries.iter().find_map(|e| {
            let at = base.map_or_else(|| PathBuf::from(e.path), |b| b.join(e.path));
            (e.kind == Kind::Socket && path.starts_with(&at)).then_some(e.tool)
        })
    };
    if let Some(tool) = runtime_dir.and_then(|dir| named(IN_RUNTIME_DIR, Some(dir))) {
        return Some(tool);
    }
    named(SYSTEM, None).or_else(|| {
        let name = path.file_name()?.to_str()?;
        (name.starts_with("agent.") || name.contains("ssh")).then_some("ssh-agent")
    })
}

/// Whether a bound socket stays reachable without being allowed ([`HARMLESS_SOCKETS`]).
pub fn is_harmless(path: &Path) -> bool {
    HARMLESS_SOCKETS.iter().any(|h| {
        if let Some(dir) = h.strip_suffix('/') {
            path.starts_with(dir)
        } else {
            path == Path::new(h)
        }
    })
}

/// The paths Unix sockets are bound to in this network namespace (`/proc/net/unix`), each once.
/// Relative paths (bound by a process in its own working directory) and abstract names are
/// left out: the first cannot be found, the second are scoped by Landlock.
pub fn bound_sockets() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/net/unix")
        .map(|table| parse_proc_net_unix(&table))
        .unwrap_or_default()
}

/// The path column of `/proc/net/unix` (the 8th field; absent for unbound sockets).
fn parse_proc_net_unix(table: &str) -> Vec<PathBuf> {
    let mut seen = std::collections::HashSet::new();
    table
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(7))
        .filter(|path| path.starts_with('/'))
        .map(PathBuf::from)
        .filter(|path| seen.insert(path.clone()))
        .collect()
}

/// What `frona run` does with an ambient credential found on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Hidden: a directory reads as empty, a file as empty, a socket refuses connections.
    Hidden,
    /// A `.env` file shown as a copy without its values ([`crate::dotenv`]).
    Masked,
    /// Passed through: `--allow-socket`, `--unhide` or `--reveal`.
    Allowed,
    /// An ssh-agent hidden, and reached through frona's SSH agent instead: the policies'
    /// `ssh:` rules decide each signature (the binary knows the policies; see `frona env check`).
    Filtered,
    /// Left as it is because isolation is off or has no mount namespace.
    Reachable,
}

/// One ambient credential present on this machine, for `frona doctor` and `frona env check`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Found {
    pub path: PathBuf,
    pub tool: &'static str,
    pub kind: Kind,
    pub action: Action,
}

/// Every listed (and every bound-socket) path that exists here, and what `plan` does with it.
pub fn survey(plan: &super::Plan, facts: &super::Facts) -> Vec<Found> {
    let hidden = |path: &Path| plan.hide.iter().any(|h| path.starts_with(h));
    let isolating = plan.namespaces.mount;
    let action = |path: &Path| match (isolating, hidden(path)) {
        (false, _) => Action::Reachable,
        (true, true) => Action::Hidden,
        (true, false) => Action::Allowed,
    };
    let mut found = Vec::new();
    let mut listed = |entries: &'static [Entry], base: Option<&Path>| {
        for e in entries {
            let path = base.map_or_else(|| PathBuf::from(e.path), |b| b.join(e.path));
            if std::fs::symlink_metadata(&path).is_ok() {
                found.push(Found {
                    action: action(&path),
                    path,
                    tool: e.tool,
                    kind: e.kind,
                });
            }
        }
    };
    if let Some(home) = &facts.home {
        listed(IN_HOME, Some(home));
    }
    if let Some(dir) = &facts.runtime_dir {
        listed(IN_RUNTIME_DIR, Some(dir));
    }
    listed(SYSTEM, None);
    for socket in &facts.bound_sockets {
        if is_harmless(socket) || found.iter().any(|f| socket.starts_with(&f.path)) {
            continue;
        }
        found.push(Found {
            action: action(socket),
            tool: known_socket(socket, facts.runtime_dir.as_deref()).unwrap_or("a bound socket"),
            path: socket.clone(),
            kind: Kind::Socket,
        });
    }
    for file in &facts.env_files {
        found.push(Found {
            path: file.clone(),
            tool: "project .env",
            kind: Kind::Credentials,
            action: match (isolating, plan.mask_files.iter().any(|m| &m.path == file)) {
                (false, _) => Action::Reachable,
                (true, true) => Action::Masked,
                (true, false) => Action::Allowed,
            },
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_unix_yields_bound_paths_once() {
        let table = "Num       RefCount Protocol Flags    Type St Inode Path\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 2001 /run/user/1000/bus\n\
            0000000000000000: 00000003 00000000 00000000 0001 03 2002 /run/user/1000/bus\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 2003 @/tmp/.X11-unix/X0\n\
            0000000000000000: 00000003 00000000 00000000 0001 03 2004\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 2005 /tmp/ssh-XYZ/agent.42\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 2006 relative.sock\n";
        assert_eq!(
            parse_proc_net_unix(table),
            [
                PathBuf::from("/run/user/1000/bus"),
                PathBuf::from("/tmp/ssh-XYZ/agent.42")
            ]
        );
    }

    #[test]
    fn known_sockets_say_what_they_grant() {
        let rt = Path::new("/run/user/1000");
        assert!(
            known_socket(Path::new("/var/run/docker.sock"), None)
                .unwrap()
                .contains("root")
        );
        assert_eq!(
            known_socket(Path::new("/tmp/ssh-XYZ/agent.42"), None),
            Some("ssh-agent")
        );
        assert!(known_socket(Path::new("/run/user/1000/keyring/ssh"), Some(rt)).is_some());
        assert_eq!(known_socket(Path::new("/srv/app.sock"), Some(rt)), None);
    }

    #[test]
    fn harmless_sockets_are_few_and_exact() {
        assert!(is_harmless(Path::new("/run/systemd/journal/stdout")));
        assert!(is_harmless(Path::new("/dev/log")));
        assert!(!is_harmless(Path::new("/dev/log2")));
        assert!(!is_harmless(Path::new("/run/systemd/private")));
    }

    #[test]
    fn entries_are_relative_where_they_should_be_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for e in IN_HOME.iter().chain(IN_RUNTIME_DIR) {
            assert!(!e.path.starts_with('/'), "{}", e.path);
            assert!(seen.insert(e.path), "listed twice: {}", e.path);
        }
        for e in SYSTEM {
            assert!(e.path.starts_with('/'), "{}", e.path);
        }
    }
}

//! frona's own directories: configuration (registry, key file, config, policies), data (the
//! local store) and state (audit log, grants, control sockets), all hidden from the agent by
//! `frona run`; the files in them, named once here; and where the system config file is.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use frona_sandbox::EnvSnapshot;

use crate::env_vars::{FRONA_CONFIG_DIR, FRONA_DATA_DIR, FRONA_STATE_DIR, FRONA_SYSTEM_CONFIG};
use crate::failure::Failure;

fn env_path(env: &EnvSnapshot, name: &str) -> Option<PathBuf> {
    env.get(name)
        .filter(|v| v.first() == Some(&b'/'))
        .map(|v| PathBuf::from(OsStr::from_bytes(v)))
}

/// `$HOME`, else `/`.
pub fn home(env: &EnvSnapshot) -> PathBuf {
    env_path(env, "HOME").unwrap_or_else(|| PathBuf::from("/"))
}

/// `FRONA_CONFIG_DIR`, else `$XDG_CONFIG_HOME/frona`, else `~/.config/frona`.
pub fn config_dir(env: &EnvSnapshot) -> PathBuf {
    env_path(env, FRONA_CONFIG_DIR)
        .or_else(|| env_path(env, "XDG_CONFIG_HOME").map(|d| d.join("frona")))
        .unwrap_or_else(|| home(env).join(".config/frona"))
}

/// The system config file: `FRONA_SYSTEM_CONFIG`, else `/etc/frona/config.yaml`.
pub fn system_config_file(env: &EnvSnapshot) -> PathBuf {
    env_path(env, FRONA_SYSTEM_CONFIG).unwrap_or_else(|| PathBuf::from("/etc/frona/config.yaml"))
}

/// `FRONA_DATA_DIR`, else `$XDG_DATA_HOME/frona`, else `~/.local/share/frona`.
pub fn data_dir(env: &EnvSnapshot) -> PathBuf {
    env_path(env, FRONA_DATA_DIR)
        .or_else(|| env_path(env, "XDG_DATA_HOME").map(|d| d.join("frona")))
        .unwrap_or_else(|| home(env).join(".local/share/frona"))
}

/// `FRONA_STATE_DIR`, else `$XDG_STATE_HOME/frona`, else `~/.local/state/frona`: the audit log
/// and the grants database.
pub fn state_dir(env: &EnvSnapshot) -> PathBuf {
    env_path(env, FRONA_STATE_DIR)
        .or_else(|| env_path(env, "XDG_STATE_HOME").map(|d| d.join("frona")))
        .unwrap_or_else(|| home(env).join(".local/state/frona"))
}

/// The user config file: `config.yaml` in the config directory.
pub fn user_config_file(env: &EnvSnapshot) -> PathBuf {
    config_dir(env).join("config.yaml")
}

/// The credential registry: `credentials.yaml` in the config directory.
pub fn registry_file(env: &EnvSnapshot) -> PathBuf {
    config_dir(env).join("credentials.yaml")
}

/// The default policy directory (`run.policy` names another): `policies` in the config
/// directory.
pub fn policy_dir(env: &EnvSnapshot) -> PathBuf {
    config_dir(env).join("policies")
}

/// The local store's key file: `master.key` in the config directory.
pub fn key_file(env: &EnvSnapshot) -> PathBuf {
    config_dir(env).join("master.key")
}

/// The local store: `secrets.json` in the data directory.
pub fn local_store(env: &EnvSnapshot) -> PathBuf {
    data_dir(env).join("secrets.json")
}

/// The broker's audit log: `audit.jsonl` in the state directory.
pub fn audit_log(env: &EnvSnapshot) -> PathBuf {
    state_dir(env).join("audit.jsonl")
}

/// The grants database: `grants.redb` in the state directory.
pub fn grants_db(env: &EnvSnapshot) -> PathBuf {
    state_dir(env).join("grants.redb")
}

/// Where running brokers' control sockets are (`PID.sock`): `control` in the state directory.
pub fn control_dir(env: &EnvSnapshot) -> PathBuf {
    state_dir(env).join("control")
}

/// A private (0700) directory of this `frona run`, `KIND-PID`: `$XDG_RUNTIME_DIR/frona/…` or
/// `/tmp/frona-UID/…` (`session` holds the broker's sockets, `masks` the masked `.env` copies).
pub fn session_dir(env: &EnvSnapshot, kind: &str) -> Result<PathBuf, Failure> {
    let uid = nix::unistd::getuid().as_raw();
    let base = env
        .get("XDG_RUNTIME_DIR")
        .filter(|v| v.first() == Some(&b'/'))
        .map(|v| PathBuf::from(String::from_utf8_lossy(v).into_owned()).join("frona"))
        .unwrap_or_else(|| PathBuf::from(format!("/tmp/frona-{uid}")));
    let dir = base.join(format!("{kind}-{}", std::process::id()));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| {
            Failure::from_error(&e).with_hint(format!(
                "frona needs a private directory at `{}`",
                dir.display()
            ))
        })?;
    // In a shared /tmp another user could have made the directory first: it must be ours, not
    // a symlink, and closed to others, or the agent could be talking to someone else's socket.
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    for path in [&base, &dir] {
        let meta = std::fs::symlink_metadata(path).map_err(|e| Failure::from_error(&e))?;
        if meta.file_type().is_symlink()
            || meta.uid() != uid
            || meta.permissions().mode() & 0o077 != 0
        {
            return Err(Failure::new(
                125,
                format!(
                    "`{}` is not a private directory of this user",
                    path.display()
                ),
            )
            .with_hint("remove it (someone else may have created it), or set XDG_RUNTIME_DIR"));
        }
    }
    // What is in it was left by a frona of the same pid that was killed before it could clean
    // up (pids are reused): its sockets would make binding ours fail.
    clear(&dir).map_err(|e| {
        Failure::from_error(&e).with_hint(format!(
            "`{}` holds what a dead frona left; remove it",
            dir.display()
        ))
    })?;
    Ok(dir)
}

/// Empties `dir` (without following symlinks in it).
fn clear(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&path)?,
            _ => std::fs::remove_file(&path)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// A session directory a killed frona of the same pid left behind is emptied, so that
    /// binding the sockets again works.
    #[test]
    fn a_dead_sessions_leftovers_are_cleared() {
        let dir = std::env::temp_dir().join(format!("frona-stale-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let socket = dir.join("broker.sock");
        drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
        std::fs::write(dir.join("ca-bundle.pem"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("link")).unwrap();
        assert!(std::os::unix::net::UnixListener::bind(&socket).is_err());
        super::clear(&dir).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        assert!(
            std::path::Path::new("/etc").is_dir(),
            "a symlink is removed, not followed"
        );
        assert!(std::os::unix::net::UnixListener::bind(&socket).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! frona's own directories: configuration (registry, key file, config) and data (the local
//! store). Both are hidden from the agent by `frona run`. Also where the system config file is.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::PathBuf;

use frona_sandbox::EnvSnapshot;

use crate::env_vars::{FRONA_CONFIG_DIR, FRONA_DATA_DIR, FRONA_STATE_DIR, FRONA_SYSTEM_CONFIG};

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

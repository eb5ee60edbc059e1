//! Building the backends' configuration from frona's environment and flags.

use frona_backends::Secret;
use frona_backends::config::{Backends, BackendsConfig, Limits, LocalConfig};
use frona_backends::local::KeyInput;
use frona_sandbox::EnvSnapshot;

use crate::cli::BackendArgs;
use crate::dirs;
use crate::env_vars::{FRONA_MASTER_KEY, FRONA_PASSPHRASE};

fn env_secret(env: &EnvSnapshot, name: &str) -> Option<Secret> {
    env.get(name)
        .filter(|v| !v.is_empty())
        .map(|v| Secret::new(v.to_vec()))
}

/// The local store's location and key.
pub fn local_config(env: &EnvSnapshot) -> LocalConfig {
    LocalConfig {
        store: dirs::data_dir(env).join("secrets.json"),
        key: KeyInput {
            master_key: env_secret(env, FRONA_MASTER_KEY),
            passphrase: env_secret(env, FRONA_PASSPHRASE),
            key_file: dirs::config_dir(env).join("master.key"),
        },
    }
}

/// Every backend frona can reach with this environment and these flags.
pub fn backends(env: &EnvSnapshot, args: Option<&BackendArgs>) -> Backends {
    let mut limits = Limits::default();
    if let Some(args) = args {
        limits.timeout = args.backend_timeout;
    }
    Backends::new(BackendsConfig {
        limits,
        local: local_config(env),
    })
}

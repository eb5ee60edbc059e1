//! Building the backends' configuration from frona's environment and flags. Tokens and client
//! secrets come from the environment (or files), never from the command line.

use frona_backends::Secret;
use frona_backends::config::{Backends, BackendsConfig, Limits, LocalConfig};
use frona_backends::local::KeyInput;
use frona_sandbox::EnvSnapshot;

use crate::cli::BackendArgs;
use crate::dirs;
#[allow(unused_imports)]
use crate::env_vars::*;

fn env_secret(env: &EnvSnapshot, name: &str) -> Option<Secret> {
    env.get(name)
        .filter(|v| !v.is_empty())
        .map(|v| Secret::new(v.to_vec()))
}

#[allow(dead_code)]
fn env_text(env: &EnvSnapshot, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| env.get(n))
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

#[allow(dead_code)]
fn env_secret_any(env: &EnvSnapshot, names: &[&str]) -> Option<Secret> {
    names.iter().find_map(|n| env_secret(env, n))
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

/// 1Password Connect: `FRONA_CREDENTIAL_1PASSWORD_HOST`/`_TOKEN`, or Connect's own
/// `OP_CONNECT_HOST`/`OP_CONNECT_TOKEN`.
#[cfg(feature = "onepassword")]
fn onepassword(env: &EnvSnapshot) -> Option<frona_backends::onepassword::OnePasswordConfig> {
    Some(frona_backends::onepassword::OnePasswordConfig {
        host: env_text(env, &[ONEPASSWORD_HOST, "OP_CONNECT_HOST"])?,
        token: env_secret_any(env, &[ONEPASSWORD_TOKEN, "OP_CONNECT_TOKEN"])?,
    })
}

/// Infisical universal auth: `FRONA_CREDENTIAL_INFISICAL_{HOST,CLIENT_ID,CLIENT_SECRET,PROJECT_ID,ENVIRONMENT}`.
#[cfg(feature = "infisical")]
fn infisical(env: &EnvSnapshot) -> Option<frona_backends::infisical::InfisicalConfig> {
    Some(frona_backends::infisical::InfisicalConfig {
        host: env_text(env, &[INFISICAL_HOST])
            .unwrap_or_else(|| "https://app.infisical.com".into()),
        client_id: env_text(env, &[INFISICAL_CLIENT_ID])?,
        client_secret: env_secret_any(env, &[INFISICAL_CLIENT_SECRET])?,
        project_id: env_text(env, &[INFISICAL_PROJECT_ID])?,
        environment: env_text(env, &[INFISICAL_ENVIRONMENT]).unwrap_or_else(|| "dev".into()),
    })
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
        #[cfg(feature = "onepassword")]
        onepassword: onepassword(env),
        #[cfg(feature = "infisical")]
        infisical: infisical(env),
    })
}

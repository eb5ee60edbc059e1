//! HashiCorp Vault: `backends.vault`, `VAULT_*` (as the `vault` CLI reads them), `--vault-addr`
//! and `--vault-token-file`.

use std::path::PathBuf;

use super::{Backend, Inputs, Key, section};
use crate::failure::Failure;

pub const VAULT_ADDR: &str = "VAULT_ADDR";
pub const VAULT_TOKEN: &str = "VAULT_TOKEN";
pub const VAULT_ROLE_ID: &str = "VAULT_ROLE_ID";
pub const VAULT_SECRET_ID: &str = "VAULT_SECRET_ID";
pub const VAULT_NAMESPACE: &str = "VAULT_NAMESPACE";

section! {
    /// `backends.vault`.
    addr: String,
    token_file: PathBuf,
    role_id: String,
    secret_id_file: PathBuf,
    namespace: String,
}

pub const BACKEND: Backend = Backend {
    name: "vault",
    keys: &[
        Key::plain("addr", &[VAULT_ADDR]),
        Key::secret("token_file", &[VAULT_TOKEN]),
        Key {
            name: "role_id",
            env: &[VAULT_ROLE_ID],
            env_is_secret: true,
            sensitive: true,
        },
        Key::secret("secret_id_file", &[VAULT_SECRET_ID]),
        Key::plain("namespace", &[VAULT_NAMESPACE]),
    ],
    build,
};

#[cfg(not(feature = "vault"))]
fn build(_: &Inputs<'_>, _: &mut frona_backends::config::BackendsConfig) -> Result<(), Failure> {
    Ok(())
}

#[cfg(feature = "vault")]
fn build(
    inputs: &Inputs<'_>,
    config: &mut frona_backends::config::BackendsConfig,
) -> Result<(), Failure> {
    config.vault = vault(inputs)?;
    Ok(())
}

/// Vault: address from `--vault-addr`, `VAULT_ADDR` or the config file; a token from
/// `--vault-token-file`, `VAULT_TOKEN` or the config's `token_file`; else AppRole from
/// `VAULT_ROLE_ID` + `VAULT_SECRET_ID` (or the config's `role_id` + `secret_id_file`).
#[cfg(feature = "vault")]
fn vault(inputs: &Inputs<'_>) -> Result<Option<frona_backends::vault::VaultConfig>, Failure> {
    use frona_backends::vault::{VaultAuth, VaultConfig};

    use super::{env_text, secret_from};
    use crate::systemd::credentials as creds;

    let Inputs { env, file, flags } = *inputs;
    let section = &file.vault;
    let Some(addr) = flags
        .and_then(|a| a.vault_addr.clone())
        .or_else(|| env_text(env, &[VAULT_ADDR]))
        .or_else(|| section.addr.clone())
    else {
        return Ok(None);
    };
    let token_file = flags.and_then(|a| a.vault_token_file.as_ref());
    let token = match token_file {
        Some(path) => secret_from(env, &[], Some(path))?,
        None => secret_from(
            env,
            &[VAULT_TOKEN],
            section
                .token_file
                .clone()
                .or_else(|| creds::file(env, creds::VAULT_TOKEN))
                .as_ref(),
        )?,
    };
    let auth = match token {
        Some(token) => VaultAuth::Token(token),
        None => {
            let role_id = env_text(env, &[VAULT_ROLE_ID]).or_else(|| section.role_id.clone());
            let secret_id = secret_from(
                env,
                &[VAULT_SECRET_ID],
                section
                    .secret_id_file
                    .clone()
                    .or_else(|| creds::file(env, creds::VAULT_SECRET_ID))
                    .as_ref(),
            )?;
            match role_id.zip(secret_id) {
                Some((role_id, secret_id)) => VaultAuth::AppRole {
                    mount: "approle".into(),
                    role_id,
                    secret_id,
                },
                None => return Ok(None),
            }
        }
    };
    let namespace = env_text(env, &[VAULT_NAMESPACE]).or_else(|| section.namespace.clone());
    Ok(Some(VaultConfig {
        addr,
        auth,
        namespace,
    }))
}

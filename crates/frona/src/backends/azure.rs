//! Azure Key Vault: `backends.azure`, `AZURE_*`, `FRONA_CREDENTIAL_AZURE_ACCESS_TOKEN` and
//! `--azure-vault-url`.

use super::{Backend, Inputs, Key, section};
use crate::failure::Failure;

pub const AZURE_KEYVAULT_URL: &str = "AZURE_KEYVAULT_URL";
pub const AZURE_ACCESS_TOKEN: &str = "FRONA_CREDENTIAL_AZURE_ACCESS_TOKEN";
pub const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
pub const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
pub const AZURE_CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";

section! {
    /// `backends.azure`.
    vault_url: String,
}

pub const BACKEND: Backend = Backend {
    name: "azure",
    keys: &[Key::plain("vault_url", &[AZURE_KEYVAULT_URL])],
    build,
};

#[cfg(not(feature = "azure"))]
fn build(_: &Inputs<'_>, _: &mut frona_backends::config::BackendsConfig) -> Result<(), Failure> {
    Ok(())
}

/// URL from `--azure-vault-url`, `AZURE_KEYVAULT_URL` or the config; an access token from
/// `FRONA_CREDENTIAL_AZURE_ACCESS_TOKEN`, else a service principal from
/// `AZURE_TENANT_ID`/`AZURE_CLIENT_ID`/`AZURE_CLIENT_SECRET`, else `az`/`azd` logins.
#[cfg(feature = "azure")]
fn build(
    inputs: &Inputs<'_>,
    config: &mut frona_backends::config::BackendsConfig,
) -> Result<(), Failure> {
    use frona_backends::azure::{AzureConfig, AzureCredential};

    use super::{env_secret, env_text};

    let Inputs { env, file, flags } = *inputs;
    let Some(vault_url) = flags
        .and_then(|a| a.azure_vault_url.clone())
        .or_else(|| env_text(env, &[AZURE_KEYVAULT_URL]))
        .or_else(|| file.azure.vault_url.clone())
    else {
        return Ok(());
    };
    let credential = match env_secret(env, AZURE_ACCESS_TOKEN) {
        Some(token) => AzureCredential::AccessToken(token),
        None => match (
            env_text(env, &[AZURE_TENANT_ID]),
            env_text(env, &[AZURE_CLIENT_ID]),
            env_secret(env, AZURE_CLIENT_SECRET),
        ) {
            (Some(tenant_id), Some(client_id), Some(client_secret)) => {
                AzureCredential::ClientSecret {
                    tenant_id,
                    client_id,
                    client_secret,
                }
            }
            _ => AzureCredential::DeveloperTools,
        },
    };
    config.azure = Some(AzureConfig {
        vault_url,
        credential,
        connect_to: None,
    });
    Ok(())
}

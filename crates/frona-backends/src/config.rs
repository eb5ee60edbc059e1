//! How frona reaches each backend: built from flags, environment and the config file by the
//! binary, then turned into [`Backend`](crate::Backend) clients by [`Backends`].
//!
//! Secrets in here (tokens, client secrets) are [`Secret`]s read from the environment or from
//! files, never from the command line.

use std::path::PathBuf;

use crate::local::{KeyInput, LocalStore};
use crate::{Backend, BackendError, BackendKind, Limits, LocalBackend, Secret};

/// The embedded store's files and key.
#[derive(Debug)]
pub struct LocalConfig {
    pub store: PathBuf,
    pub key: KeyInput,
}

/// Everything configured, by backend. `None`: not configured.
#[derive(Debug)]
pub struct BackendsConfig {
    pub limits: Limits,
    pub local: LocalConfig,
    #[cfg(feature = "vault")]
    pub vault: Option<crate::vault::VaultConfig>,
    #[cfg(feature = "aws")]
    pub aws: Option<crate::aws::AwsConfig>,
    #[cfg(feature = "gcp")]
    pub gcp: Option<crate::gcp::GcpConfig>,
    #[cfg(feature = "azure")]
    pub azure: Option<crate::azure::AzureConfig>,
    #[cfg(feature = "onepassword")]
    pub onepassword: Option<crate::onepassword::OnePasswordConfig>,
    #[cfg(feature = "infisical")]
    pub infisical: Option<crate::infisical::InfisicalConfig>,
    /// Set when frona runs under systemd with credentials (`CREDENTIALS_DIRECTORY`).
    pub systemd_creds: Option<crate::systemd_creds::SystemdCredsConfig>,
}

/// The configured backends; clients are created when asked for.
#[derive(Debug)]
pub struct Backends {
    config: BackendsConfig,
}

/// Moves a configured backend's settings out of the config, or says how to configure it.
fn take<T>(slot: &mut Option<T>, kind: BackendKind, how: &str) -> Result<T, BackendError> {
    slot.take().ok_or_else(|| BackendError::NotConfigured {
        backend: kind.name(),
        detail: how.into(),
    })
}

impl Backends {
    pub fn new(config: BackendsConfig) -> Self {
        Self { config }
    }

    pub fn limits(&self) -> Limits {
        self.config.limits
    }

    /// Which backends have configuration (the local store always has).
    pub fn configured(&self) -> Vec<BackendKind> {
        #[allow(unused_mut)]
        let mut kinds = vec![BackendKind::Local];
        #[cfg(feature = "vault")]
        if self.config.vault.is_some() {
            kinds.push(BackendKind::Vault);
        }
        #[cfg(feature = "aws")]
        if self.config.aws.is_some() {
            kinds.push(BackendKind::Aws);
        }
        #[cfg(feature = "gcp")]
        if self.config.gcp.is_some() {
            kinds.push(BackendKind::Gcp);
        }
        #[cfg(feature = "azure")]
        if self.config.azure.is_some() {
            kinds.push(BackendKind::Azure);
        }
        #[cfg(feature = "onepassword")]
        if self.config.onepassword.is_some() {
            kinds.push(BackendKind::OnePassword);
        }
        #[cfg(feature = "infisical")]
        if self.config.infisical.is_some() {
            kinds.push(BackendKind::Infisical);
        }
        if self.config.systemd_creds.is_some() {
            kinds.push(BackendKind::SystemdCreds);
        }
        kinds
    }

    /// A client for `kind`, or why there is none. Each backend's settings are handed to one
    /// client (secrets are not copied), so ask once per backend.
    pub async fn client(&mut self, kind: BackendKind) -> Result<Box<dyn Backend>, BackendError> {
        #[allow(unused_variables)]
        let limits = self.config.limits;
        match kind {
            BackendKind::Local => {
                let store = LocalStore::open(&self.config.local.store, &self.config.local.key)?;
                Ok(Box::new(LocalBackend { store }))
            }
            #[cfg(feature = "vault")]
            BackendKind::Vault => {
                let config = take(
                    &mut self.config.vault,
                    kind,
                    "set VAULT_ADDR (or --vault-addr) and VAULT_TOKEN (or --vault-token-file, or VAULT_ROLE_ID and VAULT_SECRET_ID)",
                )?;
                Ok(Box::new(crate::vault::Vault::new(config, limits)?))
            }
            #[cfg(feature = "aws")]
            BackendKind::Aws => {
                let config = take(
                    &mut self.config.aws,
                    kind,
                    "set AWS_REGION (or --aws-secrets-region)",
                )?;
                Ok(Box::new(crate::aws::Aws::new(config, limits).await?))
            }
            #[cfg(feature = "gcp")]
            BackendKind::Gcp => {
                let config = take(
                    &mut self.config.gcp,
                    kind,
                    "set GOOGLE_CLOUD_PROJECT (or --gcp-secrets-project)",
                )?;
                Ok(Box::new(crate::gcp::Gcp::new(config, limits).await?))
            }
            #[cfg(feature = "azure")]
            BackendKind::Azure => {
                let config = take(
                    &mut self.config.azure,
                    kind,
                    "set --azure-vault-url (or AZURE_KEYVAULT_URL)",
                )?;
                Ok(Box::new(crate::azure::Azure::new(config, limits)?))
            }
            #[cfg(feature = "onepassword")]
            BackendKind::OnePassword => {
                let config = take(
                    &mut self.config.onepassword,
                    kind,
                    "set FRONA_CREDENTIAL_1PASSWORD_HOST and FRONA_CREDENTIAL_1PASSWORD_TOKEN (or OP_CONNECT_HOST/OP_CONNECT_TOKEN)",
                )?;
                Ok(Box::new(crate::onepassword::OnePassword::new(
                    config, limits,
                )?))
            }
            #[cfg(feature = "infisical")]
            BackendKind::Infisical => {
                let config = take(
                    &mut self.config.infisical,
                    kind,
                    "set FRONA_CREDENTIAL_INFISICAL_HOST, _CLIENT_ID, _CLIENT_SECRET and _PROJECT_ID",
                )?;
                Ok(Box::new(crate::infisical::Infisical::new(config, limits)?))
            }
            BackendKind::SystemdCreds => {
                let config = take(
                    &mut self.config.systemd_creds,
                    kind,
                    crate::systemd_creds::NOT_CONFIGURED,
                )?;
                Ok(Box::new(crate::systemd_creds::SystemdCreds::new(config)))
            }
            #[allow(unreachable_patterns)]
            other => Err(BackendError::NotConfigured {
                backend: other.name(),
                detail: "this build of frona does not include it".into(),
            }),
        }
    }
}

/// Reads a secret from a file (a token file, a systemd credential), trimming one trailing
/// newline. The buffer holding the file is the returned [`Secret`]'s own.
pub fn secret_from_file(path: &std::path::Path) -> std::io::Result<Secret> {
    let mut bytes = std::fs::read(path)?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    Ok(Secret::new(bytes))
}

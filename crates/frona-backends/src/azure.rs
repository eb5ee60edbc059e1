//! Azure Key Vault through the official `azure_security_keyvault_secrets` client (with
//! `azure_identity` credentials): get a secret by name, latest or a version.
//!
//! We use these crates, the successors of the older `azure_security_keyvault` crate, because
//! Microsoft now maintains them (the old one is deprecated and gets no fixes); they speak the
//! current Key Vault API including its authentication challenge.
//!
//! Credentials: a ready access token (`FRONA_CREDENTIAL_AZURE_ACCESS_TOKEN`), else a service
//! principal (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`), else the developer
//! tools (`az login`, `azd auth login`). A path is the secret's name; the pinned version, if
//! any, is the Key Vault version id.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientOptions, HttpClient, RetryOptions, Transport};
use azure_security_keyvault_secrets::models::SecretClientGetSecretOptions;
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};

use crate::Limits;
use crate::retry::with_retries;
use crate::{Backend, BackendError, BackendKind, Secret, SecretRef};

const NAME: &str = "azure";

#[derive(Debug)]
pub enum AzureCredential {
    AccessToken(Secret),
    ClientSecret {
        tenant_id: String,
        client_id: String,
        client_secret: Secret,
    },
    DeveloperTools,
}

#[derive(Debug)]
pub struct AzureConfig {
    /// `https://NAME.vault.azure.net/`
    pub vault_url: String,
    pub credential: AzureCredential,
    /// Send every request to this `host:port` over plain HTTP instead (local emulators and
    /// tests only; never configurable from the command line or environment).
    pub connect_to: Option<String>,
}

pub struct Azure {
    client: SecretClient,
    vault_url: String,
    limits: Limits,
}

impl std::fmt::Debug for Azure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Azure")
            .field("vault_url", &self.vault_url)
            .finish_non_exhaustive()
    }
}

/// A fixed access token, valid for an hour from each request's point of view.
#[derive(Debug)]
struct StaticToken(Secret);

#[async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let token = String::from_utf8_lossy(self.0.expose()).into_owned();
        Ok(AccessToken::new(
            token,
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

/// The transport for [`AzureConfig::connect_to`]: same request, other address, plain HTTP.
#[derive(Debug)]
struct ConnectTo {
    inner: reqwest::Client,
    host: String,
    port: u16,
}

#[async_trait]
impl HttpClient for ConnectTo {
    async fn execute_request(
        &self,
        request: &azure_core::http::Request,
    ) -> azure_core::Result<azure_core::http::AsyncRawResponse> {
        let mut request = request.clone();
        let url = request.url_mut();
        let redirect = url.set_scheme("http").is_ok()
            && url.set_host(Some(&self.host)).is_ok()
            && url.set_port(Some(self.port)).is_ok();
        if !redirect {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Other,
                "cannot redirect the request",
            ));
        }
        self.inner.execute_request(&request).await
    }
}

impl Azure {
    pub fn new(config: AzureConfig, limits: Limits) -> Result<Self, BackendError> {
        let not_configured = |detail: String| BackendError::NotConfigured {
            backend: NAME,
            detail,
        };
        let credential: Arc<dyn TokenCredential> = match config.credential {
            AzureCredential::AccessToken(token) => Arc::new(StaticToken(token)),
            AzureCredential::ClientSecret {
                tenant_id,
                client_id,
                client_secret,
            } => azure_identity::ClientSecretCredential::new(
                &tenant_id,
                client_id,
                String::from_utf8_lossy(client_secret.expose())
                    .into_owned()
                    .into(),
                None,
            )
            .map_err(|e| not_configured(e.to_string()))?,
            AzureCredential::DeveloperTools => azure_identity::DeveloperToolsCredential::new(None)
                .map_err(|e| not_configured(e.to_string()))?,
        };
        let http = reqwest::Client::builder()
            .timeout(limits.timeout)
            .connect_timeout(limits.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| not_configured(e.to_string()))?;
        let transport: Arc<dyn HttpClient> = match &config.connect_to {
            Some(address) => {
                let (host, port) = address
                    .rsplit_once(':')
                    .and_then(|(h, p)| Some((h.to_owned(), p.parse().ok()?)))
                    .ok_or_else(|| not_configured(format!("`{address}` is not host:port")))?;
                Arc::new(ConnectTo {
                    inner: http,
                    host,
                    port,
                })
            }
            None => Arc::new(http),
        };
        // Retries are frona's own (bounded, the same for every backend).
        let client_options = ClientOptions {
            retry: RetryOptions::none(),
            transport: Some(Transport::new(transport)),
            ..Default::default()
        };
        let options = SecretClientOptions {
            client_options,
            ..SecretClientOptions::default()
        };
        let client = SecretClient::new(&config.vault_url, credential, Some(options))
            .map_err(|e| not_configured(format!("`{}`: {e}", config.vault_url)))?;
        Ok(Self {
            client,
            vault_url: config.vault_url,
            limits,
        })
    }

    fn error(&self, path: &str, error: azure_core::Error) -> BackendError {
        use azure_core::error::ErrorKind;
        let path = path.to_owned();
        match (error.http_status().map(u16::from), error.kind()) {
            (Some(401), _) | (_, ErrorKind::Credential) => {
                BackendError::Unauthenticated { backend: NAME }
            }
            (Some(403), _) => BackendError::Denied {
                backend: NAME,
                path,
            },
            (Some(404), _) => BackendError::NotFound {
                backend: NAME,
                path,
            },
            (Some(429), _) => BackendError::Throttled {
                backend: NAME,
                path,
                attempts: 1,
            },
            (Some(status), _) if status >= 500 => BackendError::Server {
                backend: NAME,
                path,
                status,
            },
            (Some(status), _) => BackendError::Protocol {
                backend: NAME,
                path,
                detail: format!("HTTP {status}"),
            },
            (None, ErrorKind::Io | ErrorKind::Connection) => {
                let timeout = std::error::Error::source(&error)
                    .and_then(|s| s.downcast_ref::<reqwest::Error>())
                    .is_some_and(reqwest::Error::is_timeout);
                if timeout {
                    BackendError::Timeout {
                        backend: NAME,
                        address: self.vault_url.clone(),
                        timeout: self.limits.timeout,
                    }
                } else {
                    BackendError::Unreachable {
                        backend: NAME,
                        address: self.vault_url.clone(),
                        source: Box::new(error),
                    }
                }
            }
            (None, _) => BackendError::Protocol {
                backend: NAME,
                path,
                detail: "unexpected answer".into(),
            },
        }
    }
}

#[async_trait]
impl Backend for Azure {
    fn kind(&self) -> BackendKind {
        BackendKind::Azure
    }

    async fn fetch(&self, secret: &SecretRef<'_>) -> Result<Secret, BackendError> {
        let response = with_retries(self.limits, NAME, |_| async {
            let options = secret.version.map(|v| SecretClientGetSecretOptions {
                secret_version: Some(v.to_owned()),
                ..Default::default()
            });
            self.client
                .get_secret(secret.path, options)
                .await
                .map_err(|e| self.error(secret.path, e))
        })
        .await?;
        let model = response.into_model().map_err(|_| BackendError::Protocol {
            backend: NAME,
            path: secret.path.into(),
            detail: "not the expected JSON".into(),
        })?;
        let value = model
            .value
            .map(Secret::from_string)
            .ok_or_else(|| BackendError::NotFound {
                backend: NAME,
                path: secret.path.into(),
            })?;
        secret.select(NAME, value)
    }

    /// Lists one page of secret properties: proves the vault URL and the credential.
    async fn health(&self) -> Result<(), BackendError> {
        use futures::TryStreamExt as _;
        let mut pages = self
            .client
            .list_secret_properties(None)
            .map_err(|e| self.error("secrets", e))?
            .into_pages();
        pages
            .try_next()
            .await
            .map(drop)
            .map_err(|e| self.error("secrets", e))
    }
}

//! HashiCorp Vault through `vaultrs`: token or AppRole auth; KV v2 reads (by version, by
//! field) and writes for rotation; short-lived child tokens (ttl, uses, policies); any read
//! that returns a lease (dynamic secret engines) with lease revocation.
//!
//! Paths are Vault's own: `secret/data/stripe/api-key` is KV v2 (mount `secret`); issuing from
//! `auth/token/create` makes a child token; issuing from any other path (`database/creds/ro`)
//! is a leased read. A KV secret with several keys needs `--field`; with one key, that key is
//! the value.

use std::time::Duration;

use async_trait::async_trait;
use rustify::Endpoint;
use rustify::enums::{RequestMethod, RequestType, ResponseType};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::RwLock;
use vaultrs::client::{Client as _, VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

use crate::Limits;
use crate::retry::with_retries;
use crate::{
    Backend, BackendError, BackendKind, IssueRequest, Issued, Revocation, Rotated, Secret,
    SecretRef,
};

const NAME: &str = "vault";

/// How frona logs in to Vault.
#[derive(Debug)]
pub enum VaultAuth {
    Token(Secret),
    AppRole {
        mount: String,
        role_id: String,
        secret_id: Secret,
    },
}

#[derive(Debug)]
pub struct VaultConfig {
    pub addr: String,
    pub auth: VaultAuth,
    pub namespace: Option<String>,
}

pub struct Vault {
    client: RwLock<VaultClient>,
    auth: VaultAuth,
    logged_in: tokio::sync::Mutex<bool>,
    addr: String,
    limits: Limits,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// A read that keeps Vault's envelope (vaultrs' own helpers drop `lease_id`).
#[derive(Debug)]
struct LeasedRead {
    path: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Leased {
    lease_id: String,
    lease_duration: u64,
    data: Option<serde_json::Map<String, Value>>,
}

impl Endpoint for LeasedRead {
    type Response = Leased;
    const REQUEST_BODY_TYPE: RequestType = RequestType::JSON;
    const RESPONSE_BODY_TYPE: ResponseType = ResponseType::JSON;
    fn path(&self) -> String {
        self.path.clone()
    }
    fn method(&self) -> RequestMethod {
        RequestMethod::GET
    }
}

/// `PUT sys/leases/revoke` (vaultrs has no lease API).
#[derive(Debug, Serialize)]
struct RevokeLease {
    lease_id: String,
}

impl Endpoint for RevokeLease {
    type Response = ();
    const REQUEST_BODY_TYPE: RequestType = RequestType::JSON;
    const RESPONSE_BODY_TYPE: ResponseType = ResponseType::JSON;
    fn path(&self) -> String {
        "sys/leases/revoke".into()
    }
    fn method(&self) -> RequestMethod {
        RequestMethod::PUT
    }
    fn body(&self) -> Result<Option<Vec<u8>>, rustify::errors::ClientError> {
        rustify::http::build_body(self, Self::REQUEST_BODY_TYPE).map(Some)
    }
}

/// `mount/data/rest` → (mount, rest) for KV v2.
fn kv2_path(path: &str) -> Option<(&str, &str)> {
    let (mount, rest) = path.split_once('/')?;
    let rest = rest.strip_prefix("data/")?;
    (!mount.is_empty() && !rest.is_empty()).then_some((mount, rest))
}

fn string_of(value: &Value) -> Secret {
    match value {
        Value::String(s) => Secret::from_string(s.clone()),
        other => Secret::from_string(other.to_string()),
    }
}

/// The one value a KV secret or lease stands for: the named field, or its only key.
fn pick(
    map: &serde_json::Map<String, Value>,
    field: Option<&str>,
    path: &str,
) -> Result<Secret, BackendError> {
    match field {
        Some(field) => map
            .get(field)
            .map(string_of)
            .ok_or_else(|| BackendError::MissingField {
                backend: NAME,
                path: path.into(),
                field: field.into(),
            }),
        None if map.len() == 1 => Ok(map
            .values()
            .next()
            .map(string_of)
            .unwrap_or_else(|| Secret::new(Vec::new()))),
        None => Err(BackendError::Invalid {
            backend: NAME,
            detail: format!("`{path}` holds several keys; register it with --field"),
        }),
    }
}

impl Vault {
    pub fn new(config: VaultConfig, limits: Limits) -> Result<Self, BackendError> {
        let url = reqwest::Url::parse(&config.addr).map_err(|_| BackendError::NotConfigured {
            backend: NAME,
            detail: format!("`{}` is not a URL (VAULT_ADDR / --vault-addr)", config.addr),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(BackendError::NotConfigured {
                backend: NAME,
                detail: format!("`{}` is not http(s)", config.addr),
            });
        }
        let token = match &config.auth {
            VaultAuth::Token(token) => String::from_utf8_lossy(token.expose()).into_owned(),
            VaultAuth::AppRole { .. } => String::new(),
        };
        // Every setting explicit: vaultrs would otherwise read VAULT_* from the environment.
        let settings = VaultClientSettingsBuilder::default()
            .address(&config.addr)
            .token(token)
            .timeout(Some(limits.timeout))
            .verify(true)
            .ca_certs(Vec::new())
            .identity(None)
            .namespace(config.namespace.clone())
            .build()
            .map_err(|e| BackendError::NotConfigured {
                backend: NAME,
                detail: e.to_string(),
            })?;
        let client = VaultClient::new(settings).map_err(|e| BackendError::NotConfigured {
            backend: NAME,
            detail: e.to_string(),
        })?;
        let logged_in = matches!(config.auth, VaultAuth::Token(_));
        Ok(Self {
            client: RwLock::new(client),
            auth: config.auth,
            logged_in: tokio::sync::Mutex::new(logged_in),
            addr: config.addr,
            limits,
        })
    }

    fn error(&self, path: &str, error: ClientError) -> BackendError {
        let path = path.to_owned();
        match error {
            ClientError::APIError { code: 403, .. } => BackendError::Denied {
                backend: NAME,
                path,
            },
            ClientError::APIError { code: 404, .. } => BackendError::NotFound {
                backend: NAME,
                path,
            },
            ClientError::APIError {
                code: 400 | 401, ..
            } if path == "login" => BackendError::Unauthenticated { backend: NAME },
            ClientError::APIError { code: 429, .. } => BackendError::Throttled {
                backend: NAME,
                path,
                attempts: 1,
            },
            ClientError::APIError { code, .. } if code >= 500 => BackendError::Server {
                backend: NAME,
                path,
                status: code,
            },
            ClientError::APIError { code, .. } => BackendError::Protocol {
                backend: NAME,
                path,
                detail: format!("HTTP {code}"),
            },
            ClientError::RestClientError { source } => match source {
                rustify::errors::ClientError::ServerResponseError { code, .. } if code >= 500 => {
                    BackendError::Server {
                        backend: NAME,
                        path,
                        status: code,
                    }
                }
                rustify::errors::ClientError::ServerResponseError { code, .. } => {
                    BackendError::Protocol {
                        backend: NAME,
                        path,
                        detail: format!("HTTP {code}"),
                    }
                }
                rustify::errors::ClientError::RequestError { source, .. } => {
                    match source.downcast_ref::<reqwest::Error>() {
                        Some(e) if e.is_timeout() => BackendError::Timeout {
                            backend: NAME,
                            address: self.addr.clone(),
                            timeout: self.limits.timeout,
                        },
                        _ => BackendError::Unreachable {
                            backend: NAME,
                            address: self.addr.clone(),
                            source: source.into(),
                        },
                    }
                }
                _ => BackendError::Protocol {
                    backend: NAME,
                    path,
                    detail: "not the expected JSON".into(),
                },
            },
            ClientError::ResponseEmptyError | ClientError::ResponseDataEmptyError => {
                BackendError::Protocol {
                    backend: NAME,
                    path,
                    detail: "empty response".into(),
                }
            }
            _ => BackendError::Protocol {
                backend: NAME,
                path,
                detail: "unexpected answer".into(),
            },
        }
    }

    /// Logs in with AppRole once (a token needs no login).
    async fn ensure_login(&self) -> Result<(), BackendError> {
        let mut logged_in = self.logged_in.lock().await;
        if *logged_in {
            return Ok(());
        }
        if let VaultAuth::AppRole {
            mount,
            role_id,
            secret_id,
        } = &self.auth
        {
            let secret_id = String::from_utf8_lossy(secret_id.expose()).into_owned();
            let auth = with_retries(self.limits, NAME, |_| async {
                let client = self.client.read().await;
                vaultrs::auth::approle::login(&*client, mount, role_id, &secret_id)
                    .await
                    .map_err(|e| self.error("login", e))
            })
            .await?;
            self.client.write().await.set_token(&auth.client_token);
        }
        *logged_in = true;
        Ok(())
    }

    async fn kv2_read(
        &self,
        secret: &SecretRef<'_>,
    ) -> Result<serde_json::Map<String, Value>, BackendError> {
        let (mount, path) = kv2_path(secret.path).ok_or_else(|| BackendError::Invalid {
            backend: NAME,
            detail: format!("`{}` is not a KV v2 path (MOUNT/data/PATH)", secret.path),
        })?;
        let version = secret
            .version
            .map(|v| v.parse::<u64>())
            .transpose()
            .map_err(|_| BackendError::Invalid {
                backend: NAME,
                detail: "a KV version is a number".into(),
            })?;
        self.ensure_login().await?;
        with_retries(self.limits, NAME, |_| async {
            let client = self.client.read().await;
            let read = match version {
                Some(v) => vaultrs::kv2::read_version(&*client, mount, path, v).await,
                None => vaultrs::kv2::read(&*client, mount, path).await,
            };
            read.map_err(|e| self.error(secret.path, e))
        })
        .await
    }
}

#[async_trait]
impl Backend for Vault {
    fn kind(&self) -> BackendKind {
        BackendKind::Vault
    }

    async fn fetch(&self, secret: &SecretRef<'_>) -> Result<Secret, BackendError> {
        let map = self.kv2_read(secret).await?;
        pick(&map, secret.field, secret.path)
    }

    /// Writes a new KV version with the field replaced (other keys kept).
    async fn rotate(
        &self,
        secret: &SecretRef<'_>,
        new_value: Option<&Secret>,
    ) -> Result<Rotated, BackendError> {
        let value = new_value.ok_or(BackendError::Invalid {
            backend: NAME,
            detail: "give the new value on stdin".into(),
        })?;
        let mut map = match self
            .kv2_read(&SecretRef {
                version: None,
                ..secret.clone()
            })
            .await
        {
            Ok(map) => map,
            Err(BackendError::NotFound { .. }) => serde_json::Map::new(),
            Err(e) => return Err(e),
        };
        let field = match secret.field {
            Some(field) => field.to_owned(),
            None if map.len() <= 1 => map.keys().next().cloned().unwrap_or_else(|| "value".into()),
            None => {
                return Err(BackendError::Invalid {
                    backend: NAME,
                    detail: "register the credential with --field".into(),
                });
            }
        };
        map.insert(
            field,
            Value::String(String::from_utf8_lossy(value.expose()).into_owned()),
        );
        let (mount, path) = kv2_path(secret.path).ok_or_else(|| BackendError::Invalid {
            backend: NAME,
            detail: format!("`{}` is not a KV v2 path", secret.path),
        })?;
        let written = with_retries(self.limits, NAME, |_| async {
            let client = self.client.read().await;
            vaultrs::kv2::set(&*client, mount, path, &map)
                .await
                .map_err(|e| self.error(secret.path, e))
        })
        .await?;
        Ok(Rotated {
            version: Some(written.version.to_string()),
        })
    }

    /// `sys/health` (unsealed, active) and, for a token, `lookup-self` (proves it).
    async fn health(&self) -> Result<(), BackendError> {
        self.ensure_login().await?;
        let client = self.client.read().await;
        vaultrs::sys::health(&*client)
            .await
            .map_err(|e| self.error("sys/health", e))?;
        vaultrs::token::lookup_self(&*client)
            .await
            .map_err(|e| self.error("auth/token/lookup-self", e))?;
        Ok(())
    }

    async fn issue(
        &self,
        secret: &SecretRef<'_>,
        request: &IssueRequest,
    ) -> Result<Issued, BackendError> {
        self.ensure_login().await?;
        let client = self.client.read().await;
        if secret.path == "auth/token/create" {
            let mut create = vaultrs::api::token::requests::CreateTokenRequest::builder();
            create
                .ttl(format!("{}s", request.ttl.as_secs().max(1)))
                .policies(request.policies.clone())
                .no_default_policy(!request.policies.is_empty())
                .renewable(false)
                .display_name(
                    request
                        .session_name
                        .clone()
                        .unwrap_or_else(|| "frona".into()),
                );
            if let Some(uses) = request.uses {
                create.num_uses(u64::from(uses));
            }
            let auth = vaultrs::token::new(&*client, Some(&mut create))
                .await
                .map_err(|e| self.error(secret.path, e))?;
            return Ok(Issued {
                values: vec![("token".into(), Secret::from_string(auth.client_token))],
                ttl: Duration::from_secs(auth.lease_duration),
                revocation: Revocation::VaultTokenAccessor(auth.accessor),
            });
        }
        let leased: Leased = vaultrs::api::exec_with_no_result(
            &*client,
            LeasedRead {
                path: secret.path.to_owned(),
            },
        )
        .await
        .map_err(|e| self.error(secret.path, e))?;
        let data = leased.data.unwrap_or_default();
        let values = match secret.field {
            Some(field) => vec![(field.to_owned(), pick(&data, Some(field), secret.path)?)],
            None => data
                .iter()
                .map(|(k, v)| (k.clone(), string_of(v)))
                .collect(),
        };
        let revocation = if leased.lease_id.is_empty() {
            Revocation::Expires
        } else {
            Revocation::VaultLease(leased.lease_id)
        };
        Ok(Issued {
            values,
            ttl: Duration::from_secs(leased.lease_duration),
            revocation,
        })
    }

    async fn revoke(&self, revocation: &Revocation) -> Result<(), BackendError> {
        self.ensure_login().await?;
        let client = self.client.read().await;
        match revocation {
            Revocation::VaultLease(lease_id) => vaultrs::api::exec_with_empty(
                &*client,
                RevokeLease {
                    lease_id: lease_id.clone(),
                },
            )
            .await
            .map_err(|e| self.error("sys/leases/revoke", e)),
            Revocation::VaultTokenAccessor(accessor) => {
                vaultrs::token::revoke_accessor(&*client, accessor)
                    .await
                    .map_err(|e| self.error("auth/token/revoke-accessor", e))
            }
            Revocation::Expires => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv2_paths() {
        assert_eq!(
            kv2_path("secret/data/stripe/api-key"),
            Some(("secret", "stripe/api-key"))
        );
        assert_eq!(kv2_path("kv/data/x"), Some(("kv", "x")));
        assert_eq!(kv2_path("secret/stripe"), None);
        assert_eq!(kv2_path("database/creds/ro"), None);
    }
}

//! Where frona's secrets come from.
//!
//! - [`Backend`]: one async trait, one module per store: [`local`] (embedded, always there),
//!   [`systemd_creds`] (systemd's `LoadCredential=`, no dependencies), and behind cargo
//!   features `vault`, `aws`, `gcp`, `azure`, `onepassword`, `infisical`.
//! - [`registry`]: credential names → backend references (never values), with scopes.
//! - [`cache`]: fetched values with a TTL, zeroized on eviction.
//! - [`totp`]: RFC 6238 codes from the seeds of `totp` credentials.
//! - [`Secret`]: the only type a value lives in.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "azure")]
pub mod azure;
pub mod cache;
pub mod config;
pub mod error;
pub mod files;
#[cfg(feature = "gcp")]
pub mod gcp;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "infisical")]
pub mod infisical;
pub mod limits;
pub mod local;
#[cfg(feature = "onepassword")]
pub mod onepassword;
pub mod registry;
#[cfg(feature = "http")]
mod retry;
pub mod secret;
pub mod systemd_creds;
pub mod totp;
#[cfg(feature = "vault")]
pub mod vault;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use error::{BackendError, json_error_kind};
pub use limits::Limits;
pub use secret::Secret;

/// The secret stores frona knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Local,
    Vault,
    Aws,
    Gcp,
    Azure,
    #[serde(rename = "onepassword")]
    OnePassword,
    Infisical,
    #[serde(rename = "systemd-creds")]
    SystemdCreds,
}

impl BackendKind {
    pub const ALL: [BackendKind; 8] = [
        BackendKind::Local,
        BackendKind::Vault,
        BackendKind::Aws,
        BackendKind::Gcp,
        BackendKind::Azure,
        BackendKind::OnePassword,
        BackendKind::Infisical,
        BackendKind::SystemdCreds,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Local => "local",
            BackendKind::Vault => "vault",
            BackendKind::Aws => "aws",
            BackendKind::Gcp => "gcp",
            BackendKind::Azure => "azure",
            BackendKind::OnePassword => "onepassword",
            BackendKind::Infisical => "infisical",
            BackendKind::SystemdCreds => "systemd-creds",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        BackendKind::ALL
            .into_iter()
            .find(|k| k.name() == text)
            .ok_or_else(|| format!("unknown backend `{text}` (local, vault, aws, gcp, azure, onepassword, infisical, systemd-creds)"))
    }
}

/// What to fetch: the backend's path for the secret, and optionally one field and a version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef<'a> {
    pub path: &'a str,
    pub field: Option<&'a str>,
    pub version: Option<&'a str>,
}

impl SecretRef<'_> {
    /// The value itself, or, when the credential names a field, that field of the value read
    /// as a JSON object (the shape every backend that stores text uses).
    pub fn select(&self, backend: &'static str, value: Secret) -> Result<Secret, BackendError> {
        match self.field {
            Some(field) => json_field(backend, self.path, &value, field),
            None => Ok(value),
        }
    }
}

impl<'a> From<&'a registry::Credential> for SecretRef<'a> {
    fn from(c: &'a registry::Credential) -> Self {
        Self {
            path: &c.path,
            field: c.field.as_deref(),
            version: c.version.as_deref(),
        }
    }
}

/// The shape of a short-lived credential, from the policy rule that permits a call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IssueRequest {
    pub ttl: Duration,
    /// How many times it may be used (Vault `num_uses`), where the backend can enforce it.
    pub uses: Option<u32>,
    /// Vault policies for a child token.
    pub policies: Vec<String>,
    /// An AWS session policy (JSON) narrowing the assumed role.
    pub session_policy: Option<String>,
    /// Who the credential is for (Vault display name, AWS session name).
    pub session_name: Option<String>,
}

/// How to take back what [`Backend::issue`] handed out. Holds no secret: a Vault token is
/// revoked by its accessor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "kebab-case")]
pub enum Revocation {
    VaultLease(String),
    VaultTokenAccessor(String),
    /// Nothing to revoke: it expires by itself (AWS STS sessions).
    Expires,
}

/// A short-lived credential: one or more named values (a token; or username and password; or
/// an AWS key id, secret key and session token), how long it lives, and how to revoke it.
#[derive(Debug)]
pub struct Issued {
    pub values: Vec<(String, Secret)>,
    pub ttl: Duration,
    pub revocation: Revocation,
}

/// What `rotate` did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rotated {
    /// The backend's new version identifier, when it has one.
    pub version: Option<String>,
}

/// One secret store.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + fmt::Debug {
    fn kind(&self) -> BackendKind;

    /// The secret's current value (or the pinned version, or one field of it).
    async fn fetch(&self, secret: &SecretRef<'_>) -> Result<Secret, BackendError>;

    /// Rotates the secret in the backend: with `new_value` where the backend stores what it is
    /// given (local, Vault KV), without where the backend rotates itself (AWS).
    async fn rotate(
        &self,
        secret: &SecretRef<'_>,
        new_value: Option<&Secret>,
    ) -> Result<Rotated, BackendError> {
        let _ = (secret, new_value);
        Err(BackendError::Unsupported {
            backend: self.kind().name(),
            operation: "rotate",
        })
    }

    /// Really talks to the backend (authenticated where it can) to prove it is usable.
    async fn health(&self) -> Result<(), BackendError>;

    /// Issues a short-lived credential for one use (Vault child token or leased secret, AWS
    /// STS session).
    async fn issue(
        &self,
        secret: &SecretRef<'_>,
        request: &IssueRequest,
    ) -> Result<Issued, BackendError> {
        let _ = (secret, request);
        Err(BackendError::Unsupported {
            backend: self.kind().name(),
            operation: "issuing short-lived credentials",
        })
    }

    /// Revokes what `issue` returned.
    async fn revoke(&self, revocation: &Revocation) -> Result<(), BackendError> {
        match revocation {
            Revocation::Expires => Ok(()),
            _ => Err(BackendError::Unsupported {
                backend: self.kind().name(),
                operation: "revocation",
            }),
        }
    }
}

/// Takes one field out of a JSON object secret (`{"user": "…", "password": "…"}`).
fn json_field(
    backend: &'static str,
    path: &str,
    value: &Secret,
    field: &str,
) -> Result<Secret, BackendError> {
    let doc: serde_json::Value =
        serde_json::from_slice(value.expose()).map_err(|_| BackendError::Protocol {
            backend,
            path: path.into(),
            detail: format!("field `{field}` asked for, but the value is not a JSON object"),
        })?;
    match doc.get(field) {
        Some(serde_json::Value::String(s)) => Ok(Secret::from_string(s.clone())),
        Some(other) => Ok(Secret::from_string(other.to_string())),
        None => Err(BackendError::MissingField {
            backend,
            path: path.into(),
            field: field.into(),
        }),
    }
}

/// The embedded store as a [`Backend`]: the path is the secret's name.
#[derive(Debug)]
pub struct LocalBackend {
    pub store: local::LocalStore,
}

#[async_trait::async_trait]
impl Backend for LocalBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Local
    }

    async fn fetch(&self, secret: &SecretRef<'_>) -> Result<Secret, BackendError> {
        let value = self.store.get(secret.path)?;
        secret.select("local", value)
    }

    async fn rotate(
        &self,
        secret: &SecretRef<'_>,
        new_value: Option<&Secret>,
    ) -> Result<Rotated, BackendError> {
        let value = new_value.ok_or(BackendError::Invalid {
            backend: "local",
            detail: "the local store cannot invent a value; give the new one on stdin".into(),
        })?;
        let version = self.store.set(secret.path, value)?;
        Ok(Rotated {
            version: Some(version.to_string()),
        })
    }

    async fn health(&self) -> Result<(), BackendError> {
        self.store.list()?;
        Ok(())
    }
}

//! Infisical (REST): universal-auth machine identity login, then raw secrets by name,
//! environment and folder path, as Infisical's API documents them.
//!
//! A path is `[ENV:]/folder/NAME` or `NAME`; the environment defaults to the configured one.
//! The access token from the login is kept until it expires, and renewed once on a 401.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::Limits;
use crate::http::Http;
use crate::{Backend, BackendError, BackendKind, Secret, SecretRef};

const NAME: &str = "infisical";

/// Machine identity (universal auth) and where the secrets are.
#[derive(Debug)]
pub struct InfisicalConfig {
    pub host: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// The project (workspace) id.
    pub project_id: String,
    /// Default environment slug (`dev`, `staging`, `prod` …).
    pub environment: String,
}

#[derive(Debug)]
pub struct Infisical {
    http: Http,
    config: InfisicalConfig,
    token: Mutex<Option<(Secret, Instant)>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Login {
    access_token: Secret,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct RawSecret {
    secret: RawSecretInner,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSecretInner {
    secret_value: Secret,
}

impl Infisical {
    pub fn new(config: InfisicalConfig, limits: Limits) -> Result<Self, BackendError> {
        Ok(Self {
            http: Http::new(NAME, &config.host, limits)?,
            config,
            token: Mutex::new(None),
        })
    }

    /// A valid access token: the cached one, or a fresh login.
    async fn token(&self, fresh: bool) -> Result<Secret, BackendError> {
        let mut cached = self.token.lock().await;
        if !fresh
            && let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let body = serde_json::json!({
            "clientId": self.config.client_id,
            "clientSecret": String::from_utf8_lossy(self.config.client_secret.expose()),
        });
        let path = "/api/v1/auth/universal-auth/login";
        let login: Login = self
            .http
            .send("universal-auth login", || {
                self.http.client.post(self.http.url(path)).json(&body)
            })
            .await?
            .json(NAME, "universal-auth login")?;
        // Renew a little before the server's expiry.
        let lifetime = Duration::from_secs(login.expires_in.unwrap_or(300))
            .saturating_sub(Duration::from_secs(10));
        *cached = Some((login.access_token.clone(), Instant::now() + lifetime));
        Ok(login.access_token)
    }

    async fn fetch_with(
        &self,
        token: &Secret,
        secret: &SecretRef<'_>,
    ) -> Result<Secret, BackendError> {
        let (environment, path) = match secret.path.split_once(':') {
            Some((env, path)) if !env.contains('/') => (env, path),
            _ => (self.config.environment.as_str(), secret.path),
        };
        let (folder, name) = match path.rsplit_once('/') {
            Some(("", name)) => ("/", name),
            Some((folder, name)) => (folder, name),
            None => ("/", path),
        };
        let mut query = vec![
            ("workspaceId", self.config.project_id.clone()),
            ("environment", environment.to_owned()),
            ("secretPath", folder.to_owned()),
        ];
        if let Some(version) = secret.version {
            query.push(("version", version.to_owned()));
        }
        let url = self.http.url(&format!("/api/v3/secrets/raw/{name}"));
        let bearer = format!("Bearer {}", String::from_utf8_lossy(token.expose()));
        let raw: RawSecret = self
            .http
            .send(secret.path, || {
                self.http
                    .client
                    .get(&url)
                    .header("Authorization", &bearer)
                    .query(&query)
            })
            .await?
            .json(NAME, secret.path)?;
        secret.select(NAME, raw.secret.secret_value)
    }
}

#[async_trait]
impl Backend for Infisical {
    fn kind(&self) -> BackendKind {
        BackendKind::Infisical
    }

    async fn fetch(&self, secret: &SecretRef<'_>) -> Result<Secret, BackendError> {
        let token = self.token(false).await?;
        match self.fetch_with(&token, secret).await {
            Err(BackendError::Unauthenticated { .. }) => {
                self.fetch_with(&self.token(true).await?, secret).await
            }
            other => other,
        }
    }

    /// `/api/status`, then a login (proves the machine identity).
    async fn health(&self) -> Result<(), BackendError> {
        self.http
            .send("/api/status", || {
                self.http.client.get(self.http.url("/api/status"))
            })
            .await?;
        self.token(true).await.map(drop)
    }
}

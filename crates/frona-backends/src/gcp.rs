//! Google Cloud Secret Manager through the official `google-cloud-secretmanager-v1` client
//! (REST/JSON over reqwest): access a secret version, `latest` or a number.
//!
//! A path is `SECRET` (in the configured project) or `projects/P/secrets/S`; the version is
//! the pinned one or `latest`. Credentials are Application Default Credentials, unless an
//! access token is configured (`FRONA_CREDENTIAL_GCP_ACCESS_TOKEN`, e.g. from
//! `gcloud auth print-access-token`). We use the official crate rather than the older,
//! unofficial `google-cloud-*` crates because it is maintained by Google, and speaks REST
//! without pulling gRPC in.

use async_trait::async_trait;
use google_cloud_auth::credentials::{
    CacheableResource, Credentials, CredentialsProvider, EntityTag,
};
use google_cloud_gax::retry_policy::NeverRetry;
use google_cloud_secretmanager_v1::client::SecretManagerService;

use dep_http as http;

use crate::Limits;
use crate::retry::with_retries;
use crate::{Backend, BackendError, BackendKind, Secret, SecretRef};

const NAME: &str = "gcp";

#[derive(Debug)]
pub struct GcpConfig {
    pub project: String,
    /// Another endpoint than `https://secretmanager.googleapis.com` (tests, private endpoints).
    pub endpoint: Option<String>,
    /// A ready access token instead of Application Default Credentials.
    pub access_token: Option<Secret>,
}

#[derive(Debug)]
pub struct Gcp {
    client: SecretManagerService,
    project: String,
    address: String,
    limits: Limits,
}

/// A fixed bearer token (marked sensitive so the HTTP stack never logs it).
#[derive(Debug)]
struct StaticToken {
    token: Secret,
    tag: EntityTag,
}

impl CredentialsProvider for StaticToken {
    async fn headers(
        &self,
        _extensions: http::Extensions,
    ) -> Result<CacheableResource<http::HeaderMap>, google_cloud_auth::errors::CredentialsError>
    {
        let bearer = [b"Bearer ".as_slice(), self.token.expose()].concat();
        let mut value = http::HeaderValue::from_bytes(&bearer).map_err(|_| {
            google_cloud_auth::errors::CredentialsError::from_msg(
                false,
                "the access token is not a header value",
            )
        })?;
        value.set_sensitive(true);
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, value);
        Ok(CacheableResource::New {
            entity_tag: self.tag.clone(),
            data: headers,
        })
    }

    async fn universe_domain(&self) -> Option<String> {
        None
    }
}

impl Gcp {
    pub async fn new(config: GcpConfig, limits: Limits) -> Result<Self, BackendError> {
        let not_configured = |detail: String| BackendError::NotConfigured {
            backend: NAME,
            detail,
        };
        let credentials: Credentials = match config.access_token {
            Some(token) => StaticToken { token, tag: EntityTag::new() }.into(),
            None => google_cloud_auth::credentials::Builder::default()
                .build()
                .map_err(|e| not_configured(format!("no Google credentials ({e}); run `gcloud auth application-default login` or set FRONA_CREDENTIAL_GCP_ACCESS_TOKEN")))?,
        };
        let mut builder = SecretManagerService::builder()
            .with_credentials(credentials)
            // Retries are frona's own (bounded, same policy for every backend).
            .with_retry_policy(NeverRetry)
            .with_attempt_timeout(limits.timeout);
        let address = config
            .endpoint
            .clone()
            .unwrap_or_else(|| "https://secretmanager.googleapis.com".into());
        if let Some(endpoint) = config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let client = builder
            .build()
            .await
            .map_err(|e| not_configured(e.to_string()))?;
        Ok(Self {
            client,
            project: config.project,
            address,
            limits,
        })
    }

    fn error(&self, path: &str, error: google_cloud_secretmanager_v1::Error) -> BackendError {
        let path = path.to_owned();
        match error.http_status_code() {
            Some(401) => BackendError::Unauthenticated { backend: NAME },
            Some(403) => BackendError::Denied {
                backend: NAME,
                path,
            },
            Some(404) => BackendError::NotFound {
                backend: NAME,
                path,
            },
            Some(429) => BackendError::Throttled {
                backend: NAME,
                path,
                attempts: 1,
            },
            Some(status) if status >= 500 => BackendError::Server {
                backend: NAME,
                path,
                status,
            },
            Some(status) => BackendError::Protocol {
                backend: NAME,
                path,
                detail: format!("HTTP {status}"),
            },
            None if error.is_timeout() => BackendError::Timeout {
                backend: NAME,
                address: self.address.clone(),
                timeout: self.limits.timeout,
            },
            None if error.is_connect() || error.is_transport() => BackendError::Unreachable {
                backend: NAME,
                address: self.address.clone(),
                source: Box::new(error),
            },
            None if error.is_authentication() => BackendError::Unauthenticated { backend: NAME },
            None => BackendError::Protocol {
                backend: NAME,
                path,
                detail: "unexpected answer".into(),
            },
        }
    }

    fn version_name(&self, secret: &SecretRef<'_>) -> String {
        let base = if secret.path.starts_with("projects/") {
            secret.path.to_owned()
        } else {
            format!("projects/{}/secrets/{}", self.project, secret.path)
        };
        if base.contains("/versions/") {
            base
        } else {
            format!("{base}/versions/{}", secret.version.unwrap_or("latest"))
        }
    }
}

#[async_trait]
impl Backend for Gcp {
    fn kind(&self) -> BackendKind {
        BackendKind::Gcp
    }

    async fn fetch(&self, secret: &SecretRef<'_>) -> Result<Secret, BackendError> {
        let name = self.version_name(secret);
        let response = with_retries(self.limits, NAME, |_| async {
            self.client
                .access_secret_version()
                .set_name(&name)
                .send()
                .await
                .map_err(|e| self.error(secret.path, e))
        })
        .await?;
        // The payload is copied once into a zeroizing buffer; never Debug the response.
        let value = Secret::new(
            response
                .payload
                .map(|p| p.data.to_vec())
                .unwrap_or_default(),
        );
        secret.select(NAME, value)
    }

    /// Lists one secret of the project: proves the endpoint, the credentials and the project.
    async fn health(&self) -> Result<(), BackendError> {
        let parent = format!("projects/{}", self.project);
        self.client
            .list_secrets()
            .set_parent(&parent)
            .set_page_size(1)
            .send()
            .await
            .map(drop)
            .map_err(|e| self.error(&parent, e))
    }
}

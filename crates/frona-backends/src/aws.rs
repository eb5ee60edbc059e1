//! AWS through the official SDK: Secrets Manager `GetSecretValue` (string, JSON field, pinned
//! version id) and `RotateSecret`, and STS `AssumeRole` with a session policy and duration as
//! the short-lived credential.
//!
//! Credentials: the explicit keys frona was given (from its own environment snapshot), else the
//! SDK's default chain (profile, SSO, web identity, ECS, IMDS). `endpoint` points both services
//! elsewhere (tests against moto, VPC endpoints).

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_secretsmanager as sm;
use aws_sdk_sts as sts;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use sm::config::{BehaviorVersion, Region, SharedCredentialsProvider, SharedHttpClient};
use sm::error::SdkError;

use crate::Limits;
use crate::{
    Backend, BackendError, BackendKind, IssueRequest, Issued, Revocation, Rotated, Secret,
    SecretRef,
};

const NAME: &str = "aws";

/// Static keys (from the environment frona started with).
#[derive(Debug)]
pub struct AwsKeys {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

#[derive(Debug)]
pub struct AwsConfig {
    pub region: String,
    pub endpoint: Option<String>,
    pub keys: Option<AwsKeys>,
}

#[derive(Debug)]
pub struct Aws {
    secrets: sm::Client,
    sts: sts::Client,
    address: String,
    limits: Limits,
}

fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .build_https()
}

/// Map any SDK failure: service errors by HTTP status, then transport, timeouts, parsing.
fn map_error<E>(
    error: SdkError<E, HttpResponse>,
    path: &str,
    address: &str,
    limits: Limits,
) -> BackendError
where
    E: std::error::Error + Send + Sync + 'static + sm::error::ProvideErrorMetadata,
{
    let path = path.to_owned();
    match &error {
        SdkError::TimeoutError(_) => BackendError::Timeout {
            backend: NAME,
            address: address.into(),
            timeout: limits.timeout,
        },
        SdkError::DispatchFailure(d) if d.is_timeout() => BackendError::Timeout {
            backend: NAME,
            address: address.into(),
            timeout: limits.timeout,
        },
        SdkError::DispatchFailure(_) => BackendError::Unreachable {
            backend: NAME,
            address: address.into(),
            source: Box::new(error),
        },
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            match (service.raw().status().as_u16(), code) {
                (_, "ResourceNotFoundException") | (404, _) => BackendError::NotFound {
                    backend: NAME,
                    path,
                },
                (_, "AccessDeniedException" | "AccessDenied") | (403, _) => BackendError::Denied {
                    backend: NAME,
                    path,
                },
                (
                    _,
                    "UnrecognizedClientException"
                    | "InvalidClientTokenId"
                    | "ExpiredToken"
                    | "ExpiredTokenException",
                ) => BackendError::Unauthenticated { backend: NAME },
                (_, "ThrottlingException" | "Throttling") | (429, _) => BackendError::Throttled {
                    backend: NAME,
                    path,
                    attempts: 1,
                },
                (status, _) if status >= 500 => BackendError::Server {
                    backend: NAME,
                    path,
                    status,
                },
                (status, code) => BackendError::Protocol {
                    backend: NAME,
                    path,
                    detail: format!("HTTP {status} {code}"),
                },
            }
        }
        SdkError::ResponseError(_) => BackendError::Protocol {
            backend: NAME,
            path,
            detail: "unreadable response".into(),
        },
        _ => BackendError::Protocol {
            backend: NAME,
            path,
            detail: "request could not be built".into(),
        },
    }
}

impl Aws {
    pub async fn new(config: AwsConfig, limits: Limits) -> Result<Self, BackendError> {
        let timeouts = sm::config::timeout::TimeoutConfig::builder()
            .connect_timeout(limits.timeout)
            .read_timeout(limits.timeout)
            .operation_attempt_timeout(limits.timeout)
            .operation_timeout(limits.timeout.saturating_mul(limits.retries + 1))
            .build();
        let retries = sm::config::retry::RetryConfig::standard()
            .with_max_attempts(limits.retries + 1)
            .with_initial_backoff(limits.backoff)
            .with_max_backoff(Duration::from_secs(5));
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .http_client(http_client())
            .timeout_config(timeouts)
            .retry_config(retries);
        if let Some(keys) = config.keys {
            let credentials = sm::config::Credentials::new(
                keys.access_key_id,
                String::from_utf8_lossy(keys.secret_access_key.expose()).into_owned(),
                keys.session_token
                    .map(|t| String::from_utf8_lossy(t.expose()).into_owned()),
                None,
                "frona",
            );
            loader = loader.credentials_provider(SharedCredentialsProvider::new(credentials));
        }
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let shared = loader.load().await;
        let address = config
            .endpoint
            .unwrap_or_else(|| format!("https://secretsmanager.{}.amazonaws.com", config.region));
        Ok(Self {
            secrets: sm::Client::new(&shared),
            sts: sts::Client::new(&shared),
            address,
            limits,
        })
    }
}

#[async_trait]
impl Backend for Aws {
    fn kind(&self) -> BackendKind {
        BackendKind::Aws
    }

    async fn fetch(&self, secret: &SecretRef<'_>) -> Result<Secret, BackendError> {
        let mut request = self.secrets.get_secret_value().secret_id(secret.path);
        if let Some(version) = secret.version {
            request = if version.starts_with("AWS") {
                request.version_stage(version)
            } else {
                request.version_id(version)
            };
        }
        let output = request
            .send()
            .await
            .map_err(|e| map_error(e, secret.path, &self.address, self.limits))?;
        let value = match (output.secret_string, output.secret_binary) {
            (Some(text), _) => Secret::from_string(text),
            (None, Some(blob)) => Secret::new(blob.into_inner()),
            (None, None) => {
                return Err(BackendError::NotFound {
                    backend: NAME,
                    path: secret.path.into(),
                });
            }
        };
        secret.select(NAME, value)
    }

    /// `RotateSecret`: AWS runs the secret's rotation (its Lambda) and makes a new version.
    async fn rotate(
        &self,
        secret: &SecretRef<'_>,
        _new_value: Option<&Secret>,
    ) -> Result<Rotated, BackendError> {
        let output = self
            .secrets
            .rotate_secret()
            .secret_id(secret.path)
            .send()
            .await
            .map_err(|e| map_error(e, secret.path, &self.address, self.limits))?;
        Ok(Rotated {
            version: output.version_id,
        })
    }

    /// `GetCallerIdentity` (proves the credentials) and one `ListSecrets` (proves the endpoint).
    async fn health(&self) -> Result<(), BackendError> {
        self.sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| map_error(e, "sts", &self.address, self.limits))?;
        self.secrets
            .list_secrets()
            .max_results(1)
            .send()
            .await
            .map(drop)
            .map_err(|e| map_error(e, "secretsmanager", &self.address, self.limits))
    }

    /// `AssumeRole` on the role ARN in `path`, narrowed by the rule's session policy, for the
    /// rule's TTL (AWS allows 15 min to 12 h; frona checks, since not every endpoint does).
    async fn issue(
        &self,
        secret: &SecretRef<'_>,
        request: &IssueRequest,
    ) -> Result<Issued, BackendError> {
        let seconds = request.ttl.as_secs();
        if !(900..=43_200).contains(&seconds) {
            return Err(BackendError::Invalid {
                backend: NAME,
                detail: format!("an STS session lasts 15 minutes to 12 hours, not {seconds} s"),
            });
        }
        if let Some(policy) = &request.session_policy
            && serde_json::from_str::<serde_json::Value>(policy)
                .map(|v| !v.is_object())
                .unwrap_or(true)
        {
            return Err(BackendError::Invalid {
                backend: NAME,
                detail: "the session policy is not a JSON object".into(),
            });
        }
        let session: String = request
            .session_name
            .as_deref()
            .unwrap_or("frona")
            .chars()
            .take(64)
            .collect();
        let output = self
            .sts
            .assume_role()
            .role_arn(secret.path)
            .role_session_name(session)
            .duration_seconds(i32::try_from(seconds).unwrap_or(900))
            .set_policy(request.session_policy.clone())
            .send()
            .await
            .map_err(|e| map_error(e, secret.path, &self.address, self.limits))?;
        let credentials = output.credentials.ok_or_else(|| BackendError::Protocol {
            backend: NAME,
            path: secret.path.into(),
            detail: "AssumeRole returned no credentials".into(),
        })?;
        let expires =
            SystemTime::try_from(credentials.expiration).unwrap_or_else(|_| SystemTime::now());
        let ttl = expires
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        Ok(Issued {
            values: vec![
                (
                    "AWS_ACCESS_KEY_ID".into(),
                    Secret::from_string(credentials.access_key_id),
                ),
                (
                    "AWS_SECRET_ACCESS_KEY".into(),
                    Secret::from_string(credentials.secret_access_key),
                ),
                (
                    "AWS_SESSION_TOKEN".into(),
                    Secret::from_string(credentials.session_token),
                ),
            ],
            ttl,
            revocation: Revocation::Expires,
        })
    }
}

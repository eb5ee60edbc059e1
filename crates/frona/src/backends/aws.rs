//! AWS Secrets Manager and STS: `backends.aws`, the AWS CLI's variables, `--aws-secrets-region`
//! and `--aws-endpoint-url`.

use super::{Backend, Inputs, Key, section};
use crate::failure::Failure;

pub const AWS_REGION: &str = "AWS_REGION";
pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
pub const AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";

section! {
    /// `backends.aws`.
    region: String,
    endpoint_url: String,
}

pub const BACKEND: Backend = Backend {
    name: "aws",
    keys: &[
        Key::plain("region", &[AWS_REGION, AWS_DEFAULT_REGION]),
        Key::plain("endpoint_url", &[AWS_ENDPOINT_URL]),
    ],
    build,
};

#[cfg(not(feature = "aws"))]
fn build(_: &Inputs<'_>, _: &mut frona_backends::config::BackendsConfig) -> Result<(), Failure> {
    Ok(())
}

/// Region from `--aws-secrets-region`, `AWS_REGION`, `AWS_DEFAULT_REGION` or the config; keys
/// from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN` when set, else the
/// SDK's default chain (profiles, SSO, IMDS).
#[cfg(feature = "aws")]
fn build(
    inputs: &Inputs<'_>,
    config: &mut frona_backends::config::BackendsConfig,
) -> Result<(), Failure> {
    use super::{env_secret, env_text};

    let Inputs { env, file, flags } = *inputs;
    let section = &file.aws;
    let Some(region) = flags
        .and_then(|a| a.aws_secrets_region.clone())
        .or_else(|| env_text(env, &[AWS_REGION, AWS_DEFAULT_REGION]))
        .or_else(|| section.region.clone())
    else {
        return Ok(());
    };
    let endpoint = flags
        .and_then(|a| a.aws_endpoint_url.clone())
        .or_else(|| env_text(env, &[AWS_ENDPOINT_URL]))
        .or_else(|| section.endpoint_url.clone());
    let keys = env_text(env, &[AWS_ACCESS_KEY_ID])
        .zip(env_secret(env, AWS_SECRET_ACCESS_KEY))
        .map(
            |(access_key_id, secret_access_key)| frona_backends::aws::AwsKeys {
                access_key_id,
                secret_access_key,
                session_token: env_secret(env, AWS_SESSION_TOKEN),
            },
        );
    config.aws = Some(frona_backends::aws::AwsConfig {
        region,
        endpoint,
        keys,
    });
    Ok(())
}

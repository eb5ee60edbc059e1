//! Google Cloud Secret Manager: `backends.gcp`, `GOOGLE_CLOUD_PROJECT`,
//! `FRONA_CREDENTIAL_GCP_*`, `--gcp-secrets-project` and `--gcp-endpoint`.

use super::{Backend, Inputs, Key, section};
use crate::failure::Failure;

pub const GOOGLE_CLOUD_PROJECT: &str = "GOOGLE_CLOUD_PROJECT";
pub const GCP_ENDPOINT: &str = "FRONA_CREDENTIAL_GCP_ENDPOINT";
pub const GCP_ACCESS_TOKEN: &str = "FRONA_CREDENTIAL_GCP_ACCESS_TOKEN";

section! {
    /// `backends.gcp`.
    project: String,
    endpoint: String,
}

pub const BACKEND: Backend = Backend {
    name: "gcp",
    keys: &[
        Key::plain("project", &[GOOGLE_CLOUD_PROJECT]),
        Key::plain("endpoint", &[GCP_ENDPOINT]),
    ],
    build,
};

#[cfg(not(feature = "gcp"))]
fn build(_: &Inputs<'_>, _: &mut frona_backends::config::BackendsConfig) -> Result<(), Failure> {
    Ok(())
}

/// Project from `--gcp-secrets-project`, `GOOGLE_CLOUD_PROJECT` or the config; an access token
/// from `FRONA_CREDENTIAL_GCP_ACCESS_TOKEN`, else Application Default Credentials.
#[cfg(feature = "gcp")]
fn build(
    inputs: &Inputs<'_>,
    config: &mut frona_backends::config::BackendsConfig,
) -> Result<(), Failure> {
    use super::{env_secret, env_text};

    let Inputs { env, file, flags } = *inputs;
    let section = &file.gcp;
    let Some(project) = flags
        .and_then(|a| a.gcp_secrets_project.clone())
        .or_else(|| env_text(env, &[GOOGLE_CLOUD_PROJECT]))
        .or_else(|| section.project.clone())
    else {
        return Ok(());
    };
    let endpoint = flags
        .and_then(|a| a.gcp_endpoint.clone())
        .or_else(|| env_text(env, &[GCP_ENDPOINT]))
        .or_else(|| section.endpoint.clone());
    config.gcp = Some(frona_backends::gcp::GcpConfig {
        project,
        endpoint,
        access_token: env_secret(env, GCP_ACCESS_TOKEN),
    });
    Ok(())
}

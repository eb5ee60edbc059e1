//! Infisical universal auth: `backends.infisical` or `FRONA_CREDENTIAL_INFISICAL_*`.

use std::path::PathBuf;

use super::{Backend, Inputs, Key, section};
use crate::failure::Failure;

pub const INFISICAL_HOST: &str = "FRONA_CREDENTIAL_INFISICAL_HOST";
pub const INFISICAL_CLIENT_ID: &str = "FRONA_CREDENTIAL_INFISICAL_CLIENT_ID";
pub const INFISICAL_CLIENT_SECRET: &str = "FRONA_CREDENTIAL_INFISICAL_CLIENT_SECRET";
pub const INFISICAL_PROJECT_ID: &str = "FRONA_CREDENTIAL_INFISICAL_PROJECT_ID";
pub const INFISICAL_ENVIRONMENT: &str = "FRONA_CREDENTIAL_INFISICAL_ENVIRONMENT";

section! {
    /// `backends.infisical`.
    host: String,
    client_id: String,
    client_secret_file: PathBuf,
    project_id: String,
    environment: String,
}

pub const BACKEND: Backend = Backend {
    name: "infisical",
    keys: &[
        Key::plain("host", &[INFISICAL_HOST]),
        Key {
            name: "client_id",
            env: &[INFISICAL_CLIENT_ID],
            env_is_secret: true,
            sensitive: true,
        },
        Key::secret("client_secret_file", &[INFISICAL_CLIENT_SECRET]),
        Key::plain("project_id", &[INFISICAL_PROJECT_ID]),
        Key::plain("environment", &[INFISICAL_ENVIRONMENT]),
    ],
    build,
};

#[cfg(not(feature = "infisical"))]
fn build(_: &Inputs<'_>, _: &mut frona_backends::config::BackendsConfig) -> Result<(), Failure> {
    Ok(())
}

/// Each key from its variable, else the config file; the client secret also from the
/// `infisical-client-secret` systemd credential. Host default `https://app.infisical.com`,
/// environment `dev`.
#[cfg(feature = "infisical")]
fn build(
    inputs: &Inputs<'_>,
    config: &mut frona_backends::config::BackendsConfig,
) -> Result<(), Failure> {
    use super::{env_text, secret_from};
    use crate::systemd::credentials as creds;

    let Inputs { env, file, .. } = *inputs;
    let section = &file.infisical;
    let pick = |name: &str, from_file: &Option<String>| {
        env_text(env, &[name]).or_else(|| from_file.clone())
    };
    let (Some(client_id), Some(project_id)) = (
        pick(INFISICAL_CLIENT_ID, &section.client_id),
        pick(INFISICAL_PROJECT_ID, &section.project_id),
    ) else {
        return Ok(());
    };
    let Some(client_secret) = secret_from(
        env,
        &[INFISICAL_CLIENT_SECRET],
        section
            .client_secret_file
            .clone()
            .or_else(|| creds::file(env, creds::INFISICAL_CLIENT_SECRET))
            .as_ref(),
    )?
    else {
        return Ok(());
    };
    config.infisical = Some(frona_backends::infisical::InfisicalConfig {
        host: pick(INFISICAL_HOST, &section.host)
            .unwrap_or_else(|| "https://app.infisical.com".into()),
        client_id,
        client_secret,
        project_id,
        environment: pick(INFISICAL_ENVIRONMENT, &section.environment)
            .unwrap_or_else(|| "dev".into()),
    });
    Ok(())
}

//! Building the backends' configuration from flags, frona's environment and the config file
//! (in that order of precedence), then the systemd credentials of frona's unit
//! (`systemd::credentials`). Tokens and client secrets come from the environment or from
//! files, never from the command line.

#[allow(unused_imports)]
use std::path::PathBuf;

use frona_backends::Secret;
#[allow(unused_imports)]
use frona_backends::config::{Backends, BackendsConfig, Limits, LocalConfig, secret_from_file};
use frona_backends::local::KeyInput;
use frona_sandbox::EnvSnapshot;

use crate::cli::BackendArgs;
#[allow(unused_imports)]
use crate::config_file::ConfigFile;
use crate::dirs;
#[allow(unused_imports)]
use crate::env_vars::*;
use crate::failure::Failure;
use crate::systemd::credentials as creds;

fn env_secret(env: &EnvSnapshot, name: &str) -> Option<Secret> {
    env.get(name)
        .filter(|v| !v.is_empty())
        .map(|v| Secret::new(v.to_vec()))
}

#[allow(dead_code)]
fn env_text(env: &EnvSnapshot, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| env.get(n))
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// A secret from the first set environment variable, else from the file the config names.
#[allow(dead_code)]
fn secret_from(
    env: &EnvSnapshot,
    names: &[&str],
    file: Option<&PathBuf>,
) -> Result<Option<Secret>, Failure> {
    if let Some(value) = names.iter().find_map(|n| env_secret(env, n)) {
        return Ok(Some(value));
    }
    file.map(|path| {
        secret_from_file(path).map_err(|e| {
            Failure::from_error(&e).with_hint(format!(
                "check the file `{}` (named by a flag, frona's config or a systemd credential)",
                path.display()
            ))
        })
    })
    .transpose()
}

/// The local store's location and key: `FRONA_MASTER_KEY` (else the `frona-master-key`
/// systemd credential), `FRONA_PASSPHRASE` (else `frona-passphrase`), else the key file.
pub fn local_config(env: &EnvSnapshot) -> Result<LocalConfig, Failure> {
    Ok(LocalConfig {
        store: dirs::local_store(env),
        key: KeyInput {
            master_key: secret_from(
                env,
                &[FRONA_MASTER_KEY],
                creds::file(env, creds::MASTER_KEY).as_ref(),
            )?,
            passphrase: secret_from(
                env,
                &[FRONA_PASSPHRASE],
                creds::file(env, creds::PASSPHRASE).as_ref(),
            )?,
            key_file: dirs::key_file(env),
        },
    })
}

/// Vault: address from `--vault-addr`, `VAULT_ADDR` or the config file; a token from
/// `--vault-token-file`, `VAULT_TOKEN` or the config's `token_file`; else AppRole from
/// `VAULT_ROLE_ID` + `VAULT_SECRET_ID` (or the config's `role_id` + `secret_id_file`).
#[cfg(feature = "vault")]
fn vault(
    env: &EnvSnapshot,
    file: &ConfigFile,
    args: Option<&BackendArgs>,
) -> Result<Option<frona_backends::vault::VaultConfig>, Failure> {
    use frona_backends::vault::{VaultAuth, VaultConfig};
    let section = &file.backends.vault;
    let Some(addr) = args
        .and_then(|a| a.vault_addr.clone())
        .or_else(|| env_text(env, &[VAULT_ADDR]))
        .or_else(|| section.addr.clone())
    else {
        return Ok(None);
    };
    let token_file = args.and_then(|a| a.vault_token_file.as_ref());
    let token = match token_file {
        Some(path) => secret_from(env, &[], Some(path))?,
        None => secret_from(
            env,
            &[VAULT_TOKEN],
            section
                .token_file
                .clone()
                .or_else(|| creds::file(env, creds::VAULT_TOKEN))
                .as_ref(),
        )?,
    };
    let auth = match token {
        Some(token) => VaultAuth::Token(token),
        None => {
            let role_id = env_text(env, &[VAULT_ROLE_ID]).or_else(|| section.role_id.clone());
            let secret_id = secret_from(
                env,
                &[VAULT_SECRET_ID],
                section
                    .secret_id_file
                    .clone()
                    .or_else(|| creds::file(env, creds::VAULT_SECRET_ID))
                    .as_ref(),
            )?;
            match role_id.zip(secret_id) {
                Some((role_id, secret_id)) => VaultAuth::AppRole {
                    mount: "approle".into(),
                    role_id,
                    secret_id,
                },
                None => return Ok(None),
            }
        }
    };
    let namespace = env_text(env, &[VAULT_NAMESPACE]).or_else(|| section.namespace.clone());
    Ok(Some(VaultConfig {
        addr,
        auth,
        namespace,
    }))
}

/// AWS: region from `--aws-secrets-region`, `AWS_REGION`, `AWS_DEFAULT_REGION` or the config;
/// keys from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN` when set, else the
/// SDK's default chain (profiles, SSO, IMDS).
#[cfg(feature = "aws")]
fn aws(
    env: &EnvSnapshot,
    file: &ConfigFile,
    args: Option<&BackendArgs>,
) -> Option<frona_backends::aws::AwsConfig> {
    let section = &file.backends.aws;
    let region = args
        .and_then(|a| a.aws_secrets_region.clone())
        .or_else(|| env_text(env, &["AWS_REGION", "AWS_DEFAULT_REGION"]))
        .or_else(|| section.region.clone())?;
    let endpoint = args
        .and_then(|a| a.aws_endpoint_url.clone())
        .or_else(|| env_text(env, &["AWS_ENDPOINT_URL"]))
        .or_else(|| section.endpoint_url.clone());
    let keys = env_text(env, &["AWS_ACCESS_KEY_ID"])
        .zip(env_secret(env, "AWS_SECRET_ACCESS_KEY"))
        .map(
            |(access_key_id, secret_access_key)| frona_backends::aws::AwsKeys {
                access_key_id,
                secret_access_key,
                session_token: env_secret(env, "AWS_SESSION_TOKEN"),
            },
        );
    Some(frona_backends::aws::AwsConfig {
        region,
        endpoint,
        keys,
    })
}

/// GCP: project from `--gcp-secrets-project`, `GOOGLE_CLOUD_PROJECT` or the config; an access
/// token from `FRONA_CREDENTIAL_GCP_ACCESS_TOKEN`, else Application Default Credentials.
#[cfg(feature = "gcp")]
fn gcp(
    env: &EnvSnapshot,
    file: &ConfigFile,
    args: Option<&BackendArgs>,
) -> Option<frona_backends::gcp::GcpConfig> {
    let section = &file.backends.gcp;
    let project = args
        .and_then(|a| a.gcp_secrets_project.clone())
        .or_else(|| env_text(env, &["GOOGLE_CLOUD_PROJECT"]))
        .or_else(|| section.project.clone())?;
    let endpoint = args
        .and_then(|a| a.gcp_endpoint.clone())
        .or_else(|| env_text(env, &[GCP_ENDPOINT]))
        .or_else(|| section.endpoint.clone());
    Some(frona_backends::gcp::GcpConfig {
        project,
        endpoint,
        access_token: env_secret(env, GCP_ACCESS_TOKEN),
    })
}

/// Azure Key Vault: URL from `--azure-vault-url`, `AZURE_KEYVAULT_URL` or the config; an access
/// token from `FRONA_CREDENTIAL_AZURE_ACCESS_TOKEN`, else a service principal from
/// `AZURE_TENANT_ID`/`AZURE_CLIENT_ID`/`AZURE_CLIENT_SECRET`, else `az`/`azd` logins.
#[cfg(feature = "azure")]
fn azure(
    env: &EnvSnapshot,
    file: &ConfigFile,
    args: Option<&BackendArgs>,
) -> Option<frona_backends::azure::AzureConfig> {
    use frona_backends::azure::{AzureConfig, AzureCredential};
    let vault_url = args
        .and_then(|a| a.azure_vault_url.clone())
        .or_else(|| env_text(env, &["AZURE_KEYVAULT_URL"]))
        .or_else(|| file.backends.azure.vault_url.clone())?;
    let credential = match env_secret(env, AZURE_ACCESS_TOKEN) {
        Some(token) => AzureCredential::AccessToken(token),
        None => match (
            env_text(env, &["AZURE_TENANT_ID"]),
            env_text(env, &["AZURE_CLIENT_ID"]),
            env_secret(env, "AZURE_CLIENT_SECRET"),
        ) {
            (Some(tenant_id), Some(client_id), Some(client_secret)) => {
                AzureCredential::ClientSecret {
                    tenant_id,
                    client_id,
                    client_secret,
                }
            }
            _ => AzureCredential::DeveloperTools,
        },
    };
    Some(AzureConfig {
        vault_url,
        credential,
        connect_to: None,
    })
}

/// 1Password Connect: `FRONA_CREDENTIAL_1PASSWORD_HOST`/`_TOKEN`, or Connect's own
/// `OP_CONNECT_HOST`/`OP_CONNECT_TOKEN`, or the config file.
#[cfg(feature = "onepassword")]
fn onepassword(
    env: &EnvSnapshot,
    file: &ConfigFile,
) -> Result<Option<frona_backends::onepassword::OnePasswordConfig>, Failure> {
    let section = &file.backends.onepassword;
    let host =
        env_text(env, &[ONEPASSWORD_HOST, "OP_CONNECT_HOST"]).or_else(|| section.host.clone());
    let token = secret_from(
        env,
        &[ONEPASSWORD_TOKEN, "OP_CONNECT_TOKEN"],
        section
            .token_file
            .clone()
            .or_else(|| creds::file(env, creds::ONEPASSWORD_TOKEN))
            .as_ref(),
    )?;
    Ok(host
        .zip(token)
        .map(|(host, token)| frona_backends::onepassword::OnePasswordConfig { host, token }))
}

/// Infisical universal auth: `FRONA_CREDENTIAL_INFISICAL_{HOST,CLIENT_ID,CLIENT_SECRET,PROJECT_ID,ENVIRONMENT}`,
/// or the config file.
#[cfg(feature = "infisical")]
fn infisical(
    env: &EnvSnapshot,
    file: &ConfigFile,
) -> Result<Option<frona_backends::infisical::InfisicalConfig>, Failure> {
    let section = &file.backends.infisical;
    let pick = |name: &str, from_file: &Option<String>| {
        env_text(env, &[name]).or_else(|| from_file.clone())
    };
    let (Some(client_id), Some(project_id)) = (
        pick(INFISICAL_CLIENT_ID, &section.client_id),
        pick(INFISICAL_PROJECT_ID, &section.project_id),
    ) else {
        return Ok(None);
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
        return Ok(None);
    };
    Ok(Some(frona_backends::infisical::InfisicalConfig {
        host: pick(INFISICAL_HOST, &section.host)
            .unwrap_or_else(|| "https://app.infisical.com".into()),
        client_id,
        client_secret,
        project_id,
        environment: pick(INFISICAL_ENVIRONMENT, &section.environment)
            .unwrap_or_else(|| "dev".into()),
    }))
}

/// How long a backend may take: the flag, else `backends.timeout`, else 5 s.
pub fn backend_timeout(file: &ConfigFile, args: Option<&BackendArgs>) -> std::time::Duration {
    args.and_then(|a| a.backend_timeout)
        .or(file.backends.timeout.map(|t| t.0))
        .unwrap_or(Limits::default().timeout)
}

/// Every backend frona can reach with these flags, this environment and the config file.
pub fn backends(env: &EnvSnapshot, args: Option<&BackendArgs>) -> Result<Backends, Failure> {
    #[allow(unused_variables)]
    let file = crate::config::load(env)?.file;
    let limits = Limits {
        timeout: backend_timeout(&file, args),
        ..Limits::default()
    };
    Ok(Backends::new(BackendsConfig {
        limits,
        local: local_config(env)?,
        #[cfg(feature = "vault")]
        vault: vault(env, &file, args)?,
        #[cfg(feature = "aws")]
        aws: aws(env, &file, args),
        #[cfg(feature = "gcp")]
        gcp: gcp(env, &file, args),
        #[cfg(feature = "azure")]
        azure: azure(env, &file, args),
        #[cfg(feature = "onepassword")]
        onepassword: onepassword(env, &file)?,
        #[cfg(feature = "infisical")]
        infisical: infisical(env, &file)?,
        systemd_creds: creds::directory(env)
            .map(|dir| frona_backends::systemd_creds::SystemdCredsConfig { dir }),
    }))
}

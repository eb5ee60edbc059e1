//! The backends' configuration. Each backend is one module here holding its `backends.NAME`
//! config section and one [`Backend`] descriptor: the variables that win over each of its
//! config keys (what `frona config show` reports), the other variables it reads, and its
//! constructor, which builds its `frona_backends` configuration from flags, frona's environment
//! and the config file, in that order of precedence, then the systemd credentials of frona's
//! unit (`systemd::credentials`). The backends are listed once, in [`backends!`]'s invocation:
//! adding one is its module and one line there. Tokens and client secrets come from the
//! environment or from files, never from the command line.

mod aws;
mod azure;
mod gcp;
mod infisical;
mod onepassword;
mod vault;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use frona_backends::Limits;
use frona_backends::Secret;
use frona_backends::config::{Backends, BackendsConfig, LocalConfig, secret_from_file};
use frona_backends::local::KeyInput;
use frona_sandbox::EnvSnapshot;
use serde::{Deserialize, Serialize};

use crate::dirs;
use crate::env_vars::{FRONA_MASTER_KEY, FRONA_PASSPHRASE};
use crate::failure::Failure;
use crate::settings::value::Timeout;
use crate::systemd::credentials as creds;

/// How to reach the backends; shared by the `credential` subcommands.
#[derive(Debug, Args)]
pub struct BackendArgs {
    /// How long a backend may take to answer, retries included [default: `backends.timeout`
    /// from the config, else 5s].
    #[arg(long, global = true, value_name = "DURATION", value_parser = frona_policy::duration::parse)]
    pub backend_timeout: Option<Duration>,

    /// Vault's address (default: VAULT_ADDR).
    #[arg(long, global = true, value_name = "URL")]
    pub vault_addr: Option<String>,

    /// The AWS region of Secrets Manager and STS (default: AWS_REGION, AWS_DEFAULT_REGION).
    #[arg(long, global = true, value_name = "REGION")]
    pub aws_secrets_region: Option<String>,

    /// Another endpoint for AWS (a VPC endpoint; moto in tests) (default: AWS_ENDPOINT_URL).
    #[arg(long, global = true, value_name = "URL")]
    pub aws_endpoint_url: Option<String>,

    /// The Google Cloud project of Secret Manager (default: GOOGLE_CLOUD_PROJECT).
    #[arg(long, global = true, value_name = "PROJECT")]
    pub gcp_secrets_project: Option<String>,

    /// Another endpoint for Secret Manager (default: https://secretmanager.googleapis.com).
    #[arg(long, global = true, value_name = "URL")]
    pub gcp_endpoint: Option<String>,

    /// The Azure Key Vault URL, https://NAME.vault.azure.net/ (default: AZURE_KEYVAULT_URL).
    #[arg(long, global = true, value_name = "URL")]
    pub azure_vault_url: Option<String>,

    /// A file holding frona's Vault token (default: VAULT_TOKEN). Tokens are never taken from
    /// the command line, where every local user can read them.
    #[arg(long, global = true, value_name = "PATH")]
    pub vault_token_file: Option<PathBuf>,
}

/// One backend, as the binary configures it.
#[derive(Debug)]
pub struct Backend {
    /// Its section of the config file, `backends.NAME`.
    pub name: &'static str,
    /// Its config keys, and the variables that win over them. (The other variables it reads,
    /// its SDK's credentials, are constants of its module.)
    pub keys: &'static [Key],
    /// Sets its slot of the configuration, when it is configured (a no-op without its cargo
    /// feature, which its line in [`backends!`] names).
    pub build: fn(&Inputs<'_>, &mut BackendsConfig) -> Result<(), Failure>,
}

/// A config key of a backend (`addr` of `backends.vault`).
#[derive(Debug)]
pub struct Key {
    pub name: &'static str,
    /// The variables that win over it; the first set one counts.
    pub env: &'static [&'static str],
    /// The variable holds the secret itself, not the setting (`VAULT_TOKEN` for `token_file`).
    pub env_is_secret: bool,
    /// The value is a credential in all but name (Vault's role id): never printed.
    pub sensitive: bool,
}

impl Key {
    /// A key whose variables hold the setting itself.
    pub const fn plain(name: &'static str, env: &'static [&'static str]) -> Self {
        Self {
            name,
            env,
            env_is_secret: false,
            sensitive: false,
        }
    }

    /// A key naming a file with a secret, whose variables hold the secret.
    pub const fn secret(name: &'static str, env: &'static [&'static str]) -> Self {
        Self {
            name,
            env,
            env_is_secret: true,
            sensitive: false,
        }
    }
}

/// What a backend's constructor reads.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    pub env: &'a EnvSnapshot,
    /// The merged `backends:` section of the config files.
    pub file: &'a BackendsSection,
    /// `frona credential`'s flags.
    pub flags: Option<&'a BackendArgs>,
}

/// Defines a backend's config section: every key optional (unknown keys are errors), combined
/// key by key across layers.
macro_rules! section {
    ($(#[$doc:meta])* $($key:ident: $ty:ty),* $(,)?) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, serde::Deserialize, serde::Serialize)]
        #[serde(deny_unknown_fields)]
        pub struct Section {
            $(
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $key: Option<$ty>,
            )*
        }

        impl Section {
            /// `self`'s keys, else `lower`'s.
            pub fn combine(self, lower: Self) -> Self {
                Self { $($key: self.$key.or(lower.$key),)* }
            }

            /// Makes the paths of `*_file` keys absolute.
            pub fn resolve_paths(&mut self, fix: &dyn Fn(&std::path::Path) -> std::path::PathBuf) {
                $($crate::backends::MaybePath::resolve(&mut self.$key, fix);)*
            }
        }
    };
}
use section;

/// A key that may hold a path.
trait MaybePath {
    fn resolve(&mut self, fix: &dyn Fn(&Path) -> PathBuf);
}

impl MaybePath for Option<String> {
    fn resolve(&mut self, _: &dyn Fn(&Path) -> PathBuf) {}
}

impl MaybePath for Option<PathBuf> {
    fn resolve(&mut self, fix: &dyn Fn(&Path) -> PathBuf) {
        if let Some(path) = self {
            *path = fix(path);
        }
    }
}

/// The backends: their sections of the config file, their descriptors, and their slots in
/// `frona_backends`' configuration (present with their cargo feature).
macro_rules! backends {
    ($($name:ident: $feature:literal),* $(,)?) => {
        /// The `backends:` section of a config file: settings that are not secrets, and paths
        /// of files that hold secrets. Sections of backends not compiled in are parsed, not read.
        #[derive(Clone, Debug, Default, Deserialize, Serialize)]
        #[serde(deny_unknown_fields)]
        pub struct BackendsSection {
            /// How long a backend may take to answer, retries included.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub timeout: Option<Timeout>,
            $(
                #[serde(default)]
                pub $name: $name::Section,
            )*
        }

        impl BackendsSection {
            /// `self`'s keys, else `lower`'s (uv's `Combine`).
            pub fn combine(self, lower: Self) -> Self {
                Self {
                    timeout: self.timeout.or(lower.timeout),
                    $($name: self.$name.combine(lower.$name),)*
                }
            }

            pub fn resolve_paths(&mut self, fix: &dyn Fn(&Path) -> PathBuf) {
                $(self.$name.resolve_paths(fix);)*
            }
        }

        /// Every backend frona can be built with, in the order of the config file.
        pub static BACKENDS: &[&Backend] = &[$(&$name::BACKEND),*];

        /// The configuration with no network backend configured yet.
        fn unconfigured(
            limits: Limits,
            local: LocalConfig,
            systemd_creds: Option<frona_backends::systemd_creds::SystemdCredsConfig>,
        ) -> BackendsConfig {
            BackendsConfig {
                limits,
                local,
                $(#[cfg(feature = $feature)] $name: None,)*
                systemd_creds,
            }
        }
    };
}

backends! {
    vault: "vault",
    aws: "aws",
    gcp: "gcp",
    azure: "azure",
    onepassword: "onepassword",
    infisical: "infisical",
}

fn env_secret(env: &EnvSnapshot, name: &str) -> Option<Secret> {
    env.get(name)
        .filter(|v| !v.is_empty())
        .map(|v| Secret::new(v.to_vec()))
}

/// The first of `names` that is set.
#[cfg_attr(
    not(any(
        feature = "vault",
        feature = "aws",
        feature = "gcp",
        feature = "azure",
        feature = "onepassword",
        feature = "infisical"
    )),
    expect(dead_code)
)]
fn env_text(env: &EnvSnapshot, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| env.get(n))
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// A secret from the first set environment variable, else from the file the config names.
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

/// The built-in defaults of the `backends:` section (what `config show` reports as such).
pub fn defaults() -> BackendsSection {
    BackendsSection {
        timeout: Some(Timeout(Limits::default().timeout)),
        ..BackendsSection::default()
    }
}

/// How long a backend may take: the flag, else `backends.timeout`, else 5 s.
pub fn backend_timeout(file: &BackendsSection, args: Option<&BackendArgs>) -> std::time::Duration {
    args.and_then(|a| a.backend_timeout)
        .or(file.timeout.map(|t| t.0))
        .unwrap_or(Limits::default().timeout)
}

/// Every backend frona can reach with these flags, this environment and the config files'
/// merged `backends:` section.
pub fn backends(
    env: &EnvSnapshot,
    file: &BackendsSection,
    args: Option<&BackendArgs>,
) -> Result<Backends, Failure> {
    let limits = Limits {
        timeout: backend_timeout(file, args),
        ..Limits::default()
    };
    let mut config = unconfigured(
        limits,
        local_config(env)?,
        creds::directory(env).map(|dir| frona_backends::systemd_creds::SystemdCredsConfig { dir }),
    );
    let inputs = Inputs {
        env,
        file,
        flags: args,
    };
    for backend in BACKENDS {
        (backend.build)(&inputs, &mut config)?;
    }
    Ok(Backends::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every descriptor names its section, and every key it lists is a key of that section.
    #[test]
    fn descriptors_match_the_sections() {
        for backend in BACKENDS {
            for key in backend.keys {
                let yaml = format!("{}: {{{}: x}}", backend.name, key.name);
                assert!(
                    frona_policy::yaml::from_str::<BackendsSection>(&yaml).is_ok(),
                    "backends.{}.{} is no key",
                    backend.name,
                    key.name
                );
            }
        }
        let names: Vec<&str> = BACKENDS.iter().map(|b| b.name).collect();
        assert_eq!(
            names,
            ["vault", "aws", "gcp", "azure", "onepassword", "infisical"]
        );
    }
}

//! The optional config file, `$XDG_CONFIG_HOME/frona/config.yaml` (or `$FRONA_CONFIG_DIR`):
//! backend settings that are not secrets, plus paths of files that hold secrets. Flags win
//! over the environment, which wins over this file. Unknown keys are errors.
//!
//! ```yaml
//! backends:
//!   vault: { addr: https://vault.internal:8200, token_file: /run/credentials/frona.service/vault-token }
//!   aws: { region: eu-west-1 }
//!   onepassword: { host: http://op-connect:8080, token_file: ~/.config/frona/op-token }
//!   infisical: { host: https://app.infisical.com, client_id: …, client_secret_file: …, project_id: …, environment: prod }
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::failure::Failure;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub backends: BackendsSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // sections of backends not compiled in are parsed, not read
pub struct BackendsSection {
    #[serde(default)]
    pub vault: VaultSection,
    #[serde(default)]
    pub aws: AwsSection,
    #[serde(default)]
    pub gcp: GcpSection,
    #[serde(default)]
    pub azure: AzureSection,
    #[serde(default)]
    pub onepassword: OnePasswordSection,
    #[serde(default)]
    pub infisical: InfisicalSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSection {
    pub addr: Option<String>,
    pub token_file: Option<PathBuf>,
    pub role_id: Option<String>,
    pub secret_id_file: Option<PathBuf>,
    pub namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read by the backend when it is compiled in
pub struct AwsSection {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read by the backend when it is compiled in
pub struct GcpSection {
    pub project: Option<String>,
    pub endpoint: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read by the backend when it is compiled in
pub struct AzureSection {
    pub vault_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnePasswordSection {
    pub host: Option<String>,
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfisicalSection {
    pub host: Option<String>,
    pub client_id: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    pub project_id: Option<String>,
    pub environment: Option<String>,
}

/// Reads `dir/config.yaml`; a missing file is an empty configuration.
pub fn load(dir: &Path) -> Result<ConfigFile, Failure> {
    let path = dir.join("config.yaml");
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().is_empty() => Ok(ConfigFile::default()),
        Ok(text) => serde_norway::from_str(&text).map_err(|e| {
            Failure::new(
                125,
                format!(
                    "`{}` is not a valid frona configuration: {e}",
                    path.display()
                ),
            )
            .with_hint("see the commented example in README, section Configuration")
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
        Err(e) => Err(Failure::from_error(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_typos() {
        let ok: ConfigFile = serde_norway::from_str(
            "backends:\n  vault:\n    addr: http://v:8200\n  aws:\n    region: eu-west-1\n",
        )
        .unwrap();
        assert_eq!(ok.backends.vault.addr.as_deref(), Some("http://v:8200"));
        assert!(
            serde_norway::from_str::<ConfigFile>("backends:\n  vault:\n    adrr: x\n").is_err()
        );
    }
}

//! frona's bootstrap secrets from systemd credentials.
//!
//! A unit hands frona the secrets it needs to reach its backends with `LoadCredential=NAME:PATH`
//! (or `LoadCredentialEncrypted=`); systemd puts them in `$CREDENTIALS_DIRECTORY`, readable by
//! the service alone, which `frona run` hides from the agent. When a credential named here is
//! there, it is the default for the setting it stands for: a flag, an environment variable or
//! a config-file `*_file` option still wins. `docs/systemd.md` has the table (a test keeps it
//! in step).

use std::path::PathBuf;

use frona_sandbox::EnvSnapshot;

use crate::env_vars::CREDENTIALS_DIRECTORY;

/// The local store's master key (32 bytes, hex or base64), as `FRONA_MASTER_KEY`.
pub const MASTER_KEY: &str = "frona-master-key";
/// The local store's passphrase, as `FRONA_PASSPHRASE`.
pub const PASSPHRASE: &str = "frona-passphrase";
/// A Vault token, as `VAULT_TOKEN` or `backends.vault.token_file`.
pub const VAULT_TOKEN: &str = "vault-token";
/// A Vault AppRole secret id, as `VAULT_SECRET_ID` or `backends.vault.secret_id_file`.
pub const VAULT_SECRET_ID: &str = "vault-secret-id";
/// A 1Password Connect token, as `FRONA_CREDENTIAL_1PASSWORD_TOKEN` or
/// `backends.onepassword.token_file`.
pub const ONEPASSWORD_TOKEN: &str = "onepassword-token";
/// An Infisical client secret, as `FRONA_CREDENTIAL_INFISICAL_CLIENT_SECRET` or
/// `backends.infisical.client_secret_file`.
pub const INFISICAL_CLIENT_SECRET: &str = "infisical-client-secret";

/// `$CREDENTIALS_DIRECTORY`, when systemd set it (always an absolute path).
pub fn directory(env: &EnvSnapshot) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt as _;
    env.get(CREDENTIALS_DIRECTORY)
        .filter(|v| v.first() == Some(&b'/'))
        .map(|v| PathBuf::from(std::ffi::OsStr::from_bytes(v)))
}

/// The file of bootstrap credential `name`, when the unit loaded it.
pub fn file(env: &EnvSnapshot, name: &str) -> Option<PathBuf> {
    directory(env)
        .map(|dir| dir.join(name))
        .filter(|path| path.is_file())
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> EnvSnapshot {
        EnvSnapshot::from_pairs(
            pairs
                .iter()
                .map(|(n, v)| (OsString::from(n), v.as_bytes().to_vec())),
        )
    }

    #[test]
    fn finds_only_loaded_credentials_in_an_absolute_directory() {
        let dir = std::env::temp_dir().join(format!("frona-bootstrap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(VAULT_TOKEN), "t").unwrap();
        let under_systemd = env(&[(CREDENTIALS_DIRECTORY, dir.to_str().unwrap())]);
        assert_eq!(
            file(&under_systemd, VAULT_TOKEN),
            Some(dir.join(VAULT_TOKEN))
        );
        assert_eq!(file(&under_systemd, MASTER_KEY), None);
        assert_eq!(file(&env(&[]), VAULT_TOKEN), None);
        assert_eq!(
            directory(&env(&[(CREDENTIALS_DIRECTORY, "relative")])),
            None
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Every name is a valid credential id and is in the table of `docs/systemd.md`.
    #[test]
    fn names_are_valid_and_documented() {
        let docs = include_str!("../../../../docs/systemd.md");
        for name in [
            MASTER_KEY,
            PASSPHRASE,
            VAULT_TOKEN,
            VAULT_SECRET_ID,
            ONEPASSWORD_TOKEN,
            INFISICAL_CLIENT_SECRET,
        ] {
            assert!(frona_backends::systemd_creds::check_name(name).is_ok());
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{name}"
            );
            assert!(
                docs.contains(&format!("| `{name}` |")),
                "`{name}` is missing from the table in docs/systemd.md"
            );
        }
    }
}

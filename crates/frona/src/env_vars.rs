//! Every environment variable frona reads, sets or strips, in one place (doubles as docs).
//!
//! - `FRONA_LOG`: log level for frona's own diagnostics on stderr (`error`, `warn` (default),
//!   `info`, `debug`, `trace`).
//! - `NO_COLOR`: when set (to anything), frona's output carries no ANSI colour.
//! - Stripped from the agent: names matching
//!   [`frona_sandbox::scrub::CREDENTIAL_NAME_PATTERNS`], values recognised by
//!   [`frona_sandbox::scrub::detect_credential_value`], and `--strip` globs.
//! - Passed in `--env-mode allowlist`: [`frona_sandbox::scrub::ALLOWLIST_BASE`] and `--keep`.
//! - `FRONA_CONFIG_DIR`, `FRONA_DATA_DIR`, `FRONA_STATE_DIR`: override frona's directories
//!   (see `dirs`).
//! - `FRONA_BROKER_SOCKET`: set for the agent by `frona run`; where `frona tool` reaches the broker.
//! - `FRONA_PROXY`: set for the agent by `frona run`; the HTTP credential proxy's Unix socket
//!   (`curl --unix-socket "$FRONA_PROXY" http://frona/ROUTE/PATH`, or `frona call`).
//! - `FRONA_MASTER_KEY`: the local store's key (32 bytes, hex or base64).
//! - `FRONA_PASSPHRASE`: the local store's passphrase (Argon2id), when it was created with one.
//! - `VAULT_ADDR`, `VAULT_TOKEN`, `VAULT_ROLE_ID`, `VAULT_SECRET_ID`, `VAULT_NAMESPACE`: Vault, as
//!   the `vault` CLI reads them.
//! - `AWS_REGION`, `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`: AWS, as the AWS CLI reads them.
//! - `GOOGLE_CLOUD_PROJECT`, `FRONA_CREDENTIAL_GCP_ENDPOINT`, `FRONA_CREDENTIAL_GCP_ACCESS_TOKEN`:
//!   Secret Manager (otherwise Application Default Credentials).
//! - `AZURE_KEYVAULT_URL`, `FRONA_CREDENTIAL_AZURE_ACCESS_TOKEN`, `AZURE_TENANT_ID`,
//!   `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`: Key Vault (otherwise `az`/`azd` logins).
//! - `FRONA_CREDENTIAL_1PASSWORD_HOST`, `FRONA_CREDENTIAL_1PASSWORD_TOKEN` (or 1Password's own
//!   `OP_CONNECT_HOST`, `OP_CONNECT_TOKEN`): the 1Password Connect server.
//! - `FRONA_CREDENTIAL_INFISICAL_HOST` (default `https://app.infisical.com`), `_CLIENT_ID`,
//!   `_CLIENT_SECRET`, `_PROJECT_ID`, `_ENVIRONMENT` (default `dev`): Infisical universal auth.
//! - `HOME`, `XDG_CONFIG_HOME`, `XDG_DATA_HOME`, `XDG_CACHE_HOME`, `XDG_STATE_HOME`, `TMPDIR`:
//!   where frona's directories and the agent's writable places are.

/// Log level for frona's own diagnostics.
pub const FRONA_LOG: &str = "FRONA_LOG";
/// Disables colour when set (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";
/// Overrides frona's configuration directory.
pub const FRONA_CONFIG_DIR: &str = "FRONA_CONFIG_DIR";
/// Overrides frona's data directory.
pub const FRONA_DATA_DIR: &str = "FRONA_DATA_DIR";
/// The local store's master key.
pub const FRONA_MASTER_KEY: &str = "FRONA_MASTER_KEY";
/// The local store's passphrase.
pub const FRONA_PASSPHRASE: &str = "FRONA_PASSPHRASE";
pub const ONEPASSWORD_HOST: &str = "FRONA_CREDENTIAL_1PASSWORD_HOST";
pub const ONEPASSWORD_TOKEN: &str = "FRONA_CREDENTIAL_1PASSWORD_TOKEN";
pub const INFISICAL_HOST: &str = "FRONA_CREDENTIAL_INFISICAL_HOST";
pub const INFISICAL_CLIENT_ID: &str = "FRONA_CREDENTIAL_INFISICAL_CLIENT_ID";
pub const INFISICAL_CLIENT_SECRET: &str = "FRONA_CREDENTIAL_INFISICAL_CLIENT_SECRET";
pub const INFISICAL_PROJECT_ID: &str = "FRONA_CREDENTIAL_INFISICAL_PROJECT_ID";
pub const INFISICAL_ENVIRONMENT: &str = "FRONA_CREDENTIAL_INFISICAL_ENVIRONMENT";
pub const VAULT_ADDR: &str = "VAULT_ADDR";
pub const VAULT_TOKEN: &str = "VAULT_TOKEN";
pub const VAULT_ROLE_ID: &str = "VAULT_ROLE_ID";
pub const VAULT_SECRET_ID: &str = "VAULT_SECRET_ID";
pub const VAULT_NAMESPACE: &str = "VAULT_NAMESPACE";
pub const GCP_ENDPOINT: &str = "FRONA_CREDENTIAL_GCP_ENDPOINT";
pub const GCP_ACCESS_TOKEN: &str = "FRONA_CREDENTIAL_GCP_ACCESS_TOKEN";
pub const AZURE_ACCESS_TOKEN: &str = "FRONA_CREDENTIAL_AZURE_ACCESS_TOKEN";
/// Overrides frona's state directory (audit log, grants).
pub const FRONA_STATE_DIR: &str = "FRONA_STATE_DIR";
/// The broker's socket, set in the agent's environment.
pub const FRONA_BROKER_SOCKET: &str = "FRONA_BROKER_SOCKET";
/// The HTTP credential proxy's socket, set in the agent's environment.
pub const FRONA_PROXY: &str = "FRONA_PROXY";

//! Every environment variable frona reads, sets or strips, in one place (doubles as docs).
//!
//! - `FRONA_LOG`: log level for frona's own diagnostics on stderr (`error`, `warn` (default),
//!   `info`, `debug`, `trace`).
//! - `FRONA_LOG_FORMAT`: `text` (default) or `json` (one JSON object per line, from
//!   tracing-subscriber's JSON formatter: `timestamp`, `level`, `fields.message`, `target`).
//! - `FRONA_SYSTEM_CONFIG`: the system config file (default `/etc/frona/config.yaml`), for
//!   packagers and tests.
//! - `FRONA_ISOLATION`, `FRONA_NET`, `FRONA_ENV_MODE`, `FRONA_STOP_TIMEOUT`, `FRONA_CACHE_TTL`,
//!   `FRONA_QUIET` (`1`/`true`/`yes` or `0`/`false`/`no`), `FRONA_AGENT`, `FRONA_POLICY`: the
//!   `run:` settings of the config file (each one's entry in `settings::defs` names it); they
//!   win over every config file and lose to flags (see `settings`).
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
//! - Set for the agent by `frona run --net proxy` ([`EGRESS_PROXY_VARS`], [`NO_PROXY_VARS`],
//!   `NODE_USE_ENV_PROXY`): the egress proxy's URL `http://127.0.0.1:3128` in `HTTP_PROXY`,
//!   `HTTPS_PROXY`, `ALL_PROXY` and their lower-case forms (curl, Python `requests`/`urllib`/pip,
//!   Go, Rust's reqwest, git, which reads the lower-case ones, and most other clients), in
//!   `npm_config_proxy` and `npm_config_https_proxy` (npm), and in `PIP_PROXY` (pip's
//!   `--proxy`); `localhost,127.0.0.1,::1` in `NO_PROXY`, `no_proxy` and `npm_config_noproxy`
//!   (the agent's own loopback); `NODE_USE_ENV_PROXY=1` so that Node's `fetch` and `http`
//!   (22.21+, 24.5+) honour them. These replace what the agent's environment had. Tools the
//!   broker runs get none of them: they have the host's network.
//! - Set for the agent when `frona run --net proxy` serves an `aws-sts` credential:
//!   `AWS_CONTAINER_CREDENTIALS_FULL_URI` (`http://127.0.0.1:3128/frona/aws-credentials`) and
//!   `AWS_CONTAINER_AUTHORIZATION_TOKEN` (random per session), which every AWS SDK and the CLI
//!   read; [`AWS_CONTAINER_REMOVED`] (keys, `AWS_PROFILE`, web identity, other config files)
//!   are taken away then, so that the SDKs look nowhere else first.
//! - `FRONA_MASTER_KEY`: the local store's key (32 bytes, hex or base64).
//! - `FRONA_PASSPHRASE`: the local store's passphrase (Argon2id), when it was created with one.
//! - Each backend's variables (`VAULT_ADDR`, `VAULT_TOKEN`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
//!   `GOOGLE_CLOUD_PROJECT`, `AZURE_KEYVAULT_URL`, `FRONA_CREDENTIAL_1PASSWORD_HOST`,
//!   `FRONA_CREDENTIAL_INFISICAL_CLIENT_ID` …): declared in the backend's descriptor
//!   (`crate::backends::BACKENDS`), with the config key each one wins over.
//! - `HOME`, `XDG_CONFIG_HOME`, `XDG_DATA_HOME`, `XDG_CACHE_HOME`, `XDG_STATE_HOME`, `TMPDIR`:
//!   where frona's directories and the agent's writable places are.
//! - `NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`: systemd's notify socket and watchdog;
//!   `frona run` reports readiness, status and liveness there (`systemd::notify`).
//! - `CREDENTIALS_DIRECTORY`: systemd's credentials for frona's unit: the `systemd-creds`
//!   backend reads them, frona's bootstrap secrets default to them (`systemd::credentials`),
//!   and `frona run` hides the directory from the agent.
//! - Stripped from the agent as service-manager plumbing, in every mode:
//!   [`frona_sandbox::scrub::SERVICE_MANAGER_VARS`] (the four above, `LISTEN_FDS`,
//!   `LISTEN_PID`, `LISTEN_FDNAMES`, `FDSTORE`, `SYSTEMD_EXEC_PID`, `MANAGERPID`).

/// Log level for frona's own diagnostics.
pub const FRONA_LOG: &str = "FRONA_LOG";
/// `json` for one JSON object per log line.
pub const FRONA_LOG_FORMAT: &str = "FRONA_LOG_FORMAT";
/// Overrides the system config file's path.
pub const FRONA_SYSTEM_CONFIG: &str = "FRONA_SYSTEM_CONFIG";
/// `run.isolation`.
pub const FRONA_ISOLATION: &str = "FRONA_ISOLATION";
/// `run.net`.
pub const FRONA_NET: &str = "FRONA_NET";
/// `run.env_mode`.
pub const FRONA_ENV_MODE: &str = "FRONA_ENV_MODE";
/// `run.stop_timeout`.
pub const FRONA_STOP_TIMEOUT: &str = "FRONA_STOP_TIMEOUT";
/// `run.cache_ttl`.
pub const FRONA_CACHE_TTL: &str = "FRONA_CACHE_TTL";
/// `run.quiet`.
pub const FRONA_QUIET: &str = "FRONA_QUIET";
/// `run.agent`.
pub const FRONA_AGENT: &str = "FRONA_AGENT";
/// `run.policy`.
pub const FRONA_POLICY: &str = "FRONA_POLICY";
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
/// Overrides frona's state directory (audit log, grants).
pub const FRONA_STATE_DIR: &str = "FRONA_STATE_DIR";
/// The broker's socket, set in the agent's environment.
pub const FRONA_BROKER_SOCKET: &str = "FRONA_BROKER_SOCKET";
/// The HTTP credential proxy's socket, set in the agent's environment.
pub const FRONA_PROXY: &str = "FRONA_PROXY";
/// The ssh-agent's socket: frona's own user's (read, never passed on), and inside `frona run`
/// frona's SSH agent when the policies have `ssh:` rules.
pub const SSH_AUTH_SOCK: &str = "SSH_AUTH_SOCK";
/// Set to the egress proxy's URL for the agent under `--net proxy`.
pub const EGRESS_PROXY_VARS: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "npm_config_proxy",
    "npm_config_https_proxy",
    "PIP_PROXY",
];
/// Set to [`NO_PROXY_VALUE`] for the agent under `--net proxy`.
pub const NO_PROXY_VARS: &[&str] = &["NO_PROXY", "no_proxy", "npm_config_noproxy"];
/// The agent's own loopback, which needs no proxy.
pub const NO_PROXY_VALUE: &str = "localhost,127.0.0.1,::1";
/// Makes Node honour the proxy variables (`1` under `--net proxy`).
pub const NODE_USE_ENV_PROXY: &str = "NODE_USE_ENV_PROXY";

/// Pointed at the bundle of system roots and the session CA when the egress proxy terminates
/// TLS for hosts credentials are bound to: OpenSSL and Python, requests, curl, Node, git, the
/// AWS SDKs and CLI, pip, cargo, npm.
pub const CA_BUNDLE_VARS: &[&str] = &[
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
    "AWS_CA_BUNDLE",
    "PIP_CERT",
    "CARGO_HTTP_CAINFO",
    "npm_config_cafile",
];

/// The AWS SDKs' container credentials endpoint, set for the agent when `frona run --net proxy`
/// serves an `aws-sts` credential (`http://127.0.0.1:PORT/frona/aws-credentials`).
pub const AWS_CONTAINER_CREDENTIALS_FULL_URI: &str = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
/// The token the SDKs present to that endpoint (`Authorization`), random per session.
pub const AWS_CONTAINER_AUTHORIZATION_TOKEN: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN";
/// Taken from the agent's environment when the endpoint is served: what AWS SDKs would use
/// before it (keys, profiles, web identity, other container endpoints, other config files).
pub const AWS_CONTAINER_REMOVED: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
];

/// Sets `name` in an environment being built for the agent, replacing what it had.
pub fn set(
    env: &mut Vec<(std::ffi::OsString, std::ffi::OsString)>,
    name: impl Into<std::ffi::OsString>,
    value: impl Into<std::ffi::OsString>,
) {
    let name = name.into();
    env.retain(|(set, _)| *set != name);
    env.push((name, value.into()));
}

/// The variables `frona run --net proxy` sets for the agent, for the proxy on `port`.
pub fn egress_proxy_env(port: u16) -> Vec<(&'static str, String)> {
    let url = format!("http://127.0.0.1:{port}");
    let mut vars: Vec<(&'static str, String)> = EGRESS_PROXY_VARS
        .iter()
        .map(|name| (*name, url.clone()))
        .collect();
    vars.extend(
        NO_PROXY_VARS
            .iter()
            .map(|name| (*name, NO_PROXY_VALUE.to_owned())),
    );
    vars.push((NODE_USE_ENV_PROXY, "1".to_owned()));
    vars
}

/// systemd's notify socket (`Type=notify`).
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";
/// systemd's watchdog timeout, in microseconds.
pub const WATCHDOG_USEC: &str = "WATCHDOG_USEC";
/// The process the watchdog timeout is meant for.
pub const WATCHDOG_PID: &str = "WATCHDOG_PID";
/// Where systemd put the unit's credentials.
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

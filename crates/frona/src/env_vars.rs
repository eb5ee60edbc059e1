//! Every environment variable frona reads, sets or strips, in one place (doubles as docs).
//!
//! - `FRONA_LOG`: log level for frona's own diagnostics on stderr (`error`, `warn` (default),
//!   `info`, `debug`, `trace`).
//! - `NO_COLOR`: when set (to anything), frona's output carries no ANSI colour.
//! - Stripped from the agent: names matching
//!   [`frona_sandbox::scrub::CREDENTIAL_NAME_PATTERNS`], values recognised by
//!   [`frona_sandbox::scrub::detect_credential_value`], and `--strip` globs.
//! - Passed in `--env-mode allowlist`: [`frona_sandbox::scrub::ALLOWLIST_BASE`] and `--keep`.

/// Log level for frona's own diagnostics.
pub const FRONA_LOG: &str = "FRONA_LOG";
/// Disables colour when set (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";

//! frona's own diagnostics: `tracing` to stderr, level from `FRONA_LOG`.

use std::io::IsTerminal as _;

use frona_sandbox::EnvSnapshot;
use tracing_subscriber::filter::LevelFilter;

use crate::env_vars::{FRONA_LOG, NO_COLOR};

/// Installs the stderr subscriber. An unknown level falls back to `warn` with a warning.
pub fn init(env: &EnvSnapshot) {
    let requested = env
        .get(FRONA_LOG)
        .map(|v| String::from_utf8_lossy(v).trim().to_ascii_lowercase());
    let level = match requested.as_deref() {
        None | Some("") => Some(LevelFilter::WARN),
        Some(text) => text.parse::<LevelFilter>().ok(),
    };
    let color = env.get(NO_COLOR).is_none() && std::io::stderr().is_terminal();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level.unwrap_or(LevelFilter::WARN))
        .with_ansi(color)
        .with_target(false)
        .without_time()
        .init();
    if level.is_none() {
        tracing::warn!(
            "{FRONA_LOG} is not a log level (error, warn, info, debug, trace); using warn"
        );
    }
}

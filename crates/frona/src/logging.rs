//! frona's own diagnostics: `tracing` to stderr, level from `FRONA_LOG`, format from
//! `FRONA_LOG_FORMAT` (`text`, the default, or `json`: one object per line with `timestamp`,
//! `level`, `fields.message` and `target`, from tracing-subscriber's JSON formatter). Colour
//! only on a terminal and never with `NO_COLOR`.

use std::io::IsTerminal as _;

use frona_sandbox::EnvSnapshot;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::env_vars::{FRONA_LOG, FRONA_LOG_FORMAT, NO_COLOR};

/// Installs the stderr subscriber. An unknown level falls back to `warn`, an unknown format to
/// `text`, each with a warning.
pub fn init(env: &EnvSnapshot) {
    let read = |name| {
        env.get(name)
            .map(|v| String::from_utf8_lossy(v).trim().to_ascii_lowercase())
    };
    let requested = read(FRONA_LOG);
    let level = match requested.as_deref() {
        None | Some("") => Some(LevelFilter::WARN),
        Some(text) => text.parse::<LevelFilter>().ok(),
    };
    let format = read(FRONA_LOG_FORMAT);
    let json = format.as_deref() == Some("json");
    let color = env.get(NO_COLOR).is_none() && std::io::stderr().is_terminal();
    // Only frona's own events: the HTTP and cloud SDK crates log requests at debug/trace level,
    // and frona never lets a dependency decide what reaches its stderr.
    let ours = Targets::new()
        .with_target("frona", level.unwrap_or(LevelFilter::WARN))
        .with_target("frona_sandbox", level.unwrap_or(LevelFilter::WARN))
        .with_target("frona_backends", level.unwrap_or(LevelFilter::WARN))
        .with_target("frona_broker", level.unwrap_or(LevelFilter::WARN));
    let layer = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_current_span(false)
            .with_span_list(false)
            .with_filter(ours)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(color)
            .with_target(false)
            .without_time()
            .with_filter(ours)
            .boxed()
    };
    tracing_subscriber::registry().with(layer).init();
    if level.is_none() {
        tracing::warn!(
            "{FRONA_LOG} is not a log level (error, warn, info, debug, trace); using warn"
        );
    }
    if !json && !matches!(format.as_deref(), None | Some("") | Some("text")) {
        tracing::warn!("{FRONA_LOG_FORMAT} is `text` or `json`; using text");
    }
}

//! The one duration syntax of frona: flags (`--stop-timeout`, `--backend-timeout`,
//! `frona approve --for`), config files (`run.stop_timeout`, `backends.timeout` …) and policies
//! (`ttl`, `timeout`, `per`) all read durations with [`parse`] or [`parse_positive`].
//!
//! Accepted:
//! - a number of seconds: `10`, `1.5`;
//! - a number and one unit, `ms`, `s`, `m`, `h` or `d`: `500ms`, `1.5s`, `2m`, `3d`;
//! - jiff's "friendly" format (`jiff::fmt::friendly`): several units (`1h30m`, `2h 30m`,
//!   `1 hour 30 minutes`, `1w2d`), with days and weeks of 24 hours. Months and years have no
//!   fixed length and are errors.
//!
//! A negative duration (`-1s`, `1s ago`) is always an error; zero only where it means
//! nothing ([`parse_positive`]).

use std::time::Duration;

/// Why a text is not a duration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("`{0}` is not a duration (try 10s, 500ms, 1h30m or 3d)")]
    Syntax(String),
    #[error("`{0}`: months and years have no fixed length (use days)")]
    Calendar(String),
    #[error("`{0}` is negative")]
    Negative(String),
    #[error("a duration must be positive")]
    Zero,
    #[error("`{0}` is out of range")]
    OutOfRange(String),
}

/// A duration of zero or more.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    match number_and_unit(text) {
        Some(parsed) => parsed,
        None => friendly(text),
    }
}

/// A duration of more than zero (a lifetime, a time-out, a window).
pub fn parse_positive(text: &str) -> Result<Duration, DurationError> {
    match parse(text)? {
        d if d.is_zero() => Err(DurationError::Zero),
        d => Ok(d),
    }
}

/// `10`, `1.5s`, `500ms`, `3d`: the forms frona took before the friendly format, read as they
/// always were. `None` for anything else.
fn number_and_unit(text: &str) -> Option<Result<Duration, DurationError>> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let millis: u64 = match unit {
        "" | "s" => 1000,
        "ms" => 1,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    if number.is_empty() {
        return None;
    }
    let out_of_range = || DurationError::OutOfRange(text.to_owned());
    Some(if let Ok(whole) = number.parse::<u64>() {
        whole
            .checked_mul(millis)
            .map(Duration::from_millis)
            .ok_or_else(out_of_range)
    } else {
        let value: f64 = match number.parse() {
            Ok(value) => value,
            Err(_) => return Some(Err(DurationError::Syntax(text.to_owned()))),
        };
        Duration::try_from_secs_f64(value * millis as f64 / 1000.0).map_err(|_| out_of_range())
    })
}

/// jiff's friendly format, days and weeks taken as 24 hours and 7 days.
fn friendly(text: &str) -> Result<Duration, DurationError> {
    let span = jiff::fmt::friendly::SpanParser::new()
        .parse_span(text)
        .map_err(|_| DurationError::Syntax(text.to_owned()))?;
    if span.get_years() != 0 || span.get_months() != 0 {
        return Err(DurationError::Calendar(text.to_owned()));
    }
    if span.is_negative() {
        return Err(DurationError::Negative(text.to_owned()));
    }
    let signed = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|_| DurationError::OutOfRange(text.to_owned()))?;
    Duration::try_from(signed).map_err(|_| DurationError::OutOfRange(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// What the flags and config files took before (the binary's own `cli::parse_duration`).
    #[test]
    fn the_flags_forms() {
        assert_eq!(parse("10").unwrap(), S(10));
        assert_eq!(parse("10s").unwrap(), S(10));
        assert_eq!(parse("500ms").unwrap(), MS(500));
        assert_eq!(parse("1.5s").unwrap(), MS(1500));
        assert_eq!(parse("2m").unwrap(), S(120));
        assert_eq!(parse("1h").unwrap(), S(3600));
        assert_eq!(parse("1.5").unwrap(), MS(1500));
        assert_eq!(parse(".5s").unwrap(), MS(500));
        assert_eq!(parse(" 10s ").unwrap(), S(10));
        assert_eq!(parse("0ms").unwrap(), Duration::ZERO);
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert!(parse("ten").is_err());
        assert!(parse("-1s").is_err());
    }

    /// What policies and `frona approve --for` took before (`schema::parse_duration`).
    #[test]
    fn the_policy_forms() {
        assert_eq!(parse_positive("30s").unwrap(), S(30));
        assert_eq!(parse_positive("5m").unwrap(), S(300));
        assert_eq!(parse_positive("2h").unwrap(), S(7200));
        assert_eq!(parse_positive("3d").unwrap(), S(3 * 86_400));
        assert_eq!(parse_positive("0s"), Err(DurationError::Zero));
        assert_eq!(parse_positive("0d"), Err(DurationError::Zero));
        assert!(parse_positive("-5m").is_err());
        assert!(parse_positive("5 fortnights").is_err());
        assert!(parse_positive("").is_err());
    }

    /// jiff's friendly format, everywhere.
    #[test]
    fn the_friendly_forms() {
        assert_eq!(parse("1h30m").unwrap(), S(5400));
        assert_eq!(parse("2h 30m").unwrap(), S(9000));
        assert_eq!(parse("1d").unwrap(), S(86_400));
        assert_eq!(parse("1d12h").unwrap(), S(129_600));
        assert_eq!(parse("1w").unwrap(), S(7 * 86_400));
        assert_eq!(parse("1 hour 30 minutes").unwrap(), S(5400));
        assert_eq!(parse("1m30s").unwrap(), S(90));
        assert_eq!(parse("1s500ms").unwrap(), MS(1500));
        assert_eq!(parse("10 s").unwrap(), S(10));
        assert_eq!(parse_positive("1h30m").unwrap(), S(5400));
    }

    #[test]
    fn what_is_refused() {
        assert_eq!(
            parse("1s ago"),
            Err(DurationError::Negative("1s ago".into()))
        );
        assert!(matches!(parse("-1h30m"), Err(DurationError::Negative(_))));
        assert!(matches!(parse("1mo"), Err(DurationError::Calendar(_))));
        assert!(matches!(parse("1y"), Err(DurationError::Calendar(_))));
        assert!(matches!(parse("1.2.3s"), Err(DurationError::Syntax(_))));
        assert!(matches!(parse("10x"), Err(DurationError::Syntax(_))));
        assert!(matches!(
            parse("99999999999999999d"),
            Err(DurationError::OutOfRange(_))
        ));
        assert_eq!(
            parse("ten").unwrap_err().to_string(),
            "`ten` is not a duration (try 10s, 500ms, 1h30m or 3d)"
        );
    }

    /// A policy reads its durations the same way, and a YAML number is seconds.
    #[test]
    fn in_a_policy() {
        let load = |issue: &str| {
            let text = format!(
                "rules:\n  - {{ name: r, tool: t, effect: ask, timeout: 1h30m, issue: {issue} }}\n"
            );
            crate::PolicySet::load([("p.yaml", text.as_str())]).map(|_| ())
        };
        assert!(load("{ ttl: 15m }").is_ok());
        assert!(load("{ ttl: 2h 30m }").is_ok());
        assert!(load("{ ttl: 90 }").is_ok());
        assert!(load("{ ttl: 1d }").is_ok());
        let err = load("{ ttl: 0s }").unwrap_err().to_string();
        assert!(err.contains("must be positive"), "{err}");
        let err = load("{ ttl: 1mo }").unwrap_err().to_string();
        assert!(err.contains("no fixed length"), "{err}");
    }
}

//! The YAML schema of a policy file. Every value that can be wrong (globs, regexes, durations,
//! times, time zones) is checked while it is parsed, so a mistake is reported with the file,
//! line and column where it stands; unknown keys are errors too.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};

use crate::glob::Glob;
use crate::network::pattern::HostPattern;

/// One file: an ordered list of rules, and egress entries for `frona run --net proxy`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    #[serde(default)]
    pub version: Option<u32>,
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    /// Which hosts the agent may reach through the egress proxy (see [`crate::network`]).
    #[serde(default)]
    pub network: Vec<NetworkSpec>,
}

/// One or several patterns (`tool: gh` or `tool: [gh, git]`).
#[derive(Debug, Default, Clone)]
pub struct Patterns(pub Vec<Glob>);

impl<'de> Deserialize<'de> for Patterns {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        one_or_many(d, Glob::new).map(Patterns)
    }
}

/// A string or a list of strings (`tool: gh` or `tool: [gh, git]`), each parsed by `parse`.
pub(crate) fn one_or_many<'de, D, T, E>(
    d: D,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    E: std::fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let texts = match OneOrMany::deserialize(d)? {
        OneOrMany::One(text) => vec![text],
        OneOrMany::Many(texts) => texts,
    };
    texts
        .iter()
        .map(|t| parse(t).map_err(de::Error::custom))
        .collect()
}

/// A regular expression, compiled when the file is read.
#[derive(Clone)]
pub struct Pattern(pub regex::Regex);

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        regex::Regex::new(&text)
            .map(Pattern)
            .map_err(|e| de::Error::custom(format!("invalid regex `{text}`: {e}")))
    }
}

/// A positive duration, in the syntax of [`crate::duration`] (`30s`, `5m`, `1h30m`, `3d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationSpec(pub Duration);

impl<'de> Deserialize<'de> for DurationSpec {
    /// A string, or a number of seconds (as in frona's config files).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = DurationSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration (30s, 5m, 1h30m, 3d)")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<DurationSpec, E> {
                crate::duration::parse_positive(text)
                    .map(DurationSpec)
                    .map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<DurationSpec, E> {
                self.visit_str(&seconds.to_string())
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// What a matching rule decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Permit,
    Deny,
    Ask,
}

/// How a permitted credential reaches the tool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Deliver {
    /// Only in the tool's environment (the default).
    #[default]
    Env,
    /// Handed to the agent itself (for SDKs that must hold a token).
    Value,
}

/// The short-lived credential a permit (or an approved ask) issues.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct IssueSpec {
    #[serde(
        default,
        deserialize_with = "opt_duration",
        serialize_with = "ser_duration"
    )]
    pub ttl: Option<Duration>,
    #[serde(default)]
    pub uses: Option<u32>,
    /// Vault policies for a child token.
    #[serde(default)]
    pub policies: Vec<String>,
    /// AWS session policy, as a YAML mapping (sent as JSON).
    #[serde(default, deserialize_with = "opt_json_object")]
    pub session_policy: Option<String>,
    #[serde(default)]
    pub deliver: Deliver,
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Option::<DurationSpec>::deserialize(d).map(|o| o.map(|s| s.0))
}

fn ser_duration<S: serde::Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(d) => s.serialize_str(&format!("{}s", d.as_secs())),
        None => s.serialize_none(),
    }
}

fn opt_json_object<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    match value {
        None => Ok(None),
        Some(v @ serde_json::Value::Object(_)) => Ok(Some(v.to_string())),
        Some(_) => Err(de::Error::custom(
            "session_policy must be a mapping (an IAM policy document)",
        )),
    }
}

/// A time window: weekdays and hours in a time zone.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhenSpec {
    /// `[mon, tue]` or `[mon-fri]`.
    #[serde(default)]
    pub days: Option<Days>,
    /// `09:00-18:00` (an end before the start spans midnight).
    #[serde(default)]
    pub hours: Option<Hours>,
    /// IANA time zone (default UTC).
    #[serde(default)]
    pub tz: Option<Zone>,
}

/// A set of weekdays, bit 0 = Monday.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Days(pub u8);

fn weekday(name: &str) -> Option<u8> {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .position(|d| name.eq_ignore_ascii_case(d))
        .map(|i| i as u8)
}

impl<'de> Deserialize<'de> for Days {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut bits = 0u8;
        for item in Vec::<String>::deserialize(d)? {
            let (from, to) = item.split_once('-').unwrap_or((&item, &item));
            let (Some(from), Some(to)) = (weekday(from.trim()), weekday(to.trim())) else {
                return Err(de::Error::custom(format!(
                    "`{item}` is not a weekday or range (mon … sun, mon-fri)"
                )));
            };
            let mut day = from;
            loop {
                bits |= 1 << day;
                if day == to {
                    break;
                }
                day = (day + 1) % 7;
            }
        }
        Ok(Days(bits))
    }
}

/// Minutes since midnight, start and end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hours(pub u16, pub u16);

impl<'de> Deserialize<'de> for Hours {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let minutes = |t: &str| -> Option<u16> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            // Checked: `6200:00` must be an error, not an overflow (found by fuzzing).
            let total = h.checked_mul(60)?.checked_add(m)?;
            (h <= 24 && m < 60 && total <= 1440).then_some(total)
        };
        match text
            .split_once('-')
            .and_then(|(a, b)| Some((minutes(a)?, minutes(b)?)))
        {
            Some((from, to)) if from != to => Ok(Hours(from, to)),
            _ => Err(de::Error::custom(format!(
                "`{text}` is not a time range like 09:00-18:00"
            ))),
        }
    }
}

/// A time zone from the bundled database.
#[derive(Clone, Debug)]
pub struct Zone(pub jiff::tz::TimeZone);

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        jiff::tz::TimeZone::get(&name)
            .map(Zone)
            .map_err(|_| de::Error::custom(format!("unknown time zone `{name}`")))
    }
}

/// At most `max` calls per `per`, counted per agent and tool.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateSpec {
    pub max: u32,
    pub per: DurationSpec,
}

/// What a rule for calls through the HTTP proxy matches; every key present must match.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// Methods, e.g. `[GET, HEAD]`.
    #[serde(default)]
    pub method: Option<Patterns>,
    /// The upstream host.
    #[serde(default)]
    pub host: Option<Patterns>,
    /// The upstream path: percent-decoded, dot segments resolved, without the query.
    #[serde(default)]
    pub path: Option<Patterns>,
}

/// One rule as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    /// Globs on the tool's program name (its basename); absent: any tool.
    #[serde(default)]
    pub tool: Option<Patterns>,
    /// Globs on the arguments, by position (argv[1], argv[2] …); more arguments may follow.
    #[serde(default)]
    pub args: Option<Patterns>,
    /// A regex on the arguments joined with spaces.
    #[serde(default)]
    pub args_regex: Option<Pattern>,
    /// Globs on the agent id; absent: any agent.
    #[serde(default)]
    pub agent: Option<Patterns>,
    /// The call must ask for at least one credential, and every one must match one of these;
    /// absent: the rule applies only to calls asking for none.
    #[serde(default)]
    pub credentials: Option<Patterns>,
    #[serde(default)]
    pub when: Option<WhenSpec>,
    #[serde(default)]
    pub rate: Option<RateSpec>,
    /// The tool binary's SHA-256 (hex) must be this.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Makes this a rule for calls through the HTTP proxy (and only those).
    #[serde(default)]
    pub http: Option<HttpSpec>,
    /// Makes this a rule for signatures through frona's SSH agent (and only those).
    #[serde(default)]
    pub ssh: Option<crate::ssh::SshSpec>,
    /// Makes this a rule for MCP calls through frona's gateway (and only those).
    #[serde(default)]
    pub mcp: Option<crate::mcp::McpSpec>,
    pub effect: Effect,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub issue: Option<IssueSpec>,
    /// How long an `ask` waits for a human (default 5m).
    #[serde(default)]
    pub timeout: Option<DurationSpec>,
}

/// One or several host patterns (`allow: github.com` or `allow: [github.com, "*.github.com"]`).
#[derive(Clone, Debug, Default)]
pub struct HostPatterns(pub Vec<HostPattern>);

impl<'de> Deserialize<'de> for HostPatterns {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        one_or_many(d, HostPattern::parse).map(HostPatterns)
    }
}

/// One entry of a policy file's `network:` section, as written.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    pub name: String,
    /// Hosts the agent may reach.
    #[serde(default)]
    pub allow: Option<HostPatterns>,
    /// Hosts the agent may never reach (wins over every `allow`, in any entry).
    #[serde(default)]
    pub deny: Option<HostPatterns>,
    /// The ports `allow` patterns without a port of their own permit (default 443 and 80).
    #[serde(default)]
    pub ports: Option<Vec<u16>>,
    /// Globs on the agent id; absent: any agent.
    #[serde(default)]
    pub agent: Option<Patterns>,
    #[serde(default)]
    pub when: Option<WhenSpec>,
    #[serde(default)]
    pub reason: Option<String>,
}

//! Host patterns (`api.github.com`, `*.github.com`, `10.0.0.0/8`, `[::1]:8443`) and the
//! request targets they match: parsed, validated and matched. The syntax and what is refused are in the [parent module](super).

use std::fmt;
use std::net::IpAddr;

use serde::de::{self, Deserialize, Deserializer};

use super::address::canonical;

/// The narrowest a network pattern may be: no wider than these prefixes.
const MIN_PREFIX_V4: u8 = 8;
const MIN_PREFIX_V6: u8 = 8;

/// Why a host pattern is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("an empty host pattern matches nothing")]
    Empty,
    #[error("`{0}` would allow every host; list the hosts the agent needs")]
    Everything(String),
    #[error(
        "`{0}` covers a whole top-level domain; a wildcard needs at least two labels after it, \
         as in `*.example.com`"
    )]
    WholeTld(String),
    #[error(
        "`{0}` is a single label (a top-level domain?); write the full host name, as in \
         `api.example.com`"
    )]
    SingleLabel(String),
    #[error("`{0}` has an empty label")]
    EmptyLabel(String),
    #[error("`{0}`: `*` may only stand for the leftmost labels, as in `*.example.com`")]
    MisplacedWildcard(String),
    #[error(
        "`{0}` is not a host name, address or network (letters, digits, `-` and `_` in \
         dot-separated labels; write internationalised names in their `xn--` form)"
    )]
    Invalid(String),
    #[error("`{0}`: the port must be a number from 1 to 65535")]
    Port(String),
    #[error("`{0}` covers too much of the internet (a network pattern may be at most a /8)")]
    TooWide(String),
}

/// What a pattern stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Matcher {
    /// One name, lower case, without a trailing dot.
    Name(String),
    /// Every name that ends in `.` + this suffix (stored without the leading dot).
    Under(String),
    /// An address (`prefix` = its full length) or a network.
    Net { addr: IpAddr, prefix: u8 },
}

/// A validated host pattern (see the module docs for the syntax).
#[derive(Clone, PartialEq, Eq)]
pub struct HostPattern {
    text: String,
    matcher: Matcher,
    pub(super) port: Option<u16>,
}

impl fmt::Debug for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Splits `HOST`, `HOST:PORT`, `[V6]`, `[V6]:PORT` or a bare IPv6 address/network.
fn split_port(text: &str) -> Result<(&str, Option<&str>), PatternError> {
    if let Some(rest) = text.strip_prefix('[') {
        let (inner, after) = rest
            .split_once(']')
            .ok_or_else(|| PatternError::Invalid(text.to_owned()))?;
        return match after {
            "" => Ok((inner, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((inner, Some(port))),
                None => Err(PatternError::Invalid(text.to_owned())),
            },
        };
    }
    match text.matches(':').count() {
        0 => Ok((text, None)),
        1 => Ok(text
            .split_once(':')
            .map_or((text, None), |(h, p)| (h, Some(p)))),
        _ => Ok((text, None)),
    }
}

fn parse_port(whole: &str, port: &str) -> Result<u16, PatternError> {
    match port.parse::<u16>() {
        Ok(number) if number > 0 && number.to_string() == port => Ok(number),
        _ => Err(PatternError::Port(whole.to_owned())),
    }
}

/// Whether `label` is a valid DNS label (LDH plus `_`, at most 63 bytes, no leading or
/// trailing hyphen).
fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// Checks a host name (lower case, no port): every label valid, at most 253 bytes.
fn check_name(whole: &str, name: &str) -> Result<(), PatternError> {
    if name.len() > 253 {
        return Err(PatternError::Invalid(whole.to_owned()));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(PatternError::EmptyLabel(whole.to_owned()));
        }
        if label.contains('*') {
            return Err(PatternError::MisplacedWildcard(whole.to_owned()));
        }
        if !valid_label(label) {
            return Err(PatternError::Invalid(whole.to_owned()));
        }
    }
    Ok(())
}

impl HostPattern {
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(PatternError::Empty);
        }
        let lower = trimmed.to_ascii_lowercase();
        let (host, port) = split_port(&lower)?;
        let port = port.map(|p| parse_port(trimmed, p)).transpose()?;
        if host.is_empty() {
            return Err(PatternError::Empty);
        }
        if matches!(host, "*" | "*.*" | "**") {
            return Err(PatternError::Everything(trimmed.to_owned()));
        }
        let matcher = if let Some((addr, prefix)) = host.split_once('/') {
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| PatternError::Invalid(trimmed.to_owned()))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = match prefix.parse::<u8>() {
                Ok(p) if p <= max && prefix == p.to_string() => p,
                _ => return Err(PatternError::Invalid(trimmed.to_owned())),
            };
            // An IPv4 network written in IPv6 (`::ffff:10.0.0.0/104`) is matched as the IPv4
            // network (`10.0.0.0/8`), so its prefix counts IPv4 bits; one shorter than the
            // embedded part (/96) spans more than IPv4 and is refused. It used to keep its IPv6
            // prefix, which overflowed `32 - prefix` when matching (found while fuzzing).
            let canonical_addr = canonical(addr);
            let prefix = if addr.is_ipv6() && canonical_addr.is_ipv4() {
                prefix
                    .checked_sub(96)
                    .ok_or_else(|| PatternError::Invalid(trimmed.to_owned()))?
            } else {
                prefix
            };
            let min = if canonical_addr.is_ipv4() {
                MIN_PREFIX_V4
            } else {
                MIN_PREFIX_V6
            };
            if prefix < min {
                return Err(PatternError::TooWide(trimmed.to_owned()));
            }
            Matcher::Net {
                addr: canonical_addr,
                prefix,
            }
        } else if let Ok(addr) = host.parse::<IpAddr>() {
            let addr = canonical(addr);
            Matcher::Net {
                addr,
                prefix: if addr.is_ipv4() { 32 } else { 128 },
            }
        } else if let Some(suffix) = host.strip_prefix("*.") {
            check_name(trimmed, suffix)?;
            if suffix.split('.').count() < 2 {
                return Err(PatternError::WholeTld(trimmed.to_owned()));
            }
            Matcher::Under(suffix.to_owned())
        } else {
            check_name(trimmed, host)?;
            if !host.contains('.') && host != "localhost" {
                return Err(PatternError::SingleLabel(trimmed.to_owned()));
            }
            Matcher::Name(host.to_owned())
        };
        Ok(Self {
            text: trimmed.to_owned(),
            matcher,
            port,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this pattern is an address or a network (the only kind that may vouch for a
    /// loopback, private or metadata address).
    pub fn is_address(&self) -> bool {
        matches!(self.matcher, Matcher::Net { .. })
    }

    /// The one name this pattern stands for, when it is a plain name (not `*.` or an address).
    pub fn literal_name(&self) -> Option<&str> {
        match &self.matcher {
            Matcher::Name(name) => Some(name),
            _ => None,
        }
    }

    /// The port this pattern names, if it names one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Whether the pattern covers `target`, port aside.
    pub fn matches_target(&self, target: &Target) -> bool {
        match (&self.matcher, target) {
            (Matcher::Name(name), Target::Name(host)) => name == host,
            (Matcher::Under(suffix), Target::Name(host)) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            (Matcher::Net { .. }, Target::Ip(ip)) => self.matches_ip(*ip),
            _ => false,
        }
    }

    /// Whether the pattern is an address or network containing `ip`.
    pub fn matches_ip(&self, ip: IpAddr) -> bool {
        let Matcher::Net { addr, prefix } = self.matcher else {
            return false;
        };
        match (addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl<'de> Deserialize<'de> for HostPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        HostPattern::parse(&text).map_err(de::Error::custom)
    }
}

/// Where a request goes, as the agent named it: a host name or an address literal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// Lower case, without a trailing dot.
    Name(String),
    Ip(IpAddr),
}

impl Target {
    /// Parses the host of a request (`example.com`, `Example.COM.`, `10.0.0.1`, `10.0.0.1.`,
    /// `[::1]` or `::1`). `None` when it is neither a valid name nor an address.
    pub fn parse(host: &str) -> Option<Self> {
        // The root's trailing dot goes first: `10.0.0.1.` is the address, not a name that
        // looks like it (found by fuzzing: it was shown as the address it did not match).
        let host = host.strip_suffix('.').unwrap_or(host);
        let inner = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = inner.parse::<IpAddr>() {
            return Some(Target::Ip(canonical(ip)));
        }
        let name = host.to_ascii_lowercase();
        (!name.is_empty() && name.len() <= 253 && name.split('.').all(valid_label))
            .then_some(Target::Name(name))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Name(name) => f.write_str(name),
            Target::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Target::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

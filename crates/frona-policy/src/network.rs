//! Egress rules for `frona run --net proxy`: host patterns, the `network:` section of policy
//! files, and the addresses frona refuses to connect to unless they are explicitly allowed.
//!
//! Pure, like the rest of the crate: the broker parses the target of a request, asks
//! [`PolicySet::egress`] whether the host and port may be reached, resolves the name itself,
//! and asks [`PolicySet::egress_address`] about every address before connecting to it.
//!
//! - **Patterns** ([`HostPattern`]) are a host name (`api.github.com`), a wildcard for the
//!   names under a domain (`*.github.com`: not `github.com` itself), an address (`10.1.2.3`,
//!   `::1`) or a network (`10.0.0.0/8`), optionally with a port (`localhost:8443`,
//!   `[::1]:8443`). Patterns that would open too much are errors: `*`, a wildcard with fewer
//!   than two labels after it (`*.com`, and so every whole top-level domain), a single-label
//!   name other than `localhost` (`com`), empty labels, a `*` anywhere but the leftmost label,
//!   and networks wider than a /8. There is no public-suffix list, so
//!   `*.co.uk` is accepted: write the names you mean.
//! - **Decisions**: among the entries that apply (their `agent` and `when` match), a matching
//!   `deny` pattern refuses, whatever allows the host (deny wins); otherwise a matching `allow`
//!   pattern on an allowed port permits; otherwise the host is not allowed.
//! - **Addresses** ([`classify`]): a name that resolves to a loopback, private, link-local,
//!   shared (CGNAT), unspecified, multicast, reserved or cloud-metadata address is refused,
//!   unless an `allow` pattern that is itself an address or network covers that address and
//!   port. A host name, even allowed exactly, never vouches for the address it resolves to.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use jiff::Timestamp;
use serde::Serialize;
use serde::de::{self, Deserialize, Deserializer};

use crate::glob::Glob;
use crate::schema::{Patterns, WhenSpec};
use crate::{PolicySet, outside};

/// The ports an `allow` pattern without a port (and without `ports:`) permits.
pub const DEFAULT_PORTS: &[u16] = &[443, 80];

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
    port: Option<u16>,
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

/// One or several host patterns (`allow: github.com` or `allow: [github.com, "*.github.com"]`).
#[derive(Clone, Debug, Default)]
pub struct HostPatterns(pub Vec<HostPattern>);

impl<'de> Deserialize<'de> for HostPatterns {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::schema::one_or_many(d, HostPattern::parse).map(HostPatterns)
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

/// A compiled `network:` entry (or the `--allow-host` list).
#[derive(Debug)]
pub(crate) struct NetRule {
    name: String,
    allow: Vec<HostPattern>,
    deny: Vec<HostPattern>,
    ports: Vec<u16>,
    agents: Vec<Glob>,
    when: Option<WhenSpec>,
    reason: Option<String>,
}

impl NetRule {
    pub(crate) fn compile(spec: NetworkSpec) -> Result<Self, String> {
        let allow = spec.allow.map(|p| p.0).unwrap_or_default();
        let deny = spec.deny.map(|p| p.0).unwrap_or_default();
        if allow.is_empty() && deny.is_empty() {
            return Err(format!(
                "network entry `{}`: give `allow`, `deny` or both",
                spec.name
            ));
        }
        let ports = match spec.ports {
            None => DEFAULT_PORTS.to_vec(),
            Some(ports) if ports.is_empty() || ports.contains(&0) => {
                return Err(format!(
                    "network entry `{}`: `ports` must list ports from 1 to 65535",
                    spec.name
                ));
            }
            Some(_) if allow.is_empty() => {
                return Err(format!(
                    "network entry `{}`: `ports` applies to `allow` patterns, and there are none \
                     (a `deny` pattern refuses every port unless it names one, as in `host:22`)",
                    spec.name
                ));
            }
            Some(ports) => ports,
        };
        Ok(Self {
            name: spec.name,
            allow,
            deny,
            ports,
            agents: spec.agent.map(|p| p.0).unwrap_or_default(),
            when: spec.when,
            reason: spec.reason,
        })
    }

    /// The rule `frona run --allow-host` (and `run.allow_host`) adds, named `name`.
    pub(crate) fn allow_list(name: &str, patterns: Vec<HostPattern>) -> Self {
        Self {
            name: name.to_owned(),
            allow: patterns,
            deny: Vec::new(),
            ports: DEFAULT_PORTS.to_vec(),
            agents: Vec::new(),
            when: None,
            reason: None,
        }
    }

    fn applies(&self, agent: &str, time: Timestamp) -> bool {
        (self.agents.is_empty() || self.agents.iter().any(|g| g.matches(agent)))
            && self
                .when
                .as_ref()
                .is_none_or(|w| outside(w, time).is_none())
    }

    fn allows_port(&self, pattern: &HostPattern, port: u16) -> bool {
        pattern
            .port
            .map_or(self.ports.contains(&port), |p| p == port)
    }

    fn denies_port(pattern: &HostPattern, port: u16) -> bool {
        pattern.port.is_none_or(|p| p == port)
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

/// A connection the agent asks the egress proxy for.
#[derive(Clone, Debug)]
pub struct EgressRequest {
    pub target: Target,
    pub port: u16,
    pub agent: String,
    pub time: Timestamp,
}

/// Why a [`Connect`] cannot be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "`{0}`: give `HOST[:PORT]` (a CONNECT) or an `http://` URL (plain HTTP); the egress \
         proxy carries nothing else"
    )]
    Scheme(String),
    #[error("`{0}` names a user (`user@host`), which the egress proxy refuses")]
    UserInfo(String),
    #[error("`{0}`: the port must be a number from 1 to 65535")]
    Port(String),
    #[error("`{0}` is not a host name or an address (write IPv6 with a port as `[::1]:443`)")]
    Host(String),
}

/// A request to the egress proxy as `frona policy explain --connect` and a test case's
/// `connect:` name it: `HOST[:PORT]` is a `CONNECT` (default port 443; `https://HOST[:PORT]/…`
/// means the same), `http://HOST[:PORT][/PATH]` a plain-HTTP request (default port 80).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    pub target: Target,
    pub port: u16,
    /// A plain-HTTP request's path, without the query (as the proxy audits it); `None` for a
    /// `CONNECT`.
    pub path: Option<String>,
}

impl Connect {
    pub fn parse(text: &str) -> Result<Self, ConnectError> {
        let whole = text.trim();
        let (rest, default_port, plain) = match whole.split_once("://") {
            None => (whole, 443, false),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (rest, 80, true),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (rest, 443, false),
            Some(_) => return Err(ConnectError::Scheme(whole.to_owned())),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            return Err(ConnectError::UserInfo(whole.to_owned()));
        }
        // `host:443/path` without a scheme is not a CONNECT target.
        if !tail.is_empty() && !whole.contains("://") {
            return Err(ConnectError::Host(whole.to_owned()));
        }
        let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
            let (address, after) = inner
                .split_once(']')
                .ok_or_else(|| ConnectError::Host(whole.to_owned()))?;
            match after {
                "" => (address, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (address, Some(port)),
                    None => return Err(ConnectError::Host(whole.to_owned())),
                },
            }
        } else if authority.parse::<Ipv6Addr>().is_ok() {
            (authority, None)
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let port = match port {
            None => default_port,
            Some(port) => match port.parse::<u16>() {
                Ok(number) if number > 0 && port.bytes().all(|b| b.is_ascii_digit()) => number,
                _ => return Err(ConnectError::Port(whole.to_owned())),
            },
        };
        let target = Target::parse(host).ok_or_else(|| ConnectError::Host(whole.to_owned()))?;
        let path = plain.then(|| {
            let path = tail.split(['?', '#']).next().unwrap_or_default();
            if path.is_empty() { "/" } else { path }.to_owned()
        });
        Ok(Self { target, port, path })
    }
}

impl fmt::Display for Connect {
    /// `CONNECT host:port`, or `http://host:port/path` for plain HTTP.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            None => write!(f, "CONNECT {}:{}", self.target, self.port),
            Some(path) => write!(f, "http://{}:{}{path}", self.target, self.port),
        }
    }
}

/// What the egress rules decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EgressDecision {
    pub allowed: bool,
    /// The deciding entry (`None`: no entry allows the host).
    pub rule: Option<String>,
    pub reason: String,
}

impl EgressDecision {
    fn refused(rule: Option<&NetRule>, reason: String) -> Self {
        Self {
            allowed: false,
            rule: rule.map(|r| r.name.clone()),
            reason: rule.and_then(|r| r.reason.clone()).unwrap_or(reason),
        }
    }
}

/// The kind of an address, for the refusal of everything that is not the public internet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddressClass {
    Public,
    Loopback,
    /// RFC 1918, and IPv6 unique local (fc00::/7) and the deprecated site-local (fec0::/10).
    Private,
    /// 169.254.0.0/16 and fe80::/10.
    LinkLocal,
    /// 100.64.0.0/10 (carrier-grade NAT).
    Shared,
    /// 0.0.0.0/8 and `::`.
    Unspecified,
    Multicast,
    /// Broadcast, 240.0.0.0/4, benchmarking, documentation, protocol assignments.
    Reserved,
    /// Cloud instance metadata: 169.254.169.254 and fd00:ec2::254.
    Metadata,
}

impl AddressClass {
    pub fn is_public(self) -> bool {
        self == AddressClass::Public
    }

    pub fn describe(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Shared => "shared (CGNAT)",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Multicast => "multicast",
            AddressClass::Reserved => "reserved",
            AddressClass::Metadata => "cloud metadata",
        }
    }
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`, `::a.b.c.d`, `64:ff9b::a.b.c.d`) as the
/// IPv4 address it reaches; other addresses unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(v6);
    let low = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    let high = bits >> 32;
    // IPv4-mapped ::ffff:0:0/96, the NAT64 well-known prefix 64:ff9b::/96, and the
    // deprecated IPv4-compatible ::/96 (but not :: and ::1 themselves).
    if high == 0xffff || high == 0x0064_ff9b_0000_0000_0000_0000 {
        return Some(low);
    }
    (high == 0 && bits > 1).then_some(low)
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6(ip: Ipv6Addr, net: u128, prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(ip) & mask == net & mask
}

/// What kind of address `ip` is (IPv4 embedded in IPv6 is classified as the IPv4 address).
pub fn classify(ip: IpAddr) -> AddressClass {
    match canonical(ip) {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    use AddressClass::*;
    const TABLE: &[([u8; 4], u32, AddressClass)] = &[
        ([169, 254, 169, 254], 32, Metadata),
        ([0, 0, 0, 0], 8, Unspecified),
        ([127, 0, 0, 0], 8, Loopback),
        ([10, 0, 0, 0], 8, Private),
        ([172, 16, 0, 0], 12, Private),
        ([192, 168, 0, 0], 16, Private),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([100, 64, 0, 0], 10, Shared),
        ([192, 0, 0, 0], 24, Reserved),
        ([192, 0, 2, 0], 24, Reserved),
        ([198, 18, 0, 0], 15, Reserved),
        ([198, 51, 100, 0], 24, Reserved),
        ([203, 0, 113, 0], 24, Reserved),
        ([224, 0, 0, 0], 4, Multicast),
        ([240, 0, 0, 0], 4, Reserved),
    ];
    TABLE
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map_or(Public, |(_, _, class)| *class)
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    use AddressClass::*;
    const TABLE: &[(u128, u32, AddressClass)] = &[
        (0xfd00_0ec2_0000_0000_0000_0000_0000_0254, 128, Metadata),
        (0, 128, Unspecified),
        (1, 128, Loopback),
        (0xfc00 << 112, 7, Private),
        (0xfec0 << 112, 10, Private),
        (0xfe80 << 112, 10, LinkLocal),
        (0xff00 << 112, 8, Multicast),
        (0x2001_0db8 << 96, 32, Reserved),
        // Discard-only, and the IETF protocol assignments (Teredo and others reach into IPv4).
        (0x0100 << 112, 64, Reserved),
        (0x2001 << 112, 23, Reserved),
        // 6to4 embeds an IPv4 address the proxy cannot vet.
        (0x2002 << 112, 16, Reserved),
    ];
    TABLE
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, *net, *prefix))
        .map_or(Public, |(_, _, class)| *class)
}

impl PolicySet {
    /// Adds an allow-only entry named `name` (what `frona run --allow-host` gives). It allows
    /// like any entry and loses to every `deny` pattern.
    pub fn allow_hosts(&mut self, name: &str, patterns: Vec<HostPattern>) {
        if !patterns.is_empty() {
            self.network.push(NetRule::allow_list(name, patterns));
        }
    }

    /// How many `network:` entries (and `--allow-host` lists) there are.
    pub fn network_len(&self) -> usize {
        self.network.len()
    }

    fn applicable<'a>(&'a self, request: &'a EgressRequest) -> impl Iterator<Item = &'a NetRule> {
        self.network
            .iter()
            .filter(|rule| rule.applies(&request.agent, request.time))
    }

    /// Whether the agent may reach `request`'s host and port (before its name is resolved).
    pub fn egress(&self, request: &EgressRequest) -> EgressDecision {
        let target = &request.target;
        for rule in self.applicable(request) {
            if let Some(pattern) = rule
                .deny
                .iter()
                .find(|p| p.matches_target(target) && NetRule::denies_port(p, request.port))
            {
                return EgressDecision::refused(
                    Some(rule),
                    format!("`{target}` is denied by `{pattern}`"),
                );
            }
        }
        for rule in self.applicable(request) {
            if rule
                .allow
                .iter()
                .any(|p| p.matches_target(target) && rule.allows_port(p, request.port))
            {
                return EgressDecision {
                    allowed: true,
                    rule: Some(rule.name.clone()),
                    reason: rule
                        .reason
                        .clone()
                        .unwrap_or_else(|| format!("allowed by `{}`", rule.name)),
                };
            }
        }
        let port_only = self
            .applicable(request)
            .any(|r| r.allow.iter().any(|p| p.matches_target(target)));
        EgressDecision::refused(
            None,
            if port_only {
                format!("port {} of `{target}` is not allowed", request.port)
            } else {
                format!("`{target}` is not allowed")
            },
        )
    }

    /// What the egress proxy decides for `request` before resolving any name:
    /// [`PolicySet::egress`], and when the host is an address, [`PolicySet::egress_address`]
    /// on it as well (the proxy checks an address the agent names as it checks a resolved one).
    /// A name allowed here may still be refused for the addresses it resolves to.
    pub fn egress_unresolved(&self, request: &EgressRequest) -> EgressDecision {
        let decision = self.egress(request);
        match &request.target {
            Target::Ip(ip) if decision.allowed => {
                self.egress_address(request, *ip).unwrap_or(decision)
            }
            _ => decision,
        }
    }

    /// Whether the proxy may connect to `ip` for `request` (after [`PolicySet::egress`]
    /// allowed the host): `None` when it may, else the refusal. A `deny` address pattern
    /// refuses; an address that is not public needs an `allow` address pattern covering it
    /// and the port.
    pub fn egress_address(&self, request: &EgressRequest, ip: IpAddr) -> Option<EgressDecision> {
        let ip = canonical(ip);
        for rule in self.applicable(request) {
            if let Some(pattern) = rule
                .deny
                .iter()
                .find(|p| p.matches_ip(ip) && NetRule::denies_port(p, request.port))
            {
                return Some(EgressDecision::refused(
                    Some(rule),
                    format!(
                        "`{}` resolves to {ip}, denied by `{pattern}`",
                        request.target
                    ),
                ));
            }
        }
        let class = classify(ip);
        if class.is_public() {
            return None;
        }
        let vouched = self.applicable(request).any(|rule| {
            rule.allow
                .iter()
                .any(|p| p.matches_ip(ip) && rule.allows_port(p, request.port))
        });
        if vouched {
            return None;
        }
        let what = match &request.target {
            Target::Ip(_) => format!("{ip} is a {} address", class.describe()),
            Target::Name(name) => format!("`{name}` resolves to {ip} ({})", class.describe()),
        };
        let address = Target::Ip(ip);
        let pattern = if DEFAULT_PORTS.contains(&request.port) {
            address.to_string()
        } else {
            format!("{address}:{}", request.port)
        };
        Some(EgressDecision::refused(
            None,
            format!("{what}; only an allowed address reaches it (`--allow-host {pattern}`)"),
        ))
    }
}

#[cfg(test)]
mod tests;

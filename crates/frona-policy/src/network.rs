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
use std::net::{IpAddr, Ipv6Addr};

use jiff::Timestamp;
use serde::Serialize;

use crate::glob::Glob;
use crate::schema::{NetworkSpec, WhenSpec};
use crate::{PolicySet, outside};

mod address;
pub(crate) mod pattern;

pub use address::{AddressClass, canonical, classify};
pub use pattern::{HostPattern, PatternError, Target};

/// The ports an `allow` pattern without a port (and without `ports:`) permits.
pub const DEFAULT_PORTS: &[u16] = &[443, 80];

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

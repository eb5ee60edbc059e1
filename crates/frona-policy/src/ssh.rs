//! Rules for signatures through frona's SSH agent (`ssh:` in a rule).
//!
//! A sign request is matched by the key (its `SHA256:` fingerprint or its comment, as the
//! user's own ssh-agent lists it) and by the host the agent connection was bound to. The host
//! is known only when the client proved it: OpenSSH ≥ 8.9 sends `session-bind@openssh.com`
//! with the server's signature over the session, and the broker maps the server's host key to
//! names through `known_hosts`. A rule naming a host never matches a request without such a
//! binding (`ssh-keygen -Y sign`, an older client, a forged session).

use serde::{Deserialize, Serialize};

use crate::glob::Glob;
use crate::network::pattern::{HostPattern, Target};
use crate::schema::{HostPatterns, Patterns};

/// The tool name of signatures through frona's SSH agent.
pub const SSH_TOOL: &str = "ssh-sign";

/// A sign request as the broker's SSH agent sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshCall {
    /// The key's fingerprint, `SHA256:` and unpadded base64 (as `ssh-add -l` shows it).
    pub key: String,
    /// The key's comment in the user's ssh-agent (not the agent's word).
    #[serde(default)]
    pub comment: String,
    /// The names the verified host key is known by (`known_hosts`); empty when the
    /// connection is bound to no verified host.
    #[serde(default)]
    pub hosts: Vec<SshHost>,
}

/// One name of a verified host, with the port its `known_hosts` entry names (22 by default).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshHost {
    pub name: String,
    #[serde(default = "default_port")]
    pub port: u16,
}

fn default_port() -> u16 {
    22
}

/// What an `ssh:` rule matches, as written; every key present must match.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshSpec {
    /// Globs on the key's fingerprint (`SHA256:…`) or its comment.
    #[serde(default)]
    pub key: Option<Patterns>,
    /// The hosts the signature may be for (a pattern without a port: any port).
    #[serde(default)]
    pub host: Option<HostPatterns>,
}

/// A compiled `ssh:` matcher; empty lists match anything.
#[derive(Debug)]
pub(crate) struct SshMatch {
    keys: Vec<Glob>,
    hosts: Vec<HostPattern>,
}

impl SshMatch {
    pub(crate) fn new(spec: SshSpec) -> Self {
        Self {
            keys: spec.key.map(|p| p.0).unwrap_or_default(),
            hosts: spec.host.map(|p| p.0).unwrap_or_default(),
        }
    }

    /// Whether the key is one this matcher names (hosts aside).
    pub(crate) fn covers_key(&self, key: &str, comment: &str) -> bool {
        self.keys.is_empty()
            || self
                .keys
                .iter()
                .any(|g| g.matches(key) || g.matches(comment))
    }

    /// Why `call` is not matched, or `None` when it is; the text only when `explain` (the
    /// evaluation allocates nothing per rule).
    pub(crate) fn mismatch(&self, call: &SshCall, explain: bool) -> Option<String> {
        let why = |text: &dyn Fn() -> String| Some(if explain { text() } else { String::new() });
        if !self.covers_key(&call.key, &call.comment) {
            return why(&|| format!("key {} ({}) is not {:?}", call.key, call.comment, self.keys));
        }
        if self.hosts.is_empty() {
            return None;
        }
        if call.hosts.is_empty() {
            return why(&|| {
                format!(
                    "the rule names hosts {:?}; the request is bound to no verified host",
                    self.hosts
                )
            });
        }
        let matched = call.hosts.iter().any(|host| {
            Target::parse(&host.name).is_some_and(|target| {
                self.hosts.iter().any(|p| {
                    p.matches_target(&target) && p.port().is_none_or(|port| port == host.port)
                })
            })
        });
        if matched {
            return None;
        }
        why(&|| {
            let names: Vec<String> = call
                .hosts
                .iter()
                .map(|h| format!("{}:{}", h.name, h.port))
                .collect();
            format!("host {} is not {:?}", names.join(", "), self.hosts)
        })
    }

    /// The host names this matcher spells out (for hashed `known_hosts` entries, which can
    /// only be checked against a name), with the port when the pattern names one.
    pub(crate) fn literal_hosts(&self) -> impl Iterator<Item = (&str, Option<u16>)> {
        self.hosts
            .iter()
            .filter_map(|p| p.literal_name().map(|name| (name, p.port())))
    }
}

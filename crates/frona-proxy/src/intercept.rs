//! Placeholder credentials under `frona run --net proxy`: a credential bound to hosts
//! (`inject_hosts` in the registry) reaches the agent only as a per-session placeholder shaped
//! like it (`placeholder.rs`); the egress proxy terminates TLS for the bound hosts
//! (`tunnel.rs`) and swaps the placeholder for the value (`swap.rs`) in the requests that
//! policy permits.
//!
//! - A per-session CA (ECDSA P-256, made by rcgen in memory, never written anywhere, gone with
//!   the process) issues a certificate per bound host on first use (`tls.rs`). It is
//!   name-constrained to the bound hosts, so even a copy of it could vouch for nothing else.
//!   The agent trusts it through a bundle of the system roots plus this CA
//!   ([`Tls::bundle_pem`], pointed to by `SSL_CERT_FILE` and the like).
//! - Each request in a terminated tunnel is searched for the session's placeholders. One in a
//!   credential header ([`frona_backends::registry::PLACEHOLDER_HEADERS`] and the binding's
//!   `inject_headers`; also inside `Authorization: Basic`, as git sends a token) or in a query
//!   parameter the binding names, of a credential bound to this host, is a call: decided by the
//!   core (tool `http`, method, host, decoded path), audited, durable, then swapped. Any other
//!   placeholder (another host's, or in another header, a body, another parameter) is never
//!   swapped, and is audited (`placeholder-unbound`). So is one sent over plain HTTP.
//! - The request goes to the address the egress proxy checked, over TLS verified against the
//!   system roots (what frona trusts: `SSL_CERT_FILE`/`SSL_CERT_DIR` apply), with `Host` set
//!   to the tunnel's host. Every response in a terminated tunnel is redacted of every value
//!   swapped in this session, headers and body, as it streams.
//! - Hosts nobody bound are tunnelled untouched: frona cannot see, and does not swap, a
//!   placeholder sent inside them.

mod placeholder;
mod swap;
mod tls;
mod tunnel;

use std::sync::Mutex;

use frona_backends::Secret;
use frona_backends::registry::{BoundHost, Credential, Registry};
use frona_broker::Broker;
use frona_broker::audit::{AuditEvent, PlaceholderUnbound};
use frona_broker::credentials::env_name;
use frona_broker::peer::Peer;
use frona_broker::redact::Redactor;
use http::header::HeaderMap;

pub use tls::Tls;

use crate::http::basic_credentials;
use placeholder::contains;

/// Why TLS termination could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum InterceptError {
    #[error("cannot make the session's certificate authority: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("no system CA certificates were found (set SSL_CERT_FILE)")]
    NoRoots,
    #[error("cannot draw a random placeholder: {0}")]
    Random(String),
}

/// One credential bound to hosts, and the placeholder the agent has for it.
pub struct Binding {
    pub credential: Credential,
    /// The credential's `inject_hosts`, parsed once.
    pub hosts: Vec<BoundHost>,
    pub placeholder: Secret,
}

impl std::fmt::Debug for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binding")
            .field("credential", &self.credential.name)
            .finish_non_exhaustive()
    }
}

impl Binding {
    fn covers(&self, host: &str, port: u16) -> bool {
        self.hosts.iter().any(|bound| bound.covers(host, port))
    }
}

/// The session's bindings and TLS termination.
#[derive(Debug)]
pub struct Intercept {
    broker: Broker,
    pub tls: Tls,
    pub bindings: Vec<Binding>,
    /// Every form of every value swapped in so far, and a redactor of them: what terminated
    /// tunnels' responses are redacted of. Rebuilt only when a new form is added.
    sent: Mutex<(Vec<Secret>, Redactor)>,
}

impl Intercept {
    /// Makes a placeholder for every credential bound to hosts that this agent sees (the
    /// narrowest registration of each name), shaped like its current value when frona can
    /// read it, and sets up TLS termination for their hosts; `None` when no credential is
    /// bound. Runs once, before the agent starts.
    pub fn bind(broker: &Broker) -> Result<Option<Self>, InterceptError> {
        let credentials = &broker.credentials;
        let listed = match credentials.registry().list() {
            Ok(listed) => listed,
            Err(e) => {
                tracing::warn!("credentials bound to hosts are not served: {e}");
                return Ok(None);
            }
        };
        let mut bindings = Vec::new();
        for credential in Registry::bound(&listed, Some(credentials.agent()), credentials.cwd()) {
            // The value is read only to copy its shape; a backend that is down costs the
            // shape, not the session.
            let real = credentials.current_value(credential).unwrap_or_else(|e| {
                tracing::warn!(
                    "credential `{}`: cannot read it to shape its placeholder ({e}); using a \
                     generic one",
                    credential.name
                );
                None
            });
            let placeholder = placeholder::placeholder(real.as_ref().map(Secret::expose))
                .map_err(|e| InterceptError::Random(e.to_string()))?;
            bindings.push(Binding {
                hosts: credential.bound_hosts(),
                credential: credential.clone(),
                placeholder,
            });
        }
        if bindings.is_empty() {
            return Ok(None);
        }
        let hosts: Vec<&str> = bindings
            .iter()
            .flat_map(|b| b.hosts.iter().map(BoundHost::as_str))
            .collect();
        Ok(Some(Self {
            broker: broker.clone(),
            tls: Tls::new(&hosts)?,
            bindings,
            sent: Mutex::new((Vec::new(), Redactor::default())),
        }))
    }

    /// The variables the agent gets: `(env, placeholder)`.
    pub fn placeholders(&self) -> Vec<(String, Secret)> {
        self.bindings
            .iter()
            .map(|b| {
                let var = b
                    .credential
                    .env
                    .clone()
                    .unwrap_or_else(|| env_name(&b.credential.name));
                (var, b.placeholder.clone())
            })
            .collect()
    }

    /// Whether the egress proxy terminates TLS for `host:port`.
    pub fn terminates(&self, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.bindings.iter().any(|b| b.covers(&host, port))
    }

    /// The bindings whose placeholder `headers` or `query` carry anywhere, each with whether
    /// it is where it would be swapped (a header, or a query parameter the binding names).
    fn found(&self, headers: &HeaderMap, query: Option<&str>) -> Vec<(usize, bool)> {
        // Each header's `Basic` credentials decoded once, not once per binding.
        let values: Vec<(&str, &[u8], Option<Secret>)> = headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes(), basic_credentials(value)))
            .collect();
        let mut found = Vec::new();
        for (index, binding) in self.bindings.iter().enumerate() {
            let placeholder = binding.placeholder.expose();
            let carries = |raw: &[u8], basic: &Option<Secret>| {
                contains(raw, placeholder)
                    || basic
                        .as_ref()
                        .is_some_and(|pair| contains(pair.expose(), placeholder))
            };
            let in_headers = values.iter().any(|(_, raw, basic)| carries(raw, basic));
            let in_named_header = values.iter().any(|(name, raw, basic)| {
                binding.credential.swaps_in_header(name) && carries(raw, basic)
            });
            let params = || query.into_iter().flat_map(|q| q.split('&'));
            let in_named = params().any(|part| {
                part.split_once('=').is_some_and(|(name, value)| {
                    binding.credential.inject_query.iter().any(|n| n == name)
                        && contains(value.as_bytes(), placeholder)
                })
            });
            let anywhere = params().any(|part| contains(part.as_bytes(), placeholder));
            if in_headers || anywhere {
                found.push((index, in_named_header || in_named));
            }
        }
        found
    }

    /// Adds `forms` to what responses are redacted of; returns the redactor to use.
    fn remember(&self, forms: &[Secret]) -> Redactor {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let (known, template) = &mut *sent;
        let before = known.len();
        for form in forms {
            if !known.contains(form) {
                known.push(form.clone());
            }
        }
        if known.len() != before {
            *template = Redactor::new(known.iter().map(Secret::expose));
        }
        template.clone()
    }

    /// Audits placeholders sent where they are not swapped: to a host they are not bound to,
    /// or over plain HTTP. Returns how many there were.
    pub(crate) fn audit_unbound_placeholders(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        host: &str,
        port: u16,
        scheme: &str,
        peer: Option<Peer>,
    ) -> usize {
        let found: Vec<usize> = self
            .found(headers, query)
            .into_iter()
            .map(|(index, _)| index)
            .collect();
        self.audit_unbound(&found, host, port, scheme, peer);
        found.len()
    }

    /// Audits each binding in `indices` as a placeholder sent to `host:port`, not swapped.
    fn audit_unbound(
        &self,
        indices: &[usize],
        host: &str,
        port: u16,
        scheme: &str,
        peer: Option<Peer>,
    ) {
        for &index in indices {
            self.broker
                .audit
                .submit(&AuditEvent::PlaceholderUnbound(PlaceholderUnbound {
                    peer,
                    credential: self.bindings[index].credential.name.clone(),
                    host: host.to_owned(),
                    port,
                    scheme: scheme.to_owned(),
                    reason: "a placeholder where it is never swapped (a host it is not bound \
                             to, plain HTTP, or a place its binding does not name); sent on as \
                             it was"
                        .into(),
                }));
        }
    }
}

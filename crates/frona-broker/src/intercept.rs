//! Placeholder credentials under `frona run --net proxy`: a credential bound to hosts
//! (`inject_hosts` in the registry) reaches the agent only as a per-session placeholder shaped
//! like it ([`crate::placeholder`]); the egress proxy terminates TLS for the bound hosts and
//! swaps the placeholder for the value in the requests that policy permits.
//!
//! - A per-session CA (ECDSA P-256, made by rcgen in memory, never written anywhere, gone with
//!   the process) issues a certificate per bound host on first use. It is name-constrained to
//!   the bound hosts, so even a copy of it could vouch for nothing else. The agent trusts it
//!   through a bundle of the system roots plus this CA ([`Tls::bundle_pem`], pointed to by
//!   `SSL_CERT_FILE` and the like).
//! - Each request in a terminated tunnel is searched for the session's placeholders. One in a
//!   credential header ([`frona_backends::registry::PLACEHOLDER_HEADERS`] and the binding's
//!   `inject_headers`; also inside `Authorization: Basic`, as git sends a token) or in a query
//!   parameter the binding names, of a credential bound to this host, is a call: decided by the
//!   policy (tool `http`, method, host, decoded path), audited, durable, then swapped. Any other
//!   placeholder (another host's, or in another header, a body, another parameter) is never
//!   swapped, and is audited (`placeholder-unbound`). So is one sent over plain HTTP.
//! - The request goes to the address the egress proxy checked, over TLS verified against the
//!   system roots (what frona trusts: `SSL_CERT_FILE`/`SSL_CERT_DIR` apply), with `Host` set
//!   to the tunnel's host. Every response in a terminated tunnel is redacted of every value
//!   swapped in this session, headers and body, as it streams.
//! - Hosts nobody bound are tunnelled untouched: frona cannot see, and does not swap, a
//!   placeholder sent inside them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use frona_backends::Secret;
use frona_backends::registry::{Credential, bound_host_matches};
use http::StatusCode;
use http::header::{self, HeaderMap, HeaderValue};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};

use crate::peer::Peer;
use crate::placeholder::contains;
use crate::proxy::{ProxyBody, redacted_headers};
use crate::redact::Redactor;
use crate::server::Broker;

mod tls;
pub use tls::Tls;

/// How long a terminated tunnel may wait for the agent's next request.
const IDLE: Duration = Duration::from_secs(60);

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
        self.credential
            .inject_hosts
            .iter()
            .any(|pattern| bound_host_matches(pattern, host, port))
    }
}

/// The session's bindings and TLS termination.
#[derive(Debug)]
pub struct Intercept {
    pub tls: Tls,
    pub bindings: Vec<Binding>,
    /// Every form of every value swapped in so far, and a redactor of them: what terminated
    /// tunnels' responses are redacted of. Rebuilt only when a new form is added.
    sent: Mutex<(Vec<Secret>, Redactor)>,
}

impl Intercept {
    pub fn new(bindings: Vec<Binding>) -> Result<Self, InterceptError> {
        let hosts: Vec<&str> = bindings
            .iter()
            .flat_map(|b| b.credential.inject_hosts.iter().map(String::as_str))
            .collect();
        Ok(Self {
            tls: Tls::new(&hosts)?,
            bindings,
            sent: Mutex::new((Vec::new(), Redactor::default())),
        })
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
}

/// The decoded `user:password` of an `Authorization: Basic` value.
fn basic_credentials(value: &HeaderValue) -> Option<Secret> {
    let bytes = value.as_bytes();
    let encoded = bytes
        .get(..6)
        .filter(|scheme| scheme.eq_ignore_ascii_case(b"basic "))
        .map(|_| bytes[6..].trim_ascii())?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .map(Secret::new)
}

/// `haystack` with every `from` replaced by `to`.
fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len() + to.len());
    let mut rest = haystack;
    while let Some(at) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// Swaps `placeholder` for `value` in the values of the headers `credential` names (inside
/// `Basic` credentials too); returns every new header value made, for the redactor.
fn swap_headers(
    headers: &mut HeaderMap,
    credential: &Credential,
    placeholder: &[u8],
    value: &[u8],
) -> Result<Vec<Secret>, String> {
    let mut forms = Vec::new();
    for (name, slot) in headers.iter_mut() {
        if !credential.swaps_in_header(name.as_str()) {
            continue;
        }
        let swapped = if contains(slot.as_bytes(), placeholder) {
            Secret::new(replace(slot.as_bytes(), placeholder, value))
        } else if let Some(pair) =
            basic_credentials(slot).filter(|p| contains(p.expose(), placeholder))
        {
            let pair = Secret::new(replace(pair.expose(), placeholder, value));
            let mut encoded = b"Basic ".to_vec();
            encoded.extend(
                base64::engine::general_purpose::STANDARD
                    .encode(pair.expose())
                    .into_bytes(),
            );
            forms.push(pair);
            Secret::new(encoded)
        } else {
            continue;
        };
        let mut new = HeaderValue::from_bytes(swapped.expose())
            .map_err(|_| "the credential is not a valid header value")?;
        new.set_sensitive(true);
        *slot = new;
        forms.push(swapped);
    }
    Ok(forms)
}

/// Swaps `placeholder` for `value` in the values of the query parameters `names`; the other
/// parameters keep theirs.
fn swap_query(
    query: &str,
    names: &[String],
    placeholder: &[u8],
    value: &[u8],
) -> (String, Option<Secret>) {
    let encoded: String = url::form_urlencoded::byte_serialize(value).collect();
    let mut used = false;
    let parts: Vec<String> = query
        .split('&')
        .map(|part| match part.split_once('=') {
            Some((name, v))
                if names.iter().any(|n| n == name) && contains(v.as_bytes(), placeholder) =>
            {
                used = true;
                let swapped = replace(v.as_bytes(), placeholder, encoded.as_bytes());
                format!("{name}={}", String::from_utf8_lossy(&swapped))
            }
            _ => part.to_owned(),
        })
        .collect();
    (
        parts.join("&"),
        used.then(|| Secret::new(encoded.into_bytes())),
    )
}

/// The proxy's own answer inside a terminated tunnel (which stays open).
fn refused(status: StatusCode, error: &str, message: &str) -> http::Response<ProxyBody> {
    crate::egress::own_answer(status, error, message, ProxyBody::full)
}

/// Writes a terminated tunnel's `egress-close` record when dropped.
struct Close<'a> {
    broker: &'a Broker,
    host: String,
    port: u16,
    counts: Arc<crate::egress::tunnel::Counts>,
    started: Instant,
    peer: Option<Peer>,
}

impl Drop for Close<'_> {
    fn drop(&mut self) {
        // Read from the agent went up; written to it came down.
        let bytes = (self.counts.read(), self.counts.written());
        self.broker.audit_tunnel_close(
            &self.host,
            self.port,
            bytes,
            self.started,
            None,
            self.peer,
            true,
        );
    }
}

/// A terminated tunnel: where it goes, and its one upstream connection (opened on the first
/// request, again if the upstream closed it).
struct Tunnel {
    host: String,
    port: u16,
    addresses: Vec<std::net::SocketAddr>,
    peer: Option<Peer>,
    upstream: tokio::sync::Mutex<Option<hyper::client::conn::http1::SendRequest<Incoming>>>,
}

impl Broker {
    /// Makes a placeholder for every credential bound to hosts that this agent sees (the
    /// narrowest registration of each name), shaped like its current value when frona can
    /// read it, and sets up TLS termination for their hosts. Returns the variables the agent
    /// gets: `(env, placeholder)`. Runs once, before the agent starts.
    pub fn bind_placeholders(&self) -> Result<Vec<(String, Secret)>, InterceptError> {
        let listed = match self.config.registry.list() {
            Ok(listed) => listed,
            Err(e) => {
                tracing::warn!("credentials bound to hosts are not served: {e}");
                return Ok(Vec::new());
            }
        };
        let mut bindings = Vec::new();
        for credential in frona_backends::registry::Registry::bound(
            &listed,
            Some(&self.config.agent),
            &self.config.proxy_cwd,
        ) {
            let name = &credential.name;
            // The value is read only to copy its shape; a backend that is down costs the
            // shape, not the session.
            let mut scratch = crate::server::Prepared {
                env: Vec::new(),
                revocations: Vec::new(),
            };
            let real = match self.prepare_one(credential, &Default::default(), true, &mut scratch) {
                Ok(_) => scratch.env.pop().map(|(_, value)| value),
                Err(e) => {
                    tracing::warn!(
                        "credential `{name}`: cannot read it to shape its placeholder ({e}); \
                         using a generic one"
                    );
                    None
                }
            };
            let placeholder = crate::placeholder::placeholder(real.as_ref().map(Secret::expose))
                .map_err(|e| InterceptError::Random(e.to_string()))?;
            bindings.push(Binding {
                credential: credential.clone(),
                placeholder,
            });
        }
        if bindings.is_empty() {
            return Ok(Vec::new());
        }
        let env = bindings
            .iter()
            .map(|b| {
                let var = b
                    .credential
                    .env
                    .clone()
                    .unwrap_or_else(|| crate::server::env_name(&b.credential.name));
                (var, b.placeholder.clone())
            })
            .collect();
        let _ = self.intercept.set(Intercept::new(bindings)?);
        Ok(env)
    }

    /// The session's interception, when credentials are bound.
    pub fn intercept(&self) -> Option<&Intercept> {
        self.intercept.get()
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
        let Some(intercept) = self.intercept.get() else {
            return 0;
        };
        let found: Vec<usize> = intercept
            .found(headers, query)
            .into_iter()
            .map(|(index, _)| index)
            .collect();
        self.audit_unbound(intercept, &found, host, port, scheme, peer);
        found.len()
    }

    /// Audits each binding in `indices` as a placeholder sent to `host:port`, not swapped.
    fn audit_unbound(
        &self,
        intercept: &Intercept,
        indices: &[usize],
        host: &str,
        port: u16,
        scheme: &str,
        peer: Option<Peer>,
    ) {
        for &index in indices {
            let mut record = Map::new();
            record.insert("kind".into(), "placeholder-unbound".into());
            record.insert(
                "credential".into(),
                intercept.bindings[index].credential.name.clone().into(),
            );
            record.insert("host".into(), host.into());
            record.insert("port".into(), port.into());
            record.insert("scheme".into(), scheme.into());
            if let Some(p) = peer {
                record.insert("peer_pid".into(), p.pid.into());
            }
            record.insert(
                "reason".into(),
                "a placeholder where it is never swapped (a host it is not bound to, plain HTTP, \
                 or a place its binding does not name); sent on as it was"
                    .into(),
            );
            self.submit_audit(record);
        }
    }

    /// Serves a CONNECT tunnel to a bound host: TLS with the session CA's certificate for
    /// `host` towards the agent, HTTP/1.1 inside, each request decided and sent on.
    pub(crate) async fn intercept_tunnel(
        self: Arc<Self>,
        upgraded: hyper::upgrade::Upgraded,
        host: String,
        port: u16,
        addresses: Vec<std::net::SocketAddr>,
        peer: Option<Peer>,
    ) {
        let Some(intercept) = self.intercept.get() else {
            return;
        };
        let config = match intercept.tls.server_config(&host) {
            Ok(config) => config,
            Err(e) => {
                tracing::warn!("egress proxy: no certificate for {host}: {e}");
                return;
            }
        };
        let started = Instant::now();
        let _open = crate::egress::tunnel::Open::new(&self.tunnels);
        let (agent_side, counts) = crate::egress::tunnel::Counted::new(TokioIo::new(upgraded));
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        // Audited when the tunnel ends, however it ends: bytes counted on the agent's side.
        let close = Close {
            broker: &self,
            host: host.clone(),
            port,
            counts,
            started,
            peer,
        };
        let Ok(Ok(stream)) = tokio::time::timeout(IDLE, acceptor.accept(agent_side)).await else {
            return;
        };
        let tunnel = Arc::new(Tunnel {
            host,
            port,
            addresses,
            peer,
            upstream: tokio::sync::Mutex::new(None),
        });
        let for_requests = Arc::clone(&self);
        let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
            let broker = Arc::clone(&for_requests);
            let tunnel = Arc::clone(&tunnel);
            async move { Ok::<_, std::convert::Infallible>(broker.intercepted(request, &tunnel).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .max_buf_size(64 * 1024)
            .header_read_timeout(IDLE)
            .timer(hyper_util::rt::TokioTimer::new())
            .serve_connection(TokioIo::new(stream), service)
            .await;
        drop(close);
    }

    /// One request in a terminated tunnel.
    async fn intercepted(
        self: &Arc<Self>,
        request: http::Request<Incoming>,
        tunnel: &Tunnel,
    ) -> http::Response<ProxyBody> {
        let Some(intercept) = self.intercept.get() else {
            return refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no interception",
                "not set up",
            );
        };
        let started = Instant::now();
        let (mut parts, body) = request.into_parts();
        // Origin form; an absolute URL must name the tunnel's own host.
        if let Some(authority) = parts.uri.authority()
            && !authority.host().eq_ignore_ascii_case(&tunnel.host)
        {
            return refused(
                StatusCode::BAD_REQUEST,
                "wrong host",
                &format!(
                    "this tunnel goes to {}, not {}",
                    tunnel.host,
                    authority.host()
                ),
            );
        }
        // An upgrade (WebSocket) would turn the tunnel into frames the redactor cannot rewrite
        // without breaking them: refused plainly rather than dropped silently.
        if parts.headers.contains_key(header::UPGRADE) {
            return refused(
                StatusCode::NOT_IMPLEMENTED,
                "upgrade refused",
                &format!(
                    "{} is a host a credential is bound to: frona terminates its TLS and does not \
                     carry protocol upgrades (WebSocket) there",
                    tunnel.host
                ),
            );
        }
        let path = parts.uri.path().to_owned();
        let mut query = parts.uri.query().map(str::to_owned);
        // Swapped: a placeholder where its binding says, to a host it is bound to. Anything
        // else is left as it is, and audited.
        let host = tunnel.host.to_ascii_lowercase();
        let (mut bound, mut unbound) = (Vec::new(), Vec::new());
        for (index, swappable) in intercept.found(&parts.headers, query.as_deref()) {
            if swappable && intercept.bindings[index].covers(&host, tunnel.port) {
                bound.push(index);
            } else {
                unbound.push(index);
            }
        }
        self.audit_unbound(
            intercept,
            &unbound,
            &tunnel.host,
            tunnel.port,
            "https",
            tunnel.peer,
        );
        let mut headers = crate::proxy::forwardable(&parts.headers);
        let mut swapped: Vec<Secret> = Vec::new();
        let mut revocations = Vec::new();
        let mut records = Vec::new();
        // The path the policy sees, checked once, before any value is prepared.
        let decoded = if bound.is_empty() {
            String::new()
        } else {
            match crate::proxy::checked_path(&path) {
                Ok(decoded) => decoded,
                Err(e) => return refused(StatusCode::BAD_REQUEST, "bad path", &e),
            }
        };
        for index in bound {
            let binding = &intercept.bindings[index];
            let mut record = Map::new();
            record.insert("kind".into(), "http".into());
            record.insert("via".into(), "placeholder".into());
            record.insert("method".into(), parts.method.as_str().into());
            record.insert("host".into(), tunnel.host.clone().into());
            record.insert("path".into(), decoded.clone().into());
            record.insert("credentials".into(), json!([binding.credential.name]));
            if let Some(p) = tunnel.peer {
                record.insert("peer_pid".into(), p.pid.into());
                record.insert("peer_uid".into(), p.uid.into());
            }
            let policy_request = crate::proxy::http_request(
                parts.method.as_str(),
                &tunnel.host,
                decoded.clone(),
                binding.credential.name.clone(),
                self.config.agent.clone(),
            );
            let prepared = match self
                .authorize_http(&record, policy_request, binding.credential.clone())
                .await
            {
                Ok(prepared) => prepared,
                Err(refusal) => {
                    let error = match &refusal.rule {
                        Some(rule) if refusal.status == StatusCode::FORBIDDEN => {
                            format!("denied by rule \"{rule}\"")
                        }
                        _ if refusal.status == StatusCode::FORBIDDEN => "not allowed".to_owned(),
                        _ => "credential unavailable".to_owned(),
                    };
                    // What an earlier placeholder of this request was issued is not used.
                    self.revoke_later(revocations);
                    return refused(refusal.status, &error, &refusal.message);
                }
            };
            let value = prepared.env[0].1.clone();
            let placeholder = binding.placeholder.expose();
            match swap_headers(
                &mut headers,
                &binding.credential,
                placeholder,
                value.expose(),
            ) {
                Ok(forms) => swapped.extend(forms),
                Err(e) => {
                    revocations.extend(prepared.revocations);
                    self.revoke_later(revocations);
                    return refused(StatusCode::BAD_REQUEST, "bad value", &e);
                }
            }
            if let Some(q) = &query {
                let (new, form) = swap_query(
                    q,
                    &binding.credential.inject_query,
                    placeholder,
                    value.expose(),
                );
                query = Some(new);
                swapped.extend(form);
            }
            swapped.push(value);
            revocations.extend(prepared.revocations);
            records.push(record);
        }
        let template = intercept.remember(&swapped);
        let target = match &query {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        let host_header = if tunnel.port == 443 {
            tunnel.host.clone()
        } else {
            format!("{}:{}", tunnel.host, tunnel.port)
        };
        let Ok(host_value) = HeaderValue::from_str(&host_header) else {
            return refused(
                StatusCode::BAD_REQUEST,
                "bad host",
                "the host is not a header value",
            );
        };
        headers.insert(header::HOST, host_value);
        // Identity, so that redaction sees the bytes as sent.
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        let Ok(uri) = target.parse::<http::Uri>() else {
            return refused(
                StatusCode::BAD_REQUEST,
                "bad target",
                "the request target is invalid",
            );
        };
        parts.uri = uri;
        parts.headers = headers;
        let outgoing = http::Request::from_parts(parts, body);
        let result = self.send_in_tunnel(tunnel, outgoing).await;
        self.revoke_later(revocations);
        for mut done in records {
            done.insert("kind".into(), "http-response".into());
            done.insert(
                "latency_us".into(),
                (started.elapsed().as_micros() as u64).into(),
            );
            match &result {
                Ok(response) => done.insert("status".into(), response.status().as_u16().into()),
                Err(e) => done.insert("error".into(), Value::from(e.clone())),
            };
            self.submit_audit(done);
        }
        match result {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                parts.headers = redacted_headers(&parts.headers, &template);
                let body = body.map_err(|e| e.to_string()).boxed();
                http::Response::from_parts(parts, ProxyBody::streamed(body, template))
            }
            Err(e) => {
                let mut redactor = template;
                let mut clean = redactor.push(e.as_bytes());
                clean.extend(redactor.finish());
                refused(
                    StatusCode::BAD_GATEWAY,
                    "upstream failed",
                    &format!("{}: {}", tunnel.host, String::from_utf8_lossy(&clean)),
                )
            }
        }
    }

    /// Sends `request` on the tunnel's upstream connection, connecting (again) first when there
    /// is none or it closed.
    async fn send_in_tunnel(
        &self,
        tunnel: &Tunnel,
        request: http::Request<Incoming>,
    ) -> Result<http::Response<Incoming>, String> {
        let mut upstream = tunnel.upstream.lock().await;
        let usable = match upstream.as_mut() {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !usable {
            *upstream = Some(self.tunnel_upstream(tunnel).await?);
        }
        let Some(sender) = upstream.as_mut() else {
            return Err("no upstream connection".into());
        };
        sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())
    }

    /// A verified TLS connection to the tunnel's host, at an address the egress proxy checked.
    async fn tunnel_upstream(
        &self,
        tunnel: &Tunnel,
    ) -> Result<hyper::client::conn::http1::SendRequest<Incoming>, String> {
        let Some(intercept) = self.intercept.get() else {
            return Err("not set up".into());
        };
        let what = format!("CONNECT {}:{}", tunnel.host, tunnel.port);
        let tcp = self
            .egress_connect(&tunnel.addresses, &what)
            .await
            .map_err(|_| "cannot connect".to_owned())?;
        let name = rustls::pki_types::ServerName::try_from(tunnel.host.clone())
            .map_err(|e| format!("`{}` is not a TLS server name: {e}", tunnel.host))?;
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&intercept.tls.upstream));
        let tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
            .await
            .map_err(|_| "TLS handshake timed out".to_owned())?
            .map_err(|e| format!("TLS: {e}"))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential() -> Credential {
        Credential {
            inject_hosts: vec!["api.example.com".into()],
            ..Credential::new("gh", frona_backends::BackendKind::Local, "p")
        }
    }

    #[test]
    fn swaps_in_headers_and_basic_credentials() {
        let mut credential = credential();
        credential.inject_headers = vec!["X-Other".into()];
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer ph_123"),
        );
        headers.insert("x-other", HeaderValue::from_static("ph_123 and ph_123"));
        headers.insert("x-plain", HeaderValue::from_static("nothing"));
        headers.insert("user-agent", HeaderValue::from_static("ua ph_123"));
        let forms = swap_headers(&mut headers, &credential, b"ph_123", b"REAL").unwrap();
        assert_eq!(headers[header::AUTHORIZATION], "Bearer REAL");
        assert_eq!(headers["x-other"], "REAL and REAL");
        assert_eq!(headers["x-plain"], "nothing");
        assert_eq!(
            headers["user-agent"], "ua ph_123",
            "a header the binding does not name keeps the placeholder"
        );
        assert_eq!(forms.len(), 2);
        assert!(headers[header::AUTHORIZATION].is_sensitive());

        let basic = base64::engine::general_purpose::STANDARD.encode("x-access-token:ph_123");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {basic}")).unwrap(),
        );
        swap_headers(&mut headers, &credential, b"ph_123", b"REAL").unwrap();
        let expected = base64::engine::general_purpose::STANDARD.encode("x-access-token:REAL");
        assert_eq!(
            headers[header::AUTHORIZATION],
            format!("Basic {expected}").as_str()
        );
    }

    /// For any request: after the swap no credential header carries the placeholder, every
    /// other header is as it was, and the value appears only where a placeholder was.
    #[test]
    fn swapping_changes_credential_headers_only() {
        use proptest::prelude::*;
        let names = [
            "authorization",
            "x-api-key",
            "user-agent",
            "x-other",
            "cookie",
        ];
        let value = proptest::string::string_regex("[A-Za-z0-9]{8,40}").unwrap();
        let text = || proptest::string::string_regex("[ -~]{0,40}").unwrap();
        proptest!(ProptestConfig { cases: 256, ..ProptestConfig::default() }, |(
            value in value,
            parts in proptest::collection::vec((0..names.len(), text(), any::<bool>(), text()), 0..6),
        )| {
            let placeholder = "ph_Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9";
            prop_assume!(!value.contains("ph_"));
            let credential = credential();
            let mut headers = HeaderMap::new();
            for (name, before, with, after) in &parts {
                let text = format!("{before}{}{after}", if *with { placeholder } else { "" });
                if let Ok(v) = HeaderValue::from_str(text.trim()) {
                    headers.append(names[*name], v);
                }
            }
            let original = headers.clone();
            swap_headers(&mut headers, &credential, placeholder.as_bytes(), value.as_bytes())
                .unwrap();
            for name in names {
                let now: Vec<_> = headers.get_all(name).iter().collect();
                let was: Vec<_> = original.get_all(name).iter().collect();
                prop_assert_eq!(now.len(), was.len());
                for (now, was) in now.iter().zip(&was) {
                    if credential.swaps_in_header(name) {
                        prop_assert!(!contains(now.as_bytes(), placeholder.as_bytes()));
                        let expected = replace(was.as_bytes(), placeholder.as_bytes(), value.as_bytes());
                        prop_assert_eq!(now.as_bytes(), &expected[..]);
                    } else {
                        prop_assert_eq!(now, was);
                    }
                }
            }
        });
    }

    #[test]
    fn swaps_only_the_named_query_parameters() {
        let names = vec!["key".to_owned()];
        let (query, form) = swap_query("a=1&key=ph_1&other=ph_1", &names, b"ph_1", b"v a+l");
        assert_eq!(query, "a=1&key=v+a%2Bl&other=ph_1");
        assert_eq!(form.unwrap().expose(), b"v+a%2Bl");
        let (query, form) = swap_query("a=1", &names, b"ph_1", b"v");
        assert_eq!(query, "a=1");
        assert!(form.is_none());
    }
}

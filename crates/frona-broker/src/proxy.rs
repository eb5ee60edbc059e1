//! The HTTP credential proxy: the agent sends plain HTTP to `http://frona/ROUTE/PATH` on the
//! Unix socket in `FRONA_PROXY`; the broker finds the credential registered with that route,
//! decides the call with the policy (method, host, path), attaches the credential, sends the
//! request to the route's HTTPS upstream and streams the response back with the credential
//! redacted. The agent never holds the value.
//!
//! Not an open relay: only registered routes, the upstream's scheme, host and port are fixed by
//! the registry (the agent chooses only the path and query, checked for escapes), redirects are
//! never followed, hop-by-hop and proxy headers are dropped, a header the agent sends under the
//! injected name is replaced, bodies and headers are size-limited, and every call is audited
//! (method, host, path, status, latency; no bodies, no query).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use frona_backends::Secret;
use frona_backends::registry::{Credential, Inject, Registry, UNFORWARDED_HEADERS};
use frona_policy::{Effect, HTTP_TOOL, HttpCall, Request};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use serde_json::{Map, json};

use crate::peer::Peer;
use crate::redact::Redactor;
use crate::server::{Broker, Prepared};

/// The largest request body the proxy forwards.
pub const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;
/// The largest response body it streams back; beyond, the response is cut off.
pub const MAX_RESPONSE_BODY: u64 = 1024 * 1024 * 1024;
/// Headers larger than this (in total) are refused by the server.
const MAX_HEADERS: usize = 64 * 1024;

/// Names the credential whose route an upstream URL target (`/https://…`) should take.
pub const CREDENTIAL_HEADER: &str = "x-frona-credential";

/// A request for the proxy, its body already read.
#[derive(Debug)]
pub struct ProxyRequest {
    pub method: Method,
    /// `/ROUTE/PATH?QUERY`, as sent to the proxy.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A response body: the proxy's own answer, or the upstream's streamed through the redactor
/// as hyper polls it (no task or channel in between).
#[derive(Debug)]
pub struct ProxyBody {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Full(Option<Bytes>),
    Upstream {
        body: http_body_util::combinators::BoxBody<Bytes, String>,
        redactor: Redactor,
        total: u64,
        /// Set once the upstream body ended and the redactor's tail was handed out.
        done: bool,
    },
}

/// Why a streamed body stopped early. Surfacing it (instead of ending the body) makes hyper
/// abort the chunked answer, so that the client sees a cut-off, not a shorter "complete" body.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the upstream response exceeded {MAX_RESPONSE_BODY} bytes and was cut off")]
    TooLarge,
    #[error("the upstream response broke off: {0}")]
    Upstream(String),
}

impl ProxyBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        Self {
            inner: Inner::Full(Some(bytes.into())),
        }
    }

    fn upstream(response: reqwest::Response, redactor: Redactor) -> Self {
        use http_body_util::BodyExt as _;
        let body = reqwest::Body::from(response).map_err(|e| error_chain(&e.without_url()));
        Self::streamed(body.boxed(), redactor)
    }

    /// An upstream body, streamed through `redactor` and cut off at [`MAX_RESPONSE_BODY`].
    pub(crate) fn streamed(
        body: http_body_util::combinators::BoxBody<Bytes, String>,
        redactor: Redactor,
    ) -> Self {
        Self {
            inner: Inner::Upstream {
                body,
                redactor,
                total: 0,
                done: false,
            },
        }
    }

    /// The next chunk (`None` at the end).
    pub async fn next(&mut self) -> Option<Result<Bytes, BodyError>> {
        use http_body_util::BodyExt as _;
        loop {
            match self.frame().await? {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        return Some(Ok(data));
                    }
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl hyper::body::Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, BodyError>>> {
        let data =
            |bytes: Vec<u8>| Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from(bytes)))));
        match &mut self.inner {
            Inner::Full(bytes) => {
                Poll::Ready(bytes.take().map(|b| Ok(hyper::body::Frame::data(b))))
            }
            Inner::Upstream {
                body,
                redactor,
                total,
                done,
            } => loop {
                if *done {
                    return Poll::Ready(None);
                }
                match std::task::ready!(Pin::new(&mut *body).poll_frame(cx)) {
                    Some(Ok(frame)) => {
                        let Ok(chunk) = frame.into_data() else {
                            continue; // trailers are not forwarded
                        };
                        *total += chunk.len() as u64;
                        if *total > MAX_RESPONSE_BODY {
                            tracing::warn!("proxied response cut off at {MAX_RESPONSE_BODY} bytes");
                            *done = true;
                            return Poll::Ready(Some(Err(BodyError::TooLarge)));
                        }
                        let out = redactor.push(&chunk);
                        if !out.is_empty() {
                            return data(out);
                        }
                    }
                    Some(Err(e)) => {
                        *done = true;
                        return Poll::Ready(Some(Err(BodyError::Upstream(e))));
                    }
                    None => {
                        *done = true;
                        let rest = redactor.finish();
                        if !rest.is_empty() {
                            return data(rest);
                        }
                    }
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(bytes) => bytes.is_none(),
            Inner::Upstream { done, .. } => *done,
        }
    }
}

pub type ProxyResponse = http::Response<ProxyBody>;

/// An answer made by the proxy itself (not the upstream): JSON `{"error": …}` and a header
/// saying so, so that a client can tell a refusal from an upstream error.
fn refusal(status: StatusCode, message: impl Into<String>) -> ProxyResponse {
    let body = json!({ "error": message.into() }).to_string();
    let mut response = http::Response::new(ProxyBody::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert("x-frona", HeaderValue::from_static("refused"));
    response
}

/// A refusal decided on the way: the status, what to say, and the rule that denied (if one did).
#[derive(Debug)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    pub message: String,
    pub rule: Option<String>,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            rule: None,
        }
    }
}

/// Copies `from` without hop-by-hop headers (also those named in `Connection`).
pub(crate) fn forwardable(from: &HeaderMap) -> HeaderMap {
    let named: Vec<String> = from
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::new();
    for (name, value) in from {
        let lower = name.as_str();
        if UNFORWARDED_HEADERS.contains(&lower) || named.iter().any(|n| n == lower) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// The route's pieces, parsed once per call from the registry's text.
struct Upstream {
    /// `https://host:port` (no trailing slash).
    origin: String,
    host: String,
    /// The base path (empty or starting with `/`, no trailing slash).
    base: String,
}

fn upstream_of(text: &str) -> Option<Upstream> {
    let url = url::Url::parse(text).ok()?;
    if url.scheme() != "https" {
        return None;
    }
    let host = url.host_str()?.to_owned();
    let origin = match url.port() {
        Some(port) => format!("https://{host}:{port}"),
        None => format!("https://{host}"),
    };
    Some(Upstream {
        origin,
        host,
        base: url.path().trim_end_matches('/').to_owned(),
    })
}

/// Percent-decodes `path` for the policy. Refuses what would let the upstream see a different
/// path than the policy did: encoded `/`, `\` or `.`, dot segments, invalid UTF-8, controls.
pub(crate) fn checked_path(path: &str) -> Result<String, String> {
    let lower = path.to_ascii_lowercase();
    if ["%2f", "%5c", "%2e", "%00"]
        .iter()
        .any(|e| lower.contains(e))
        || path.contains('\\')
        || path.split('/').any(|s| s == "." || s == "..")
    {
        return Err("the path has an encoded separator or a dot segment".into());
    }
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("the path has a malformed percent escape")?;
            decoded.push(hex);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let decoded = String::from_utf8(decoded).map_err(|_| "the path is not UTF-8")?;
    if decoded.chars().any(char::is_control) {
        return Err("the path has control characters".into());
    }
    Ok(decoded)
}

/// The policy request for a proxied call: tool [`HTTP_TOOL`], the method and the URL as args
/// (so `args` conditions work too), and the call's method, host and decoded path.
pub fn http_request(
    method: &str,
    host: &str,
    path: String,
    credential: String,
    agent: String,
) -> Request {
    Request {
        tool: HTTP_TOOL.into(),
        args: vec![method.to_owned(), format!("https://{host}{path}")],
        credentials: vec![credential],
        agent,
        time: jiff::Timestamp::now(),
        sha256: None,
        http: Some(HttpCall {
            method: method.to_owned(),
            host: host.to_owned(),
            path,
        }),
    }
}

/// The policy request the proxy would make for `METHOD URL` (for `frona policy explain`).
pub fn http_request_for_url(
    method: &str,
    url: &str,
    credential: String,
    agent: String,
) -> Result<Request, String> {
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("`{method}` is not an HTTP method"))?;
    let parsed = url::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let host = match (parsed.scheme(), parsed.host_str()) {
        ("https", Some(host)) => host,
        _ => return Err(format!("`{url}` is not an https:// URL")),
    };
    // The path as written: `Url` would resolve dot segments the proxy refuses.
    let raw = url.trim_matches(|c: char| c <= ' ')["https://".len()..]
        .split(['?', '#'])
        .next()
        .unwrap_or_default();
    let path = checked_path(raw.find('/').map_or("/", |at| &raw[at..]))?;
    Ok(http_request(method.as_str(), host, path, credential, agent))
}

/// The value of the header carrying the credential, or `None` for query injection.
fn injected(inject: &Inject, value: &[u8]) -> Option<(HeaderName, Secret)> {
    let (name, bytes) = match inject {
        Inject::Bearer => (header::AUTHORIZATION, [b"Bearer ", value].concat()),
        Inject::Basic { user } => {
            let pair = Secret::new(match user {
                Some(user) => [user.as_bytes(), b":", value].concat(),
                None => [value, b":"].concat(),
            });
            let mut header = b"Basic ".to_vec();
            header.resize(6 + base64::encoded_len(pair.len(), true)?, 0);
            base64::engine::general_purpose::STANDARD
                .encode_slice(pair.expose(), &mut header[6..])
                .ok()?;
            (header::AUTHORIZATION, header)
        }
        Inject::Header(name) => (
            HeaderName::from_bytes(name.as_bytes()).ok()?,
            value.to_vec(),
        ),
        Inject::Query(_) => return None,
    };
    Some((name, Secret::new(bytes)))
}

impl Broker {
    /// The client the proxy forwards with: HTTPS only, no redirects followed, bounded waits.
    pub(crate) fn proxy_client() -> Result<reqwest::Client, reqwest::Error> {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .https_only(true)
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .no_proxy()
            .build()
    }

    /// The credential registered for route `name`, as this agent sees it.
    fn route(&self, name: &str) -> Result<Option<Credential>, String> {
        let listed = self.config.registry.list().map_err(|e| e.to_string())?;
        let Some(credential) = listed
            .iter()
            .find(|c| c.route.as_ref().is_some_and(|r| r.name == name))
        else {
            return Ok(None);
        };
        // Scopes apply as for tool calls: the narrowest registration of that name wins, and
        // it must still carry the route.
        let resolved = Registry::narrowest(
            &listed,
            &credential.name,
            Some(&self.config.agent),
            &self.config.proxy_cwd,
        );
        Ok(resolved
            .filter(|c| c.route.as_ref().is_some_and(|r| r.name == name))
            .cloned())
    }

    /// `/ROUTE/REST` for an upstream URL given as the target `/https://host/path?query` (what
    /// `frona call URL` sends): the registered route whose upstream is the longest prefix of
    /// the URL, among those of `credential` when named.
    fn target_for_url(&self, url: &str, credential: Option<&str>) -> Result<String, String> {
        let listed = self.config.registry.list().map_err(|e| e.to_string())?;
        let best = listed
            .iter()
            .filter(|c| credential.is_none_or(|name| c.name == name))
            .filter_map(|c| {
                let route = c.route.as_ref()?;
                let base = route.upstream.trim_end_matches('/');
                let rest = url.strip_prefix(base)?;
                (rest.is_empty() || rest.starts_with(['/', '?'])).then_some((
                    base.len(),
                    route,
                    rest,
                ))
            })
            .max_by_key(|(len, _, _)| *len);
        match best {
            Some((_, route, rest)) => Ok(format!(
                "/{}{}{rest}",
                route.name,
                if rest.starts_with('/') { "" } else { "/" }
            )),
            None => Err(format!(
                "no credential{} has a route for `{url}`",
                credential.map(|c| format!(" `{c}`")).unwrap_or_default()
            )),
        }
    }

    /// Carries out one proxied request from `peer` (`None`: frona's own user, `frona call`).
    pub async fn proxy(
        self: &Arc<Self>,
        mut request: ProxyRequest,
        peer: Option<Peer>,
    ) -> ProxyResponse {
        if let Some(url) = request.target.strip_prefix('/')
            && url.starts_with("https://")
        {
            let credential = request
                .headers
                .get(CREDENTIAL_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            match self.target_for_url(url, credential.as_deref()) {
                Ok(target) => request.target = target,
                Err(e) => return refusal(StatusCode::NOT_FOUND, e),
            }
        }
        request.headers.remove(CREDENTIAL_HEADER);
        let started = Instant::now();
        let mut record = Map::new();
        record.insert("kind".into(), "http".into());
        if let Some(p) = peer {
            record.insert("peer_pid".into(), p.pid.into());
            record.insert("peer_uid".into(), p.uid.into());
        }
        let (path, query) = match request.target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (request.target.as_str(), None),
        };
        let Some((route_name, rest)) = path
            .strip_prefix('/')
            .map(|p| p.split_once('/').unwrap_or((p, "")))
        else {
            return refusal(StatusCode::BAD_REQUEST, "request `/ROUTE/PATH`");
        };
        if request.method == Method::CONNECT {
            return refusal(
                StatusCode::METHOD_NOT_ALLOWED,
                "frona's proxy is not a CONNECT proxy; request `http://frona/ROUTE/PATH`",
            );
        }
        let credential = match self.route(route_name) {
            Ok(Some(credential)) => credential,
            Ok(None) => {
                return refusal(
                    StatusCode::NOT_FOUND,
                    format!("no credential is registered with route `{route_name}`"),
                );
            }
            Err(e) => return refusal(StatusCode::INTERNAL_SERVER_ERROR, e),
        };
        let Some(route) = credential.route.clone() else {
            return refusal(StatusCode::NOT_FOUND, "route vanished");
        };
        let Some(upstream) = upstream_of(&route.upstream) else {
            return refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("route `{route_name}` has an invalid upstream"),
            );
        };
        let upstream_path = format!("{}/{rest}", upstream.base);
        let decoded = match checked_path(&upstream_path) {
            Ok(decoded) => decoded,
            Err(e) => return refusal(StatusCode::BAD_REQUEST, e),
        };
        record.insert("method".into(), request.method.as_str().into());
        record.insert("host".into(), upstream.host.clone().into());
        record.insert("path".into(), decoded.clone().into());
        record.insert("route".into(), route_name.into());
        record.insert("credentials".into(), json!([credential.name]));
        let policy_request = http_request(
            request.method.as_str(),
            &upstream.host,
            decoded,
            credential.name.clone(),
            self.config.agent.clone(),
        );
        let prepared = match self
            .authorize_http(&record, policy_request, credential)
            .await
        {
            Ok(prepared) => prepared,
            Err(refused) => return refusal(refused.status, refused.message),
        };
        let value: Secret = prepared.env[0].1.clone();
        let response = self
            .forward(&request, &route.inject, &upstream, rest, query, &value)
            .await;
        let mut done = record;
        done.insert("kind".into(), "http-response".into());
        done.insert(
            "latency_us".into(),
            (started.elapsed().as_micros() as u64).into(),
        );
        match &response {
            Ok(response) => done.insert("status".into(), response.status().as_u16().into()),
            Err(e) => done.insert("error".into(), e.clone().into()),
        };
        // The decision was durable before the request left; the outcome is recorded without
        // holding up the answer.
        self.submit_audit(done);
        self.revoke_later(prepared.revocations);
        match response {
            Ok(response) => response,
            Err(e) => refusal(StatusCode::BAD_GATEWAY, e),
        }
    }

    /// Decides `policy_request` for `credential`, audits the decision (durable before this
    /// returns the value: no audit, no call) and prepares the value. Decided on the async
    /// thread when nothing can block (no human to ask, the value cached); otherwise on one trip
    /// to a blocking thread. The decision's record syncs while the credential is prepared.
    pub(crate) async fn authorize_http(
        self: &Arc<Self>,
        record: &Map<String, serde_json::Value>,
        policy_request: Request,
        credential: Credential,
    ) -> Result<Prepared, Refusal> {
        let decision = self.evaluate(&policy_request);
        let decided = if decision.effect == Effect::Ask {
            let broker = Arc::clone(self);
            let record = record.clone();
            tokio::task::spawn_blocking(move || {
                let (decision, grant) =
                    broker.settle(&policy_request, decision, None, &record, |id, timeout| {
                        tracing::info!(
                            "proxied call waits up to {}s for `frona approve {id}`",
                            timeout.as_secs()
                        );
                    });
                let (seq, permitted) = broker.record_decision(record, &decision, grant);
                let prepared = permitted.and_then(|issue| {
                    broker.single_value(broker.prepare_with(vec![credential], issue, true))
                });
                (seq, prepared)
            })
            .await
        } else {
            let (seq, permitted) = self.record_decision(record.clone(), &decision, None);
            match permitted {
                Err(refused) => Ok((seq, Err(refused))),
                Ok(issue) => {
                    match self.prepare_with(vec![credential.clone()], issue.clone(), false) {
                        Ok(None) => {
                            let broker = Arc::clone(self);
                            tokio::task::spawn_blocking(move || {
                                let prepared = broker.prepare_with(vec![credential], issue, true);
                                (seq, broker.single_value(prepared))
                            })
                            .await
                        }
                        ready => Ok((seq, self.single_value(ready))),
                    }
                }
            }
        };
        let Ok((seq, prepared)) = decided else {
            return Err(Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the decision failed",
            ));
        };
        if self.config.audit.durable(seq).await.is_err() {
            if let Ok(prepared) = prepared {
                self.revoke_later(prepared.revocations);
            }
            return Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the audit log cannot be written; failing closed",
            ));
        }
        prepared
    }

    /// Queues the audit record of `decision`; returns its sequence number and what to issue,
    /// or the refusal to answer with.
    fn record_decision(
        &self,
        mut record: Map<String, serde_json::Value>,
        decision: &frona_policy::Decision,
        grant: Option<String>,
    ) -> (u64, Result<frona_policy::IssueSpec, Refusal>) {
        record.insert("decision".into(), json!(decision.effect));
        record.insert("rule".into(), json!(decision.rule));
        record.insert("reason".into(), decision.reason.clone().into());
        record.insert("grant".into(), json!(grant));
        let seq = self.submit_audit(record);
        if decision.effect != Effect::Permit {
            let by = decision
                .rule
                .as_ref()
                .map(|r| format!(" by rule `{r}`"))
                .unwrap_or_default();
            let refused = Refusal {
                status: StatusCode::FORBIDDEN,
                message: format!("denied{by}: {}", decision.reason),
                rule: decision.rule.clone(),
            };
            return (seq, Err(refused));
        }
        (seq, Ok(decision.issue.clone().unwrap_or_default()))
    }

    /// The one value the proxy attaches, or the refusal; an unusable issue is revoked.
    fn single_value(
        &self,
        prepared: Result<Option<Prepared>, String>,
    ) -> Result<Prepared, Refusal> {
        match prepared {
            Ok(Some(prepared)) if prepared.env.len() == 1 => Ok(prepared),
            Ok(Some(prepared)) => {
                // Only a blocking prepare issues dynamic credentials: this never runs on an
                // async thread with something to revoke.
                self.revoke_all(prepared.revocations);
                Err(Refusal::new(
                    StatusCode::BAD_GATEWAY,
                    "the credential issues several values; the proxy attaches one",
                ))
            }
            Ok(None) => Err(Refusal::new(
                StatusCode::BAD_GATEWAY,
                "the credential could not be prepared",
            )),
            Err(e) => {
                self.issue_failed(HTTP_TOOL, &e);
                Err(Refusal::new(StatusCode::BAD_GATEWAY, e))
            }
        }
    }

    /// Revokes dynamic credentials on a blocking thread (backends are called), if there are any.
    pub(crate) fn revoke_later(
        self: &Arc<Self>,
        revocations: Vec<(crate::leases::Lease, Option<u64>)>,
    ) {
        if !revocations.is_empty() {
            let broker = Arc::clone(self);
            tokio::task::spawn_blocking(move || broker.revoke_all(revocations));
        }
    }

    /// Sends the request upstream with the credential attached; streams the answer back
    /// redacted.
    async fn forward(
        &self,
        request: &ProxyRequest,
        inject: &Inject,
        upstream: &Upstream,
        rest: &str,
        query: Option<&str>,
        value: &Secret,
    ) -> Result<ProxyResponse, String> {
        let mut url = format!("{}{}/{rest}", upstream.origin, upstream.base);
        let mut headers = forwardable(&request.headers);
        // The redactor learns every form the value takes on the wire.
        let mut wire_forms: Vec<Secret> = vec![value.clone()];
        if let Some((name, header_value)) = injected(inject, value.expose()) {
            headers.remove(&name);
            let mut on_wire = HeaderValue::from_bytes(header_value.expose())
                .map_err(|_| "the credential is not a valid header value")?;
            on_wire.set_sensitive(true);
            wire_forms.push(header_value);
            headers.insert(name, on_wire);
        }
        let mut query_parts: Vec<String> = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        if let Inject::Query(name) = inject {
            // The agent cannot supply its own value under the same name.
            query_parts.retain(|p| p.split('=').next() != Some(name.as_str()));
            let encoded: String = url::form_urlencoded::byte_serialize(value.expose()).collect();
            wire_forms.push(Secret::new(encoded.clone().into_bytes()));
            query_parts.push(format!("{name}={encoded}"));
        }
        if !query_parts.is_empty() {
            url.push('?');
            url.push_str(&query_parts.join("&"));
        }
        // Identity encoding, so that redaction sees the bytes as sent.
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        let parsed = url::Url::parse(&url).map_err(|e| format!("bad upstream URL: {e}"))?;
        if parsed.host_str() != Some(upstream.host.as_str()) || parsed.scheme() != "https" {
            return Err("the request would leave the route's host".into());
        }
        let client = self
            .http
            .get_or_init(|| Self::proxy_client().map_err(|e| error_chain(&e)))
            .as_ref()
            .map_err(|e| format!("frona cannot make HTTPS requests: {e}"))?;
        let upstream_response = client
            .request(request.method.clone(), parsed)
            .headers(headers)
            .body(request.body.clone())
            .send()
            .await
            // The URL may carry the value (query injection): errors name the host only, and
            // whatever a cause says is redacted too.
            .map_err(|e| {
                let text = error_chain(&e.without_url());
                let mut redactor = Redactor::new(wire_forms.iter().map(Secret::expose));
                let mut clean = redactor.push(text.as_bytes());
                clean.extend(redactor.finish());
                format!(
                    "upstream `{}`: {}",
                    upstream.host,
                    String::from_utf8_lossy(&clean)
                )
            })?;
        let status = upstream_response.status();
        let template = Redactor::new(wire_forms.iter().map(Secret::expose));
        let mut response_headers = redacted_headers(upstream_response.headers(), &template);
        // A redirect back into the route stays on the proxy.
        if let Some(rest) = response_headers
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.strip_prefix(&upstream.origin))
            .and_then(|l| l.strip_prefix(&upstream.base))
            .filter(|l| l.starts_with('/'))
            && let Ok(location) =
                HeaderValue::from_str(&format!("/{}{rest}", request_route(&request.target)))
        {
            response_headers.insert(header::LOCATION, location);
        }
        let mut response = http::Response::new(ProxyBody::upstream(upstream_response, template));
        *response.status_mut() = status;
        *response.headers_mut() = response_headers;
        Ok(response)
    }
}

/// The forwardable headers of an upstream response, each value run through `template`.
pub(crate) fn redacted_headers(from: &HeaderMap, template: &Redactor) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in forwardable(from) {
        let Some(name) = name else { continue };
        let mut redactor = template.clone();
        let mut bytes = redactor.push(value.as_bytes());
        bytes.extend(redactor.finish());
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            out.append(name, value);
        }
    }
    out
}

/// The route segment of a proxy target `/ROUTE/…`.
fn request_route(target: &str) -> &str {
    target
        .trim_start_matches('/')
        .split(['/', '?'])
        .next()
        .unwrap_or_default()
}

/// An error and its causes, one line (reqwest's top-level message alone says little).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Serves the proxy on `listener` until it fails: HTTP/1.1, each connection checked with
/// `SO_PEERCRED` against the agent's tree as the broker's own socket is.
pub async fn serve(broker: Arc<Broker>, listener: tokio::net::UnixListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors, say: wait instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let peer = crate::peer::peer_of(&stream).ok();
        let broker = Arc::clone(&broker);
        tokio::spawn(async move {
            let member = tokio::task::block_in_place(|| broker.in_agent_tree(peer));
            let service = hyper::service::service_fn(
                move |incoming: http::Request<hyper::body::Incoming>| {
                    let broker = Arc::clone(&broker);
                    async move {
                        if !member {
                            return Ok::<_, Infallible>(refusal(
                                StatusCode::FORBIDDEN,
                                "the caller is not part of the agent's process tree",
                            ));
                        }
                        Ok(match read_request(incoming).await {
                            Ok(request) => broker.proxy(request, peer).await,
                            Err(response) => response,
                        })
                    }
                },
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .max_buf_size(MAX_HEADERS)
                .header_read_timeout(Duration::from_secs(30))
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Reads the body (at most [`MAX_REQUEST_BODY`]).
async fn read_request(
    incoming: http::Request<hyper::body::Incoming>,
) -> Result<ProxyRequest, ProxyResponse> {
    use http_body_util::BodyExt as _;
    let (parts, body) = incoming.into_parts();
    // An absolute-form target (`GET https://host/… HTTP/1.1`, what a forward proxy gets) is
    // refused: the route alone says where a request goes.
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "frona's proxy is not a forward proxy; request `http://frona/ROUTE/PATH`",
        ));
    }
    let limited = http_body_util::Limited::new(body, MAX_REQUEST_BODY);
    let body = match limited.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Err(refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request bodies are limited to {MAX_REQUEST_BODY} bytes"),
            ));
        }
    };
    Ok(ProxyRequest {
        method: parts.method,
        target: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into()),
        headers: parts.headers,
        body,
    })
}

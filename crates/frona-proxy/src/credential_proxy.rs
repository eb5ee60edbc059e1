//! The HTTP credential proxy: the agent sends plain HTTP to `http://frona/ROUTE/PATH` on the
//! Unix socket in `FRONA_PROXY`; the proxy finds the credential registered with that route,
//! has the core decide the call (method, host, path), attaches the credential, sends the
//! request to the route's HTTPS upstream and streams the response back with the credential
//! redacted. The agent never holds the value.
//!
//! Not an open relay: only registered routes, the upstream's scheme, host and port are fixed by
//! the registry (the agent chooses only the path and query, checked for escapes), redirects are
//! never followed, hop-by-hop and proxy headers are dropped, a header the agent sends under the
//! injected name is replaced, bodies and headers are size-limited, and every call is audited
//! (method, host, path, status, latency; no bodies, no query).

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use frona_backends::Secret;
use frona_backends::registry::{Credential, Inject, Registry};
use frona_broker::audit::{AuditEvent, HttpCall, HttpResponse};
use frona_broker::peer::Peer;
use frona_broker::redact::Redactor;
use frona_broker::{Action, Broker, Call};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

use crate::http::{
    Body, PathError, Reason, Refusal, Response, checked_path, forwardable, redacted_error,
    redacted_headers, upstream,
};

/// The largest request body the proxy forwards.
pub const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;
/// Headers larger than this (in total) are refused by the server.
const MAX_HEADERS: usize = 64 * 1024;

/// Names the credential whose route an upstream URL target (`/https://…`) should take.
pub const CREDENTIAL_HEADER: &str = "x-frona-credential";

/// Why `METHOD URL` is not a call the proxy would make ([`call_for_url`]).
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("`{0}` is not an HTTP method")]
    Method(String),
    #[error("`{url}` is not a URL")]
    Url {
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error("`{0}` is not an https:// URL")]
    NotHttps(String),
    #[error(transparent)]
    Path(#[from] PathError),
}

/// Why no route answers a request.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error(transparent)]
    Registry(#[from] frona_backends::registry::RegistryError),
    #[error("no credential{} has a route for `{url}`", credential.as_ref().map(|c| format!(" `{c}`")).unwrap_or_default())]
    NoRoute {
        url: String,
        credential: Option<String>,
    },
}

/// Why a permitted request did not get an answer from its upstream.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("the credential is not a valid header value")]
    NotAHeaderValue,
    #[error("bad upstream URL")]
    Url(#[source] url::ParseError),
    #[error("the request would leave the route's host")]
    LeavesHost,
    #[error("frona cannot make HTTPS requests: {0}")]
    NoClient(String),
    /// The upstream's error, its text redacted of every form of the value.
    #[error("upstream `{host}`: {message}")]
    Upstream { host: String, message: String },
}

/// A request for the proxy, its body already read.
#[derive(Debug)]
pub struct ProxyRequest {
    pub method: Method,
    /// `/ROUTE/PATH?QUERY`, as sent to the proxy (or `/https://…`, see [`CREDENTIAL_HEADER`]).
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The credential proxy of one broker.
#[derive(Debug)]
pub struct CredentialProxy {
    broker: Broker,
    /// The HTTPS client (its connection pool shared by all calls), made on first use: a
    /// machine without CA certificates loses the proxy, not the broker.
    client: OnceLock<Result<reqwest::Client, String>>,
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

/// The call the proxy makes for `METHOD https://HOST/PATH` with `credential`.
fn http_call(
    method: &str,
    host: &str,
    path: String,
    credential: String,
    peer: Option<Peer>,
) -> Call {
    Call::new(
        peer,
        Action::Http {
            method: method.to_owned(),
            host: host.to_owned(),
            path,
        },
        vec![credential],
    )
}

/// The call the proxy would make for `METHOD URL` (for `frona policy explain --http`): the
/// method checked, the path as written (so that `%2e%2e` is refused as the proxy refuses it).
pub fn call_for_url(method: &str, url: &str, credential: String) -> Result<Call, UrlError> {
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| UrlError::Method(method.to_owned()))?;
    let parsed = url::Url::parse(url).map_err(|source| UrlError::Url {
        url: url.to_owned(),
        source,
    })?;
    let host = match (parsed.scheme(), parsed.host_str()) {
        ("https", Some(host)) => host,
        _ => return Err(UrlError::NotHttps(url.to_owned())),
    };
    // The path as written: `Url` would resolve dot segments the proxy refuses.
    let raw = url.trim_matches(|c: char| c <= ' ')["https://".len()..]
        .split(['?', '#'])
        .next()
        .unwrap_or_default();
    let path = checked_path(raw.find('/').map_or("/", |at| &raw[at..]))?;
    Ok(http_call(method.as_str(), host, path, credential, None))
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

/// The route segment of a proxy target `/ROUTE/…`.
fn request_route(target: &str) -> &str {
    target
        .trim_start_matches('/')
        .split(['/', '?'])
        .next()
        .unwrap_or_default()
}

/// A refusal as the proxy's clients read it (`{"error": …}`).
fn refused(status: StatusCode, reason: Reason, message: impl Into<String>) -> Response {
    Refusal::new(status, reason, message).json()
}

impl CredentialProxy {
    pub fn new(broker: Broker) -> Arc<Self> {
        Arc::new(Self {
            broker,
            client: OnceLock::new(),
        })
    }

    /// The credential registered for route `name`, as this agent sees it.
    fn route(&self, name: &str) -> Result<Option<Credential>, RouteError> {
        let credentials = &self.broker.credentials;
        let listed = credentials.registry().list()?;
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
            Some(credentials.agent()),
            credentials.cwd(),
        );
        Ok(resolved
            .filter(|c| c.route.as_ref().is_some_and(|r| r.name == name))
            .cloned())
    }

    /// `/ROUTE/REST` for an upstream URL given as the target `/https://host/path?query` (what
    /// `frona call URL` sends): the registered route whose upstream is the longest prefix of
    /// the URL, among those of `credential` when named.
    fn target_for_url(&self, url: &str, credential: Option<&str>) -> Result<String, RouteError> {
        let listed = self.broker.credentials.registry().list()?;
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
            None => Err(RouteError::NoRoute {
                url: url.to_owned(),
                credential: credential.map(str::to_owned),
            }),
        }
    }

    /// Carries out one proxied request from `peer` (`None`: frona's own user, `frona call`).
    pub async fn handle(&self, mut request: ProxyRequest, peer: Option<Peer>) -> Response {
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
                Err(e) => return refused(StatusCode::NOT_FOUND, Reason::NotFound, e.to_string()),
            }
        }
        request.headers.remove(CREDENTIAL_HEADER);
        let started = Instant::now();
        let (path, query) = match request.target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (request.target.as_str(), None),
        };
        let Some((route_name, rest)) = path
            .strip_prefix('/')
            .map(|p| p.split_once('/').unwrap_or((p, "")))
        else {
            return refused(
                StatusCode::BAD_REQUEST,
                Reason::BadRequest,
                "request `/ROUTE/PATH`",
            );
        };
        if request.method == Method::CONNECT {
            return refused(
                StatusCode::METHOD_NOT_ALLOWED,
                Reason::MethodNotAllowed,
                "frona's proxy is not a CONNECT proxy; request `http://frona/ROUTE/PATH`",
            );
        }
        let credential = match self.route(route_name) {
            Ok(Some(credential)) => credential,
            Ok(None) => {
                return refused(
                    StatusCode::NOT_FOUND,
                    Reason::NotFound,
                    format!("no credential is registered with route `{route_name}`"),
                );
            }
            Err(e) => {
                return refused(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Reason::Unavailable,
                    e.to_string(),
                );
            }
        };
        let Some(route) = credential.route.clone() else {
            return refused(StatusCode::NOT_FOUND, Reason::NotFound, "route vanished");
        };
        let Some(upstream) = upstream_of(&route.upstream) else {
            return refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                Reason::Unavailable,
                format!("route `{route_name}` has an invalid upstream"),
            );
        };
        let upstream_path = format!("{}/{rest}", upstream.base);
        let decoded = match checked_path(&upstream_path) {
            Ok(decoded) => decoded,
            Err(e) => return refused(StatusCode::BAD_REQUEST, Reason::BadPath, e.to_string()),
        };
        let fields = HttpCall {
            peer,
            via: None,
            method: request.method.as_str().to_owned(),
            host: upstream.host.clone(),
            path: decoded.clone(),
            route: Some(route_name.to_owned()),
            credentials: vec![credential.name.clone()],
        };
        let call = http_call(
            request.method.as_str(),
            &upstream.host,
            decoded,
            credential.name.clone(),
            peer,
        );
        let (value, leases) =
            match crate::authorize::one_value(&self.broker, call, credential, fields.clone()).await
            {
                Ok(issued) => issued,
                Err(refusal) => return refusal.json(),
            };
        let response = self
            .forward(&request, &route.inject, &upstream, rest, query, &value)
            .await;
        // The decision was durable before the request left; the outcome is recorded without
        // holding up the answer.
        let (status, error) = match &response {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(e) => (None, Some(frona_sandbox::error_chain(e))),
        };
        self.broker
            .audit
            .submit(&AuditEvent::HttpResponse(HttpResponse {
                call: fields,
                latency_us: started.elapsed().as_micros() as u64,
                status,
                error,
            }));
        self.broker.credentials.revoke_later(leases);
        match response {
            Ok(response) => response,
            Err(e) => refused(
                StatusCode::BAD_GATEWAY,
                Reason::UpstreamFailed,
                frona_sandbox::error_chain(&e),
            ),
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
    ) -> Result<Response, ForwardError> {
        let mut url = format!("{}{}/{rest}", upstream.origin, upstream.base);
        let mut headers = forwardable(&request.headers);
        // The redactor learns every form the value takes on the wire.
        let mut wire_forms: Vec<Secret> = vec![value.clone()];
        if let Some((name, header_value)) = injected(inject, value.expose()) {
            headers.remove(&name);
            let mut on_wire = HeaderValue::from_bytes(header_value.expose())
                .map_err(|_| ForwardError::NotAHeaderValue)?;
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
        let parsed = url::Url::parse(&url).map_err(ForwardError::Url)?;
        if parsed.host_str() != Some(upstream.host.as_str()) || parsed.scheme() != "https" {
            return Err(ForwardError::LeavesHost);
        }
        let client = self
            .client
            .get_or_init(|| upstream::https_client().map_err(|e| frona_sandbox::error_chain(&e)))
            .as_ref()
            .map_err(|e| ForwardError::NoClient(e.clone()))?;
        let template = Redactor::new(wire_forms.iter().map(Secret::expose));
        let upstream_response = client
            .request(request.method.clone(), parsed)
            .headers(headers)
            .body(request.body.clone())
            .send()
            .await
            // The URL may carry the value (query injection): errors name the host only, and
            // whatever a cause says is redacted too.
            .map_err(|e| ForwardError::Upstream {
                host: upstream.host.clone(),
                message: redacted_error(&e.without_url(), &template),
            })?;
        let status = upstream_response.status();
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
        let body = {
            use http_body_util::BodyExt as _;
            reqwest::Body::from(upstream_response)
                .map_err(|e| frona_sandbox::error_chain(&e.without_url()))
                .boxed()
        };
        let mut response = http::Response::new(Body::redacted(body, template));
        *response.status_mut() = status;
        *response.headers_mut() = response_headers;
        Ok(response)
    }
}

/// Serves the proxy on `listener` until it fails: HTTP/1.1, each connection checked with
/// `SO_PEERCRED` against the agent's tree as the broker's own socket is.
pub async fn serve(proxy: Arc<CredentialProxy>, listener: tokio::net::UnixListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors, say: wait instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let peer = frona_broker::peer::peer_of(&stream).ok();
        let proxy = Arc::clone(&proxy);
        tokio::spawn(async move {
            let member = tokio::task::block_in_place(|| proxy.broker.session.in_agent_tree(peer));
            let service = hyper::service::service_fn(
                move |incoming: http::Request<hyper::body::Incoming>| {
                    let proxy = Arc::clone(&proxy);
                    async move {
                        if !member {
                            return Ok::<_, Infallible>(refused(
                                StatusCode::FORBIDDEN,
                                Reason::NotAllowed,
                                "the caller is not part of the agent's process tree",
                            ));
                        }
                        Ok(match read_request(incoming).await {
                            Ok(request) => proxy.handle(request, peer).await,
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
) -> Result<ProxyRequest, Response> {
    use http_body_util::BodyExt as _;
    let (parts, body) = incoming.into_parts();
    // An absolute-form target (`GET https://host/… HTTP/1.1`, what a forward proxy gets) is
    // refused: the route alone says where a request goes.
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        return Err(refused(
            StatusCode::BAD_REQUEST,
            Reason::BadRequest,
            "frona's proxy is not a forward proxy; request `http://frona/ROUTE/PATH`",
        ));
    }
    let limited = http_body_util::Limited::new(body, MAX_REQUEST_BODY);
    let body = match limited.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Err(refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                Reason::TooLarge,
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

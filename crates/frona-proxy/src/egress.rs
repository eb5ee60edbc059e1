//! The egress proxy of `frona run --net proxy`: an HTTP forward proxy, the agent's only way off
//! its loopback-only network. It accepts on `127.0.0.1:PORT` inside the agent's network
//! namespace, a listening socket frona's init helper binds there and hands over
//! ([`serve_handed_over`], `listener.rs`), and on a Unix socket in the session's private
//! directory ([`serve`]).
//!
//! - `CONNECT host:port` (HTTPS and anything else tunnelled): the host and port are decided,
//!   the name resolved, every address checked, and on success the proxy connects to a checked
//!   address, answers `200` and copies bytes both ways. It never sees inside the tunnel; when
//!   the tunnel closes it audits how many bytes went each way (`kind: egress-close`,
//!   `crate::tunnel`).
//! - Absolute-form requests (`GET http://host[:port]/path`) for plain HTTP: decided the same
//!   way and forwarded with hop-by-hop and proxy headers dropped and `Host` set from the URL,
//!   so that a request cannot name a different virtual host than the one decided on.
//!
//! Decisions come from the policy's `network:` entries and `--allow-host`
//! ([`frona_policy::network`], through the [`frona_broker::Decider`]): deny wins, and a name
//! resolving to a loopback, private, link-local, shared, metadata or otherwise non-public
//! address is refused unless that address is allowed itself. The name is resolved once, here,
//! and the connection goes to an address that was checked ([`upstream::Checked`]): no second
//! lookup can swap it (DNS rebinding). A refusal is `403` with an `x-frona-error` header naming
//! the deciding rule (`denied by rule "NAME"`) or saying `not allowed`, and a one-line body.
//! Every request is audited (`kind: egress`: method, host, port, decision, rule, reason, the
//! addresses connected to; a plain request's path without its query; never a body), and an
//! allowed one is on disk before the connection is made.
//!
//! Only the agent's tree may connect: on the Unix socket `SO_PEERCRED` says who, as for the
//! other sockets; the handed-over socket can only be reached from inside the agent's network
//! namespace. Bound credentials' hosts are not tunnelled but terminated ([`crate::intercept`]),
//! and `GET /frona/aws-credentials` in origin form is the AWS container credentials endpoint
//! ([`crate::aws_endpoint`]).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use frona_broker::Broker;
use frona_broker::audit::{AuditEvent, Outcome};
use frona_broker::peer::Peer;
use frona_policy::network::{EgressDecision, EgressRequest, Target};
use http::header::{self, HeaderValue};
use http::{Method, StatusCode, Uri};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::aws_endpoint::AwsEndpoint;
use crate::http::upstream::{self, Checked, UpstreamError};
use crate::http::{Body, Reason, Refusal, Response, forwardable};
use crate::intercept::Intercept;
use crate::tunnel::{self, Tunnels};

// Handing the agent's listening socket over from frona's init helper.
mod listener;
// `--proxy-resolve HOST=ADDR` (frona run).
mod overrides;
mod resolve;

pub use listener::serve_handed_over;
pub use overrides::{OverrideError, StaticOverrides, parse_override};
pub use resolve::{Resolve, SystemResolver};

/// Connections served at once; more are closed unanswered.
pub const MAX_CONNECTIONS: usize = 512;

/// How long resolving a name may take.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Request headers larger than this are refused.
const MAX_HEADERS: usize = 64 * 1024;

/// The egress proxy of one broker session.
#[derive(Debug)]
pub struct Egress {
    broker: Broker,
    resolver: Arc<dyn Resolve>,
    /// TLS termination for the hosts credentials are bound to.
    intercept: Option<Arc<Intercept>>,
    /// The AWS container credentials endpoint.
    aws: Option<Arc<AwsEndpoint>>,
    tunnels: Tunnels,
}

/// The egress proxy's own answer (the connection closes after it).
fn answer(status: StatusCode, reason: Reason, message: &str) -> Response {
    Refusal::new(status, reason, message).text_closing()
}

/// A refusal by the egress rules: `403`, naming the rule or saying `not allowed`.
fn forbidden(decision: &EgressDecision, what: &str) -> Response {
    let by = decision
        .rule
        .as_ref()
        .map(|r| format!(" (rule `{r}`)"))
        .unwrap_or_default();
    Refusal::forbidden(
        decision.rule.as_deref(),
        format!("{what} refused: {}{by}", decision.reason),
    )
    .text_closing()
}

/// The host and port of a CONNECT target or an absolute URL.
fn host_and_port(uri: &Uri, default_port: Option<u16>) -> Option<(String, u16)> {
    let authority = uri.authority()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let port = authority.port_u16().or(default_port)?;
    Some((authority.host().to_owned(), port))
}

impl Egress {
    pub fn new(broker: Broker, resolver: Arc<dyn Resolve>) -> Self {
        Self {
            broker,
            resolver,
            intercept: None,
            aws: None,
            tunnels: Tunnels::default(),
        }
    }

    /// Terminates TLS for the hosts `intercept` binds credentials to.
    pub fn with_intercept(mut self, intercept: Arc<Intercept>) -> Self {
        self.intercept = Some(intercept);
        self
    }

    /// Serves the AWS container credentials endpoint.
    pub fn with_aws(mut self, endpoint: Arc<AwsEndpoint>) -> Self {
        self.aws = Some(endpoint);
        self
    }

    /// The `CONNECT` tunnels open now.
    pub fn tunnels(&self) -> &Tunnels {
        &self.tunnels
    }

    /// Decides a connection to `host:port` for the agent, resolves it and checks every
    /// address; returns the addresses to try, or the answer refusing it. The decision is
    /// audited, and durable before an allowed connection is made.
    async fn decide(
        &self,
        method: &Method,
        host: &str,
        port: u16,
        path: Option<String>,
        peer: Option<Peer>,
    ) -> Result<Checked, Response> {
        let what = format!("{method} {host}:{port}");
        let Some(target) = Target::parse(host) else {
            return Err(answer(
                StatusCode::BAD_REQUEST,
                Reason::BadHost,
                &format!("`{host}` is not a host name or an address"),
            ));
        };
        let record =
            |decision: Outcome, rule: Option<String>, reason: String| frona_broker::audit::Egress {
                peer,
                method: method.as_str().to_owned(),
                host: target.to_string(),
                port,
                path: path.clone(),
                decision,
                rule,
                reason,
                addresses: None,
                skipped: None,
            };
        let audit = &self.broker.audit;
        let refuse = |decision: &EgressDecision| {
            audit.submit(&AuditEvent::Egress(record(
                Outcome::Deny,
                decision.rule.clone(),
                decision.reason.clone(),
            )));
            forbidden(decision, &what)
        };
        let request = EgressRequest {
            target: target.clone(),
            port,
            agent: self.broker.session.agent.clone(),
            time: jiff::Timestamp::now(),
        };
        let decider = &self.broker.decider;
        let decision = decider.egress(&request);
        if !decision.allowed {
            return Err(refuse(&decision));
        }
        let addresses = match &target {
            Target::Ip(ip) => Ok(vec![*ip]),
            Target::Name(name) => {
                match tokio::time::timeout(RESOLVE_TIMEOUT, self.resolver.resolve(name, port)).await
                {
                    Ok(Ok(found)) if !found.is_empty() => Ok(found),
                    Ok(Ok(_)) => Err("no address".to_owned()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer within {}s", RESOLVE_TIMEOUT.as_secs())),
                }
            }
        };
        let addresses = match addresses {
            Ok(addresses) => addresses,
            Err(e) => {
                audit.submit(&AuditEvent::Egress(record(
                    Outcome::Error,
                    decision.rule.clone(),
                    format!("cannot resolve: {e}"),
                )));
                return Err(answer(
                    StatusCode::BAD_GATEWAY,
                    Reason::CannotResolve,
                    &format!("{what}: cannot resolve `{target}`: {e}"),
                ));
            }
        };
        let mut usable = Vec::new();
        let mut refused = None;
        for ip in addresses {
            match decider.egress_address(&request, ip) {
                None => usable.push(SocketAddr::new(ip, port)),
                Some(why) => {
                    refused.get_or_insert(why);
                }
            }
        }
        if usable.is_empty() {
            let why = refused.unwrap_or(EgressDecision {
                allowed: false,
                rule: None,
                reason: "no address".into(),
            });
            return Err(refuse(&why));
        }
        let mut permitted = record(
            Outcome::Permit,
            decision.rule.clone(),
            decision.reason.clone(),
        );
        permitted.addresses = Some(usable.iter().map(|a| a.ip().to_string()).collect());
        permitted.skipped = refused.map(|skipped| skipped.reason);
        let seq = audit.submit(&AuditEvent::Egress(permitted));
        // No audit, no connection.
        if audit.durable(seq).await.is_err() {
            return Err(Refusal::audit_unavailable().text_closing());
        }
        Ok(Checked::new(usable))
    }

    /// Answers one request on the egress socket. `slot` is the connection's place among the
    /// [`MAX_CONNECTIONS`]: a `CONNECT` tunnel holds it until the tunnel closes.
    pub async fn handle(
        self: &Arc<Self>,
        mut request: http::Request<Incoming>,
        peer: Option<Peer>,
        slot: Arc<tokio::sync::OwnedSemaphorePermit>,
    ) -> Response {
        if request.method() == Method::CONNECT {
            let Some((host, port)) = host_and_port(request.uri(), None) else {
                return answer(
                    StatusCode::BAD_REQUEST,
                    Reason::BadRequest,
                    "CONNECT needs a target `host:port`",
                );
            };
            let what = format!("CONNECT {host}:{port}");
            let checked = match self.decide(&Method::CONNECT, &host, port, None, peer).await {
                Ok(checked) => checked,
                Err(response) => return response,
            };
            let upgrade = hyper::upgrade::on(&mut request);
            // A host a credential is bound to: TLS ends here and each request is decided.
            if let Some(intercept) = self
                .intercept
                .as_ref()
                .filter(|i| i.terminates(&host, port))
            {
                let intercept = Arc::clone(intercept);
                let tunnels = self.tunnels.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    if let Ok(upgraded) = upgrade.await {
                        intercept
                            .serve_tunnel(upgraded, host, port, checked, peer, &tunnels)
                            .await;
                    }
                });
                return http::Response::new(Body::empty());
            }
            let upstream =
                match upstream::connect_audited(&self.broker.audit, &checked, &what).await {
                    Ok(stream) => stream,
                    Err(e) => return upstream::unreachable(&what, &e),
                };
            // Copied byte for byte; `kind: egress-close` with the counts when it ends.
            let egress = Arc::clone(self);
            tokio::spawn(async move {
                let _slot = slot;
                if let Ok(upgraded) = upgrade.await {
                    tunnel::copy(
                        &egress.broker.audit,
                        &egress.tunnels,
                        upgraded,
                        upstream,
                        &host,
                        port,
                        peer,
                    )
                    .await;
                }
            });
            return http::Response::new(Body::empty());
        }
        let uri = request.uri().clone();
        match uri.scheme_str() {
            Some("http") => {}
            Some(_) => {
                return answer(
                    StatusCode::BAD_REQUEST,
                    Reason::BadRequest,
                    "only http:// URLs are forwarded; HTTPS goes through CONNECT",
                );
            }
            // `frona run`'s AWS container credentials endpoint (aws_endpoint.rs).
            None if uri.path() == crate::aws_endpoint::PATH => {
                return match &self.aws {
                    Some(endpoint) => endpoint.handle(&request, peer),
                    None => crate::aws_endpoint::not_served(),
                };
            }
            None => {
                return answer(
                    StatusCode::BAD_REQUEST,
                    Reason::BadRequest,
                    "this is frona's egress proxy: send `CONNECT host:port` or an absolute \
                     `http://` URL (set HTTP_PROXY/HTTPS_PROXY)",
                );
            }
        }
        let Some((host, port)) = host_and_port(&uri, Some(80)) else {
            return answer(
                StatusCode::BAD_REQUEST,
                Reason::BadRequest,
                "the URL has no host",
            );
        };
        let what = format!("{} {host}:{port}", request.method());
        let path = uri.path().to_owned();
        let checked = match self
            .decide(request.method(), &host, port, Some(path), peer)
            .await
        {
            Ok(checked) => checked,
            Err(response) => return response,
        };
        // Placeholders never travel in clear: not swapped, and audited.
        if let Some(intercept) = &self.intercept {
            intercept.audit_unbound_placeholders(
                request.headers(),
                uri.query(),
                &host,
                port,
                "http",
                peer,
            );
        }
        let upstream = match upstream::connect_audited(&self.broker.audit, &checked, &what).await {
            Ok(stream) => stream,
            Err(e) => return upstream::unreachable(&what, &e),
        };
        match forward(request, upstream, &host, port).await {
            Ok(response) => response,
            Err(e) => answer(
                StatusCode::BAD_GATEWAY,
                Reason::UpstreamFailed,
                &format!("{what}: {}", frona_sandbox::error_chain(&e)),
            ),
        }
    }
}

/// Sends `request` over `upstream` in origin form with `Host` from its URL; returns the
/// response to stream back.
async fn forward(
    request: http::Request<Incoming>,
    upstream: tokio::net::TcpStream,
    host: &str,
    port: u16,
) -> Result<Response, UpstreamError> {
    let (parts, body) = request.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut headers = forwardable(&parts.headers);
    let host_header = if port == 80 {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    };
    headers.insert(
        header::HOST,
        HeaderValue::from_str(&host_header).map_err(|_| UpstreamError::Request("bad host"))?,
    );
    let mut outgoing = http::Request::new(body);
    *outgoing.method_mut() = parts.method;
    *outgoing.uri_mut() = target
        .parse::<Uri>()
        .map_err(|_| UpstreamError::Request("the request target is invalid"))?;
    *outgoing.headers_mut() = headers;
    let mut sender = upstream::http1(upstream).await?;
    let response = sender.send_request(outgoing).await?;
    let (mut parts, body) = response.into_parts();
    parts.headers = forwardable(&parts.headers);
    Ok(http::Response::from_parts(parts, Body::passthrough(body)))
}

/// Serves the egress proxy on `listener` until it fails. Each connection is checked with
/// `SO_PEERCRED` against the agent's tree; at most [`MAX_CONNECTIONS`] connections and
/// tunnels are open at once (more are closed unanswered).
pub async fn serve(egress: Arc<Egress>, listener: tokio::net::UnixListener) {
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        let Some((stream, permit)) = admitted(accepted, &open).await else {
            continue;
        };
        let peer = frona_broker::peer::peer_of(&stream).ok();
        let egress = Arc::clone(&egress);
        tokio::spawn(async move {
            let member = tokio::task::block_in_place(|| egress.broker.session.in_agent_tree(peer));
            serve_connection(egress, stream, peer, member, permit).await;
        });
    }
}

/// An accepted connection with its place among the [`MAX_CONNECTIONS`], or `None`: after an
/// accept error (out of descriptors, say: waited out rather than spun on), or when every place
/// is taken (the connection is closed unanswered).
async fn admitted<S>(
    accepted: io::Result<S>,
    open: &Arc<tokio::sync::Semaphore>,
) -> Option<(S, tokio::sync::OwnedSemaphorePermit)> {
    let Ok(stream) = accepted else {
        tokio::time::sleep(Duration::from_millis(50)).await;
        return None;
    };
    match Arc::clone(open).try_acquire_owned() {
        Ok(permit) => Some((stream, permit)),
        Err(_) => {
            tracing::warn!("egress proxy: {MAX_CONNECTIONS} connections open; closing a new one");
            None
        }
    }
}

/// Serves HTTP/1.1 (with `CONNECT` upgrades) on one connection; `member` says whether its
/// peer is in the agent's tree (everyone else gets `403`).
async fn serve_connection<S>(
    egress: Arc<Egress>,
    stream: S,
    peer: Option<Peer>,
    member: bool,
    permit: tokio::sync::OwnedSemaphorePermit,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // Held by this task and by any tunnel the connection becomes.
    let slot = Arc::new(permit);
    let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
        let egress = Arc::clone(&egress);
        let slot = Arc::clone(&slot);
        async move {
            if !member {
                return Ok::<_, Infallible>(answer(
                    StatusCode::FORBIDDEN,
                    Reason::NotAllowed,
                    "the caller is not part of the agent's process tree",
                ));
            }
            Ok(egress.handle(request, peer, slot).await)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .max_buf_size(MAX_HEADERS)
        .header_read_timeout(Duration::from_secs(30))
        .timer(hyper_util::rt::TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}

#[cfg(test)]
mod tests;

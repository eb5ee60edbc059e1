//! The egress proxy of `frona run --net proxy`: an HTTP forward proxy, the agent's only way off
//! its loopback-only network. It accepts on `127.0.0.1:PORT` inside the agent's network
//! namespace, a listening socket frona's init helper binds there and hands over
//! ([`serve_handed_over`], `frona_sandbox::isolation::EgressListener`), and on a Unix socket in
//! the session's private directory ([`serve`]).
//!
//! - `CONNECT host:port` (HTTPS and anything else tunnelled): the host and port are decided,
//!   the name resolved, every address checked, and on success the proxy connects to a checked
//!   address, answers `200` and copies bytes both ways. It never sees inside the tunnel; when
//!   the tunnel closes it audits how many bytes went each way (`kind: egress-close`).
//! - Absolute-form requests (`GET http://host[:port]/path`) for plain HTTP: decided the same
//!   way and forwarded with hop-by-hop and proxy headers dropped and `Host` set from the URL,
//!   so that a request cannot name a different virtual host than the one decided on.
//!
//! Decisions come from the policy's `network:` entries and `--allow-host`
//! ([`frona_policy::network`]): deny wins, and a name resolving to a loopback, private,
//! link-local, shared, metadata or otherwise non-public address is refused unless that address
//! is allowed itself. The name is resolved once, here, and the connection goes to an address
//! that was checked: no second lookup can swap it (DNS rebinding). A refusal is `403` with an
//! `x-frona-error` header naming the deciding rule (`denied by rule "NAME"`) or saying `not
//! allowed`, and a one-line body. Every request is audited (`kind: egress`: method, host, port,
//! decision, rule, reason, the addresses connected to; a plain request's path without its
//! query; never a body), and an allowed one is on disk before the connection is made.
//!
//! Only the agent's tree may connect: on the Unix socket `SO_PEERCRED` says who, as for the
//! other sockets; the handed-over socket can only be reached from inside the agent's network
//! namespace. Bound credentials' hosts are not tunnelled but terminated ([`crate::intercept`]),
//! and `GET /frona/aws-credentials` in origin form is the AWS container credentials endpoint
//! ([`crate::container_credentials`]).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use frona_policy::network::{EgressDecision, EgressRequest, Target};
use http::header::{self, HeaderValue};
use http::{Method, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};

use crate::peer::Peer;
use crate::server::Broker;

// `--proxy-resolve HOST=ADDR` (frona run).
mod overrides;
pub use overrides::{OverrideError, StaticOverrides, parse_override};
// `CONNECT` tunnels copied byte for byte, and their `kind: egress-close` records.
pub(crate) mod tunnel;

/// The header that says why the proxy refused.
pub const ERROR_HEADER: &str = "x-frona-error";

/// Connections served at once; more are closed unanswered.
pub const MAX_CONNECTIONS: usize = 512;

/// How long resolving a name may take.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to one address may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Request headers larger than this are refused.
const MAX_HEADERS: usize = 64 * 1024;

/// A proxy response body: the proxy's own short answer or the upstream's, streamed.
pub type EgressBody = BoxBody<Bytes, hyper::Error>;

/// Resolves host names for the proxy. The system resolver in production; tests map names to
/// the addresses they need.
pub trait Resolve: Send + Sync + std::fmt::Debug {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>>;
}

/// `getaddrinfo`, on tokio's blocking pool.
#[derive(Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host, port)).await?;
            let mut ips: Vec<IpAddr> = Vec::new();
            for addr in addrs {
                if !ips.contains(&addr.ip()) {
                    ips.push(addr.ip());
                }
            }
            Ok(ips)
        })
    }
}

fn full(bytes: impl Into<Bytes>) -> EgressBody {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// The proxy's own answer: `status`, `x-frona-error: error_header`, and `message` as the body;
/// the connection closes after it.
fn answer(status: StatusCode, error_header: &str, message: &str) -> http::Response<EgressBody> {
    let mut response = own_answer(status, error_header, message, full);
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// An answer the proxy makes itself (not an upstream's), in any body type: `status`,
/// `x-frona: refused`, `x-frona-error: error_header`, and `frona: MESSAGE` as plain text.
pub(crate) fn own_answer<B>(
    status: StatusCode,
    error_header: &str,
    message: &str,
    body: impl FnOnce(String) -> B,
) -> http::Response<B> {
    let mut response = http::Response::new(body(format!("frona: {message}\n")));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert("x-frona", HeaderValue::from_static("refused"));
    headers.insert(
        ERROR_HEADER,
        HeaderValue::from_str(error_header).unwrap_or_else(|_| HeaderValue::from_static("refused")),
    );
    response
}

/// A refusal by the egress rules: `403`, naming the rule or saying `not allowed`.
fn forbidden(decision: &EgressDecision, what: &str) -> http::Response<EgressBody> {
    let header = match &decision.rule {
        Some(rule) => format!("denied by rule \"{rule}\""),
        None => "not allowed".to_owned(),
    };
    let header = if HeaderValue::from_str(&header).is_ok() {
        header
    } else {
        "denied by a rule".to_owned()
    };
    let by = decision
        .rule
        .as_ref()
        .map(|r| format!(" (rule `{r}`)"))
        .unwrap_or_default();
    answer(
        StatusCode::FORBIDDEN,
        &header,
        &format!("{what} refused: {}{by}", decision.reason),
    )
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

impl Broker {
    /// Decides a connection to `host:port` for the agent, resolves it and checks every
    /// address; returns the addresses to try, or the answer refusing it. The decision is
    /// audited, and durable before an allowed connection is made.
    async fn egress_decide(
        &self,
        resolver: &dyn Resolve,
        method: &Method,
        host: &str,
        port: u16,
        path: Option<String>,
        peer: Option<Peer>,
    ) -> Result<Vec<SocketAddr>, http::Response<EgressBody>> {
        let what = format!("{method} {host}:{port}");
        let Some(target) = Target::parse(host) else {
            return Err(answer(
                StatusCode::BAD_REQUEST,
                "bad host",
                &format!("`{host}` is not a host name or an address"),
            ));
        };
        let mut record = Map::new();
        record.insert("kind".into(), "egress".into());
        record.insert("method".into(), method.as_str().into());
        record.insert("host".into(), target.to_string().into());
        record.insert("port".into(), port.into());
        if let Some(path) = path {
            record.insert("path".into(), path.into());
        }
        if let Some(p) = peer {
            record.insert("peer_pid".into(), p.pid.into());
            record.insert("peer_uid".into(), p.uid.into());
        }
        let request = EgressRequest {
            target: target.clone(),
            port,
            agent: self.config.agent.clone(),
            time: jiff::Timestamp::now(),
        };
        let refuse = |mut record: Map<String, Value>, decision: &EgressDecision| {
            record.insert("decision".into(), "deny".into());
            record.insert("rule".into(), json!(decision.rule));
            record.insert("reason".into(), decision.reason.clone().into());
            self.submit_audit(record);
            forbidden(decision, &what)
        };
        let decision = self.config.policy.egress(&request);
        if !decision.allowed {
            return Err(refuse(record, &decision));
        }
        let addresses = match &target {
            Target::Ip(ip) => Ok(vec![*ip]),
            Target::Name(name) => {
                match tokio::time::timeout(RESOLVE_TIMEOUT, resolver.resolve(name, port)).await {
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
                record.insert("decision".into(), "error".into());
                record.insert("rule".into(), json!(decision.rule));
                record.insert("reason".into(), format!("cannot resolve: {e}").into());
                self.submit_audit(record);
                return Err(answer(
                    StatusCode::BAD_GATEWAY,
                    "cannot resolve",
                    &format!("{what}: cannot resolve `{target}`: {e}"),
                ));
            }
        };
        let mut usable = Vec::new();
        let mut refused = None;
        for ip in addresses {
            match self.config.policy.egress_address(&request, ip) {
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
            return Err(refuse(record, &why));
        }
        record.insert("decision".into(), "permit".into());
        record.insert("rule".into(), json!(decision.rule));
        record.insert("reason".into(), decision.reason.clone().into());
        record.insert(
            "addresses".into(),
            json!(
                usable
                    .iter()
                    .map(|a| a.ip().to_string())
                    .collect::<Vec<_>>()
            ),
        );
        if let Some(skipped) = &refused {
            record.insert("skipped".into(), skipped.reason.clone().into());
        }
        let seq = self.submit_audit(record);
        // No audit, no connection.
        if self.config.audit.durable(seq).await.is_err() {
            return Err(answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit log unavailable",
                "the audit log cannot be written; failing closed",
            ));
        }
        Ok(usable)
    }

    /// Connects to the first address that answers.
    pub(crate) async fn egress_connect(
        &self,
        addresses: &[SocketAddr],
        what: &str,
    ) -> Result<tokio::net::TcpStream, http::Response<EgressBody>> {
        let mut last = String::from("no address");
        for addr in addresses {
            match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await
            {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Ok(Err(e)) => last = format!("{addr}: {e}"),
                Err(_) => last = format!("{addr}: no answer within {}s", CONNECT_TIMEOUT.as_secs()),
            }
        }
        let mut record = Map::new();
        record.insert("kind".into(), "egress-error".into());
        record.insert("reason".into(), format!("{what}: {last}").into());
        self.submit_audit(record);
        Err(answer(
            StatusCode::BAD_GATEWAY,
            "upstream unreachable",
            &format!("{what}: cannot connect: {last}"),
        ))
    }

    /// Answers one request on the egress socket. `slot` is the connection's place among the
    /// [`MAX_CONNECTIONS`]: a `CONNECT` tunnel holds it until the tunnel closes.
    pub async fn egress(
        self: &Arc<Self>,
        resolver: &dyn Resolve,
        mut request: http::Request<Incoming>,
        peer: Option<Peer>,
        slot: Arc<tokio::sync::OwnedSemaphorePermit>,
    ) -> http::Response<EgressBody> {
        if request.method() == Method::CONNECT {
            let Some((host, port)) = host_and_port(request.uri(), None) else {
                return answer(
                    StatusCode::BAD_REQUEST,
                    "bad request",
                    "CONNECT needs a target `host:port`",
                );
            };
            let what = format!("CONNECT {host}:{port}");
            let addresses = match self
                .egress_decide(resolver, &Method::CONNECT, &host, port, None, peer)
                .await
            {
                Ok(addresses) => addresses,
                Err(response) => return response,
            };
            let upgrade = hyper::upgrade::on(&mut request);
            // A host a credential is bound to: TLS ends here and each request is decided.
            if self
                .intercept
                .get()
                .is_some_and(|i| i.terminates(&host, port))
            {
                let broker = Arc::clone(self);
                tokio::spawn(async move {
                    let _slot = slot;
                    if let Ok(upgraded) = upgrade.await {
                        broker
                            .intercept_tunnel(upgraded, host, port, addresses, peer)
                            .await;
                    }
                });
                return http::Response::new(full(Bytes::new()));
            }
            let upstream = match self.egress_connect(&addresses, &what).await {
                Ok(stream) => stream,
                Err(response) => return response,
            };
            // Copied byte for byte; `kind: egress-close` with the counts when it ends.
            let broker = Arc::clone(self);
            tokio::spawn(async move {
                let _slot = slot;
                if let Ok(upgraded) = upgrade.await {
                    broker
                        .copy_tunnel(upgraded, upstream, &host, port, peer)
                        .await;
                }
            });
            return http::Response::new(full(Bytes::new()));
        }
        let uri = request.uri().clone();
        match uri.scheme_str() {
            Some("http") => {}
            Some(_) => {
                return answer(
                    StatusCode::BAD_REQUEST,
                    "bad request",
                    "only http:// URLs are forwarded; HTTPS goes through CONNECT",
                );
            }
            // `frona run`'s AWS container credentials endpoint (container_credentials.rs).
            None if uri.path() == crate::container_credentials::PATH => {
                return self.aws_credentials(&request, peer);
            }
            None => {
                return answer(
                    StatusCode::BAD_REQUEST,
                    "bad request",
                    "this is frona's egress proxy: send `CONNECT host:port` or an absolute \
                     `http://` URL (set HTTP_PROXY/HTTPS_PROXY)",
                );
            }
        }
        let Some((host, port)) = host_and_port(&uri, Some(80)) else {
            return answer(
                StatusCode::BAD_REQUEST,
                "bad request",
                "the URL has no host",
            );
        };
        let what = format!("{} {host}:{port}", request.method());
        let path = uri.path().to_owned();
        let addresses = match self
            .egress_decide(resolver, request.method(), &host, port, Some(path), peer)
            .await
        {
            Ok(addresses) => addresses,
            Err(response) => return response,
        };
        // Placeholders never travel in clear: not swapped, and audited.
        self.audit_unbound_placeholders(request.headers(), uri.query(), &host, port, "http", peer);
        let upstream = match self.egress_connect(&addresses, &what).await {
            Ok(stream) => stream,
            Err(response) => return response,
        };
        match forward(request, upstream, &host, port).await {
            Ok(response) => response,
            Err(e) => answer(
                StatusCode::BAD_GATEWAY,
                "upstream failed",
                &format!("{what}: {e}"),
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
) -> Result<http::Response<EgressBody>, String> {
    let (parts, body) = request.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut headers = crate::proxy::forwardable(&parts.headers);
    let host_header = if port == 80 {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    };
    headers.insert(
        header::HOST,
        HeaderValue::from_str(&host_header).map_err(|_| "bad host")?,
    );
    let mut outgoing = http::Request::new(body);
    *outgoing.method_mut() = parts.method;
    *outgoing.uri_mut() = target.parse::<Uri>().map_err(|e| e.to_string())?;
    *outgoing.headers_mut() = headers;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(upstream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender
        .send_request(outgoing)
        .await
        .map_err(|e| e.to_string())?;
    let (mut parts, body) = response.into_parts();
    parts.headers = crate::proxy::forwardable(&parts.headers);
    Ok(http::Response::from_parts(parts, body.boxed()))
}

/// Serves the egress proxy on `listener` until it fails. Each connection is checked with
/// `SO_PEERCRED` against the agent's tree; at most [`MAX_CONNECTIONS`] connections and
/// tunnels are open at once (more are closed unanswered).
pub async fn serve(
    broker: Arc<Broker>,
    listener: tokio::net::UnixListener,
    resolver: Arc<dyn Resolve>,
) {
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        let Some((stream, permit)) = admitted(accepted, &open).await else {
            continue;
        };
        let peer = crate::peer::peer_of(&stream).ok();
        let broker = Arc::clone(&broker);
        let resolver = Arc::clone(&resolver);
        tokio::spawn(async move {
            let member = tokio::task::block_in_place(|| broker.in_agent_tree(peer));
            serve_connection(broker, stream, peer, member, resolver, permit).await;
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
    broker: Arc<Broker>,
    stream: S,
    peer: Option<Peer>,
    member: bool,
    resolver: Arc<dyn Resolve>,
    permit: tokio::sync::OwnedSemaphorePermit,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // Held by this task and by any tunnel the connection becomes.
    let slot = Arc::new(permit);
    let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
        let broker = Arc::clone(&broker);
        let resolver = Arc::clone(&resolver);
        let slot = Arc::clone(&slot);
        async move {
            if !member {
                return Ok::<_, Infallible>(answer(
                    StatusCode::FORBIDDEN,
                    "not allowed",
                    "the caller is not part of the agent's process tree",
                ));
            }
            Ok(broker.egress(&*resolver, request, peer, slot).await)
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

/// Takes the agent's listening socket from frona's init helper and serves the egress proxy on
/// it: the init helper binds `127.0.0.1:PORT` inside the agent's network namespace before the
/// agent exists and sends the socket here (`SCM_RIGHTS`), so that the agent's connections
/// reach the proxy directly, with no relay copying bytes in between. Only one hand-over is
/// taken, the first from the agent's tree (`SO_PEERCRED`), which is the init helper's: it
/// hands over before it forks the agent. Only a listening TCP socket on a loopback address. Every connection accepted on it comes from inside the
/// agent's namespace, whose loopback nothing else reaches: it is the agent's tree, and is
/// recorded as the init helper (the root of that tree).
pub async fn serve_handed_over(
    broker: Arc<Broker>,
    handoff: tokio::net::UnixListener,
    resolver: Arc<dyn Resolve>,
) {
    let (listener, peer) = loop {
        let Ok((stream, _)) = handoff.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let for_check = Arc::clone(&broker);
        let taken = tokio::task::spawn_blocking(move || take_listener(&for_check, stream)).await;
        match taken {
            Ok(Ok(taken)) => break taken,
            Ok(Err(e)) => tracing::warn!("egress proxy: a listener hand-over was refused: {e}"),
            Err(_) => {}
        }
    };
    drop(handoff);
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        let Some((stream, permit)) = admitted(accepted, &open).await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            Arc::clone(&broker),
            stream,
            Some(peer),
            true,
            Arc::clone(&resolver),
            permit,
        ));
    }
}

/// Receives the listening socket on `stream` (blocking, bounded by a timeout) after checking
/// who sends it; acknowledges with one byte.
#[allow(unsafe_code)]
fn take_listener(
    broker: &Broker,
    stream: tokio::net::UnixStream,
) -> io::Result<(std::net::TcpListener, Peer)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, getsockopt, sockopt};
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    let refused = |why: &str| io::Error::new(io::ErrorKind::PermissionDenied, why.to_owned());
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    // The init helper (PID 1 of the agent's namespaces, a child of the process frona spawned)
    // hands the socket over before it forks the agent, and only the first hand-over is taken:
    // whoever in the agent's tree sends first is the helper.
    let peer = crate::peer::peer_of(&stream)?;
    if !broker.in_agent_tree(Some(peer)) {
        return Err(refused("the sender is not frona's init helper"));
    }
    let mut byte = [0u8; 1];
    let mut iov = [io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let message = nix::sys::socket::recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for cmsg in message.cmsgs()? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            // SAFETY: the kernel just installed these descriptors in this process for us;
            // nothing else owns them.
            fds.extend(
                received
                    .into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    if fds.len() != 1 {
        return Err(refused("expected exactly one descriptor"));
    }
    let fd = fds.remove(0);
    let listening = getsockopt(&fd, sockopt::AcceptConn).unwrap_or(false);
    let stream_type =
        getsockopt(&fd, sockopt::SockType).is_ok_and(|t| t == nix::sys::socket::SockType::Stream);
    if !(listening && stream_type) {
        return Err(refused("not a listening stream socket"));
    }
    // `local_addr` fails for anything but an IP socket.
    let listener = std::net::TcpListener::from(fd);
    if !listener.local_addr().is_ok_and(|a| a.ip().is_loopback()) {
        return Err(refused("not a TCP socket on a loopback address"));
    }
    listener.set_nonblocking(true)?;
    io::Write::write_all(&mut &stream, b"1")?;
    Ok((listener, peer))
}

#[cfg(test)]
mod tests;

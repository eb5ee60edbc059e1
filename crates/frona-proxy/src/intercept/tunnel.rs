//! A terminated tunnel: TLS with the session CA's certificate for the host towards the agent,
//! HTTP/1.1 inside, each request's placeholders decided and swapped, and one upstream
//! connection (to an address the egress proxy checked, TLS verified against the system roots)
//! that the requests share.

use std::sync::Arc;
use std::time::{Duration, Instant};

use frona_backends::Secret;
use frona_broker::audit::{Audit, AuditEvent, HttpCall, HttpResponse, Via};
use frona_broker::peer::Peer;
use frona_broker::{Action, Call};
use http::StatusCode;
use http::header::{self, HeaderValue};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::Intercept;
use super::swap::{swap_headers, swap_query};
use crate::http::upstream::{self, Checked, UpstreamError};
use crate::http::{
    Body, Reason, Refusal, Response, checked_path, forwardable, redacted_error, redacted_headers,
};
use crate::tunnel::{Counted, Counts, Tunnels, closed};

/// How long a terminated tunnel may wait for the agent's next request.
const IDLE: Duration = Duration::from_secs(60);

/// The proxy's own answer inside a terminated tunnel (which stays open).
fn refused(status: StatusCode, reason: Reason, message: &str) -> Response {
    Refusal::new(status, reason, message).text()
}

/// Writes a terminated tunnel's `egress-close` record when dropped.
struct Close<'a> {
    audit: &'a Audit,
    host: String,
    port: u16,
    counts: Arc<Counts>,
    started: Instant,
    peer: Option<Peer>,
}

impl Drop for Close<'_> {
    fn drop(&mut self) {
        // Read from the agent went up; written to it came down.
        let bytes = (self.counts.read(), self.counts.written());
        self.audit.submit(&closed(
            &self.host,
            self.port,
            bytes,
            self.started,
            None,
            self.peer,
            true,
        ));
    }
}

/// Where a terminated tunnel goes, and its one upstream connection (opened on the first
/// request, again if the upstream closed it).
struct Tunnel {
    host: String,
    port: u16,
    to: Checked,
    peer: Option<Peer>,
    upstream: tokio::sync::Mutex<Option<hyper::client::conn::http1::SendRequest<Incoming>>>,
}

impl Intercept {
    /// Serves a `CONNECT` tunnel to a bound host until the agent closes it.
    pub(crate) async fn serve_tunnel(
        self: Arc<Self>,
        upgraded: hyper::upgrade::Upgraded,
        host: String,
        port: u16,
        to: Checked,
        peer: Option<Peer>,
        tunnels: &Tunnels,
    ) {
        let config = match self.tls.server_config(&host) {
            Ok(config) => config,
            Err(e) => {
                tracing::warn!("egress proxy: no certificate for {host}: {e}");
                return;
            }
        };
        let started = Instant::now();
        let _open = tunnels.open();
        let (agent_side, counts) = Counted::new(TokioIo::new(upgraded));
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        // Audited when the tunnel ends, however it ends: bytes counted on the agent's side.
        let close = Close {
            audit: &self.broker.audit,
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
            to,
            peer,
            upstream: tokio::sync::Mutex::new(None),
        });
        let for_requests = Arc::clone(&self);
        let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
            let intercept = Arc::clone(&for_requests);
            let tunnel = Arc::clone(&tunnel);
            async move { Ok::<_, std::convert::Infallible>(intercept.request(request, &tunnel).await) }
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
    async fn request(&self, request: http::Request<Incoming>, tunnel: &Tunnel) -> Response {
        let started = Instant::now();
        let (mut parts, body) = request.into_parts();
        // Origin form; an absolute URL must name the tunnel's own host.
        if let Some(authority) = parts.uri.authority()
            && !authority.host().eq_ignore_ascii_case(&tunnel.host)
        {
            return refused(
                StatusCode::BAD_REQUEST,
                Reason::WrongHost,
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
                Reason::UpgradeRefused,
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
        for (index, swappable) in self.found(&parts.headers, query.as_deref()) {
            if swappable && self.bindings[index].covers(&host, tunnel.port) {
                bound.push(index);
            } else {
                unbound.push(index);
            }
        }
        self.audit_unbound(&unbound, &tunnel.host, tunnel.port, "https", tunnel.peer);
        let mut headers = forwardable(&parts.headers);
        let mut swapped: Vec<Secret> = Vec::new();
        let mut leases = Vec::new();
        let mut records = Vec::new();
        // The path the policy sees, checked once, before any value is prepared.
        let decoded = if bound.is_empty() {
            String::new()
        } else {
            match checked_path(&path) {
                Ok(decoded) => decoded,
                Err(e) => return refused(StatusCode::BAD_REQUEST, Reason::BadPath, &e.to_string()),
            }
        };
        let credentials = &self.broker.credentials;
        for index in bound {
            let binding = &self.bindings[index];
            let fields = HttpCall {
                peer: tunnel.peer,
                via: Some(Via::Placeholder),
                method: parts.method.as_str().to_owned(),
                host: tunnel.host.clone(),
                path: decoded.clone(),
                route: None,
                credentials: vec![binding.credential.name.clone()],
            };
            let call = Call::new(
                tunnel.peer,
                Action::Http {
                    method: parts.method.as_str().to_owned(),
                    host: tunnel.host.clone(),
                    path: decoded.clone(),
                },
                vec![binding.credential.name.clone()],
            );
            let issued = crate::authorize::one_value(
                &self.broker,
                call,
                binding.credential.clone(),
                fields.clone(),
            )
            .await;
            let (value, issued_leases) = match issued {
                Ok(issued) => issued,
                Err(refusal) => {
                    // What an earlier placeholder of this request was issued is not used.
                    leases.into_iter().for_each(|l| credentials.revoke_later(l));
                    return refusal.text();
                }
            };
            leases.push(issued_leases);
            let placeholder = binding.placeholder.expose();
            match swap_headers(
                &mut headers,
                &binding.credential,
                placeholder,
                value.expose(),
            ) {
                Ok(forms) => swapped.extend(forms),
                Err(e) => {
                    leases.into_iter().for_each(|l| credentials.revoke_later(l));
                    return refused(StatusCode::BAD_REQUEST, Reason::BadValue, &e.to_string());
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
            records.push(fields);
        }
        let template = self.remember(&swapped);
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
            leases.into_iter().for_each(|l| credentials.revoke_later(l));
            return refused(
                StatusCode::BAD_REQUEST,
                Reason::BadHost,
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
            leases.into_iter().for_each(|l| credentials.revoke_later(l));
            return refused(
                StatusCode::BAD_REQUEST,
                Reason::BadTarget,
                "the request target is invalid",
            );
        };
        parts.uri = uri;
        parts.headers = headers;
        let outgoing = http::Request::from_parts(parts, body);
        let result = self.send(tunnel, outgoing).await;
        leases.into_iter().for_each(|l| credentials.revoke_later(l));
        let (status, error) = match &result {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(e) => (None, Some(frona_sandbox::error_chain(e))),
        };
        for call in records {
            self.broker
                .audit
                .submit(&AuditEvent::HttpResponse(HttpResponse {
                    call,
                    latency_us: started.elapsed().as_micros() as u64,
                    status,
                    error: error.clone(),
                }));
        }
        match result {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                parts.headers = redacted_headers(&parts.headers, &template);
                let body = body.map_err(|e| e.to_string()).boxed();
                http::Response::from_parts(parts, Body::redacted(body, template))
            }
            Err(e) => refused(
                StatusCode::BAD_GATEWAY,
                Reason::UpstreamFailed,
                &format!("{}: {}", tunnel.host, redacted_error(&e, &template)),
            ),
        }
    }

    /// Sends `request` on the tunnel's upstream connection, connecting (again) first when there
    /// is none or it closed.
    async fn send(
        &self,
        tunnel: &Tunnel,
        request: http::Request<Incoming>,
    ) -> Result<http::Response<Incoming>, UpstreamError> {
        let mut upstream = tunnel.upstream.lock().await;
        let usable = match upstream.as_mut() {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !usable {
            *upstream = Some(self.connect(tunnel).await?);
        }
        let Some(sender) = upstream.as_mut() else {
            return Err(UpstreamError::NoAddress);
        };
        Ok(sender.send_request(request).await?)
    }

    /// A verified TLS connection to the tunnel's host, at an address the egress proxy checked.
    async fn connect(
        &self,
        tunnel: &Tunnel,
    ) -> Result<hyper::client::conn::http1::SendRequest<Incoming>, UpstreamError> {
        let what = format!("CONNECT {}:{}", tunnel.host, tunnel.port);
        let tcp = upstream::connect_audited(&self.broker.audit, &tunnel.to, &what).await?;
        let tls = upstream::tls(tcp, &tunnel.host, Arc::clone(&self.tls.upstream)).await?;
        upstream::http1(tls).await
    }
}

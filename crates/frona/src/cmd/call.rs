//! `frona call`: one HTTPS request with a credential attached by frona. Inside `frona run` it
//! goes through the agent's proxy (`FRONA_PROXY`), so the agent's policy decides and the value
//! never enters this process; outside, frona builds the broker in-process and takes the same
//! path (policy, injection, redaction, audit) for the user at the keyboard or a script.

use std::io::{Read as _, Write as _};

use bytes::Bytes;
use frona_proxy::credential_proxy::{CREDENTIAL_HEADER, CredentialProxy, ProxyRequest};
use frona_sandbox::EnvSnapshot;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::cli::CallArgs;
use crate::cmd::tool::EXIT_DENIED;
use crate::env_vars::FRONA_PROXY;
use crate::failure::Failure;

pub fn call(args: CallArgs, env: &EnvSnapshot) -> Result<i32, Failure> {
    if !args.url.starts_with("https://") {
        return Err(
            Failure::new(125, format!("`{}` is not an https:// URL", args.url))
                .with_hint("frona attaches credentials to HTTPS requests only"),
        );
    }
    let method = Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| Failure::new(125, format!("`{}` is not an HTTP method", args.method)))?;
    let mut headers = HeaderMap::new();
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .and_then(|(n, v)| {
                Some((
                    HeaderName::from_bytes(n.trim().as_bytes()).ok()?,
                    HeaderValue::from_str(v.trim()).ok()?,
                ))
            })
            .ok_or_else(|| Failure::new(125, format!("`{header}` is not `Name: value`")))?;
        headers.append(name, value);
    }
    if let Some(credential) = &args.credential {
        let value = HeaderValue::from_str(credential)
            .map_err(|_| Failure::new(125, format!("`{credential}` is not a credential name")))?;
        headers.insert(CREDENTIAL_HEADER, value);
    }
    let body = match args.data.as_deref() {
        None => Bytes::new(),
        Some("@-") => {
            let mut data = Vec::new();
            std::io::stdin()
                .read_to_end(&mut data)
                .map_err(|e| Failure::from_error(&e))?;
            data.into()
        }
        Some(data) => match data.strip_prefix('@') {
            Some(file) => std::fs::read(file)
                .map_err(|e| Failure::from_error(&e).with_hint(format!("reading `{file}`")))?
                .into(),
            None => Bytes::copy_from_slice(data.as_bytes()),
        },
    };
    let request = ProxyRequest {
        method,
        target: format!("/{}", args.url),
        headers,
        body,
    };
    match env.get(FRONA_PROXY) {
        Some(socket) => {
            let socket = String::from_utf8_lossy(socket).into_owned();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Failure::from_error(&e))?;
            runtime.block_on(async {
                through_proxy(&socket, request)
                    .await?
                    .play(args.include)
                    .await
            })
        }
        None => {
            let settings =
                crate::settings::load(env)?.resolve(&crate::settings::RunLayer::default())?;
            let policy_dir = args
                .policy
                .clone()
                .unwrap_or_else(|| settings.run.policy.clone());
            if !policy_dir.is_dir() {
                return Err(Failure::new(
                    125,
                    format!("no policy directory at `{}`", policy_dir.display()),
                )
                .with_hint("without policies every call is denied; see `policies/` for examples"));
            }
            let (broker, _) = crate::broker::build(env, &settings, &args.agent, &policy_dir)?;
            let proxy = CredentialProxy::new(broker.clone());
            let status = broker.runtime().block_on(async {
                let (parts, body) = proxy.handle(request, None).await.into_parts();
                Answer {
                    status: parts.status,
                    headers: parts.headers,
                    body: Body::Proxy(body),
                }
                .play(args.include)
                .await
            });
            // The outcome record is queued, not waited for: it must be on disk before exit.
            broker.finish();
            status
        }
    }
}

/// A response body: from the in-process proxy, or from the proxy socket.
enum Body {
    Proxy(frona_proxy::http::Body),
    Incoming(hyper::body::Incoming),
}

impl Body {
    async fn next(&mut self) -> Option<Result<Bytes, String>> {
        use http_body_util::BodyExt as _;
        match self {
            Body::Proxy(body) => body.next().await.map(|r| r.map_err(|e| e.to_string())),
            Body::Incoming(body) => loop {
                match body.frame().await? {
                    Ok(frame) => {
                        if let Ok(data) = frame.into_data() {
                            return Some(Ok(data));
                        }
                    }
                    Err(e) => return Some(Err(e.to_string())),
                }
            },
        }
    }
}

struct Answer {
    status: http::StatusCode,
    headers: HeaderMap,
    body: Body,
}

impl Answer {
    /// Prints the response; returns the exit status: 0 below 400, 1 for an upstream error,
    /// 77 when frona's policy refused, 125 for frona's other refusals.
    async fn play(mut self, include: bool) -> Result<i32, Failure> {
        let refused = self.headers.get("x-frona").is_some_and(|v| v == "refused");
        if refused {
            let mut text = Vec::new();
            while let Some(Ok(chunk)) = self.body.next().await {
                text.extend_from_slice(&chunk);
            }
            let message = serde_json::from_slice::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&text).into_owned());
            return Err(if self.status == http::StatusCode::FORBIDDEN {
                Failure::new(EXIT_DENIED, message)
                    .with_hint("`frona policy explain` shows which rule decides a call")
            } else {
                Failure::new(125, message)
            });
        }
        let mut out = std::io::stdout();
        if include {
            let _ = writeln!(out, "HTTP/1.1 {}", self.status);
            for (name, value) in &self.headers {
                let _ = writeln!(out, "{name}: {}", String::from_utf8_lossy(value.as_bytes()));
            }
            let _ = writeln!(out);
        }
        while let Some(chunk) = self.body.next().await {
            let chunk = chunk.map_err(|e| Failure::new(125, format!("response cut off: {e}")))?;
            if out.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = out.flush();
        if self.status.as_u16() >= 400 {
            eprintln!("frona: the server answered {}", self.status);
            return Ok(1);
        }
        Ok(0)
    }
}

/// Sends `request` to the proxy socket (inside `frona run`).
async fn through_proxy(socket: &str, request: ProxyRequest) -> Result<Answer, Failure> {
    let stream = tokio::net::UnixStream::connect(socket).await.map_err(|e| {
        Failure::from_error(&e).with_hint(format!(
            "is the frona that started this agent still running? ({socket})"
        ))
    })?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| Failure::from_error(&e))?;
    tokio::spawn(connection);
    let mut builder = http::Request::builder()
        .method(request.method)
        .uri(request.target)
        .header(http::header::HOST, "frona");
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let outgoing = builder
        .body(http_body_util::Full::new(request.body))
        .map_err(|e| Failure::from_error(&e))?;
    let (parts, body) = sender
        .send_request(outgoing)
        .await
        .map_err(|e| Failure::from_error(&e))?
        .into_parts();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body: Body::Incoming(body),
    })
}

//! The HTTP proxy benchmark's two ends: a keep-alive HTTPS server with a fresh test CA, and a
//! client timing requests straight to it, through frona's credential proxy socket, or through
//! the egress proxy with a placeholder that frona swaps for the value (`--net proxy`).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::sync::Arc;

/// Serves `200 {"ok":true}` to every request over HTTPS on 127.0.0.1 (certificate for
/// `localhost`); writes the CA to `ca_path` and prints the port. With `BENCH_EXPECT` set, a
/// request whose `Authorization` is not exactly that gets `401`: the benchmark then fails
/// instead of timing requests that never carried the value.
pub fn server(ca_path: &str) {
    let expect = std::env::var("BENCH_EXPECT").ok();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(ca_path, ca.pem()).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    crate::say(&listener.local_addr().unwrap().port().to_string());
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        let config = Arc::clone(&config);
        let expect = expect.clone();
        std::thread::spawn(move || {
            let connection = rustls::ServerConnection::new(config).unwrap();
            let mut reader = BufReader::new(rustls::StreamOwned::new(connection, stream));
            loop {
                let mut length = 0usize;
                let mut authorized = expect.is_none();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if let (Some(expect), Some((k, v))) = (&expect, line.split_once(':'))
                        && k.eq_ignore_ascii_case("authorization")
                    {
                        authorized = v.trim() == expect;
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let answer: &[u8] = if authorized {
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}"
                } else {
                    b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n"
                };
                let stream = reader.get_mut();
                if stream
                    .write_all(answer)
                    .and_then(|()| stream.flush())
                    .is_err()
                {
                    return;
                }
            }
        });
    }
}

/// Times `total` GETs from `clients` connections (kept alive): `direct` to `https://localhost:
/// PORT/v1/bench` trusting the CA in `BENCH_CA` and sending `Authorization: $BENCH_AUTH`;
/// `proxy` through `FRONA_PROXY` to `/bench/v1/bench`; `placeholder` through a `CONNECT`
/// tunnel of `HTTPS_PROXY`, trusting `SSL_CERT_FILE` and sending `Bearer $BENCH_TOKEN`.
/// Prints p50, p99 and requests/s as one JSON line.
pub fn client(mode: &str, total: usize, clients: usize, port: u16) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let direct = mode == "direct";
    let placeholder = mode == "placeholder";
    let authorization = match mode {
        "direct" => std::env::var("BENCH_AUTH").ok(),
        "placeholder" => Some(format!("Bearer {}", std::env::var("BENCH_TOKEN").unwrap())),
        _ => None,
    };
    let tls = if direct || placeholder {
        let mut roots = rustls::RootCertStore::empty();
        let ca = std::env::var(if direct { "BENCH_CA" } else { "SSL_CERT_FILE" }).unwrap();
        let pem = std::fs::read(ca).unwrap();
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
            roots.add(cert.unwrap()).unwrap();
        }
        Some(Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
        ))
    } else {
        None
    };
    let started = std::time::Instant::now();
    let mut latencies: Vec<u128> = runtime.block_on(async move {
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let tls = tls.clone();
                let authorization = authorization.clone();
                tokio::spawn(async move {
                    let (mut sender, path) = if let Some(tls) = tls {
                        let tcp = if placeholder {
                            connect_tunnel(port).await
                        } else {
                            tokio::net::TcpStream::connect(("127.0.0.1", port))
                                .await
                                .unwrap()
                        };
                        tcp.set_nodelay(true).unwrap();
                        let stream = tokio_rustls::TlsConnector::from(tls)
                            .connect("localhost".try_into().unwrap(), tcp)
                            .await
                            .unwrap();
                        let (sender, connection) = hyper::client::conn::http1::handshake(
                            hyper_util::rt::TokioIo::new(stream),
                        )
                        .await
                        .unwrap();
                        tokio::spawn(connection);
                        (sender, "/v1/bench")
                    } else {
                        let socket = std::env::var("FRONA_PROXY").unwrap();
                        let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
                        let (sender, connection) = hyper::client::conn::http1::handshake(
                            hyper_util::rt::TokioIo::new(stream),
                        )
                        .await
                        .unwrap();
                        tokio::spawn(connection);
                        (sender, "/bench/v1/bench")
                    };
                    let mut times = Vec::with_capacity(total / clients);
                    for _ in 0..total / clients {
                        use http_body_util::BodyExt as _;
                        let t = std::time::Instant::now();
                        let mut request = hyper::Request::get(path).header("host", "localhost");
                        if let Some(value) = &authorization {
                            request = request.header("authorization", value);
                        }
                        let request = request
                            .body(http_body_util::Empty::<bytes::Bytes>::new())
                            .unwrap();
                        let response = sender.send_request(request).await.unwrap();
                        assert_eq!(response.status(), 200);
                        let body = response.into_body().collect().await.unwrap().to_bytes();
                        assert_eq!(&body[..], b"{\"ok\":true}");
                        times.push(t.elapsed().as_micros());
                    }
                    times
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all
    });
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    crate::say(&format!(
        "{{\"mode\":\"{mode}\",\"clients\":{clients},\"requests\":{},\"p50_us\":{},\"p99_us\":{},\"per_s\":{:.0}}}",
        latencies.len(),
        pick(0.50),
        pick(0.99),
        latencies.len() as f64 / elapsed
    ));
}

/// A `CONNECT localhost:PORT` tunnel through the proxy in `HTTPS_PROXY` (`http://HOST:PORT`).
async fn connect_tunnel(port: u16) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let proxy = std::env::var("HTTPS_PROXY").unwrap();
    let address = proxy.trim_start_matches("http://").trim_end_matches('/');
    let mut tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    tcp.write_all(
        format!("CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(
            tcp.read(&mut byte).await.unwrap(),
            1,
            "the proxy closed the tunnel"
        );
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    tcp
}

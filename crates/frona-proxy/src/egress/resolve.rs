//! Name resolution for the egress proxy: the system resolver in production; tests (and
//! `--proxy-resolve`, `overrides.rs`) map names to the addresses they need. Whatever answers,
//! every address is checked before it is used.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;

/// Resolves host names for the proxy.
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

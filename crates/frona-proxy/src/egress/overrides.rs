//! `frona run --proxy-resolve HOST=ADDR`: names the egress proxy resolves to fixed addresses
//! instead of asking DNS, like curl's `--resolve`. Only the lookup changes: every address is
//! still checked as one DNS gave would be, so a private `ADDR` must be allowed itself.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;

use super::resolve::{Resolve, SystemResolver};

/// Why a `HOST=ADDR` override was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OverrideError {
    #[error("`{0}` is not HOST=ADDR")]
    Shape(String),
    #[error("`{0}` is not a host name")]
    Host(String),
    #[error("`{0}` is not an IP address")]
    Address(String),
}

/// Fixed answers for some names, the `fallback` resolver for every other name.
#[derive(Debug)]
pub struct StaticOverrides<R = SystemResolver> {
    map: HashMap<String, Vec<IpAddr>>,
    fallback: R,
}

/// The key a name is looked up by: lower case, without the root's trailing dot.
fn key(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// Parses one `HOST=ADDR[,ADDR…]` (an address may be bracketed: `[::1]`).
pub fn parse_override(text: &str) -> Result<(String, Vec<IpAddr>), OverrideError> {
    let Some((host, addrs)) = text.split_once('=') else {
        return Err(OverrideError::Shape(text.to_owned()));
    };
    let host = key(host.trim());
    match frona_policy::network::Target::parse(&host) {
        Some(frona_policy::network::Target::Name(_)) => {}
        _ => return Err(OverrideError::Host(host)),
    }
    let mut found = Vec::new();
    for addr in addrs.split(',') {
        let addr = addr.trim();
        let bare = addr
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr);
        let ip = bare
            .parse::<IpAddr>()
            .map_err(|_| OverrideError::Address(addr.to_owned()))?;
        if !found.contains(&ip) {
            found.push(ip);
        }
    }
    Ok((host, found))
}

impl StaticOverrides<SystemResolver> {
    /// Overrides in front of the system resolver.
    pub fn new(entries: impl IntoIterator<Item = (String, Vec<IpAddr>)>) -> Self {
        Self::with_fallback(entries, SystemResolver)
    }
}

impl<R> StaticOverrides<R> {
    /// Overrides in front of `fallback`; a name given twice gets the addresses of both.
    pub fn with_fallback(
        entries: impl IntoIterator<Item = (String, Vec<IpAddr>)>,
        fallback: R,
    ) -> Self {
        let mut map: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for (host, addrs) in entries {
            let known = map.entry(key(&host)).or_default();
            for ip in addrs {
                if !known.contains(&ip) {
                    known.push(ip);
                }
            }
        }
        Self { map, fallback }
    }

    /// How many names are overridden.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no name is overridden.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl<R: Resolve> Resolve for StaticOverrides<R> {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>> {
        match self.map.get(&key(host)) {
            Some(addrs) => {
                let addrs = addrs.clone();
                Box::pin(async move { Ok(addrs) })
            }
            None => self.fallback.resolve(host, port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct NoDns;

    impl Resolve for NoDns {
        fn resolve<'a>(
            &'a self,
            host: &'a str,
            _port: u16,
        ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>> {
            let host = host.to_owned();
            Box::pin(async move { Err(io::Error::new(io::ErrorKind::NotFound, host)) })
        }
    }

    fn block<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .map(|rt| rt.block_on(f))
            .unwrap_or_else(|e| panic!("runtime: {e}"))
    }

    #[test]
    fn parses_host_equals_addresses() {
        assert_eq!(
            parse_override("Moto.Test.=127.0.0.1"),
            Ok(("moto.test".into(), vec!["127.0.0.1".parse().unwrap()]))
        );
        assert_eq!(
            parse_override("a.example=[::1], 10.0.0.1,::1"),
            Ok((
                "a.example".into(),
                vec!["::1".parse().unwrap(), "10.0.0.1".parse().unwrap()]
            ))
        );
        assert!(matches!(
            parse_override("moto.test"),
            Err(OverrideError::Shape(_))
        ));
        assert!(matches!(
            parse_override("moto.test=localhost"),
            Err(OverrideError::Address(_))
        ));
        assert!(matches!(
            parse_override("moto.test="),
            Err(OverrideError::Address(_))
        ));
        assert!(matches!(
            parse_override("10.0.0.1=127.0.0.1"),
            Err(OverrideError::Host(_))
        ));
        assert!(matches!(
            parse_override("bad host=127.0.0.1"),
            Err(OverrideError::Host(_))
        ));
    }

    #[test]
    fn overridden_names_skip_the_fallback_and_others_reach_it() {
        let resolver = StaticOverrides::with_fallback(
            [
                ("moto.test".to_owned(), vec!["127.0.0.1".parse().unwrap()]),
                ("MOTO.test".to_owned(), vec!["127.0.0.2".parse().unwrap()]),
            ],
            NoDns,
        );
        assert_eq!(resolver.len(), 1);
        let got = block(resolver.resolve("Moto.Test.", 80)).unwrap();
        assert_eq!(
            got,
            vec![
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "127.0.0.2".parse().unwrap()
            ]
        );
        let err = block(resolver.resolve("other.test", 80)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}

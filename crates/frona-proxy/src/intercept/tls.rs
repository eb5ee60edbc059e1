//! The session's certificate authority and TLS configurations for [`super`]: the CA (made in
//! memory, name-constrained to the bound hosts), the certificates it issues per host, the
//! system roots upstreams are verified with, and the bundle the agent is told to trust.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;

use super::InterceptError;

/// The session's CA, the certificates it issued, and the roots upstreams are verified with.
pub struct Tls {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    ca_der: rustls::pki_types::CertificateDer<'static>,
    ca_pem: String,
    /// One key for every host's certificate, made once.
    leaf_key: rcgen::KeyPair,
    leaves: Mutex<HashMap<String, Arc<rustls::ServerConfig>>>,
    pub(super) upstream: Arc<rustls::ClientConfig>,
    roots_pem: String,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// `der` as a PEM certificate.
fn pem(der: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

impl Tls {
    /// A new CA constrained to `hosts` (bound-host patterns), and the system roots.
    pub fn new(hosts: &[&str]) -> Result<Self, InterceptError> {
        Self::with_roots(hosts, rustls_native_certs::load_native_certs().certs)
    }

    /// [`Tls::new`] with these roots for upstreams.
    fn with_roots(
        hosts: &[&str],
        certs: Vec<rustls::pki_types::CertificateDer<'static>>,
    ) -> Result<Self, InterceptError> {
        let mut roots = rustls::RootCertStore::empty();
        let mut roots_pem = String::new();
        for cert in certs {
            if roots.add(cert.clone()).is_ok() {
                roots_pem.push_str(&pem(&cert));
            }
        }
        if roots.is_empty() {
            return Err(InterceptError::NoRoots);
        }
        let upstream = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();

        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("frona session CA {}", std::process::id()),
        );
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        params.name_constraints = Some(rcgen::NameConstraints {
            permitted_subtrees: hosts.iter().map(|h| subtree(h)).collect(),
            excluded_subtrees: Vec::new(),
        });
        let ca = params.self_signed(&key)?;
        Ok(Self {
            ca_der: ca.der().clone(),
            ca_pem: ca.pem(),
            issuer: rcgen::Issuer::new(params, key),
            leaf_key: rcgen::KeyPair::generate()?,
            leaves: Mutex::new(HashMap::new()),
            upstream: Arc::new(upstream),
            roots_pem,
        })
    }

    /// The session CA's certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The system roots and the session CA: what the agent's clients are told to trust.
    pub fn bundle_pem(&self) -> String {
        format!("{}{}", self.roots_pem, self.ca_pem)
    }

    /// The server side for `host`, its certificate issued on first use.
    pub(super) fn server_config(
        &self,
        host: &str,
    ) -> Result<Arc<rustls::ServerConfig>, InterceptError> {
        let mut leaves = self.leaves.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(config) = leaves.get(host) {
            return Ok(Arc::clone(config));
        }
        let mut params = rcgen::CertificateParams::new(vec![host.to_owned()])?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, host);
        params.use_authority_key_identifier_extension = true;
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&self.leaf_key, &self.issuer)?;
        let key = rustls::pki_types::PrivateKeyDer::try_from(self.leaf_key.serialize_der())
            .map_err(|e| InterceptError::Tls(rustls::Error::General(e.into())))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone(), self.ca_der.clone()], key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        leaves.insert(host.to_owned(), Arc::clone(&config));
        Ok(config)
    }
}

/// The name constraint for a bound-host pattern: its domain (a DNS constraint covers the
/// name and every name under it) or its address.
fn subtree(pattern: &str) -> rcgen::GeneralSubtree {
    let name = pattern.rsplit_once(':').map_or(pattern, |(name, _)| name);
    let name = name.strip_prefix("*.").unwrap_or(name);
    match name.parse::<std::net::IpAddr>() {
        Ok(ip) => rcgen::GeneralSubtree::IpAddress(rcgen::CidrSubnet::from_addr_prefix(
            ip,
            if ip.is_ipv4() { 32 } else { 128 },
        )),
        Err(_) => rcgen::GeneralSubtree::DnsName(name.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_vouches_for_the_bound_hosts_only() {
        let root = rcgen::KeyPair::generate().unwrap();
        let root = rcgen::CertificateParams::new(vec!["root.test".to_owned()])
            .unwrap()
            .self_signed(&root)
            .unwrap();
        assert!(matches!(
            Tls::with_roots(&["a.test"], Vec::new()),
            Err(InterceptError::NoRoots)
        ));
        let tls = Tls::with_roots(
            &["api.example.com", "*.example.org", "10.1.2.3:8443"],
            vec![root.der().clone()],
        )
        .unwrap();
        assert!(tls.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(tls.bundle_pem().ends_with(tls.ca_pem()));
        // A client trusting only the session CA accepts its certificate for a bound host, and
        // refuses one for any other name even if frona issued it: the name constraints hold.
        handshake(&tls, "api.example.com").unwrap();
        handshake(&tls, "deep.sub.example.org").unwrap();
        let refused = handshake(&tls, "evil.test").unwrap_err();
        assert!(
            matches!(refused, rustls::Error::InvalidCertificate(_)),
            "{refused:?}"
        );
        assert!(
            matches!(subtree("*.example.org"), rcgen::GeneralSubtree::DnsName(d) if d == "example.org")
        );
        assert!(matches!(
            subtree("10.1.2.3:8443"),
            rcgen::GeneralSubtree::IpAddress(_)
        ));
    }

    /// A TLS handshake in memory between a client that trusts only the session CA and the
    /// server side frona uses for `host`.
    fn handshake(tls: &Tls, host: &str) -> Result<(), rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(tls.ca_der.clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(host.to_owned()).unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut server = rustls::ServerConnection::new(tls.server_config(host).unwrap()).unwrap();
        for _ in 0..10 {
            let mut wire = Vec::new();
            client.write_tls(&mut wire).unwrap();
            server.read_tls(&mut &wire[..]).unwrap();
            server.process_new_packets()?;
            let mut wire = Vec::new();
            server.write_tls(&mut wire).unwrap();
            client.read_tls(&mut &wire[..]).unwrap();
            client.process_new_packets()?;
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
        }
        Err(rustls::Error::General("the handshake did not end".into()))
    }
}

//! Which names a server's host key is known by: frona's user's `known_hosts` files, read
//! where the agent cannot write them. The SSH agent maps the host key of a verified
//! `session-bind@openssh.com` to these names, which `ssh:` rules' `host` patterns match.
//!
//! Plain entries give their literal names (`github.com`, `[localhost]:2222`); wildcard patterns
//! name no host and are skipped. A hashed entry (`HashKnownHosts`) can only be checked against a
//! name: it is tried with each name the policy's rules spell out (and `[name]:port` where the
//! rule names a port). A host key listed as `@revoked` is known by no name.

use std::path::PathBuf;

use frona_policy::SshHost;
use hmac::{Hmac, Mac as _};
use ssh_key::known_hosts::{HostPatterns, KnownHosts as Parser, Marker};
use ssh_key::public::KeyData;

/// The `known_hosts` files to read, in order.
#[derive(Clone, Debug)]
pub struct KnownHosts {
    files: Vec<PathBuf>,
}

impl KnownHosts {
    pub fn new(files: Vec<PathBuf>) -> Self {
        Self { files }
    }

    /// OpenSSH's defaults for a user whose home is `home`: `~/.ssh/known_hosts{,2}` and
    /// `/etc/ssh/ssh_known_hosts{,2}`.
    pub fn openssh_defaults(home: Option<PathBuf>) -> Self {
        let mut files = Vec::new();
        if let Some(home) = home {
            files.push(home.join(".ssh/known_hosts"));
            files.push(home.join(".ssh/known_hosts2"));
        }
        files.push("/etc/ssh/ssh_known_hosts".into());
        files.push("/etc/ssh/ssh_known_hosts2".into());
        Self { files }
    }

    /// The names `key` is known by; `literals` are the names (and ports) the policy spells
    /// out, for hashed entries.
    pub fn names(&self, key: &KeyData, literals: &[(String, Option<u16>)]) -> Vec<SshHost> {
        let mut names = Vec::new();
        for file in &self.files {
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            // A line that does not parse is skipped, as ssh does.
            for entry in Parser::new(&text).flatten() {
                if entry.public_key().key_data() != key {
                    continue;
                }
                match entry.marker() {
                    Some(Marker::Revoked) => return Vec::new(),
                    Some(Marker::CertAuthority) => continue,
                    None => {}
                }
                match entry.host_patterns() {
                    HostPatterns::Patterns(patterns) => names.extend(plain_names(patterns)),
                    HostPatterns::HashedName { salt, hash } => names.extend(
                        literals
                            .iter()
                            .filter(|(name, port)| hashed_matches(salt, hash, name, *port))
                            .map(|(name, port)| SshHost {
                                name: name.clone(),
                                port: port.unwrap_or(22),
                            }),
                    ),
                }
            }
        }
        names.sort_by(|a, b| (&a.name, a.port).cmp(&(&b.name, b.port)));
        names.dedup();
        names
    }
}

/// The literal names of one plain entry: not wildcards, not negated (and not a name the same
/// entry negates).
fn plain_names(patterns: &[String]) -> Vec<SshHost> {
    let negated: Vec<&str> = patterns
        .iter()
        .filter_map(|p| p.strip_prefix('!'))
        .collect();
    patterns
        .iter()
        .filter(|p| {
            !p.starts_with('!') && !p.contains(['*', '?']) && !negated.contains(&p.as_str())
        })
        .filter_map(|p| host_and_port(p))
        .collect()
}

/// `name` or `[name]:port`, the way `known_hosts` writes a host.
fn host_and_port(text: &str) -> Option<SshHost> {
    let (name, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let (name, port) = rest.split_once("]:")?;
            (name, port.parse().ok()?)
        }
        None => (text, 22),
    };
    (!name.is_empty()).then(|| SshHost {
        name: name.to_ascii_lowercase(),
        port,
    })
}

/// Whether a hashed entry (`|1|salt|hash`: HMAC-SHA1 of the host under the salt) is `name`, on
/// `port` (OpenSSH hashes `[name]:port` for a port other than 22).
fn hashed_matches(salt: &[u8], hash: &[u8; 20], name: &str, port: Option<u16>) -> bool {
    let host = match port {
        Some(port) if port != 22 => format!("[{name}]:{port}"),
        _ => name.to_owned(),
    };
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(salt) else {
        return false;
    };
    mac.update(host.as_bytes());
    mac.verify_slice(hash).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJQXT6Mltfstixr0oZOGc5xeIq2cRzlWwXJrhtLWT3FN";
    const OTHER: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINgpvqImfU+Y273YinMsADVHx9lUVScThaPxXoEcmd1I";

    fn key(text: &str) -> KeyData {
        ssh_key::PublicKey::from_openssh(text)
            .map(|k| k.key_data().clone())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn hashed(salt: &[u8], host: &str) -> String {
        use base64::Engine as _;
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(salt).unwrap_or_else(|e| panic!("{e}"));
        mac.update(host.as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD;
        format!(
            "|1|{}|{}",
            b64.encode(salt),
            b64.encode(mac.finalize().into_bytes())
        )
    }

    fn known_file(name: &str, text: &str) -> KnownHosts {
        let path = std::env::temp_dir().join(format!("frona-kh-{name}-{}", std::process::id()));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        KnownHosts::new(vec![path, "/nonexistent/known_hosts".into()])
    }

    fn host(name: &str, port: u16) -> SshHost {
        SshHost {
            name: name.into(),
            port,
        }
    }

    #[test]
    fn plain_entries_give_their_literal_names_and_ports() {
        let text = format!(
            "# comment\ngithub.com,140.82.121.4 {KEY}\n[localhost]:2222 {KEY}\n*.example.com {KEY}\nother.test {OTHER}\nnot a valid line\n"
        );
        let known = known_file("plain", &text);
        assert_eq!(
            known.names(&key(KEY), &[]),
            vec![
                host("140.82.121.4", 22),
                host("github.com", 22),
                host("localhost", 2222)
            ]
        );
        assert_eq!(known.names(&key(OTHER), &[]), vec![host("other.test", 22)]);
    }

    #[test]
    fn hashed_entries_match_the_names_the_policy_spells_out() {
        let text = format!(
            "{} {KEY}\n{} {KEY}\n",
            hashed(b"0123456789abcdefghij", "github.com"),
            hashed(b"salt-two-salt-two-12", "[localhost]:2222")
        );
        let known = known_file("hashed", &text);
        let literals = [
            ("github.com".to_owned(), None),
            ("gitlab.com".to_owned(), None),
            ("localhost".to_owned(), Some(2222)),
            ("localhost".to_owned(), None),
        ];
        assert_eq!(
            known.names(&key(KEY), &literals),
            vec![host("github.com", 22), host("localhost", 2222)]
        );
    }

    #[test]
    fn a_revoked_key_and_a_negated_name_are_known_by_nothing() {
        let known = known_file("negated", &format!("good.test,!bad.test,bad.test {KEY}\n"));
        assert_eq!(known.names(&key(KEY), &[]), vec![host("good.test", 22)]);
        let known = known_file("revoked", &format!("good.test {KEY}\n@revoked * {KEY}\n"));
        assert!(known.names(&key(KEY), &[]).is_empty());
    }
}

//! The SSH agent's own checks, without a socket: which signatures belong to which binding, and
//! which bindings are accepted. The whole agent, against OpenSSH's, is tested end to end
//! (`tests/tests/e2e/ssh_agent.rs`).

use signature::Signer as _;
use ssh_encoding::Encode as _;
use ssh_key::PrivateKey;

use super::*;

/// A host key for these tests only.
const HOST_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACCUF0+jJbX7LYsa9KGThnOcXiKtnEc5VsFya4bS1k9xTQAAAIhZotRrWaLU
awAAAAtzc2gtZWQyNTUxOQAAACCUF0+jJbX7LYsa9KGThnOcXiKtnEc5VsFya4bS1k9xTQ
AAAEA/44d6BOgZnKEOheMPPr/I8YI8MNmbPUWQAS+3dD4pU5QXT6Mltfstixr0oZOGc5xe
Iq2cRzlWwXJrhtLWT3FNAAAAAWEBAgME
-----END OPENSSH PRIVATE KEY-----
";

fn host_key() -> PrivateKey {
    PrivateKey::from_openssh(HOST_KEY).unwrap_or_else(|e| panic!("{e}"))
}

/// A session-bind as a server with `key` would make it for `session_id`; `signed` is what the
/// server signed (the session id, unless the test forges it).
fn session_bind(session_id: &[u8], signed: &[u8], forwarding: bool) -> SessionBind {
    let key = host_key();
    SessionBind {
        host_key: key.public_key().key_data().clone(),
        session_id: session_id.to_vec(),
        signature: key.try_sign(signed).unwrap_or_else(|e| panic!("{e}")),
        is_forwarding: forwarding,
    }
}

/// Data an SSH client asks to sign when it authenticates with a key in session `session_id`
/// (`publickey`, or OpenSSH's host-bound method naming `host_key`).
fn userauth_with(session_id: &[u8], host_key: Option<&KeyData>) -> Vec<u8> {
    let method = if host_key.is_some() {
        "publickey-hostbound-v00@openssh.com"
    } else {
        "publickey"
    };
    let encode = |data: &mut Vec<u8>| -> ssh_encoding::Result<()> {
        session_id.encode(data)?;
        50u8.encode(data)?;
        "git".encode(data)?;
        "ssh-connection".encode(data)?;
        method.encode(data)?;
        1u8.encode(data)?;
        "ssh-ed25519".encode(data)?;
        blob(&host_key_public()).as_slice().encode(data)?;
        match host_key {
            Some(key) => blob(key).as_slice().encode(data),
            None => Ok(()),
        }
    };
    let mut data = Vec::new();
    encode(&mut data).unwrap_or_else(|e| panic!("{e}"));
    data
}

/// A key as SSH encodes it in a `string`.
fn blob(key: &KeyData) -> Vec<u8> {
    let mut bytes = Vec::new();
    key.encode(&mut bytes).unwrap_or_else(|e| panic!("{e}"));
    bytes
}

fn userauth(session_id: &[u8]) -> Vec<u8> {
    userauth_with(session_id, None)
}

fn host_key_public() -> KeyData {
    host_key().public_key().key_data().clone()
}

fn session(data: &[u8]) -> Option<Vec<u8>> {
    Userauth::parse(data).map(|u| u.session_id)
}

fn named(_: &KeyData) -> Vec<SshHost> {
    vec![SshHost {
        name: "git.test".into(),
        port: 22,
    }]
}

#[test]
fn the_session_of_a_userauth_request_is_read_and_other_data_is_no_userauth() {
    assert_eq!(session(&userauth(b"s-1")), Some(b"s-1".to_vec()));
    let bound = Userauth::parse(&userauth_with(b"s-1", Some(&host_key_public())));
    let bound = bound.unwrap_or_else(|| panic!("the host-bound method is not read"));
    assert_eq!(bound.host_key, Some(host_key_public()));
    assert_eq!(session(b"SSHSIG\0\0\0\x04file"), None);
    assert_eq!(session(&[]), None);
}

/// A verified binding gives the signature for its session the host's names; a signature for
/// another session on a bound connection is refused; unbound data is for no host.
#[test]
fn signatures_belong_to_the_session_the_connection_was_bound_to() {
    let mut bindings = Bindings::default();
    assert!(matches!(bindings.for_data(&userauth(b"s-1")), Ok(None)));
    bindings
        .bind(&session_bind(b"s-1", b"s-1", false), named)
        .unwrap_or_else(|e| panic!("{e}"));
    let binding = bindings
        .for_data(&userauth(b"s-1"))
        .unwrap_or_else(|e| panic!("{e}"));
    let binding = binding.unwrap_or_else(|| panic!("no binding"));
    assert_eq!(
        binding.hosts,
        named(&host_key().public_key().key_data().clone())
    );
    assert!(binding.host_key.starts_with("SHA256:"));
    assert!(bindings.for_data(&userauth(b"s-2")).is_err());
    assert!(matches!(bindings.for_data(b"SSHSIG"), Ok(None)));
    let named_host = userauth_with(b"s-1", Some(&host_key_public()));
    assert!(bindings.for_data(&named_host).is_ok_and(|b| b.is_some()));
    let other_host = ssh_key::PublicKey::from_openssh(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINgpvqImfU+Y273YinMsADVHx9lUVScThaPxXoEcmd1I",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let forged = userauth_with(b"s-1", Some(other_host.key_data()));
    assert!(
        bindings.for_data(&forged).is_err(),
        "another host key than the binding's"
    );
}

#[test]
fn forged_repeated_and_late_bindings_are_refused() {
    let mut bindings = Bindings::default();
    let forged = session_bind(b"s-1", b"another session", false);
    assert!(
        bindings.bind(&forged, named).is_err(),
        "a signature over another session"
    );
    bindings
        .bind(&session_bind(b"s-0", b"s-0", true), named)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        bindings
            .bind(&session_bind(b"s-0", b"s-0", true), named)
            .is_err()
    );
    assert!(
        bindings.for_data(&userauth(b"s-0")).is_err(),
        "a forwarding binding is not for authentication"
    );
    bindings
        .bind(&session_bind(b"s-1", b"s-1", false), named)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        bindings
            .bind(&session_bind(b"s-2", b"s-2", false), named)
            .is_err(),
        "nothing binds after a binding for authentication"
    );
}

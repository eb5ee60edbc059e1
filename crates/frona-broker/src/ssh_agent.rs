//! frona's SSH agent (`SSH_AUTH_SOCK` inside `frona run`): a front end of the decision core
//! over the ssh-agent protocol (draft-miller-ssh-agent, OpenSSH's `PROTOCOL.agent`).
//!
//! The agent never reaches the user's own ssh-agent; frona does, on its behalf, for what the
//! policy permits:
//! - *request identities* lists only the keys some `ssh:` rule could permit;
//! - each *sign request* is a [`Call`] ([`Action::SshSign`]) with the key and the host the
//!   connection is bound to, decided (an `ask` waits for `frona approve` like any other),
//!   recorded as `ssh-sign` (fingerprints and hosts, never the data) before it is relayed;
//! - `session-bind@openssh.com` binds the connection to a server: the server's signature over
//!   the session is verified, and its host key mapped to names through frona's user's
//!   `known_hosts` ([`known_hosts`]). A userauth request for a session the connection is not
//!   bound to is refused;
//! - adding, removing and locking keys are refused (and audited): the agent cannot change the
//!   user's agent.

pub mod known_hosts;

use std::io::{Read as _, Write as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use frona_policy::{SshCall, SshHost};
use ssh_agent_lib::blocking::Client;
use ssh_agent_lib::proto::extension::SessionBind;
use ssh_agent_lib::proto::{Extension, Identity, Request, Response, SignRequest};
use ssh_encoding::{Decode as _, Encode as _};
use ssh_key::HashAlg;
use ssh_key::public::KeyData;

pub use known_hosts::KnownHosts;

use crate::audit::{AuditEvent, Decided, Outcome, Refused, SshSign};
use crate::broker::Broker;
use crate::call::{Action, Call};
use crate::connections;
use crate::peer::{Peer, peer_of};

/// The largest message read from the agent (OpenSSH's own agent allows 256 KiB).
pub const MAX_MESSAGE: usize = 256 * 1024;

/// How long a connection may sit idle (or a message stall) before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// How long the user's agent may take to answer (a hardware key waits for a touch).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(120);

/// The `tool` of `refused` records this front end writes.
const TOOL: &str = "ssh-agent";

/// Bindings one connection may hold (OpenSSH's agent allows 16).
const MAX_BINDINGS: usize = 16;

/// frona's SSH agent for one session.
#[derive(Debug)]
pub struct SshAgent {
    broker: Broker,
    /// The user's own ssh-agent (frona's `SSH_AUTH_SOCK`).
    upstream: PathBuf,
    known_hosts: KnownHosts,
}

/// A server the connection was bound to (a verified `session-bind@openssh.com`).
struct Binding {
    session_id: Vec<u8>,
    key: KeyData,
    host_key: String,
    hosts: Vec<SshHost>,
    forwarding: bool,
}

/// The servers one connection was bound to, in order.
#[derive(Default)]
struct Bindings(Vec<Binding>);

/// One agent connection: who it is, what it is bound to, and its connection to the user's agent.
struct Connection<'a> {
    agent: &'a SshAgent,
    peer: Option<Peer>,
    bindings: Bindings,
    upstream: Option<Client<UnixStream>>,
}

impl SshAgent {
    pub fn new(broker: Broker, upstream: PathBuf, known_hosts: KnownHosts) -> Arc<Self> {
        Arc::new(Self {
            broker,
            upstream,
            known_hosts,
        })
    }

    /// Accepts connections until the listener fails, one thread each, at most
    /// [`connections::MAX`] at once.
    pub fn serve(self: Arc<Self>, listener: UnixListener) {
        connections::serve(listener, "frona-ssh", drop, move |stream| {
            self.connection(stream)
        });
    }

    fn connection(&self, mut stream: UnixStream) {
        let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
        let peer = peer_of(&stream).ok();
        let mut connection = Connection {
            agent: self,
            peer,
            bindings: Bindings::default(),
            upstream: None,
        };
        let mut member = None;
        loop {
            let mut length = [0u8; 4];
            if stream.read_exact(&mut length).is_err() {
                return;
            }
            let length = u32::from_be_bytes(length) as usize;
            let started = Instant::now();
            if !*member.get_or_insert_with(|| self.broker.session.in_agent_tree(peer)) {
                self.refuse(peer, "the caller is not part of the agent's process tree");
                return;
            }
            if length == 0 || length > MAX_MESSAGE {
                self.refuse(
                    peer,
                    &format!("a message of {length} bytes (at most {MAX_MESSAGE})"),
                );
                return;
            }
            let mut message = vec![0u8; length];
            if stream.read_exact(&mut message).is_err() {
                return;
            }
            let response = match Request::decode(&mut message.as_slice()) {
                Ok(request) => connection.handle(request, started),
                // An unknown or malformed message is answered, as ssh-agent does, with a failure.
                Err(e) => {
                    tracing::debug!("ssh agent: message {} not understood: {e}", message[0]);
                    Response::Failure
                }
            };
            let mut out = Vec::new();
            let encoded = response
                .encoded_len()
                .and_then(|len| (len as u32).encode(&mut out))
                .and_then(|()| response.encode(&mut out));
            if encoded.is_err() || stream.write_all(&out).is_err() {
                return;
            }
        }
    }

    /// Records a request refused before the policy was asked.
    fn refuse(&self, peer: Option<Peer>, reason: &str) {
        tracing::warn!("ssh agent: refused: {reason}");
        self.broker.audit.recorded(&AuditEvent::Refused(Refused {
            peer,
            tool: Some(TOOL.into()),
            decision: Outcome::Deny,
            reason: reason.into(),
        }));
    }
}

impl Connection<'_> {
    fn handle(&mut self, request: Request, started: Instant) -> Response {
        match request {
            Request::RequestIdentities => match self.identities() {
                Ok(identities) => Response::IdentitiesAnswer(
                    identities
                        .into_iter()
                        .filter(|identity| {
                            let key = fingerprint(identity.credential.key_data());
                            self.agent.broker.decider.may_sign(&key, &identity.comment)
                        })
                        .collect(),
                ),
                Err(()) => Response::Failure,
            },
            Request::SignRequest(sign) => self.sign(sign, started),
            Request::Extension(extension) => self.extension(extension),
            other => {
                let what = match other {
                    Request::AddIdentity(_) | Request::AddIdConstrained(_) => "add keys to",
                    Request::RemoveIdentity(_) | Request::RemoveAllIdentities => "remove keys from",
                    Request::Lock(_) | Request::Unlock(_) => "lock or unlock",
                    _ => "add or remove smartcard keys of",
                };
                self.agent.refuse(
                    self.peer,
                    &format!("the agent may not {what} the user's ssh-agent"),
                );
                Response::Failure
            }
        }
    }

    /// The user's agent's identities (the connection to it opened on first use).
    fn identities(&mut self) -> Result<Vec<Identity>, ()> {
        let upstream = self.upstream()?;
        upstream.request_identities().map_err(|e| {
            tracing::warn!("ssh agent: the user's ssh-agent did not list its keys: {e}");
        })
    }

    fn upstream(&mut self) -> Result<&mut Client<UnixStream>, ()> {
        if self.upstream.is_none() {
            let stream = UnixStream::connect(&self.agent.upstream).map_err(|e| {
                tracing::warn!(
                    "ssh agent: cannot reach the user's ssh-agent at `{}`: {e}",
                    self.agent.upstream.display()
                );
            })?;
            let _ = stream.set_read_timeout(Some(UPSTREAM_TIMEOUT));
            self.upstream = Some(Client::new(stream));
        }
        self.upstream.as_mut().ok_or(())
    }

    /// Decides a signature, records it, and relays it when permitted.
    fn sign(&mut self, request: SignRequest, started: Instant) -> Response {
        let key = request.credential.key_data().clone();
        let Ok(identities) = self.identities() else {
            return Response::Failure;
        };
        // The comment is the user's agent's, not the requester's.
        let Some(identity) = identities.iter().find(|i| i.credential.key_data() == &key) else {
            self.agent.refuse(
                self.peer,
                "a signature with a key the user's ssh-agent does not hold",
            );
            return Response::Failure;
        };
        let binding = match self.bindings.for_data(&request.data) {
            Ok(binding) => binding,
            Err(reason) => {
                self.agent.refuse(self.peer, reason);
                return Response::Failure;
            }
        };
        let call = SshCall {
            key: fingerprint(&key),
            comment: identity.comment.clone(),
            hosts: binding.map(|b| b.hosts.clone()).unwrap_or_default(),
        };
        let host_key = binding.map(|b| b.host_key.clone());
        let decision = self.agent.broker.decider.decide(
            &Call::new(self.peer, Action::SshSign(call.clone()), Vec::new()),
            |id, timeout| {
                tracing::info!(
                    "a signature with {} waits up to {}s for `frona approve {id}`",
                    call.key,
                    timeout.as_secs()
                );
            },
        );
        let event = AuditEvent::SshSign(SshSign {
            peer: self.peer,
            key: call.key.clone(),
            comment: call.comment.clone(),
            host_key,
            hosts: call
                .hosts
                .iter()
                .map(|h| format!("{}:{}", h.name, h.port))
                .collect(),
            decided: Decided::new(&decision, started),
        });
        // Durable before the signature: no audit, no call.
        if !self.agent.broker.audit.recorded(&event) || !decision.permitted() {
            return Response::Failure;
        }
        let Ok(upstream) = self.upstream() else {
            return Response::Failure;
        };
        match upstream.sign(request) {
            Ok(signature) => Response::SignResponse(signature),
            Err(e) => {
                tracing::warn!("ssh agent: the user's ssh-agent did not sign: {e}");
                Response::Failure
            }
        }
    }

    fn extension(&mut self, extension: Extension) -> Response {
        let bind = match extension.parse_message::<SessionBind>() {
            Ok(Some(bind)) => bind,
            // Extensions other than session-bind are not relayed.
            Ok(None) => return Response::Failure,
            Err(_) => {
                self.agent
                    .refuse(self.peer, "a session-bind@openssh.com that does not parse");
                return Response::Failure;
            }
        };
        let (decider, known_hosts) = (&self.agent.broker.decider, &self.agent.known_hosts);
        let names = |key: &KeyData| known_hosts.names(key, &decider.ssh_host_names());
        if let Err(reason) = self.bindings.bind(&bind, names) {
            self.agent.refuse(self.peer, reason);
            return Response::Failure;
        }
        // The user's agent learns the binding too (its own destination constraints use it).
        if let Ok(upstream) = self.upstream()
            && let Ok(relayed) = Extension::new_message(bind)
        {
            let _ = upstream.extension(relayed);
        }
        Response::Success
    }
}

impl Bindings {
    /// The binding a signature of `data` is for: the one whose session the data is a userauth
    /// request of. Data that is no userauth request (`ssh-keygen -Y sign`) is for no host; a
    /// userauth request for a session this connection was not bound to, on a bound
    /// connection, is refused (it would be a signature for some other server).
    fn for_data(&self, data: &[u8]) -> Result<Option<&Binding>, &'static str> {
        let Some(userauth) = Userauth::parse(data) else {
            return Ok(None);
        };
        if self.0.is_empty() {
            return Ok(None);
        }
        let binding = match self.0.iter().find(|b| b.session_id == userauth.session_id) {
            Some(binding) if !binding.forwarding => binding,
            Some(_) => return Err("a userauth signature for a session bound for forwarding"),
            None => {
                return Err("a userauth signature for a session this connection was not bound to");
            }
        };
        // `publickey-hostbound-v00@openssh.com` names the server's host key too: it must be
        // the one the session was bound with.
        if userauth.host_key.is_some_and(|key| key != binding.key) {
            return Err("a userauth signature naming another host key than the session's");
        }
        Ok(Some(binding))
    }

    /// Checks a binding as OpenSSH's agent does, and records it with the names `names` gives
    /// its host key.
    fn bind(
        &mut self,
        bind: &SessionBind,
        names: impl FnOnce(&KeyData) -> Vec<SshHost>,
    ) -> Result<(), &'static str> {
        if bind.verify_signature().is_err() {
            return Err("a session-bind@openssh.com whose host signature does not verify");
        }
        if self.0.iter().any(|b| !b.forwarding) {
            return Err("a second session-bind on a connection bound for authentication");
        }
        if self.0.iter().any(|b| b.session_id == bind.session_id) {
            return Err("a session-bind for a session this connection is already bound to");
        }
        if self.0.len() >= MAX_BINDINGS {
            return Err("too many session-binds on one connection");
        }
        self.0.push(Binding {
            session_id: bind.session_id.clone(),
            key: bind.host_key.clone(),
            host_key: fingerprint(&bind.host_key),
            hosts: names(&bind.host_key),
            forwarding: bind.is_forwarding,
        });
        Ok(())
    }
}

/// `SHA256:` and unpadded base64, as `ssh-add -l` shows a key.
fn fingerprint(key: &KeyData) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// What a signature for SSH user authentication says about its session (RFC 4252 §7, and
/// OpenSSH's `publickey-hostbound-v00@openssh.com`, which adds the server's host key), as
/// OpenSSH's agent parses it.
struct Userauth {
    session_id: Vec<u8>,
    host_key: Option<KeyData>,
}

impl Userauth {
    /// `string session id, byte SSH_MSG_USERAUTH_REQUEST, string user, string service, string
    /// method, bool TRUE, string algorithm, string key[, string host key]`; `None` when `data`
    /// is not that (`ssh-keygen -Y sign` data, say).
    fn parse(data: &[u8]) -> Option<Self> {
        const SSH_MSG_USERAUTH_REQUEST: u8 = 50;
        const HOSTBOUND: &str = "publickey-hostbound-v00@openssh.com";
        let reader = &mut &data[..];
        let session_id = Vec::<u8>::decode(reader).ok()?;
        (u8::decode(reader).ok()? == SSH_MSG_USERAUTH_REQUEST).then_some(())?;
        let _user = String::decode(reader).ok()?;
        let _service = String::decode(reader).ok()?;
        let method = String::decode(reader).ok()?;
        (method == "publickey" || method == HOSTBOUND).then_some(())?;
        (u8::decode(reader).ok()? != 0).then_some(())?;
        let host_key = if method == HOSTBOUND {
            let _algorithm = String::decode(reader).ok()?;
            let _key = Vec::<u8>::decode(reader).ok()?;
            let blob = Vec::<u8>::decode(reader).ok()?;
            Some(KeyData::decode(&mut blob.as_slice()).ok()?)
        } else {
            None
        };
        Some(Self {
            session_id,
            host_key,
        })
    }
}

#[cfg(test)]
mod tests;

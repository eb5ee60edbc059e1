//! Credential issue: the registry, one client per backend, the value cache, fetches and issues
//! bounded by a deadline, the journal of dynamic credentials not yet revoked, revocation, and
//! every value handed out (what audit records are redacted of).
//!
//! A static or TOTP credential is fetched through the cache (a TOTP seed never leaves the
//! broker: the tool gets the current code). A dynamic one is issued per call, written to the
//! lease journal before it is used (no journal, no credential), and revoked after its call;
//! what a frona killed mid-call leaves in its journal is revoked by the next one to start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use frona_backends::cache::SecretCache;
use frona_backends::registry::{Credential, CredentialKind, Registry, RegistryError};
use frona_backends::{Backend, BackendError, BackendKind, IssueRequest, Secret, SecretRef};
use frona_policy::IssueSpec;

use crate::audit::{Audit, AuditEvent, Revoke};
use crate::leases::{Lease, LeaseError, LeaseJournal};
use crate::redact::Redactor;

/// How long a dynamic credential lives when its rule does not say.
pub const DEFAULT_TTL: Duration = Duration::from_secs(900);

/// What the credentials of one broker are made from.
pub struct CredentialsConfig {
    pub registry: Registry,
    /// One client per configured backend.
    pub backends: HashMap<BackendKind, Box<dyn Backend>>,
    /// How long a fetched static value is kept.
    pub cache_ttl: Duration,
    /// How long one credential's fetch or issue may take, retries included: past it the call
    /// fails with that reason instead of waiting on a slow backend.
    pub backend_timeout: Duration,
    /// Where project-scoped credentials of calls that carry no working directory (the HTTP
    /// front ends) are resolved: the agent's starting directory.
    pub cwd: PathBuf,
}

impl std::fmt::Debug for CredentialsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialsConfig")
            .field("registry", &self.registry.path())
            .field("backends", &self.backends.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Why a credential could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("credential `{0}` is not registered")]
    NotRegistered(String),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("backend {0} is not configured")]
    NotConfigured(BackendKind),
    #[error("backend {backend} timed out after {limit:?}")]
    TimedOut {
        backend: BackendKind,
        limit: Duration,
    },
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("credential `{name}`: {error}")]
    Totp {
        name: String,
        error: frona_backends::totp::TotpError,
    },
    /// The lease could not be journalled: the credential was revoked at once.
    #[error("{0}; failing closed")]
    Journal(LeaseError),
    /// A front end that needs one value got several, or none.
    #[error("the credentials could not be prepared")]
    NotPrepared,
}

/// Values ready for one call, and what to revoke after it.
#[derive(Debug)]
#[must_use = "leases must be revoked"]
pub struct Issued {
    /// `(environment variable, value)`, in the order of the credentials asked for.
    pub values: Vec<(String, Secret)>,
    pub leases: Leases,
}

/// Dynamic credentials issued for a call, to revoke after it ([`Credentials::revoke`]).
#[derive(Debug, Default)]
#[must_use = "leases must be revoked"]
pub struct Leases(Vec<(Lease, Option<u64>)>);

impl Leases {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The earliest expiry among the leases that cannot be revoked (STS sessions), and the
    /// others.
    pub fn split_unrevocable(self) -> (Option<jiff::Timestamp>, Leases) {
        let mut expires: Option<jiff::Timestamp> = None;
        let mut revocable = Vec::new();
        for (lease, journal) in self.0 {
            if lease.revocation == frona_backends::Revocation::Expires {
                expires = Some(expires.map_or(lease.expires, |e| e.min(lease.expires)));
            } else {
                revocable.push((lease, journal));
            }
        }
        (expires, Leases(revocable))
    }

    /// Leaves the leases to live out their TTL (values handed to the agent itself). They stay
    /// in the journal, so the next frona to start revokes those still alive.
    pub fn outlive_call(self) {}

    fn extend(&mut self, other: Leases) {
        self.0.extend(other.0);
    }
}

/// What [`Credentials::prepare`] did.
#[derive(Debug)]
pub enum Ready {
    Issued(Issued),
    /// Nothing: a backend would have to be called, and the caller may not block.
    WouldBlock,
}

/// The credentials side of the broker.
pub struct Credentials {
    agent: String,
    registry: Registry,
    backends: HashMap<BackendKind, Box<dyn Backend>>,
    cache: SecretCache,
    backend_timeout: Duration,
    cwd: PathBuf,
    runtime: tokio::runtime::Handle,
    leases: LeaseJournal,
    /// Every value handed out so far (to tools or, with `deliver: value`, to the agent).
    handed_out: Mutex<Vec<Secret>>,
    audit: Arc<Audit>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("agent", &self.agent)
            .field("registry", &self.registry.path())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The credentials of `session`'s `agent`; backends run on `runtime`. Revokes what the
    /// journals of dead sessions list first (there is nothing unless a frona died without
    /// cleaning up).
    pub fn new(
        config: CredentialsConfig,
        agent: impl Into<String>,
        session: &str,
        runtime: tokio::runtime::Handle,
        audit: Arc<Audit>,
    ) -> Self {
        let leases = LeaseJournal::new(&leases_dir(audit.path()), session);
        let credentials = Self {
            agent: agent.into(),
            registry: config.registry,
            backends: config.backends,
            cache: SecretCache::new(config.cache_ttl),
            backend_timeout: config.backend_timeout,
            cwd: config.cwd,
            runtime,
            leases,
            handed_out: Mutex::new(Vec::new()),
            audit,
        };
        credentials.revoke_orphans();
        credentials
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The agent's starting directory (see [`CredentialsConfig::cwd`]).
    pub fn cwd(&self) -> &Path {
        &self.cwd
    }

    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// The registration of `name` that applies to this agent in `cwd` (the narrowest).
    pub fn resolve(&self, name: &str, cwd: &Path) -> Result<Credential, CredentialError> {
        self.registry
            .resolve(name, Some(&self.agent), cwd)?
            .ok_or_else(|| CredentialError::NotRegistered(name.to_owned()))
    }

    /// Resolves `names` from `cwd`, fetches static values (through the cache) and issues
    /// dynamic ones, shaped by `spec`. Blocks on the backends.
    pub fn issue(
        &self,
        names: &[String],
        spec: &IssueSpec,
        cwd: &Path,
    ) -> Result<Issued, CredentialError> {
        let resolved = names
            .iter()
            .map(|name| self.resolve(name, cwd))
            .collect::<Result<Vec<_>, _>>()?;
        match self.prepare(resolved, spec, true)? {
            Ready::Issued(issued) => Ok(issued),
            // Not reached: a caller that may block is never told it would.
            Ready::WouldBlock => Err(CredentialError::NotPrepared),
        }
    }

    /// [`Credentials::issue`] for credentials already resolved. With `may_block` false (on
    /// an async thread) it does nothing and returns [`Ready::WouldBlock`] when a backend would
    /// have to be called (a cache miss, a dynamic credential). If one credential fails, those
    /// issued before it are revoked.
    pub fn prepare(
        &self,
        credentials: Vec<Credential>,
        spec: &IssueSpec,
        may_block: bool,
    ) -> Result<Ready, CredentialError> {
        let mut issued = Issued {
            values: Vec::new(),
            leases: Leases::default(),
        };
        for credential in credentials {
            match self.prepare_one(&credential, spec, may_block, &mut issued) {
                Ok(true) => {}
                Ok(false) => return Ok(Ready::WouldBlock),
                Err(e) => {
                    self.revoke(issued.leases);
                    return Err(e);
                }
            }
        }
        let mut handed_out = self.handed_out.lock().unwrap_or_else(|p| p.into_inner());
        for (_, value) in &issued.values {
            if !handed_out.contains(value) {
                handed_out.push(value.clone());
            }
        }
        drop(handed_out);
        Ok(Ready::Issued(issued))
    }

    /// The current value of a static or TOTP credential (what a placeholder is shaped like);
    /// `None` for a kind that is issued per call.
    pub fn current_value(
        &self,
        credential: &Credential,
    ) -> Result<Option<Secret>, CredentialError> {
        if !matches!(
            credential.kind,
            CredentialKind::Static | CredentialKind::Totp
        ) {
            return Ok(None);
        }
        let mut scratch = Issued {
            values: Vec::new(),
            leases: Leases::default(),
        };
        self.prepare_one(credential, &IssueSpec::default(), true, &mut scratch)?;
        Ok(scratch.values.pop().map(|(_, value)| value))
    }

    /// Adds `credential`'s values (and what to revoke) to `issued`; `false` when it would
    /// have to block and may not.
    fn prepare_one(
        &self,
        credential: &Credential,
        spec: &IssueSpec,
        may_block: bool,
        issued: &mut Issued,
    ) -> Result<bool, CredentialError> {
        let name = &credential.name;
        let backend = self
            .backends
            .get(&credential.backend)
            .ok_or(CredentialError::NotConfigured(credential.backend))?;
        let env = credential.env.clone().unwrap_or_else(|| env_name(name));
        match credential.kind {
            CredentialKind::Static | CredentialKind::Totp => {
                // Keyed by what is fetched, not only the name: scopes resolve a name to
                // different secrets in different projects.
                let key = format!(
                    "{name}\0{}\0{}\0{}\0{}",
                    credential.backend,
                    credential.path,
                    credential.field.as_deref().unwrap_or_default(),
                    credential.version.as_deref().unwrap_or_default()
                );
                let value = match self.cache.get(&key) {
                    Some(value) => value,
                    None if !may_block => return Ok(false),
                    None => {
                        let value = self.within_deadline(
                            credential.backend,
                            backend.fetch(&SecretRef::from(credential)),
                        )?;
                        self.cache.put(&key, value.clone());
                        value
                    }
                };
                let value = if credential.kind == CredentialKind::Totp {
                    let now = jiff::Timestamp::now().as_second().max(0) as u64;
                    frona_backends::totp::code(&value, now).map_err(|error| {
                        CredentialError::Totp {
                            name: name.clone(),
                            error,
                        }
                    })?
                } else {
                    value
                };
                issued.values.push((env, value));
            }
            CredentialKind::Dynamic | CredentialKind::AwsSts if !may_block => return Ok(false),
            CredentialKind::Dynamic | CredentialKind::AwsSts => {
                let request = IssueRequest {
                    ttl: spec.ttl.unwrap_or(DEFAULT_TTL),
                    uses: spec.uses,
                    policies: spec.policies.clone(),
                    session_policy: spec.session_policy.clone(),
                    session_name: Some(format!("frona-{}", self.agent)),
                };
                let frona_backends::Issued {
                    values,
                    revocation,
                    ttl,
                } = self.within_deadline(
                    credential.backend,
                    backend.issue(&SecretRef::from(credential), &request),
                )?;
                let lease = Lease {
                    backend: credential.backend,
                    revocation,
                    credential: name.clone(),
                    expires: jiff::Timestamp::now()
                        + jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::MAX),
                };
                // On disk before the value is used: a frona killed now has it revoked by the
                // next one. No journal, no credential.
                let journal = match &lease.revocation {
                    frona_backends::Revocation::Expires => None,
                    _ => match self.leases.add(lease.clone()) {
                        Ok(id) => Some(id),
                        Err(e) => {
                            self.revoke(Leases(vec![(lease, None)]));
                            return Err(CredentialError::Journal(e));
                        }
                    },
                };
                issued.leases.extend(Leases(vec![(lease, journal)]));
                let single = values.len() == 1;
                for (value_name, value) in values {
                    let var = if single {
                        env.clone()
                    } else if value_name.starts_with("AWS_") {
                        value_name
                    } else {
                        format!("{env}_{}", env_name(&value_name))
                    };
                    issued.values.push((var, value));
                }
            }
        }
        Ok(true)
    }

    /// Runs a backend operation to its end or the backend timeout, whichever comes first.
    fn within_deadline<T>(
        &self,
        backend: BackendKind,
        operation: impl std::future::Future<Output = Result<T, BackendError>>,
    ) -> Result<T, CredentialError> {
        let limit = self.backend_timeout;
        self.runtime
            .block_on(async move { tokio::time::timeout(limit, operation).await })
            .map_err(|_| CredentialError::TimedOut { backend, limit })?
            .map_err(CredentialError::from)
    }

    /// Revokes what was issued for a call (after the call), auditing each; the journal
    /// forgets what was revoked (what was not is tried again by the next frona to start).
    /// Blocks on the backends.
    pub fn revoke(&self, leases: Leases) {
        for (lease, journal) in leases.0 {
            let result = self.revoke_lease(&lease);
            if result.is_ok()
                && let Some(id) = journal
                && let Err(e) = self.leases.done(id)
            {
                tracing::warn!("{e}");
            }
            self.audit.recorded(&AuditEvent::Revoke(Revoke {
                credential: lease.credential,
                ok: result.is_ok(),
                error: result.err().map(|e| e.to_string()),
                orphan_of_session: None,
                expired: false,
            }));
        }
    }

    /// [`Credentials::revoke`] on a blocking thread of the runtime, for async callers; does
    /// nothing when there is nothing to revoke.
    pub fn revoke_later(self: &Arc<Self>, leases: Leases) {
        if !leases.is_empty() {
            let credentials = Arc::clone(self);
            self.runtime
                .spawn_blocking(move || credentials.revoke(leases));
        }
    }

    /// Revokes what the journals of dead sessions list (a frona killed mid-call), auditing
    /// each; what has expired already is only recorded.
    fn revoke_orphans(&self) {
        let now = jiff::Timestamp::now();
        for (path, leases) in crate::leases::orphans(&leases_dir(self.audit.path())) {
            let session = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            for lease in leases {
                let (ok, error, expired) = if lease.expires <= now {
                    (true, None, true)
                } else {
                    let result = self.revoke_lease(&lease);
                    (result.is_ok(), result.err().map(|e| e.to_string()), false)
                };
                self.audit.recorded(&AuditEvent::Revoke(Revoke {
                    credential: lease.credential.clone(),
                    ok,
                    error,
                    orphan_of_session: session.clone(),
                    expired,
                }));
            }
        }
    }

    fn revoke_lease(&self, lease: &Lease) -> Result<(), CredentialError> {
        let backend = self
            .backends
            .get(&lease.backend)
            .ok_or(CredentialError::NotConfigured(lease.backend))?;
        Ok(self.runtime.block_on(backend.revoke(&lease.revocation))?)
    }

    /// `texts` with every value handed out so far (and its encodings) replaced.
    pub fn redact(&self, texts: &[String]) -> Vec<String> {
        let known = self.handed_out.lock().unwrap_or_else(|p| p.into_inner());
        if known.is_empty() {
            return texts.to_vec();
        }
        texts
            .iter()
            .map(|text| {
                let mut redactor = Redactor::new(known.iter().map(Secret::expose));
                let mut out = redactor.push(text.as_bytes());
                out.extend(redactor.finish());
                String::from_utf8_lossy(&out).into_owned()
            })
            .collect()
    }
}

/// The environment variable a credential reaches a tool under when its registration names
/// none: `github-token` → `GITHUB_TOKEN`.
pub fn env_name(credential: &str) -> String {
    credential
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The lease journals live beside the audit log, in frona's state directory.
fn leases_dir(audit: &Path) -> PathBuf {
    audit
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("leases")
}

#[cfg(test)]
mod tests;

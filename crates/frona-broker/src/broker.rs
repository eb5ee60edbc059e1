//! The broker as `frona run` builds it: the decision core ([`Decider`]), credential issue
//! ([`Credentials`]) and the audit log ([`Audit`]) for one agent's session, and the async
//! runtime the backends and the HTTP front ends run on. Front ends (the tool socket, the
//! control socket, the HTTP proxies in `frona-proxy`) are given a [`Broker`] — a handful of
//! `Arc`s — and call into its parts; nothing here knows a front end.

use std::sync::Arc;
use std::sync::atomic::AtomicI32;
use std::time::Duration;

use frona_policy::PolicySet;

use crate::audit::{Audit, AuditEvent, AuditLog};
use crate::call::Call;
use crate::credentials::{CredentialError, Credentials, CredentialsConfig, Issued, Ready};
use crate::decider::{Decider, Decision, Verdict};
use crate::grants::Grants;
use crate::session::Session;

/// Everything the broker is built from (by `frona run`, or in-process by `frona call`).
#[derive(Debug)]
pub struct BrokerConfig {
    pub agent: String,
    pub session: String,
    pub policy: PolicySet,
    pub credentials: CredentialsConfig,
    pub audit: AuditLog,
    pub grants: Grants,
    /// Set to the agent's init helper's pid once it runs (see [`Session`]).
    pub agent_root: Arc<AtomicI32>,
}

/// The broker's parts for one session. Cloning shares them.
#[derive(Clone, Debug)]
pub struct Broker {
    pub session: Arc<Session>,
    pub decider: Arc<Decider>,
    pub credentials: Arc<Credentials>,
    pub audit: Arc<Audit>,
    runtime: Arc<tokio::runtime::Runtime>,
}

/// Why an async front end's call was not let through ([`Broker::authorize`]).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The policy, a grant or a human said no.
    #[error("{}", .0.refusal())]
    Denied(Decision),
    /// Permitted, but the credential could not be had.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error("the audit log cannot be written; failing closed")]
    AuditUnavailable,
    #[error("the decision failed")]
    Internal,
}

impl Broker {
    pub fn new(config: BrokerConfig) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("frona-broker")
            .build()?;
        let session = Arc::new(Session::new(
            config.agent.clone(),
            config.session.clone(),
            config.agent_root,
        ));
        let audit = Arc::new(Audit::new(config.audit, &config.agent, &config.session));
        let decider = Arc::new(Decider::new(
            &config.agent,
            config.policy,
            config.grants,
            Arc::clone(&audit),
        ));
        let credentials = Arc::new(Credentials::new(
            config.credentials,
            &config.agent,
            &config.session,
            runtime.handle().clone(),
            Arc::clone(&audit),
        ));
        Ok(Self {
            session,
            decider,
            credentials,
            audit,
            runtime: Arc::new(runtime),
        })
    }

    /// The runtime the backends and the HTTP front ends run on.
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    /// Before exit: waits (up to 5 s) until every queued audit record is on disk.
    pub fn finish(&self) {
        if !self.audit.flush(Duration::from_secs(5)) {
            tracing::error!("some audit records may not have reached the log");
        }
    }

    /// Decides `call` for `credential`, records the decision (`record` makes the event from
    /// it) durably before the value is returned — no audit, no call — and prepares the value,
    /// for async front ends. Decided on the calling task when nothing can block (no human to
    /// ask, the value cached); otherwise on one trip to a blocking thread. The decision's
    /// record syncs while the credential is prepared.
    pub async fn authorize(
        &self,
        call: Call,
        credential: frona_backends::registry::Credential,
        record: impl FnOnce(&Decision) -> AuditEvent + Send + 'static,
    ) -> Result<Issued, Refused> {
        let tool = call.tool_name().to_owned();
        let decided = match self.decider.evaluate(&call) {
            Verdict::Ask(ask) => {
                let broker = self.clone();
                tokio::task::spawn_blocking(move || {
                    let decision = broker.decider.settle(&call, ask, |id, timeout| {
                        tracing::info!(
                            "a proxied call waits up to {}s for `frona approve {id}`",
                            timeout.as_secs()
                        );
                    });
                    let seq = broker.audit.submit(&record(&decision));
                    let prepared = if decision.permitted() {
                        broker
                            .credentials
                            .prepare(vec![credential], &decision.issue(), true)
                            .map_err(Refused::from)
                    } else {
                        Err(Refused::Denied(decision))
                    };
                    (seq, prepared)
                })
                .await
            }
            Verdict::Decided(decision) => {
                let seq = self.audit.submit(&record(&decision));
                if !decision.permitted() {
                    Ok((seq, Err(Refused::Denied(decision))))
                } else {
                    let issue = decision.issue();
                    match self
                        .credentials
                        .prepare(vec![credential.clone()], &issue, false)
                    {
                        Ok(Ready::WouldBlock) => {
                            let credentials = Arc::clone(&self.credentials);
                            tokio::task::spawn_blocking(move || {
                                let prepared = credentials
                                    .prepare(vec![credential], &issue, true)
                                    .map_err(Refused::from);
                                (seq, prepared)
                            })
                            .await
                        }
                        ready => Ok((seq, ready.map_err(Refused::from))),
                    }
                }
            }
        };
        let Ok((seq, prepared)) = decided else {
            return Err(Refused::Internal);
        };
        let issued = match prepared {
            Ok(Ready::Issued(issued)) => Ok(issued),
            Ok(Ready::WouldBlock) => Err(Refused::Credential(CredentialError::NotPrepared)),
            Err(refused) => Err(refused),
        };
        if let Err(Refused::Credential(e)) = &issued {
            self.audit.submit(&AuditEvent::IssueFailed {
                tool,
                reason: e.to_string(),
            });
        }
        if self.audit.durable(seq).await.is_err() {
            if let Ok(issued) = issued {
                self.credentials.revoke_later(issued.leases);
            }
            return Err(Refused::AuditUnavailable);
        }
        issued
    }
}

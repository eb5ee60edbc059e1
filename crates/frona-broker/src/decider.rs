//! The decision core: a [`Call`] in, a [`Decision`] out. The policy decides first (with rate
//! limits); an `ask` is then settled by a remembered grant or by a human, for whom the call
//! waits on hold ([`approvals`]). Every front end decides here, and nowhere else; none of them
//! is known here.
//!
//! The decider audits what it does itself (an `ask` put on hold, a grant revoked); the decision
//! record of a call is its front end's, which knows what the call was.

mod approvals;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use frona_policy::network::{EgressDecision, EgressRequest};
use frona_policy::{Effect, IssueSpec, PolicySet, RateTracker};

pub use approvals::{Answer, Approvals, Pending};

use crate::audit::{Audit, AuditEvent};
use crate::call::Call;
use crate::grants::{Grant, GrantError, Grants, Lifetime};

/// How long an `ask` waits for a human when its rule does not say.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(300);

/// What was decided for a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// [`Effect::Permit`] or [`Effect::Deny`] once settled.
    pub effect: Effect,
    /// The deciding rule (`None`: default deny, or refused before a rule applied).
    pub rule: Option<String>,
    pub reason: String,
    /// For a permit: the short-lived credential to issue.
    pub issue: Option<IssueSpec>,
    /// The grant that settled an `ask`.
    pub grant: Option<String>,
}

impl Decision {
    /// A denial that no rule made (the audit log down, grants unavailable …).
    pub fn deny(reason: impl Into<String>) -> Self {
        Self {
            effect: Effect::Deny,
            rule: None,
            reason: reason.into(),
            issue: None,
            grant: None,
        }
    }

    pub fn permitted(&self) -> bool {
        self.effect == Effect::Permit
    }

    /// What to issue for a permit (the rule's `issue:`, else the defaults).
    pub fn issue(&self) -> IssueSpec {
        self.issue.clone().unwrap_or_default()
    }

    /// `denied by rule `NAME`: REASON` (or without the rule): what a refused caller is told.
    pub fn refusal(&self) -> String {
        let by = self
            .rule
            .as_ref()
            .map(|r| format!(" by rule `{r}`"))
            .unwrap_or_default();
        format!("denied{by}: {}", self.reason)
    }
}

/// The policy's verdict before anyone is asked.
#[derive(Debug)]
pub enum Verdict {
    /// Permit or deny: final.
    Decided(Decision),
    /// A rule says ask: [`Decider::settle`] finds a grant or waits for a human.
    Ask(Ask),
}

/// An `ask` to settle: the rule that asks, how long to wait, what to issue once approved.
#[derive(Debug)]
pub struct Ask {
    rule: Option<String>,
    timeout: Duration,
    issue: Option<IssueSpec>,
}

/// Why an operator's request could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no call is waiting for approval `{0}`")]
    NoSuchApproval(String),
    #[error("no grant `{0}`")]
    NoSuchGrant(String),
    #[error(transparent)]
    Grants(#[from] GrantError),
}

/// Policy, rate limits, grants and the calls waiting for a human, for one agent.
#[derive(Debug)]
pub struct Decider {
    agent: String,
    policy: PolicySet,
    rates: Mutex<RateTracker>,
    grants: Grants,
    approvals: Approvals,
    audit: Arc<Audit>,
}

impl Decider {
    pub fn new(
        agent: impl Into<String>,
        policy: PolicySet,
        grants: Grants,
        audit: Arc<Audit>,
    ) -> Self {
        Self {
            agent: agent.into(),
            policy,
            rates: Mutex::new(RateTracker::default()),
            grants,
            approvals: Approvals::default(),
            audit,
        }
    }

    /// Whether some `ssh:` rule could let this agent sign with the key (the SSH agent lists
    /// only such keys).
    pub fn may_sign(&self, key: &str, comment: &str) -> bool {
        self.policy.may_sign(&self.agent, key, comment)
    }

    /// Whether some `mcp:` rule could let this agent call `tool` of `server` (the gateway
    /// lists only such tools).
    pub fn may_call_mcp(&self, server: &str, tool: &str) -> bool {
        self.policy.may_call_mcp(&self.agent, server, tool)
    }

    /// The host names `ssh:` rules spell out (for hashed `known_hosts` entries).
    pub fn ssh_host_names(&self) -> Vec<(String, Option<u16>)> {
        self.policy.ssh_host_names()
    }

    /// Whether a rule pins a tool's binary by hash (then the front end hashes it).
    pub fn pins_binaries(&self) -> bool {
        self.policy.pins_binaries()
    }

    /// Decides `call`: [`Decider::evaluate`], then [`Decider::settle`] for an `ask`. Blocks
    /// while a human decides; `on_pending` says what the call waits for.
    pub fn decide(&self, call: &Call, on_pending: impl FnOnce(&str, Duration)) -> Decision {
        match self.evaluate(call) {
            Verdict::Decided(decision) => decision,
            Verdict::Ask(ask) => self.settle(call, ask, on_pending),
        }
    }

    /// The policy's verdict alone (it counts towards rate limits); never blocks.
    pub fn evaluate(&self, call: &Call) -> Verdict {
        let request = call.request(self.agent.clone());
        let decision = {
            let mut rates = self.rates.lock().unwrap_or_else(|p| p.into_inner());
            self.policy.evaluate(&request, &mut rates)
        };
        if decision.effect == Effect::Ask {
            return Verdict::Ask(Ask {
                rule: decision.rule,
                timeout: decision.ask_timeout.unwrap_or(ASK_TIMEOUT),
                issue: decision.issue,
            });
        }
        Verdict::Decided(Decision {
            effect: decision.effect,
            rule: decision.rule,
            reason: decision.reason,
            issue: decision.issue,
            grant: None,
        })
    }

    /// Turns an `ask` into a permit or a deny: with a remembered grant, else with a human's
    /// answer (the call is put on hold, audited as `kind: ask`, and waits up to the rule's
    /// timeout). Blocks while the human decides.
    pub fn settle(
        &self,
        call: &Call,
        ask: Ask,
        on_pending: impl FnOnce(&str, Duration),
    ) -> Decision {
        let tool = call.tool_name().to_owned();
        let rule = ask.rule.clone().unwrap_or_default();
        let asked = |effect, reason: String, grant| Decision {
            effect,
            rule: ask.rule.clone(),
            reason,
            issue: (effect == Effect::Permit).then(|| ask.issue.clone().unwrap_or_default()),
            grant,
        };
        match self
            .grants
            .use_grant(&self.agent, &tool, &call.grant_scope(), call.time)
        {
            Ok(Some(grant)) => {
                let reason = format!("approved earlier (grant {})", grant.id);
                return asked(Effect::Permit, reason, Some(grant.id));
            }
            Ok(None) => {}
            Err(e) => return asked(Effect::Deny, format!("grants unavailable: {e}"), None),
        }
        let pending = Pending {
            id: new_approval_id(),
            agent: self.agent.clone(),
            tool: tool.clone(),
            args: call.args(),
            credentials: call.credentials.clone(),
            rule: rule.clone(),
            reason: call.reason.clone(),
            asked: call.time,
        };
        let id = pending.id.clone();
        let full_tool = match &call.action {
            crate::call::Action::Tool { tool, .. } => tool.clone(),
            _ => tool.clone(),
        };
        let recorded = self.audit.recorded(&AuditEvent::Ask(crate::audit::Ask {
            peer: call.peer,
            approval: id.clone(),
            tool: full_tool,
            credentials: call.credentials.clone(),
            rule: rule.clone(),
        }));
        if !recorded {
            return Decision::deny("the audit log cannot be written; failing closed");
        }
        let wait = self.approvals.hold(pending);
        on_pending(&id, ask.timeout);
        let answer = wait.recv_timeout(ask.timeout);
        self.approvals.release(&id);
        match answer {
            Ok(Answer::Approve(lifetime)) => match self.grant(&tool, call, &rule, lifetime) {
                Ok(grant) => {
                    let reason = format!("approved (grant {})", grant.id);
                    asked(Effect::Permit, reason, Some(grant.id))
                }
                Err(e) => asked(
                    Effect::Deny,
                    format!("approved, but the grant could not be stored: {e}"),
                    None,
                ),
            },
            Ok(Answer::Deny(why)) => {
                asked(Effect::Deny, format!("denied by the operator: {why}"), None)
            }
            Err(_) => asked(
                Effect::Deny,
                format!(
                    "no answer to approval {id} within {}s",
                    ask.timeout.as_secs()
                ),
                None,
            ),
        }
    }

    /// Stores an approval of `call` as a grant; a once-grant is used up at once, by this call.
    fn grant(
        &self,
        tool: &str,
        call: &Call,
        rule: &str,
        lifetime: Lifetime,
    ) -> Result<Grant, GrantError> {
        let now = jiff::Timestamp::now();
        let scope = call.grant_scope();
        let grant = self
            .grants
            .create(&self.agent, tool, &scope, rule, lifetime, now)?;
        if lifetime == Lifetime::Once {
            self.grants.use_grant(&self.agent, tool, &scope, now)?;
        }
        Ok(grant)
    }

    /// The egress proxy's decision for a connection (the policy's `network:` entries and
    /// `--allow-host`).
    pub fn egress(&self, request: &EgressRequest) -> EgressDecision {
        self.policy.egress(request)
    }

    /// Why the egress proxy may not connect to `ip` for `request`, if it may not.
    pub fn egress_address(
        &self,
        request: &EgressRequest,
        ip: std::net::IpAddr,
    ) -> Option<EgressDecision> {
        self.policy.egress_address(request, ip)
    }

    /// The agent this decider decides for.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// The calls waiting for a human, oldest first.
    pub fn pending(&self) -> Vec<Pending> {
        self.approvals.list()
    }

    /// A human approves a waiting call for `lifetime`.
    pub fn approve(&self, id: &str, lifetime: Lifetime) -> Result<(), ControlError> {
        self.answer(id, Answer::Approve(lifetime))
    }

    /// A human denies a waiting call.
    pub fn deny(&self, id: &str, reason: Option<String>) -> Result<(), ControlError> {
        let reason = reason.unwrap_or_else(|| "no reason given".into());
        self.answer(id, Answer::Deny(reason))
    }

    fn answer(&self, id: &str, answer: Answer) -> Result<(), ControlError> {
        if self.approvals.answer(id, answer) {
            Ok(())
        } else {
            Err(ControlError::NoSuchApproval(id.to_owned()))
        }
    }

    /// Every live grant.
    pub fn grants(&self) -> Result<Vec<Grant>, ControlError> {
        Ok(self.grants.list(jiff::Timestamp::now())?)
    }

    /// Revokes a grant (audited): the next call it would have covered is decided afresh.
    pub fn revoke_grant(&self, id: &str) -> Result<(), ControlError> {
        if !self.grants.revoke(id)? {
            return Err(ControlError::NoSuchGrant(id.to_owned()));
        }
        self.audit.recorded(&AuditEvent::RevokeGrant {
            grant: id.to_owned(),
        });
        Ok(())
    }
}

fn new_approval_id() -> String {
    let mut bytes = [0u8; 6];
    let _ = getrandom::fill(&mut bytes);
    format!("a-{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests;

//! Policy test files (`frona policy test FILE`), in the spirit of `opa test`: each case is a
//! request and the decision expected for it.
//!
//! ```yaml
//! cases:
//!   - name: reading issues is allowed
//!     request: { tool: gh, args: [api, repos/acme/app/issues], credentials: [github-token] }
//!     expect: permit
//!     rule: github-read        # optional: which rule must decide
//!   - name: gists are refused under --net proxy
//!     connect: gist.github.com   # HOST[:PORT] (a CONNECT, port 443) or an http:// URL
//!     expect: deny               # permit or deny
//!     rule: no-gists
//! ```
//!
//! A `connect:` case is decided by the `network:` entries as the egress proxy decides a
//! request ([`PolicySet::egress_unresolved`]): no name is resolved, so the addresses a name
//! resolves to are not checked, but an address given as the host is. Its `agent` and `time`
//! are keys of the case (a tool case has them in `request`).

use serde::{Deserialize, Serialize};

use jiff::Timestamp;

use crate::network::{Connect, EgressRequest};
use crate::{Effect, PolicyError, PolicySet, RateTracker, Request};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CasesFile {
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// A tool call or a proxied HTTP request.
    #[serde(default)]
    request: Option<Request>,
    /// Or a request to the egress proxy: `HOST[:PORT]` or `http://HOST[:PORT]/PATH`.
    #[serde(default)]
    connect: Option<String>,
    /// With `connect`: the agent id (default `default`).
    #[serde(default)]
    agent: Option<String>,
    /// With `connect`: when (RFC 3339; default Monday 2026-01-05 12:00 UTC).
    #[serde(default)]
    time: Option<Timestamp>,
    expect: Effect,
    #[serde(default)]
    rule: Option<String>,
}

/// A case's request, checked.
enum Checked {
    Call(Box<Request>),
    Egress(EgressRequest),
}

impl Case {
    /// The request the case describes, or why the case is malformed.
    fn checked(&self) -> Result<Checked, String> {
        match (&self.request, &self.connect) {
            (Some(_), Some(_)) => Err("give `request` or `connect`, not both".into()),
            (None, None) => Err("give `request` (a call) or `connect` (an egress request)".into()),
            (Some(_), None) if self.agent.is_some() || self.time.is_some() => {
                Err("`agent` and `time` of a call go in its `request`".into())
            }
            (Some(request), None) => Ok(Checked::Call(Box::new(request.clone()))),
            (None, Some(_)) if self.expect == Effect::Ask => {
                Err("an egress request is permitted or denied, never asked: `expect: permit` or `expect: deny`".into())
            }
            (None, Some(text)) => {
                let connect = Connect::parse(text).map_err(|e| format!("connect: {e}"))?;
                Ok(Checked::Egress(EgressRequest {
                    target: connect.target,
                    port: connect.port,
                    agent: self.agent.clone().unwrap_or_else(crate::default_agent),
                    time: self.time.unwrap_or_else(crate::default_time),
                }))
            }
        }
    }
}

/// The outcome of one case.
#[derive(Debug, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    /// What happened instead, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// Runs every case of the test file `text` against `policy`, each with fresh rate counters.
pub fn run_cases(
    policy: &PolicySet,
    file: &str,
    text: &str,
) -> Result<Vec<CaseResult>, PolicyError> {
    let cases: CasesFile = crate::yaml::from_str(text).map_err(|e| PolicyError::yaml(file, e))?;
    let mut checked = Vec::with_capacity(cases.cases.len());
    for (index, case) in cases.cases.iter().enumerate() {
        checked.push(case.checked().map_err(|message| PolicyError {
            file: file.into(),
            line: 1,
            column: 1,
            message: format!("cases[{index}] `{}`: {message}", case.name),
        })?);
    }
    Ok(cases
        .cases
        .into_iter()
        .zip(checked)
        .map(|(case, request)| {
            let (effect, rule, reason) = match request {
                Checked::Call(request) => {
                    let decision = policy.evaluate(&request, &mut RateTracker::default());
                    (decision.effect, decision.rule, decision.reason)
                }
                Checked::Egress(request) => {
                    let decision = policy.egress_unresolved(&request);
                    let effect = if decision.allowed {
                        Effect::Permit
                    } else {
                        Effect::Deny
                    };
                    (effect, decision.rule, decision.reason)
                }
            };
            let wrong_effect = effect != case.expect;
            let wrong_rule = case.rule.as_ref().is_some_and(|r| rule.as_ref() != Some(r));
            let failure = (wrong_effect || wrong_rule).then(|| {
                format!(
                    "expected {:?}{}, got {:?} by {} ({})",
                    case.expect,
                    case.rule
                        .as_ref()
                        .map(|r| format!(" by `{r}`"))
                        .unwrap_or_default(),
                    effect,
                    rule.as_ref()
                        .map_or("no rule".to_owned(), |r| format!("`{r}`")),
                    reason
                )
            });
            CaseResult {
                name: case.name,
                passed: failure.is_none(),
                failure,
            }
        })
        .collect())
}

//! Policy test files (`frona policy test FILE`), in the spirit of `opa test`: each case is a
//! request and the decision expected for it.
//!
//! ```yaml
//! cases:
//!   - name: reading issues is allowed
//!     request: { tool: gh, args: [api, repos/acme/app/issues], credentials: [github-token] }
//!     expect: permit
//!     rule: github-read        # optional: which rule must decide
//! ```

use serde::{Deserialize, Serialize};

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
    request: Request,
    expect: Effect,
    #[serde(default)]
    rule: Option<String>,
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
    let cases: CasesFile = serde_norway::from_str(text).map_err(|e| PolicyError::yaml(file, &e))?;
    Ok(cases
        .cases
        .into_iter()
        .map(|case| {
            let decision = policy.evaluate(&case.request, &mut RateTracker::default());
            let wrong_effect = decision.effect != case.expect;
            let wrong_rule = case
                .rule
                .as_ref()
                .is_some_and(|r| decision.rule.as_ref() != Some(r));
            let failure = (wrong_effect || wrong_rule).then(|| {
                format!(
                    "expected {:?}{}, got {:?} by {} ({})",
                    case.expect,
                    case.rule
                        .as_ref()
                        .map(|r| format!(" by `{r}`"))
                        .unwrap_or_default(),
                    decision.effect,
                    decision
                        .rule
                        .as_ref()
                        .map_or("no rule".to_owned(), |r| format!("`{r}`")),
                    decision.reason
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

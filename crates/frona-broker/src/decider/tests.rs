//! The decider on its own, no socket: permit, deny, default deny, and an `ask` settled by a
//! human (approved once, for a while, denied, unanswered) or by a grant, which expires.

use std::sync::Arc;
use std::time::Duration;

use frona_policy::{Effect, PolicySet};

use super::*;
use crate::audit::AuditLog;
use crate::call::Action;

const POLICY: &str = r#"
version: 1
rules:
  - name: gh-delete
    tool: gh
    args: [repo, delete]
    credentials: [github-token]
    effect: deny
    reason: no deleting
  - name: gh-read
    tool: gh
    args: [api]
    credentials: [github-token]
    effect: permit
    issue: { ttl: 10m }
  - name: deploy
    tool: deploy
    credentials: [prod]
    effect: ask
    reason: deploying needs a human
    timeout: 1s
"#;

struct Fixture {
    dir: std::path::PathBuf,
    decider: Arc<Decider>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fixture(name: &str) -> Fixture {
    fixture_with(name, POLICY)
}

/// A decider for `policy`, its audit log and grants in a fresh directory.
fn fixture_with(name: &str, policy: &str) -> Fixture {
    let dir = std::env::temp_dir().join(format!("frona-decider-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let audit = Arc::new(Audit::new(
        AuditLog::open(&dir.join("audit.jsonl")).unwrap(),
        "default",
        "test",
    ));
    let decider = Decider::new(
        "default",
        PolicySet::load([("p.yaml", policy)]).unwrap(),
        Grants::open(&dir.join("grants.redb")).unwrap(),
        audit,
    );
    Fixture {
        dir,
        decider: Arc::new(decider),
    }
}

impl Fixture {
    fn kinds(&self) -> Vec<String> {
        crate::audit::read(&self.dir.join("audit.jsonl"))
            .unwrap()
            .iter()
            .map(|r| r["kind"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

fn call(tool: &str, args: &[&str], credential: &str) -> Call {
    Call::new(
        None,
        Action::Tool {
            tool: tool.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            sha256: None,
        },
        vec![credential.into()],
    )
}

fn deploy() -> Call {
    call("deploy", &["prod"], "prod")
}

/// Answers the first call that waits with `answer`, from another thread (the operator).
fn operator(decider: &Arc<Decider>, answer: impl FnOnce(&Decider, &str) + Send + 'static) {
    let decider = Arc::clone(decider);
    std::thread::spawn(move || {
        for _ in 0..500 {
            if let Some(pending) = decider.pending().first() {
                return answer(&decider, &pending.id);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
}

#[test]
fn permit_and_deny_are_final_without_a_human() {
    let f = fixture("final");
    let permit = f
        .decider
        .decide(&call("gh", &["api", "user"], "github-token"), |_, _| {
            panic!("nobody is asked")
        });
    assert_eq!(permit.effect, Effect::Permit);
    assert_eq!(permit.rule.as_deref(), Some("gh-read"));
    assert_eq!(permit.issue().ttl, Some(Duration::from_secs(600)));
    assert!(permit.grant.is_none());
    let deny = f.decider.decide(
        &call("gh", &["repo", "delete", "x"], "github-token"),
        |_, _| panic!("nobody is asked"),
    );
    assert_eq!(deny.effect, Effect::Deny);
    assert_eq!(deny.refusal(), "denied by rule `gh-delete`: no deleting");
    let default = f
        .decider
        .decide(&call("gh", &["api"], "another-token"), |_, _| {});
    assert_eq!(default.effect, Effect::Deny);
    assert_eq!(default.rule, None, "default deny");
    assert!(
        f.kinds().is_empty(),
        "a final decision is its front end's to record"
    );
}

#[test]
fn an_ask_waits_for_a_human_and_is_audited() {
    let f = fixture("ask");
    operator(&f.decider, |d, id| d.approve(id, Lifetime::Once).unwrap());
    let mut waited = None;
    let decision = f.decider.decide(&deploy(), |id, timeout| {
        waited = Some((id.to_owned(), timeout))
    });
    assert_eq!(decision.effect, Effect::Permit, "{decision:?}");
    assert_eq!(decision.rule.as_deref(), Some("deploy"));
    let (id, timeout) = waited.unwrap();
    assert!(id.starts_with("a-"));
    assert_eq!(timeout, Duration::from_secs(1));
    assert!(decision.reason.starts_with("approved (grant g-"));
    assert_eq!(f.kinds(), ["ask"]);
    assert!(f.decider.pending().is_empty(), "released once answered");
    // Once: used up by that call; the next one asks again, and is denied.
    operator(&f.decider, |d, id| {
        d.deny(id, Some("not now".into())).unwrap()
    });
    let again = f.decider.decide(&deploy(), |_, _| {});
    assert_eq!(again.effect, Effect::Deny);
    assert_eq!(again.reason, "denied by the operator: not now");
    assert_eq!(f.kinds(), ["ask", "ask"]);
}

#[test]
fn a_grant_settles_later_asks_until_it_expires_or_is_revoked() {
    let f = fixture("grant");
    operator(&f.decider, |d, id| {
        d.approve(id, Lifetime::For(Duration::from_secs(3600)))
            .unwrap()
    });
    let first = f.decider.decide(&deploy(), |_, _| {});
    assert_eq!(first.effect, Effect::Permit);
    let granted = first.grant.clone().unwrap();
    let second = f
        .decider
        .decide(&deploy(), |_, _| panic!("a grant covers it"));
    assert_eq!(second.effect, Effect::Permit);
    assert_eq!(second.grant.as_deref(), Some(granted.as_str()));
    assert_eq!(second.reason, format!("approved earlier (grant {granted})"));
    // Another credential is not covered.
    let other = call("deploy", &["prod"], "staging");
    assert_eq!(f.decider.decide(&other, |_, _| {}).effect, Effect::Deny);
    // Two hours on, the grant has expired: the call asks again (and nobody answers).
    let mut later = deploy();
    later.time += jiff::SignedDuration::from_hours(2);
    let mut asked = false;
    let expired = f.decider.decide(&later, |_, _| asked = true);
    assert!(asked, "an expired grant settles nothing");
    assert_eq!(expired.effect, Effect::Deny);
    assert!(expired.reason.starts_with("no answer to approval a-"));
    // Revoked: asked again too.
    let live = f.decider.grants().unwrap();
    assert!(live.is_empty(), "the expired grant was purged: {live:?}");
    operator(&f.decider, |d, id| {
        d.approve(id, Lifetime::Permanent).unwrap()
    });
    let permanent = f.decider.decide(&deploy(), |_, _| {}).grant.unwrap();
    f.decider.revoke_grant(&permanent).unwrap();
    assert!(matches!(
        f.decider.revoke_grant(&permanent),
        Err(ControlError::NoSuchGrant(_))
    ));
    let mut asked = false;
    f.decider.decide(&deploy(), |_, _| asked = true);
    assert!(asked, "a revoked grant settles nothing");
    assert!(f.kinds().contains(&"revoke-grant".to_owned()));
}

#[test]
fn answers_to_no_waiting_call_are_refused() {
    let f = fixture("control");
    assert!(matches!(
        f.decider.approve("a-nothing", Lifetime::Once),
        Err(ControlError::NoSuchApproval(_))
    ));
    assert_eq!(
        f.decider.deny("a-nothing", None).unwrap_err().to_string(),
        "no call is waiting for approval `a-nothing`"
    );
}

#[test]
fn http_and_aws_calls_are_decided_as_their_tools() {
    let policy = r#"
version: 1
rules:
  - name: api
    credentials: [gh]
    http: { method: GET, host: api.github.com, path: "/user" }
    effect: permit
"#;
    let f = fixture_with("http", policy);
    let decider = &f.decider;
    let http = |path: &str| {
        Call::new(
            None,
            Action::Http {
                method: "GET".into(),
                host: "api.github.com".into(),
                path: path.into(),
            },
            vec!["gh".into()],
        )
    };
    assert_eq!(http("/user").tool_name(), "http");
    assert_eq!(http("/user").args(), ["GET", "https://api.github.com/user"]);
    assert_eq!(
        decider.decide(&http("/user"), |_, _| {}).effect,
        Effect::Permit
    );
    assert_eq!(
        decider.decide(&http("/admin"), |_, _| {}).effect,
        Effect::Deny
    );
    let aws = Call::new(None, Action::AwsCredentials, vec!["gh".into()]);
    assert_eq!(aws.tool_name(), "aws-credentials");
    assert_eq!(decider.decide(&aws, |_, _| {}).effect, Effect::Deny);
}

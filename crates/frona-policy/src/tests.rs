use std::time::Duration;

use super::*;
use serde_json::json;

fn set(text: &str) -> PolicySet {
    PolicySet::load([("test.yaml", text)]).unwrap()
}

fn request(tool: &str, args: &[&str], credentials: &[&str]) -> Request {
    Request {
        tool: tool.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        credentials: credentials.iter().map(|s| s.to_string()).collect(),
        agent: "ci".into(),
        time: default_time(),
        sha256: None,
        http: None,
        ssh: None,
        mcp: None,
    }
}

const POLICY: &str = r#"
rules:
  - name: no-deletes
    tool: gh
    args_regex: "\\bdelete\\b"
    credentials: ["*"]
    effect: deny
    reason: deleting needs a human
  - name: gh-read
    tool: [gh]
    args: [api, "repos/*"]
    credentials: [github-token]
    effect: permit
    issue: { ttl: 5m, uses: 1 }
  - name: stripe-ask
    tool: curl
    credentials: [stripe-*]
    effect: ask
    timeout: 2m
  - name: business-hours
    tool: "*"
    credentials: [aws-*]
    when: { days: [mon-fri], hours: "09:00-18:00", tz: Europe/Paris }
    effect: permit
    issue:
      ttl: 15m
      session_policy: { Version: "2012-10-17", Statement: [{ Effect: Allow, Action: "s3:GetObject", Resource: "*" }] }
"#;

#[test]
fn first_match_wins_and_default_deny() {
    let policy = set(POLICY);
    let mut rates = RateTracker::default();
    let d = policy.evaluate(
        &request("/usr/bin/gh", &["api", "repos/acme/app"], &["github-token"]),
        &mut rates,
    );
    assert_eq!(
        (d.effect, d.rule.as_deref()),
        (Effect::Permit, Some("gh-read"))
    );
    assert_eq!(d.issue.unwrap().ttl, Some(Duration::from_secs(300)));
    let d = policy.evaluate(
        &request("gh", &["repo", "delete", "x"], &["github-token"]),
        &mut rates,
    );
    assert_eq!(
        (d.effect, d.reason.as_str()),
        (Effect::Deny, "deleting needs a human")
    );
    let d = policy.evaluate(
        &request("gh", &["api", "repos/x"], &["stripe-key"]),
        &mut rates,
    );
    assert_eq!(
        (d.effect, d.rule),
        (Effect::Deny, None),
        "a credential the rule does not list"
    );
    let d = policy.evaluate(
        &request("curl", &["https://api.stripe.com"], &["stripe-live"]),
        &mut rates,
    );
    assert_eq!(
        (d.effect, d.ask_timeout),
        (Effect::Ask, Some(Duration::from_secs(120)))
    );
    let d = policy.evaluate(&request("rm", &["-rf", "/"], &[]), &mut rates);
    assert_eq!(
        d.effect,
        Effect::Deny,
        "a rule about aws-* credentials does not permit credential-less calls"
    );
}

#[test]
fn time_windows_use_the_time_zone() {
    let policy = set(POLICY);
    let at = |iso: &str| Request {
        time: iso.parse().unwrap(),
        ..request("aws", &["s3", "ls"], &["aws-ro"])
    };
    let mut rates = RateTracker::default();
    // Monday 08:30 UTC = 09:30 in Paris (winter): inside.
    assert_eq!(
        policy
            .evaluate(&at("2026-01-05T08:30:00Z"), &mut rates)
            .effect,
        Effect::Permit
    );
    // Monday 17:30 UTC = 18:30 Paris: outside.
    assert_eq!(
        policy
            .evaluate(&at("2026-01-05T17:30:00Z"), &mut rates)
            .effect,
        Effect::Deny
    );
    // Saturday: outside.
    assert_eq!(
        policy
            .evaluate(&at("2026-01-10T10:00:00Z"), &mut rates)
            .effect,
        Effect::Deny
    );
    let d = policy.evaluate(&at("2026-01-05T08:30:00Z"), &mut rates);
    assert!(
        d.issue
            .unwrap()
            .session_policy
            .unwrap()
            .contains("s3:GetObject")
    );
}

#[test]
fn rate_limits_count_per_agent_and_tool() {
    let policy = set(
        "rules:\n  - name: limited\n    tool: gh\n    rate: { max: 2, per: 1m }\n    effect: permit\n",
    );
    let mut rates = RateTracker::default();
    let mut r = request("gh", &[], &[]);
    assert_eq!(policy.evaluate(&r, &mut rates).effect, Effect::Permit);
    assert_eq!(policy.evaluate(&r, &mut rates).effect, Effect::Permit);
    let third = policy.evaluate(&r, &mut rates);
    assert_eq!(third.effect, Effect::Deny);
    assert!(third.reason.contains("rate limit"), "{}", third.reason);
    r.agent = "other".into();
    assert_eq!(
        policy.evaluate(&r, &mut rates).effect,
        Effect::Permit,
        "counted per agent"
    );
    r.agent = "ci".into();
    r.time = r
        .time
        .checked_add(jiff::SignedDuration::from_secs(61))
        .unwrap();
    assert_eq!(
        policy.evaluate(&r, &mut rates).effect,
        Effect::Permit,
        "the window slides"
    );
}

#[test]
fn errors_carry_line_and_column() {
    let err = PolicySet::load([(
        "p.yaml",
        "rules:\n  - name: x\n    tool: gh\n    efect: permit\n",
    )])
    .unwrap_err();
    assert_eq!((err.file.as_str(), err.line), ("p.yaml", 4), "{err}");
    assert!(err.message.contains("unknown field `efect`"), "{err}");
    let err = PolicySet::load([(
        "p.yaml",
        "rules:\n  - name: x\n    args_regex: \"(\"\n    effect: deny\n",
    )])
    .unwrap_err();
    assert_eq!(
        (err.line, err.column),
        (3, 17),
        "the value's position: {err}"
    );
    assert!(err.message.starts_with("invalid regex"), "{err}");
    let err = PolicySet::load([(
        "p.yaml",
        "rules:\n  - name: x\n    when: { hours: \"25:00-26:00\" }\n    effect: deny\n",
    )])
    .unwrap_err();
    assert!(err.message.contains("not a time range"), "{err}");
    let err = PolicySet::load([(
        "p.yaml",
        "rules:\n  - name: x\n    when: { tz: Mars/Olympus }\n    effect: deny\n",
    )])
    .unwrap_err();
    assert!(err.message.contains("unknown time zone"), "{err}");
    let err = PolicySet::load([
        ("a.yaml", "rules:\n  - { name: x, effect: deny }\n"),
        ("b.yaml", "rules:\n  - { name: x, effect: deny }\n"),
    ])
    .unwrap_err();
    assert!(err.message.contains("already used in a.yaml"), "{err}");
    let err = PolicySet::load([(
        "p.yaml",
        "rules:\n  - { name: x, effect: deny, issue: { ttl: 5m } }\n",
    )])
    .unwrap_err();
    assert!(
        err.message
            .contains("only goes with `effect: permit` or `effect: ask`"),
        "{err}"
    );
}

#[test]
fn explain_lists_the_rules_considered() {
    let policy = set(POLICY);
    let (decision, steps) = policy.explain(&request("gh", &["api", "user"], &["github-token"]));
    assert_eq!(decision.effect, Effect::Deny);
    assert_eq!(steps.len(), 3, "{steps:?}");
    assert!(
        steps[1]
            .skipped
            .as_ref()
            .unwrap()
            .contains("argument 2 `user` does not match `repos/*`")
    );
}

#[test]
fn tool_pinning() {
    let sha = "a".repeat(64);
    let policy = set(&format!(
        "rules:\n  - name: pinned\n    tool: terraform\n    sha256: {sha}\n    effect: permit\n"
    ));
    let mut r = request("terraform", &[], &[]);
    assert_eq!(
        policy.evaluate(&r, &mut RateTracker::default()).effect,
        Effect::Deny
    );
    r.sha256 = Some(sha.to_uppercase());
    assert_eq!(
        policy.evaluate(&r, &mut RateTracker::default()).effect,
        Effect::Permit
    );
}

#[test]
fn the_index_keeps_rule_order() {
    let policy = set(
        "rules:\n  - { name: any-deny, tool: \"g*\", effect: deny }\n  - { name: gh-permit, tool: gh, effect: permit }\n",
    );
    let d = policy.evaluate(&request("gh", &[], &[]), &mut RateTracker::default());
    assert_eq!(
        d.rule.as_deref(),
        Some("any-deny"),
        "a wildcard rule written first still wins"
    );
}

#[test]
fn policy_test_files() {
    let policy = set(POLICY);
    let cases = r#"
cases:
  - name: read
    request: { tool: gh, args: [api, repos/a], credentials: [github-token] }
    expect: permit
    rule: gh-read
  - name: wrong expectation
    request: { tool: rm }
    expect: permit
"#;
    let results = testing::run_cases(&policy, "cases.yaml", cases).unwrap();
    assert!(results[0].passed);
    assert!(!results[1].passed);
    assert!(results[1].failure.as_ref().unwrap().contains("got Deny"));
}

const NETWORK: &str = r#"
network:
  - name: github
    allow: [github.com, "*.github.com"]
  - name: no-gists
    deny: gist.github.com
  - name: registry
    allow: registry.npmjs.org
    agent: ci-*
    when: { days: [mon-fri] }
"#;

#[test]
fn policy_test_files_with_egress_cases() {
    let policy = set(NETWORK);
    let cases = r#"
cases:
  - name: the API over HTTPS
    connect: api.github.com
    expect: permit
    rule: github
  - name: plain HTTP to github.com
    connect: http://github.com/acme/app
    expect: permit
  - name: gists
    connect: gist.github.com:443
    expect: deny
    rule: no-gists
  - name: ssh is another port
    connect: github.com:22
    expect: deny
  - name: the registry for CI on a weekday
    connect: registry.npmjs.org
    agent: ci-7
    expect: permit
  - name: not on Sunday
    connect: registry.npmjs.org
    agent: ci-7
    time: "2026-01-11T09:00:00Z"
    expect: deny
  - name: a wrong expectation
    connect: example.com
    expect: permit
  - name: the wrong rule
    connect: gist.github.com
    expect: deny
    rule: github
"#;
    let results = testing::run_cases(&policy, "cases.yaml", cases).unwrap();
    for result in &results[..6] {
        assert!(result.passed, "{}: {:?}", result.name, result.failure);
    }
    let failure = results[6].failure.as_deref().unwrap();
    assert_eq!(
        failure,
        "expected Permit, got Deny by no rule (`example.com` is not allowed)"
    );
    assert!(
        results[7]
            .failure
            .as_deref()
            .unwrap()
            .contains("by `no-gists`")
    );

    let bad = |case: &str| {
        testing::run_cases(
            &policy,
            "cases.yaml",
            &format!("cases:\n  - name: bad\n{case}"),
        )
        .unwrap_err()
        .to_string()
    };
    let e = bad("    connect: github.com\n    expect: ask\n");
    assert!(e.contains("never asked"), "{e}");
    let e = bad("    connect: github.com:0\n    expect: deny\n");
    assert!(
        e.contains("cases[0] `bad`: connect:") && e.contains("port"),
        "{e}"
    );
    let e = bad("    connect: github.com\n    request: { tool: gh }\n    expect: deny\n");
    assert!(e.contains("not both"), "{e}");
    let e = bad("    expect: deny\n");
    assert!(e.contains("give `request`"), "{e}");
    let e = bad("    request: { tool: gh }\n    agent: ci\n    expect: deny\n");
    assert!(e.contains("go in its `request`"), "{e}");
}

/// Every shipped policy loads, and its test cases pass.
#[test]
fn shipped_policies_are_valid_and_their_cases_pass() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies");
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    let policy = PolicySet::load(files.iter().map(|(n, t)| (n.as_str(), t.as_str()))).unwrap();
    let cases = std::fs::read_to_string(format!("{dir}/tests/shipped.yaml")).unwrap();
    for result in testing::run_cases(&policy, "tests.yaml", &cases).unwrap() {
        assert!(result.passed, "{}: {:?}", result.name, result.failure);
    }
}

fn http(method: &str, host: &str, path: &str) -> Request {
    Request {
        http: Some(HttpCall {
            method: method.into(),
            host: host.into(),
            path: path.into(),
        }),
        ..request(HTTP_TOOL, &[], &["stripe-key"])
    }
}

const HTTP_POLICY: &str = r#"
rules:
  - name: stripe-refunds
    http: { path: "/v1/refunds*" }
    credentials: [stripe-key]
    effect: deny
    reason: refunds need a human
  - name: stripe-read
    http: { method: [GET, HEAD], host: api.stripe.com }
    credentials: [stripe-key]
    effect: permit
  - name: any-tool
    credentials: [stripe-key]
    effect: permit
"#;

/// HTTP rules match method, host and path; tool rules never decide an HTTP call, and HTTP
/// rules never decide a tool call.
#[test]
fn http_rules_match_method_host_and_path_only_for_proxied_calls() {
    let set = set(HTTP_POLICY);
    let mut rates = RateTracker::default();
    let decide = |r: &Request, rates: &mut RateTracker| {
        let d = set.evaluate(r, rates);
        (d.effect, d.rule)
    };
    assert_eq!(
        decide(&http("GET", "api.stripe.com", "/v1/charges"), &mut rates),
        (Effect::Permit, Some("stripe-read".into()))
    );
    assert_eq!(
        decide(
            &http("GET", "api.stripe.com", "/v1/refunds/re_1"),
            &mut rates
        )
        .1,
        Some("stripe-refunds".into())
    );
    assert_eq!(
        decide(&http("POST", "api.stripe.com", "/v1/charges"), &mut rates),
        (Effect::Deny, None),
        "the tool rule `any-tool` does not reach HTTP calls"
    );
    assert_eq!(
        decide(&http("GET", "evil.example", "/v1/charges"), &mut rates),
        (Effect::Deny, None)
    );
    assert_eq!(
        decide(&request("curl", &[], &["stripe-key"]), &mut rates),
        (Effect::Permit, Some("any-tool".into()))
    );
    let (_, steps) = set.explain(&http("POST", "api.stripe.com", "/v1/charges"));
    assert!(steps[1].skipped.as_deref().unwrap().contains("method POST"));
}

#[test]
fn http_rules_cannot_name_tools() {
    let err = PolicySet::load([(
        "p.yaml",
        "rules:\n  - name: x\n    tool: curl\n    http: {}\n    effect: permit\n",
    )])
    .unwrap_err();
    assert!(err.message.contains("for tool calls"), "{err}");
}

const SSH_POLICY: &str = r#"
rules:
  - name: deploy-key-anywhere
    ssh: { key: "SHA256:deploy*" }
    effect: permit
  - name: work-github
    ssh: { key: "*@work", host: [github.com, "localhost:2222"] }
    effect: permit
  - name: work-ask
    ssh: { key: "*@work" }
    effect: ask
  - name: catch-all-tools
    effect: permit
"#;

fn ssh(key: &str, comment: &str, hosts: &[(&str, u16)]) -> Request {
    Request {
        ssh: Some(SshCall {
            key: key.into(),
            comment: comment.into(),
            hosts: hosts
                .iter()
                .map(|(name, port)| SshHost {
                    name: (*name).into(),
                    port: *port,
                })
                .collect(),
        }),
        ..request(SSH_TOOL, &[], &[])
    }
}

/// SSH rules match the key by fingerprint or comment and the verified host; a rule naming a
/// host never matches a signature bound to none; tool rules never decide a signature.
#[test]
fn ssh_rules_match_key_and_verified_host_only_for_signatures() {
    let set = set(SSH_POLICY);
    let mut rates = RateTracker::default();
    let mut decide = |r: &Request| {
        let d = set.evaluate(r, &mut rates);
        (d.effect, d.rule.unwrap_or_default())
    };
    assert_eq!(
        decide(&ssh("SHA256:deployXYZ", "ci", &[])),
        (Effect::Permit, "deploy-key-anywhere".into())
    );
    assert_eq!(
        decide(&ssh("SHA256:abc", "me@work", &[("github.com", 22)])),
        (Effect::Permit, "work-github".into())
    );
    assert_eq!(
        decide(&ssh("SHA256:abc", "me@work", &[("localhost", 2222)])),
        (Effect::Permit, "work-github".into())
    );
    assert_eq!(
        decide(&ssh("SHA256:abc", "me@work", &[("localhost", 22)])),
        (Effect::Ask, "work-ask".into()),
        "the pattern names port 2222"
    );
    assert_eq!(
        decide(&ssh("SHA256:abc", "me@work", &[])),
        (Effect::Ask, "work-ask".into()),
        "no verified host: the host rule does not match"
    );
    assert_eq!(
        decide(&ssh("SHA256:abc", "me@home", &[("github.com", 22)])),
        (Effect::Deny, String::new()),
        "the catch-all tool rule does not reach signatures"
    );
    assert_eq!(
        decide(&request("gh", &[], &[])),
        (Effect::Permit, "catch-all-tools".into())
    );
    let (_, steps) = set.explain(&ssh("SHA256:abc", "me@work", &[]));
    assert!(
        steps[1]
            .skipped
            .as_deref()
            .unwrap()
            .contains("no verified host")
    );
    assert!(set.has_ssh_rules());
    assert!(set.may_sign("ci", "SHA256:abc", "me@work"));
    assert!(set.may_sign("ci", "SHA256:deploy1", "whatever"));
    assert!(!set.may_sign("ci", "SHA256:abc", "me@home"));
    assert_eq!(
        set.ssh_host_names(),
        vec![
            ("github.com".to_owned(), None),
            ("localhost".to_owned(), Some(2222))
        ]
    );
}

#[test]
fn ssh_rules_cannot_name_tools_or_credentials() {
    for extra in [
        "tool: ssh",
        "credentials: [x]",
        "http: {}",
        "issue: { ttl: 1m }",
    ] {
        let text = format!("rules:\n  - name: x\n    {extra}\n    ssh: {{}}\n    effect: permit\n");
        let err = PolicySet::load([("p.yaml", text.as_str())]).unwrap_err();
        assert!(err.message.contains("matches signatures"), "{extra}: {err}");
    }
    let denied = set("rules:\n  - { name: x, ssh: { key: \"*\" }, effect: deny }\n");
    assert!(
        !denied.may_sign("a", "SHA256:x", "c"),
        "a deny lists no key"
    );
}

const MCP_POLICY: &str = r#"
rules:
  - name: no-deletes
    mcp: { server: "*", tool: "delete_*" }
    effect: deny
  - name: github-read
    mcp: { server: github, tool: ["get_*", "list_*"] }
    effect: permit
  - name: github-issues
    mcp: { server: github, tool: create_issue, arguments: { owner: acme, repo: "frona*", draft: true } }
    effect: ask
  - name: catch-all-tools
    effect: permit
"#;

fn mcp(server: &str, tool: &str, arguments: serde_json::Value) -> Request {
    Request {
        mcp: Some(McpCall {
            server: server.into(),
            tool: tool.into(),
            arguments: arguments.as_object().cloned().unwrap_or_default(),
        }),
        ..request(MCP_TOOL, &[], &[])
    }
}

/// MCP rules match server, tool and top-level arguments (globs on strings, equality
/// otherwise, a missing key never matches); tool rules never decide an MCP call.
#[test]
fn mcp_rules_match_server_tool_and_arguments_only_for_mcp_calls() {
    let set = set(MCP_POLICY);
    let mut rates = RateTracker::default();
    let mut decide = |r: &Request| {
        let d = set.evaluate(r, &mut rates);
        (d.effect, d.rule.unwrap_or_default())
    };
    assert_eq!(
        decide(&mcp("github", "get_issue", json!({"n": 1}))),
        (Effect::Permit, "github-read".into())
    );
    assert_eq!(
        decide(&mcp("github", "delete_repo", json!({}))),
        (Effect::Deny, "no-deletes".into())
    );
    let issue = json!({"owner": "acme", "repo": "frona-x", "draft": true, "title": "t"});
    assert_eq!(
        decide(&mcp("github", "create_issue", issue)),
        (Effect::Ask, "github-issues".into())
    );
    for other in [
        json!({"owner": "evil", "repo": "frona-x", "draft": true}),
        json!({"owner": "acme", "repo": "frona-x", "draft": "true"}),
        json!({"owner": "acme", "draft": true}),
    ] {
        assert_eq!(
            decide(&mcp("github", "create_issue", other.clone())),
            (Effect::Deny, String::new()),
            "{other}"
        );
    }
    assert_eq!(
        decide(&mcp("gitlab", "get_issue", json!({}))),
        (Effect::Deny, String::new()),
        "the catch-all tool rule does not reach MCP calls"
    );
    assert!(set.may_call_mcp("a", "github", "create_issue"));
    assert!(set.may_call_mcp("a", "github", "list_repos"));
    assert!(!set.may_call_mcp("a", "github", "delete_repo"));
    assert!(!set.may_call_mcp("a", "gitlab", "get_issue"));
    let (_, steps) = set.explain(&mcp("github", "create_issue", json!({"owner": "x"})));
    assert!(steps.iter().any(|s| {
        s.skipped
            .as_deref()
            .is_some_and(|r| r.contains("does not match"))
    }));
}

#[test]
fn mcp_rules_cannot_name_tools_or_credentials() {
    for extra in [
        "tool: gh",
        "credentials: [x]",
        "ssh: {}",
        "issue: { ttl: 1m }",
    ] {
        let text = format!("rules:\n  - name: x\n    {extra}\n    mcp: {{}}\n    effect: permit\n");
        let err = PolicySet::load([("p.yaml", text.as_str())]).unwrap_err();
        assert!(err.message.contains("an `mcp` rule"), "{extra}: {err}");
    }
    let err = PolicySet::load([(
        "p.yaml",
        "rules:\n  - { name: x, mcp: { arguments: { a: [1] } }, effect: permit }\n",
    )])
    .unwrap_err();
    assert!(
        err.message
            .contains("a string (glob), a number or a boolean"),
        "{err}"
    );
}

/// An ask rule may say what an approval issues; the decision carries it for after approval.
#[test]
fn an_ask_rule_carries_its_issue_for_after_approval() {
    let set = PolicySet::load([(
        "p.yaml",
        "rules:\n  - { name: x, tool: t, effect: ask, timeout: 1m, issue: { ttl: 5m, deliver: value } }\n",
    )])
    .unwrap();
    let mut rates = Default::default();
    let request = Request {
        tool: "t".into(),
        args: vec![],
        credentials: vec![],
        agent: "a".into(),
        time: jiff::Timestamp::now(),
        sha256: None,
        http: None,
        ssh: None,
        mcp: None,
    };
    let decision = set.evaluate(&request, &mut rates);
    assert_eq!(decision.effect, Effect::Ask);
    let issue = decision.issue.unwrap();
    assert_eq!(issue.ttl, Some(std::time::Duration::from_secs(300)));
    assert_eq!(issue.deliver, Deliver::Value);
}

/// Found by fuzzing (fuzz/corpus/policy/regression-hours-overflow.yaml): `6200:00` overflowed
/// the minutes computation (a panic in a debug build) instead of being refused.
#[test]
fn hours_far_out_of_range_are_an_error() {
    for hours in ["0:0-6200:00", "65535:59-1:00", "24:00-1092:16"] {
        let text =
            format!("rules:\n  - name: x\n    when: {{ hours: \"{hours}\" }}\n    effect: deny\n");
        let err = PolicySet::load([("p.yaml", text.as_str())]).unwrap_err();
        assert!(err.message.contains("not a time range"), "{hours}: {err}");
    }
}

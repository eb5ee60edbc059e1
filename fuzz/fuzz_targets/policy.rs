//! A policy file from arbitrary bytes: loading and validating must never panic (an error is a
//! fine answer), and a policy that loads must evaluate requests made of its own words without
//! panicking, with `explain` and `evaluate` agreeing on the deciding rule. When the input holds a
//! line `---`, what follows is read as a policy test file (`frona policy test`) and run too.
//!
//! Egress (`network:`): every word of the input is also parsed as a host pattern and as a
//! target, whether or not the policy loads. Parsing never panics; a pattern that parses parses
//! again from its text, a target from how it is shown; a pattern is matched against every
//! address among the words and a few fixed ones; and a loaded policy decides egress for every
//! target and address without panicking.

#![no_main]

use std::net::IpAddr;

use frona_policy::network::{EgressRequest, HostPattern, Target, classify};
use frona_policy::{
    Effect, HTTP_TOOL, HttpCall, PolicySet, RateTracker, Request, SSH_TOOL, SshCall, SshHost,
    testing,
};
use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;

/// Addresses every host pattern is matched against, besides those in the input.
const ADDRESSES: &[&str] = &[
    "10.1.2.3",
    "169.254.169.254",
    "93.184.216.34",
    "::1",
    "::ffff:10.1.2.3",
    "64:ff9b::a01:203",
    "2001:db8::1",
    "fe80::1",
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (policy_text, cases_text) = match text.split_once("\n---\n") {
        Some((policy, cases)) => (policy, Some(cases)),
        None => (&*text, None),
    };
    let words = words(policy_text);
    let time = time(data);
    let targets = egress_words(&words);
    let Ok(policy) = PolicySet::load([("fuzz.yaml", policy_text)]) else {
        return;
    };
    for (index, (target, address)) in targets.into_iter().enumerate() {
        let request = EgressRequest {
            target,
            port: [443, 80, 8443, 1][index % 4],
            agent: "default".into(),
            time,
        };
        let _ = policy.egress(&request);
        for ip in address.into_iter().chain(fixed_addresses()) {
            let _ = policy.egress_address(&request, ip);
        }
    }
    if let Some(cases) = cases_text {
        let _ = testing::run_cases(&policy, "fuzz-test.yaml", cases);
    }
    for request in requests(&words, time) {
        let (explained, steps) = policy.explain(&request);
        let mut rates = RateTracker::default();
        let decided = policy.evaluate(&request, &mut rates);
        assert_eq!(
            explained.rule, decided.rule,
            "explain and evaluate disagree"
        );
        assert_eq!(
            steps.last().is_some_and(|s| s.skipped.is_none()),
            explained.rule.is_some(),
            "the last step decides exactly when a rule decides"
        );
        // A signature some rule permits or asks about is for a key the SSH agent lists.
        if let Some(ssh) = &request.ssh
            && decided.effect != Effect::Deny
        {
            assert!(
                policy.may_sign(&request.agent, &ssh.key, &ssh.comment),
                "a permitted signature's key is not listed"
            );
        }
        // Again with the same tracker: rate limits count, and must not panic.
        for _ in 0..3 {
            let again = policy.evaluate(&request, &mut rates);
            assert_eq!(again.rule, decided.rule);
        }
    }
});

fn fixed_addresses() -> impl Iterator<Item = IpAddr> {
    ADDRESSES.iter().filter_map(|a| a.parse().ok())
}

/// The words of the input (what YAML would see as scalars, roughly).
fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']' | '{' | '}' | '"' | '\''))
        .map(|w| w.trim_end_matches(':'))
        .filter(|w| !w.is_empty())
        .take(64)
        .collect()
}

/// A time anywhere from 1970 to about 2100, from the input's bytes.
fn time(data: &[u8]) -> Timestamp {
    let seed = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    Timestamp::from_second((seed % 4_102_444_800) as i64).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Every word as a host pattern (matched against the addresses) and as an egress target, with
/// its address when it is one.
fn egress_words(words: &[&str]) -> Vec<(Target, Option<IpAddr>)> {
    let addresses: Vec<IpAddr> = words
        .iter()
        .filter_map(|w| w.trim_matches(['[', ']']).parse().ok())
        .chain(fixed_addresses())
        .collect();
    let patterns: Vec<HostPattern> = words
        .iter()
        .filter_map(|w| HostPattern::parse(w).ok())
        .collect();
    for pattern in &patterns {
        assert!(
            HostPattern::parse(pattern.as_str()).is_ok(),
            "a pattern parses again from its text"
        );
        for &ip in &addresses {
            let _ = pattern.matches_ip(ip);
            let _ = pattern.matches_target(&Target::Ip(ip));
        }
    }
    for &ip in &addresses {
        let _ = classify(ip);
    }
    let mut targets = Vec::new();
    for word in words {
        if let Some(target) = Target::parse(word) {
            assert_eq!(
                Target::parse(&target.to_string()).as_ref(),
                Some(&target),
                "a target parses again from how it is shown"
            );
            let address = match &target {
                Target::Ip(ip) => Some(*ip),
                Target::Name(_) => None,
            };
            for pattern in &patterns {
                let _ = pattern.matches_target(&target);
            }
            targets.push((target, address));
        }
    }
    targets
}

/// Requests built from the words of the policy itself, so that they reach its rules.
fn requests(words: &[&str], time: Timestamp) -> Vec<Request> {
    let word = |i: usize| words.get(i % words.len().max(1)).copied().unwrap_or("gh");
    let mut out = Vec::new();
    for start in 0..words.len().min(8) {
        let args: Vec<String> = (1..=(start % 4))
            .map(|k| word(start + k).to_owned())
            .collect();
        out.push(Request {
            tool: word(start).to_owned(),
            args,
            credentials: vec![word(start + 5).to_owned()],
            agent: if start % 2 == 0 {
                "default".into()
            } else {
                word(start + 2).to_owned()
            },
            time,
            sha256: (start % 3 == 0).then(|| word(start + 1).to_owned()),
            http: None,
            ssh: None,
            mcp: None,
        });
        out.push(Request {
            tool: format!("/usr/bin/{}", word(start)),
            args: Vec::new(),
            credentials: Vec::new(),
            agent: "default".into(),
            time,
            sha256: None,
            http: None,
            ssh: None,
            mcp: None,
        });
        out.push(Request {
            tool: HTTP_TOOL.into(),
            args: Vec::new(),
            credentials: vec![word(start + 3).to_owned()],
            agent: "default".into(),
            time,
            sha256: None,
            http: Some(HttpCall {
                method: word(start + 1).to_owned(),
                host: word(start + 2).to_owned(),
                path: format!("/{}", word(start + 4)),
            }),
            ssh: None,
            mcp: None,
        });
        out.push(Request {
            tool: SSH_TOOL.into(),
            args: Vec::new(),
            credentials: Vec::new(),
            agent: "default".into(),
            time,
            sha256: None,
            http: None,
            ssh: Some(SshCall {
                key: word(start + 1).to_owned(),
                comment: word(start + 2).to_owned(),
                hosts: (0..start % 3)
                    .map(|k| SshHost {
                        name: word(start + 3 + k).to_owned(),
                        port: if k == 0 { 22 } else { 2222 },
                    })
                    .collect(),
            }),
            mcp: None,
        });
    }
    out
}

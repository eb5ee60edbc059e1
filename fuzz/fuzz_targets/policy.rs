//! A policy file from arbitrary bytes: loading and validating must never panic (an error is a
//! fine answer), and a policy that loads must evaluate requests made of its own words without
//! panicking, with `explain` and `evaluate` agreeing on the deciding rule. When the input holds a
//! line `---`, what follows is read as a policy test file (`frona policy test`) and run too.

#![no_main]

use frona_policy::{HTTP_TOOL, HttpCall, PolicySet, RateTracker, Request, testing};
use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (policy_text, cases_text) = match text.split_once("\n---\n") {
        Some((policy, cases)) => (policy, Some(cases)),
        None => (&*text, None),
    };
    let Ok(policy) = PolicySet::load([("fuzz.yaml", policy_text)]) else {
        return;
    };
    if let Some(cases) = cases_text {
        let _ = testing::run_cases(&policy, "fuzz-test.yaml", cases);
    }
    for request in requests(policy_text, data) {
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
        // Again with the same tracker: rate limits count, and must not panic.
        for _ in 0..3 {
            let again = policy.evaluate(&request, &mut rates);
            assert_eq!(again.rule, decided.rule);
        }
    }
});

/// Requests built from the words of the policy itself, so that they reach its rules.
fn requests(text: &str, data: &[u8]) -> Vec<Request> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']' | '{' | '}' | '"' | '\''))
        .map(|w| w.trim_end_matches(':'))
        .filter(|w| !w.is_empty())
        .take(64)
        .collect();
    let word = |i: usize| words.get(i % words.len().max(1)).copied().unwrap_or("gh");
    // A time anywhere from 1970 to about 2100, from the input's bytes.
    let seed = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let time =
        Timestamp::from_second((seed % 4_102_444_800) as i64).unwrap_or(Timestamp::UNIX_EPOCH);
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
        });
        out.push(Request {
            tool: format!("/usr/bin/{}", word(start)),
            args: Vec::new(),
            credentials: Vec::new(),
            agent: "default".into(),
            time,
            sha256: None,
            http: None,
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
        });
    }
    out
}

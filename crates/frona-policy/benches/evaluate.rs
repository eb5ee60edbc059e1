//! Policy evaluation time at 10, 100 and 1,000 rules (`cargo bench -p frona-policy`).
//! The request is decided by the last rule (the worst case for first-match), with the rules
//! spread over many tools as real policies are; the same set with every rule on a wildcard tool
//! shows what the tool index saves.

// A benchmark panics on a broken setup, as a test does.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Instant;

use frona_policy::{PolicySet, RateTracker, Request};

fn policy(rules: usize, wildcard: bool) -> String {
    let mut text = String::from("rules:\n");
    for i in 0..rules {
        let tool = if wildcard {
            format!("\"t{i}*\"")
        } else {
            format!("tool{}", i % 50)
        };
        text.push_str(&format!(
            "  - name: r{i}\n    tool: {tool}\n    args: [api, \"repos/{i}/*\"]\n    credentials: [cred-{}]\n    effect: permit\n",
            i % 7
        ));
    }
    text
}

fn measure(rules: usize, wildcard: bool) -> f64 {
    let text = policy(rules, wildcard);
    let set = PolicySet::load([("bench.yaml", text.as_str())]).unwrap();
    let last = rules - 1;
    let tool = if wildcard {
        format!("t{last}x")
    } else {
        format!("tool{}", last % 50)
    };
    let request = Request {
        tool,
        args: vec!["api".into(), format!("repos/{last}/issues")],
        credentials: vec![format!("cred-{}", last % 7)],
        agent: "bench".into(),
        time: jiff::Timestamp::now(),
        sha256: None,
        http: None,
        ssh: None,
        mcp: None,
    };
    let mut rates = RateTracker::default();
    assert_eq!(
        set.evaluate(&request, &mut rates).rule.as_deref(),
        Some(format!("r{last}").as_str())
    );
    let iterations = 2_000_000 / rules.max(1) as u32 + 10_000;
    let started = Instant::now();
    for _ in 0..iterations {
        black_box(set.evaluate(black_box(&request), &mut rates));
    }
    started.elapsed().as_nanos() as f64 / f64::from(iterations)
}

fn main() {
    println!("| rules | indexed by tool | all wildcard tools |");
    println!("|---|---|---|");
    for rules in [10, 100, 1000] {
        println!(
            "| {rules} | {:.0} ns | {:.0} ns |",
            measure(rules, false),
            measure(rules, true)
        );
    }
}

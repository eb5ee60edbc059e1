//! The broker under load (issue 8): 10,000 calls from 64 concurrent clients through
//! `frona run`'s broker, 6 : 3 : 1 permit, deny and ask, while an operator approves asks (once
//! or for a while), grants are revoked and the credential is rotated. Checked: every call has
//! exactly one audit record, the log verifies, no decision contradicts the policy, permitted
//! calls get one of the values the credential has had, and frona's memory comes back down.
//! Prints calls/s, p50/p99 and peak RSS (`-- --nocapture`; figures in BENCHMARKS.md).

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::credentials::Dirs;
use crate::support::agent_bin;

const CALLS: usize = 10_000;
const CLIENTS: usize = 64;

const POLICY: &str = r#"
rules:
  - { name: permit, tool: load-permit, credentials: [load-key], effect: permit, issue: { deliver: value } }
  - { name: deny, tool: load-deny, credentials: [load-key], effect: deny }
  - { name: ask, tool: load-ask, credentials: [load-key], effect: ask, timeout: 60s, issue: { deliver: value } }
"#;

/// A local credential `load-key` holding `value`, and the load policy.
fn setup(name: &str, value: &str) -> Dirs {
    let dirs = Dirs::new(name);
    dirs.store("load", value);
    let register = dirs
        .cmd(&["credential", "register", "--name", "load-key"])
        .args(["--backend", "local", "--path", "load"])
        .output()
        .unwrap();
    assert!(register.status.success());
    std::fs::create_dir_all(dirs.root.join("config/policies")).unwrap();
    std::fs::write(dirs.root.join("config/policies/load.yaml"), POLICY).unwrap();
    dirs
}

/// VmRSS and VmHWM of `pid`, in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The one live control socket of the broker.
fn control_socket(dirs: &Dirs) -> std::path::PathBuf {
    let dir = dirs.root.join("state/control");
    for _ in 0..100 {
        if let Some(socket) = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "sock"))
        {
            return socket;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no control socket in {}", dir.display());
}

#[test]
fn ten_thousand_calls_with_approvals_revocations_and_rotation() {
    let mut values = vec!["load-value-0000000000000000".to_owned()];
    let dirs = setup("load", &values[0]);

    let mut frona = dirs
        .cmd(&["run", "--quiet", "--"])
        .arg(agent_bin())
        .args(["load", &CALLS.to_string(), &CLIENTS.to_string()])
        .env("FRONA_STATE_DIR", dirs.root.join("state"))
        .envs(std::env::vars().filter(|(k, _)| k.starts_with("MIMALLOC_")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = frona.id();
    let mut to_agent = frona.stdin.take().unwrap();
    let mut from_agent = BufReader::new(frona.stdout.take().unwrap());
    let mut line = String::new();
    from_agent.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "warm");
    let control = control_socket(&dirs);
    let (baseline, _) = memory(pid);

    // The operator: approves every ask, alternately once and for 1 minute; revokes every grant
    // it sees; rotates the credential. All while the agent's calls run.
    let stop = Arc::new(AtomicBool::new(false));
    let approver = std::thread::spawn({
        let (stop, control) = (Arc::clone(&stop), control.clone());
        move || {
            let mut approved = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let pending = frona_broker::control::call(&control, &json!({"op": "pending"}))
                    .unwrap_or_default();
                for id in pending["pending"].as_array().into_iter().flatten() {
                    let lifetime = if approved.is_multiple_of(2) {
                        "once"
                    } else {
                        "1m"
                    };
                    let answer = frona_broker::control::call(
                        &control,
                        &json!({"op": "approve", "id": id["id"], "for": lifetime}),
                    );
                    approved += usize::from(answer.is_ok_and(|a| a["ok"] == true));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            approved
        }
    });
    let revoker = std::thread::spawn({
        let (stop, control) = (Arc::clone(&stop), control.clone());
        move || {
            let mut revoked = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let grants = frona_broker::control::call(&control, &json!({"op": "grants"}))
                    .unwrap_or_default();
                for grant in grants["grants"].as_array().into_iter().flatten() {
                    let answer = frona_broker::control::call(
                        &control,
                        &json!({"op": "revoke", "id": grant["id"]}),
                    );
                    revoked += usize::from(answer.is_ok_and(|a| a["ok"] == true));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            revoked
        }
    });

    writeln!(to_agent, "go").unwrap();
    // Rotate the credential a few times while the run lasts; the summary line ends the run.
    let mut rotations = 0;
    while rotations < 3 {
        let rotated = format!("load-value-{:016}", values.len());
        let output = dirs.run(
            &["credential", "rotate", "--name", "load-key"],
            Some(&rotated),
        );
        assert!(output.status.success(), "{}", crate::support::text(&output));
        values.push(rotated);
        rotations += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    line.clear();
    from_agent.read_line(&mut line).unwrap();
    let summary: Value = serde_json::from_str(&line).unwrap();
    stop.store(true, Ordering::Relaxed);
    let approved = approver.join().unwrap();
    let revoked = revoker.join().unwrap();
    let (_, peak) = memory(pid);
    std::thread::sleep(Duration::from_millis(500));
    let (after, _) = memory(pid);
    writeln!(to_agent, "exit").unwrap();
    assert!(frona.wait().unwrap().success());

    // Decisions as the policy says: asks are all approved (nothing times out).
    let counts: BTreeMap<String, u64> = serde_json::from_value(summary["counts"].clone()).unwrap();
    let expected: BTreeMap<String, u64> = [
        ("permit:permit".to_owned(), 6_000),
        ("deny:deny".to_owned(), 3_000),
        ("ask:permit".to_owned(), 1_000),
    ]
    .into();
    assert_eq!(counts, expected, "{summary}");
    for value in summary["values"].as_array().unwrap() {
        assert!(
            values.iter().any(|v| value == v),
            "a value the credential never had: {value}"
        );
    }

    // The audit log: verifies, and has exactly one decision record per call.
    let verify = dirs
        .cmd(&["audit", "verify"])
        .env("FRONA_STATE_DIR", dirs.root.join("state"))
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", crate::support::text(&verify));
    let log = std::fs::read_to_string(dirs.root.join("state/audit.jsonl")).unwrap();
    let mut seen = vec![0u8; CALLS];
    for record in log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
    {
        if record["kind"] != "deliver" {
            continue;
        }
        let Some(i) = record["agent_reason"]
            .as_str()
            .and_then(|r| r.strip_prefix("call-"))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue; // warm-up calls
        };
        let class = record["tool"].as_str().unwrap().trim_start_matches("load-");
        let effect = record["decision"].as_str().unwrap();
        match class {
            "permit" | "ask" => assert_eq!(effect, "permit", "{record}"),
            _ => assert_eq!(effect, "deny", "{record}"),
        }
        seen[i] += 1;
    }
    let missing: Vec<usize> = (0..CALLS).filter(|&i| seen[i] == 0).collect();
    assert!(missing.is_empty(), "calls without a record: {missing:?}");
    let duplicated: Vec<usize> = (0..CALLS).filter(|&i| seen[i] > 1).collect();
    assert!(
        duplicated.is_empty(),
        "calls with two records: {duplicated:?}"
    );

    println!(
        "load: {} calls, {} clients: {} calls/s, p50 {} µs, p99 {} µs; frona RSS {} KiB before, \
         peak {} KiB, {} KiB after; {approved} approvals, {revoked} grants revoked, {rotations} rotations",
        summary["calls"],
        CLIENTS,
        summary["calls_per_s"],
        summary["p50_us"],
        summary["p99_us"],
        baseline,
        peak,
        after
    );
    assert!(approved >= 1 && revoked >= 1, "the operator did not act");
    assert!(
        after <= baseline + 16 * 1024,
        "frona's memory did not come back down: {baseline} KiB before, {after} KiB after"
    );
}

/// Oversized and malformed frames (8 MiB without a newline; not JSON, invalid UTF-8, nesting
/// 100,000 deep, an unknown op, a 60 KB field, bad versions) get errors, each within the
/// 64 KiB request bound, while ordinary calls on another connection are all served; frona's
/// memory stays bounded.
#[test]
fn hostile_frames_get_errors_and_others_are_still_served() {
    let dirs = setup("frames", "load-value-0000000000000000");
    let frona = dirs
        .cmd(&["run", "--quiet", "--"])
        .arg(agent_bin())
        .args(["frames", "200"])
        .env("FRONA_STATE_DIR", dirs.root.join("state"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = frona.id();
    let mut peak = 0;
    let output = {
        let mut frona = frona;
        let mut out = String::new();
        let mut reader = BufReader::new(frona.stdout.take().unwrap());
        reader.read_line(&mut out).unwrap();
        peak = peak.max(memory(pid).1);
        assert!(frona.wait().unwrap().success());
        out
    };
    let summary: Value = serde_json::from_str(&output).unwrap_or_else(|_| panic!("{output}"));
    assert_eq!(summary["ordinary_permitted"], 200, "{summary}");
    let big = summary["big_answers"].as_u64().unwrap();
    assert!(
        big >= 1 && summary["big_too_large"] == big,
        "every 64 KiB of the unterminated frame is refused: {summary}"
    );
    let bad = summary["bad_answers"].as_array().unwrap();
    assert_eq!(
        bad.len() as u64,
        summary["bad_sent"].as_u64().unwrap(),
        "{summary}"
    );
    for answer in bad {
        let answer: Value = serde_json::from_str(answer.as_str().unwrap()).unwrap();
        assert_eq!(answer["effect"], "deny", "{answer}");
    }
    println!("frames: frona peak RSS {peak} KiB");
    assert!(peak < 96 * 1024, "frona's memory grew to {peak} KiB");
    let verify = dirs
        .cmd(&["audit", "verify"])
        .env("FRONA_STATE_DIR", dirs.root.join("state"))
        .output()
        .unwrap();
    assert!(verify.status.success());
}

//! `load TOTAL CLIENTS`: the broker under load. Call `i` (of TOTAL, spread over CLIENTS
//! persistent connections) asks to be handed `load-key` for tool `load-permit`, `load-deny` or
//! `load-ask` (6 : 3 : 1), with reason `call-i` so that the audit log can be matched call by
//! call. Prints `warm` after 200 warm-up calls and waits for a line on stdin; prints one JSON
//! summary after the run and waits for another line before exiting, so that the test can read
//! frona's memory before, during and after.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use crate::say;

/// The class of call `i`.
pub fn class(i: usize) -> &'static str {
    match i % 10 {
        0..=5 => "permit",
        6..=8 => "deny",
        _ => "ask",
    }
}

/// What one call came to.
struct Outcome {
    effect: String,
    /// The handed-out value, for a permit.
    value: Option<String>,
}

/// Sends one call on `stream` and reads its answer up to the final event.
fn call(
    stream: &mut UnixStream,
    reader: &mut BufReader<UnixStream>,
    i: usize,
    reason: &str,
) -> Outcome {
    let request = serde_json::json!({
        "v": 1, "op": "issue", "tool": format!("load-{}", class(i)),
        "credentials": ["load-key"], "reason": format!("{reason}-{i}"), "cwd": "/",
    });
    stream.write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut outcome = Outcome {
        effect: String::new(),
        value: None,
    };
    let mut line = String::new();
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "broker closed");
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        match event["type"].as_str().unwrap_or_default() {
            "decision" => {
                outcome.effect = event["effect"].as_str().unwrap_or_default().to_owned();
                if outcome.effect != "permit" {
                    return outcome;
                }
            }
            "credential" => outcome.value = event["value"].as_str().map(str::to_owned),
            "exit" => return outcome,
            "error" => {
                outcome.effect = format!("error: {}", event["message"]);
                return outcome;
            }
            _ => {} // pending
        }
    }
}

pub fn run(total: usize, clients: usize) {
    let socket = std::env::var("FRONA_BROKER_SOCKET").expect("run under frona run");
    let connect = || {
        let stream = UnixStream::connect(&socket).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        (stream, reader)
    };
    let (mut stream, mut reader) = connect();
    for i in 0..200 {
        // Warm-up: permitted calls only (i * 10 is of class permit), outside the counted run.
        call(&mut stream, &mut reader, i * 10, "warm");
    }
    drop((stream, reader));
    say("warm");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();

    let started = Instant::now();
    let results: Vec<(usize, Outcome, u128)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|client| {
                let connect = &connect;
                scope.spawn(move || {
                    let (mut stream, mut reader) = connect();
                    (client..total)
                        .step_by(clients)
                        .map(|i| {
                            let t = Instant::now();
                            let outcome = call(&mut stream, &mut reader, i, "call");
                            (i, outcome, t.elapsed().as_micros())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();

    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut values = BTreeSet::new();
    let mut latencies = Vec::with_capacity(results.len());
    for (i, outcome, micros) in &results {
        *counts
            .entry(format!("{}:{}", class(*i), outcome.effect))
            .or_default() += 1;
        if let Some(value) = &outcome.value {
            values.insert(value.clone());
        }
        latencies.push(*micros);
    }
    latencies.sort_unstable();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    say(&serde_json::json!({
        "calls": results.len(),
        "clients": clients,
        "counts": counts,
        "values": values,
        "p50_us": pick(0.50),
        "p99_us": pick(0.99),
        "calls_per_s": (results.len() as f64 / elapsed).round(),
    })
    .to_string());
    let mut done = String::new();
    std::io::stdin().read_line(&mut done).unwrap();
}

/// `frames N`: hostile frames on two connections while a third makes N ordinary permitted
/// calls: 8 MiB without a newline, then malformed lines (not JSON, invalid UTF-8, JSON nested
/// 30,000 deep, an unknown op, a huge string field). Prints a JSON summary of what each got.
pub fn hostile_frames(ordinary: usize) {
    let socket = std::env::var("FRONA_BROKER_SOCKET").expect("run under frona run");
    let answers = |stream: UnixStream| {
        std::thread::spawn(move || {
            BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        })
    };
    // 8 MiB with no newline, then the connection is closed for writing.
    let mut big = UnixStream::connect(&socket).unwrap();
    let big_answers = answers(big.try_clone().unwrap());
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..128 {
        if big.write_all(&chunk).is_err() {
            break; // the broker may close on us: also fine
        }
    }
    let _ = big.shutdown(std::net::Shutdown::Write);

    let mut bad = UnixStream::connect(&socket).unwrap();
    let bad_answers = answers(bad.try_clone().unwrap());
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let huge = format!(
        "{{\"v\":1,\"op\":\"issue\",\"tool\":\"{}\",\"credentials\":[],\"cwd\":\"/\"}}",
        "t".repeat(60_000)
    );
    let mut lines: Vec<Vec<u8>> = vec![
        b"not json".to_vec(),
        vec![0xff, 0xfe, b'{', 0x80],
        deep.into_bytes(),
        br#"{"v":1,"op":"steal","tool":"x","cwd":"/"}"#.to_vec(),
        huge.into_bytes(),
    ];
    lines.extend((0..16).map(|i| format!("{{\"v\":{i}}}").into_bytes()));
    let sent = lines.len();
    for line in lines {
        bad.write_all(&line).unwrap();
        bad.write_all(b"\n").unwrap();
    }
    let _ = bad.shutdown(std::net::Shutdown::Write);

    // Meanwhile, ordinary calls on their own connection.
    let (mut stream, mut reader) = {
        let stream = UnixStream::connect(&socket).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        (stream, reader)
    };
    let permitted = (0..ordinary)
        .filter(|i| call(&mut stream, &mut reader, i * 10, "ordinary").effect == "permit")
        .count();

    let big = big_answers.join().unwrap();
    let bad = bad_answers.join().unwrap();
    say(&serde_json::json!({
        "ordinary_permitted": permitted,
        "big_answers": big.len(),
        "big_too_large": big.iter().filter(|a| a.contains("too large")).count(),
        "bad_sent": sent,
        "bad_answers": bad,
    })
    .to_string());
}

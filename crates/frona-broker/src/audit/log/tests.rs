use super::*;
use serde_json::json;

fn path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("frona-audit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("audit.jsonl")
}

fn record(n: u64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("decision".into(), "permit".into());
    m.insert("n".into(), n.into());
    m
}

#[test]
fn chain_verifies_and_survives_reopening() {
    let path = path("chain");
    let log = AuditLog::open(&path).unwrap();
    for n in 0..5 {
        assert_eq!(log.append(record(n)).unwrap(), n);
    }
    drop(log);
    let log = AuditLog::open(&path).unwrap();
    assert_eq!(log.append(record(5)).unwrap(), 5);
    assert_eq!(verify(&path).unwrap().records, 6);
    assert_eq!(read(&path).unwrap()[5]["n"], 5);
}

#[test]
fn keys_on_either_side_of_prev_and_seq_verify() {
    let path = path("keys");
    let log = AuditLog::open(&path).unwrap();
    let mut m = Map::new();
    for key in [
        "", "a", "pre", "prev0", "prevz", "reason", "se", "seq0", "session", "zz",
    ] {
        m.insert(key.into(), json!({"k": key, "n": [1, "\u{1}\""]}));
    }
    m.insert("prev".into(), "forged".into());
    m.insert("seq".into(), 99.into());
    m.insert("hash".into(), "forged".into());
    log.append(m.clone()).unwrap();
    m.retain(|k, _| k.as_str() < "prev");
    log.append(m).unwrap();
    log.append(Map::new()).unwrap();
    assert_eq!(verify(&path).unwrap().records, 3);
    assert_eq!(
        read(&path).unwrap()[0]["seq"],
        0,
        "the chain's own fields win"
    );
}

#[test]
fn any_edit_removal_or_reorder_is_detected() {
    let path = path("tamper");
    let log = AuditLog::open(&path).unwrap();
    for n in 0..4 {
        log.append(record(n)).unwrap();
    }
    let original = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    let rewrite = |lines: Vec<String>| std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let owned = || lines.iter().map(|l| l.to_string()).collect::<Vec<_>>();

    let mut edited = owned();
    edited[1] = edited[1].replace("permit", "deny_");
    rewrite(edited);
    assert!(matches!(
        verify(&path),
        Err(AuditError::Broken { line: 2, .. })
    ));
    let mut edited_last = owned();
    edited_last[3] = edited_last[3].replace("permit", "deny_");
    rewrite(edited_last);
    assert!(
        matches!(verify(&path), Err(AuditError::Broken { line: 4, .. })),
        "even the last line"
    );
    let mut removed = owned();
    removed.remove(2);
    rewrite(removed);
    assert!(verify(&path).is_err());
    let mut swapped = owned();
    swapped.swap(0, 1);
    rewrite(swapped);
    assert!(verify(&path).is_err());
    // A torn last line.
    std::fs::write(&path, format!("{}\n{}", lines[0], &lines[1][..20])).unwrap();
    let err = verify(&path).unwrap_err();
    assert!(err.to_string().contains("torn write"), "{err}");
    assert!(
        AuditLog::open(&path).is_err(),
        "a damaged log is not appended to"
    );
}

/// `count` threads appending 50 records each; each returns its sequence numbers.
fn appenders(log: &std::sync::Arc<AuditLog>, count: u64) -> Vec<std::thread::JoinHandle<Vec<u64>>> {
    (0..count)
        .map(|t| {
            let log = std::sync::Arc::clone(log);
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| log.append(record(t * 1000 + i)).unwrap())
                    .collect()
            })
        })
        .collect()
}

#[test]
fn concurrent_appends_are_all_recorded_in_one_chain() {
    let path = path("concurrent");
    let log = std::sync::Arc::new(AuditLog::open(&path).unwrap());
    let threads = appenders(&log, 16);
    let mut seqs: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (0..800).collect::<Vec<_>>(),
        "no lost or duplicated record"
    );
    assert_eq!(verify(&path).unwrap().records, 800);
}

#[test]
fn submitted_and_appended_records_share_one_chain() {
    let path = path("submit");
    let log = std::sync::Arc::new(AuditLog::open(&path).unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let threads = appenders(&log, 8);
    // Async waiters, and records nobody waits for.
    let mut seqs: Vec<u64> = runtime.block_on(async {
        let mut seqs = Vec::new();
        for i in 0..200 {
            let seq = log.submit(record(100_000 + i));
            if i % 2 == 0 {
                log.durable(seq).await.unwrap();
            }
            seqs.push(seq);
        }
        seqs
    });
    seqs.extend(threads.into_iter().flat_map(|t| t.join().unwrap()));
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (0..600).collect::<Vec<_>>(),
        "no lost or duplicated record"
    );
    // The last unwaited record is written by the flusher without anybody asking.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while verify(&path).unwrap().records < 600 {
        assert!(
            std::time::Instant::now() < deadline,
            "a submitted record was never written"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn flush_writes_what_nobody_waits_for() {
    let path = path("flush");
    let log = AuditLog::open(&path).unwrap();
    for n in 0..50 {
        log.submit(record(n));
    }
    assert!(log.flush(Duration::from_secs(5)));
    assert_eq!(verify(&path).unwrap().records, 50);
}

#[test]
fn an_unwritable_log_fails_async_waiters() {
    let file = OpenOptions::new().append(true).open("/dev/full").unwrap();
    let head = ChainHead {
        records: 0,
        last_hash: GENESIS.into(),
    };
    let full = AuditLog::with_file(file, head, Path::new("/dev/full"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let seq = full.submit(record(0));
        assert!(full.durable(seq).await.is_err());
        let seq = full.submit(record(1));
        assert!(full.durable(seq).await.is_err(), "and stays failed");
    });
    assert!(full.append(record(2)).is_err());
}

#[test]
fn a_log_that_is_not_a_regular_file_is_refused() {
    let dir = path("special").parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("link.jsonl");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    assert!(verify(&link).is_err(), "a symlink is not followed");
    assert!(AuditLog::open(&link).is_err());
    let fifo = dir.join("fifo.jsonl");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    assert!(verify(&fifo).is_err(), "a FIFO neither hangs nor is read");
    assert!(AuditLog::open(&fifo).is_err());
}

#[test]
fn an_unwritable_log_fails_the_append() {
    let path = path("full");
    let log = AuditLog::open(&path).unwrap();
    log.append(record(0)).unwrap();
    drop(log);
    // /dev/full: every write fails with ENOSPC.
    let file = OpenOptions::new().append(true).open("/dev/full").unwrap();
    let head = ChainHead {
        records: 0,
        last_hash: GENESIS.into(),
    };
    let full = AuditLog::with_file(file, head, Path::new("/dev/full"));
    assert!(full.append(record(1)).is_err());
    assert!(full.append(record(2)).is_err(), "and stays failed");
}

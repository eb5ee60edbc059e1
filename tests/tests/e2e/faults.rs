//! frona under faults (issue 8): killed mid-call, an unwritable audit log, backends that are
//! down, slow or answer garbage. Nothing hangs, nothing is handed out unaudited, and what a
//! dead frona issued is revoked by the next one.

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::backend_vault::{ROOT, State, vault};
use crate::credentials::Dirs;
use crate::fake_http::FakeServer;
use crate::support::{alive, descendants, frona_bin, text, wait_until};

const DYNAMIC_POLICY: &str = "rules:\n  - name: child-token\n    tool: sh\n    credentials: [vault-child]\n    effect: permit\n    issue: { ttl: 60s, uses: 1, policies: [stripe-read] }\n";

fn vault_dirs(name: &str) -> Dirs {
    let dirs = Dirs::new(name);
    let register = dirs
        .cmd(&[
            "credential",
            "register",
            "--name",
            "vault-child",
            "--backend",
            "vault",
        ])
        .args([
            "--path",
            "auth/token/create",
            "--kind",
            "dynamic",
            "--env",
            "VAULT_CHILD",
        ])
        .output()
        .unwrap();
    assert!(register.status.success(), "{}", text(&register));
    std::fs::create_dir_all(dirs.root.join("config/policies")).unwrap();
    std::fs::write(dirs.root.join("config/policies/p.yaml"), DYNAMIC_POLICY).unwrap();
    dirs
}

/// SIGKILL to frona while a tool holds a Vault child token: the agent and the tool die with
/// it, the audit log still verifies, and the next `frona run` revokes the token (recorded as
/// an orphan of the killed session) before its own agent starts.
#[test]
fn a_killed_frona_has_its_leases_revoked_by_the_next_one() {
    let state = Arc::new(Mutex::new(State::default()));
    let shared = Arc::clone(&state);
    let server = FakeServer::start(move |r| vault(r, &shared));
    let dirs = vault_dirs("sigkill");
    let script = format!(
        "{f} tool --credential vault-child -- sh -c 'echo issued; exec sleep 60'",
        f = frona_bin().display()
    );
    let mut frona = dirs
        .cmd(&["run", "--quiet", "--", "sh", "-c", &script])
        .env("FRONA_STATE_DIR", dirs.root.join("state"))
        .env("VAULT_ADDR", server.url())
        .env("VAULT_TOKEN", ROOT)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(frona.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "issued");
    let pid = frona.id() as i32;
    let tree = descendants(pid);
    assert!(!tree.is_empty());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
    frona.wait().unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || tree.iter().all(|&p| !alive(p))).is_some(),
        "the agent or the tool outlived frona: {:?}",
        tree.iter().filter(|&&p| alive(p)).collect::<Vec<_>>()
    );
    assert!(
        state.lock().unwrap().revoked_accessors.is_empty(),
        "nobody revoked it yet"
    );

    let again = dirs
        .cmd(&["run", "--quiet", "--", "true"])
        .env("FRONA_STATE_DIR", dirs.root.join("state"))
        .env("VAULT_ADDR", server.url())
        .env("VAULT_TOKEN", ROOT)
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", text(&again));
    let log = std::fs::read_to_string(dirs.root.join("state/audit.jsonl")).unwrap();
    assert_eq!(
        state.lock().unwrap().revoked_accessors,
        ["acc-child-1"],
        "{log}\n{}",
        text(&again)
    );
    let verify = dirs
        .cmd(&["audit", "verify"])
        .env("FRONA_STATE_DIR", dirs.root.join("state"))
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", text(&verify));
    let log = std::fs::read_to_string(dirs.root.join("state/audit.jsonl")).unwrap();
    assert!(
        log.contains("\"orphan_of_session\"") && log.contains("\"ok\":true"),
        "{log}"
    );
    assert!(!log.contains("hvs."), "no token in the audit log");
    let journals: Vec<_> = std::fs::read_dir(dirs.root.join("state/leases"))
        .unwrap()
        .collect();
    assert!(
        journals.is_empty(),
        "the orphan's journal is gone: {journals:?}"
    );
}

const STATIC_POLICY: &str =
    "rules:\n  - name: kv\n    tool: sh\n    credentials: [vault-kv]\n    effect: permit\n";

/// A Vault KV credential, with `backends.timeout` and `run.cache_ttl` from the user config.
fn kv_dirs(name: &str) -> Dirs {
    let dirs = Dirs::new(name);
    let register = dirs
        .cmd(&[
            "credential",
            "register",
            "--name",
            "vault-kv",
            "--backend",
            "vault",
        ])
        .args(["--path", "secret/data/stripe/api-key", "--field", "value"])
        .args(["--env", "KV_VALUE"])
        .output()
        .unwrap();
    assert!(register.status.success(), "{}", text(&register));
    std::fs::create_dir_all(dirs.root.join("config/policies")).unwrap();
    std::fs::write(dirs.root.join("config/policies/p.yaml"), STATIC_POLICY).unwrap();
    std::fs::write(
        dirs.root.join("config/config.yaml"),
        "run: { cache_ttl: 1s }\nbackends: { timeout: 1s }\n",
    )
    .unwrap();
    dirs
}

/// `frona run` whose agent makes the tool calls of `script` (`$F` is frona).
fn run_with_vault(dirs: &Dirs, url: &str, script: &str) -> (std::process::Output, Duration) {
    let started = std::time::Instant::now();
    let output = dirs
        .cmd(&["run", "--quiet", "--", "sh", "-c", script])
        .env("F", frona_bin())
        .env("FRONA_STATE_DIR", dirs.root.join("state"))
        .env("VAULT_ADDR", url)
        .env("VAULT_TOKEN", ROOT)
        .output()
        .unwrap();
    (output, started.elapsed())
}

/// A backend that is down, slow, erring, throttling, answering garbage or a truncated body, or
/// refusing the token: the call is denied with the reason within the configured timeout (1 s
/// here, retries included), the audit log records the failure, and nothing hangs.
#[test]
fn backend_faults_deny_the_call_within_the_timeout() {
    use crate::fake_http::Response;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let servers: Vec<(&str, Option<FakeServer>, &str)> = vec![
        ("down", None, "cannot reach"),
        (
            "slow",
            Some(FakeServer::start(|_| {
                Response::json(200, serde_json::json!({})).delayed(Duration::from_secs(10))
            })),
            "timed out",
        ),
        (
            "500",
            Some(FakeServer::start(|_| Response::text(500, "internal error"))),
            "500",
        ),
        (
            "429",
            Some(FakeServer::start(|_| {
                Response::json(429, serde_json::json!({"errors": ["rate limited"]}))
            })),
            "429",
        ),
        (
            "garbage",
            Some(FakeServer::start(|_| Response::text(200, "<html>not json"))),
            "not the expected json",
        ),
        (
            "truncated",
            Some(FakeServer::start(|_| {
                Response::json(
                    200,
                    serde_json::json!({"data": {"data": {"value": "x".repeat(4096)}}}),
                )
                .truncated()
            })),
            "vault",
        ),
        (
            "expired-token",
            Some(FakeServer::start(|_| {
                Response::json(403, serde_json::json!({"errors": ["permission denied"]}))
            })),
            "denied (check the token",
        ),
    ];
    for (fault, server, reason) in &servers {
        let dirs = kv_dirs(&format!("fault-{fault}"));
        let url = server.as_ref().map_or(closed.clone(), FakeServer::url);
        let (output, took) = run_with_vault(
            &dirs,
            &url,
            "\"$F\" tool --credential vault-kv -- sh -c 'echo got $KV_VALUE'; echo rc=$?",
        );
        let out = text(&output);
        assert!(
            !out.contains("got") && !out.contains("rc=0"),
            "{fault}: the call must fail: {out}"
        );
        assert!(
            out.to_lowercase().contains(reason),
            "{fault}: the reason is said ({reason}): {out}"
        );
        // One second for the backend, the rest for two frona starts.
        assert!(
            took < Duration::from_secs(6),
            "{fault}: took {took:?}, beyond the timeout"
        );
        let log = std::fs::read_to_string(dirs.root.join("state/audit.jsonl")).unwrap();
        assert!(
            log.contains("\"kind\":\"issue-failed\""),
            "{fault}: the failure is audited: {log}"
        );
    }
}

/// A cached value is used within `run.cache_ttl` even when the backend is gone, and not after.
#[test]
fn cached_values_obey_their_ttl() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let reads = Arc::new(AtomicUsize::new(0));
    let state = Arc::new(Mutex::new(State::default()));
    let counter = Arc::clone(&reads);
    let shared = Arc::clone(&state);
    let server = FakeServer::start(move |r| {
        if r.path().starts_with("/v1/secret/data/") && counter.fetch_add(1, Ordering::SeqCst) > 0 {
            return crate::fake_http::Response::text(500, "down after the first read");
        }
        vault(r, &shared)
    });
    state.lock().unwrap().kv_insert(
        "stripe/api-key",
        serde_json::json!({"value": "sk_live_CachedValue0123456789"}),
    );
    let dirs = kv_dirs("cache-ttl");
    let call = "\"$F\" tool --credential vault-kv -- sh -c 'echo got=$KV_VALUE'";
    let (output, _) = run_with_vault(
        &dirs,
        &server.url(),
        &format!("{call}; echo rc1=$?; {call}; echo rc2=$?; sleep 1.5; {call}; echo rc3=$?"),
    );
    let out = text(&output);
    assert!(out.contains("rc1=0") && out.contains("rc2=0"), "{out}");
    assert!(
        !out.contains("rc3=0"),
        "past the TTL the backend is asked again: {out}"
    );
    assert_eq!(out.matches("got=[REDACTED]").count(), 2, "{out}");
    assert!(!out.contains("sk_live_Cached"), "{out}");
}

//! Credential issue on its own: the cache, the deadline, revocation after a call and on a
//! failed issue, orphans of a dead session, and redaction of what was handed out.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};

use frona_backends::Revocation;

use super::*;
use crate::audit::AuditLog;

type Fut<'a, T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + Send + 'a>>;

/// A backend that counts what it is asked, answers after `delay`, and fails to issue the
/// credential at path `broken`.
#[derive(Debug, Default)]
struct Fake {
    fetches: Arc<AtomicUsize>,
    issues: Arc<AtomicUsize>,
    revoked: Arc<Mutex<Vec<Revocation>>>,
    delay: Duration,
}

impl Backend for Fake {
    fn kind(&self) -> BackendKind {
        BackendKind::Vault
    }

    fn fetch<'s, 'a, 'b, 'f>(&'s self, secret: &'a SecretRef<'b>) -> Fut<'f, Secret>
    where
        's: 'f,
        'a: 'f,
        'b: 'f,
    {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            self.fetches.fetch_add(1, Ordering::SeqCst);
            Ok(Secret::from_string(format!("value-of-{}", secret.path)))
        })
    }

    fn health<'s, 'f>(&'s self) -> Fut<'f, ()>
    where
        's: 'f,
    {
        Box::pin(async { Ok(()) })
    }

    fn issue<'s, 'a, 'b, 'c, 'f>(
        &'s self,
        secret: &'a SecretRef<'b>,
        request: &'c IssueRequest,
    ) -> Fut<'f, frona_backends::Issued>
    where
        's: 'f,
        'a: 'f,
        'b: 'f,
        'c: 'f,
    {
        Box::pin(async move {
            if secret.path == "broken" {
                return Err(BackendError::Unsupported {
                    backend: "vault",
                    operation: "issuing this",
                });
            }
            let n = self.issues.fetch_add(1, Ordering::SeqCst);
            Ok(frona_backends::Issued {
                values: vec![(
                    "token".into(),
                    Secret::from_string(format!("dyn-token-{n}")),
                )],
                ttl: request.ttl,
                revocation: Revocation::VaultLease(format!("lease-{n}")),
            })
        })
    }

    fn revoke<'s, 'a, 'f>(&'s self, revocation: &'a Revocation) -> Fut<'f, ()>
    where
        's: 'f,
        'a: 'f,
    {
        Box::pin(async move {
            self.revoked.lock().unwrap().push(revocation.clone());
            Ok(())
        })
    }
}

struct Fixture {
    dir: PathBuf,
    _runtime: tokio::runtime::Runtime,
    credentials: Arc<Credentials>,
    fetches: Arc<AtomicUsize>,
    revoked: Arc<Mutex<Vec<Revocation>>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fixture(name: &str, delay: Duration, session: &str) -> Fixture {
    let dir = std::env::temp_dir().join(format!("frona-creds-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    fixture_in(dir, delay, session)
}

/// Credentials of `session` with their state in `dir`, their backend a [`Fake`] (its fetch
/// count and revocations returned too).
fn credentials_in(dir: &Path, delay: Duration, session: &str) -> Built {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = Fake {
        delay,
        ..Fake::default()
    };
    let (fetches, revoked) = (Arc::clone(&fake.fetches), Arc::clone(&fake.revoked));
    let mut backends: HashMap<BackendKind, Box<dyn Backend>> = HashMap::new();
    backends.insert(BackendKind::Vault, Box::new(fake));
    let audit = Arc::new(Audit::new(
        AuditLog::open(&dir.join("audit.jsonl")).unwrap(),
        "default",
        session,
    ));
    let registry = Registry::new(dir.join("credentials.yaml"));
    registry
        .register(Credential::new("db-static", BackendKind::Vault, "kv/db"))
        .unwrap();
    let credentials = Credentials::new(
        CredentialsConfig {
            registry,
            backends,
            cache_ttl: Duration::from_secs(60),
            backend_timeout: Duration::from_millis(200),
            cwd: dir.to_path_buf(),
        },
        "default",
        session,
        runtime.handle().clone(),
        audit,
    );
    (runtime, Arc::new(credentials), fetches, revoked)
}

type Built = (
    tokio::runtime::Runtime,
    Arc<Credentials>,
    Arc<AtomicUsize>,
    Arc<Mutex<Vec<Revocation>>>,
);

fn fixture_in(dir: PathBuf, delay: Duration, session: &str) -> Fixture {
    let (runtime, credentials, fetches, revoked) = credentials_in(&dir, delay, session);
    Fixture {
        dir,
        _runtime: runtime,
        credentials,
        fetches,
        revoked,
    }
}

impl Fixture {
    fn audit(&self) -> Vec<serde_json::Value> {
        crate::audit::read(&self.dir.join("audit.jsonl")).unwrap()
    }
}

fn dynamic(name: &str, path: &str) -> Credential {
    Credential {
        kind: CredentialKind::Dynamic,
        ..Credential::new(name, BackendKind::Vault, path)
    }
}

fn issued(ready: Result<Ready, CredentialError>) -> Issued {
    match ready {
        Ok(Ready::Issued(issued)) => issued,
        other => panic!("not issued: {other:?}"),
    }
}

#[test]
fn static_values_come_from_the_cache_and_only_a_blocking_caller_fills_it() {
    let f = fixture("cache", Duration::ZERO, "s1");
    let names = ["db-static".to_owned()];
    let cold = f
        .credentials
        .prepare(
            vec![f.credentials.resolve("db-static", &f.dir).unwrap()],
            &IssueSpec::default(),
            false,
        )
        .unwrap();
    assert!(matches!(cold, Ready::WouldBlock), "a miss would block");
    assert_eq!(f.fetches.load(Ordering::SeqCst), 0);
    let first = f
        .credentials
        .issue(&names, &IssueSpec::default(), &f.dir)
        .unwrap();
    assert_eq!(first.values[0].0, "DB_STATIC");
    assert_eq!(first.values[0].1.expose(), b"value-of-kv/db");
    assert!(first.leases.is_empty());
    let warm = issued(f.credentials.prepare(
        vec![f.credentials.resolve("db-static", &f.dir).unwrap()],
        &IssueSpec::default(),
        false,
    ));
    assert_eq!(warm.values[0].1.expose(), b"value-of-kv/db");
    assert_eq!(f.fetches.load(Ordering::SeqCst), 1, "fetched once");
    assert!(matches!(
        f.credentials.issue(&["nope".to_owned()], &IssueSpec::default(), &f.dir),
        Err(CredentialError::NotRegistered(name)) if name == "nope"
    ));
}

#[test]
fn a_slow_backend_fails_the_call_at_the_deadline() {
    let f = fixture("deadline", Duration::from_secs(5), "s1");
    let started = std::time::Instant::now();
    let error = f
        .credentials
        .issue(&["db-static".to_owned()], &IssueSpec::default(), &f.dir)
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(error.to_string(), "backend vault timed out after 200ms");
}

#[test]
fn dynamic_credentials_are_journalled_and_revoked_after_the_call() {
    let f = fixture("revoke", Duration::ZERO, "s1");
    let spec = IssueSpec {
        ttl: Some(Duration::from_secs(60)),
        ..IssueSpec::default()
    };
    let issued = issued(
        f.credentials
            .prepare(vec![dynamic("db", "db/creds/ro")], &spec, true),
    );
    assert_eq!(issued.values[0].0, "DB");
    assert_eq!(issued.values[0].1.expose(), b"dyn-token-0");
    let journal = std::fs::read_to_string(f.dir.join("leases/s1.jsonl")).unwrap();
    assert!(journal.contains("lease-0"), "on disk before it is used");
    assert!(
        !journal.contains("dyn-token"),
        "the journal holds no secret"
    );
    f.credentials.revoke(issued.leases);
    assert_eq!(
        *f.revoked.lock().unwrap(),
        [Revocation::VaultLease("lease-0".into())]
    );
    let journal = std::fs::read_to_string(f.dir.join("leases/s1.jsonl")).unwrap();
    assert!(journal.contains(r#"{"done":0}"#), "{journal}");
    let audit = f.audit();
    assert_eq!(audit[0]["kind"], "revoke");
    assert_eq!(audit[0]["credential"], "db");
    assert_eq!(audit[0]["ok"], true);
}

#[test]
fn a_failed_issue_revokes_what_the_call_was_issued_before_it() {
    let f = fixture("fail", Duration::ZERO, "s1");
    let error = f
        .credentials
        .prepare(
            vec![dynamic("db", "db/creds/ro"), dynamic("other", "broken")],
            &IssueSpec::default(),
            true,
        )
        .unwrap_err();
    assert!(matches!(error, CredentialError::Backend(_)), "{error}");
    assert_eq!(
        *f.revoked.lock().unwrap(),
        [Revocation::VaultLease("lease-0".into())],
        "the first credential does not outlive the failed call"
    );
    assert!(
        f.credentials.redact(&["dyn-token-0".into()])[0] == "dyn-token-0",
        "nothing of a failed call counts as handed out"
    );
}

#[test]
fn a_dead_sessions_leases_are_revoked_by_the_next_broker() {
    let dir = std::env::temp_dir().join(format!("frona-creds-orphan-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let journal = dir.join("leases/dead.jsonl");
    let (runtime, dead, _, _) = credentials_in(&dir, Duration::ZERO, "dead");
    let leases = issued(dead.prepare(
        vec![dynamic("db", "db/creds/ro")],
        &IssueSpec::default(),
        true,
    ))
    .leases;
    // Killed mid-call: never revoked, and the journal left behind (its lock gone with the
    // process), as a process that exits without dropping its broker leaves it.
    leases.outlive_call();
    let left = std::fs::read(&journal).unwrap();
    drop(dead);
    drop(runtime);
    std::fs::write(&journal, left).unwrap();
    let next = fixture_in(dir.clone(), Duration::ZERO, "next");
    assert_eq!(
        *next.revoked.lock().unwrap(),
        [Revocation::VaultLease("lease-0".into())]
    );
    let orphan = next
        .audit()
        .into_iter()
        .find(|r| r["kind"] == "revoke")
        .unwrap();
    assert_eq!(orphan["orphan_of_session"], "dead");
    assert_eq!(orphan["ok"], true);
    assert!(!journal.exists(), "read once");
}

#[test]
fn what_was_handed_out_is_redacted_from_later_records() {
    let f = fixture("redact", Duration::ZERO, "s1");
    let before = f.credentials.redact(&["value-of-kv/db".into()]);
    assert_eq!(before, ["value-of-kv/db"]);
    let _ = f
        .credentials
        .issue(&["db-static".to_owned()], &IssueSpec::default(), &f.dir)
        .unwrap();
    let after = f
        .credentials
        .redact(&["x value-of-kv/db y".into(), "clean".into()]);
    assert_eq!(after, ["x [REDACTED] y", "clean"]);
    assert_eq!(env_name("github-token.v2"), "GITHUB_TOKEN_V2");
}

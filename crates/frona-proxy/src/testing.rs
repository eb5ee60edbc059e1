//! A broker for the front ends' tests: real policy, registry, audit log and grants in a
//! temporary directory, fake or no backends, and this test process as the agent's tree.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicI32;
use std::time::Duration;

use frona_backends::registry::Registry;
use frona_backends::{Backend, BackendKind};
use frona_broker::audit::AuditLog;
use frona_broker::credentials::CredentialsConfig;
use frona_broker::grants::Grants;
use frona_broker::{Broker, BrokerConfig};
use frona_policy::PolicySet;

/// A broker deciding with `policy`, its state in `dir` (the registry is
/// `dir/credentials.yaml`), whose agent's tree is rooted at `root`.
pub(crate) fn broker(
    dir: &Path,
    policy: PolicySet,
    backends: HashMap<BackendKind, Box<dyn Backend>>,
    root: i32,
) -> Broker {
    Broker::new(BrokerConfig {
        agent: "default".into(),
        session: "test".into(),
        policy,
        credentials: CredentialsConfig {
            registry: Registry::new(dir.join("credentials.yaml")),
            backends,
            cache_ttl: Duration::from_secs(60),
            backend_timeout: Duration::from_secs(5),
            cwd: dir.to_path_buf(),
        },
        audit: AuditLog::open(&dir.join("audit.jsonl")).unwrap(),
        grants: Grants::open(&dir.join("grants.redb")).unwrap(),
        agent_root: Arc::new(AtomicI32::new(root)),
    })
    .unwrap()
}

//! Whom the broker serves: one agent (its id, which policies and scopes match on), in one
//! session, and the process tree it may be called from.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use crate::peer::{Peer, descends_from};

/// The agent and session a broker serves.
#[derive(Debug)]
pub struct Session {
    /// The agent's id.
    pub agent: String,
    /// This session's id (in every audit record, and the name of its lease journal).
    pub id: String,
    /// Host pid of the agent's init helper once started (0 before): callers must descend from
    /// it, which leaves out frona itself and the tools the broker runs.
    root: Arc<AtomicI32>,
}

impl Session {
    pub fn new(agent: impl Into<String>, id: impl Into<String>, root: Arc<AtomicI32>) -> Self {
        Self {
            agent: agent.into(),
            id: id.into(),
            root,
        }
    }

    /// The agent's init helper's pid. The agent can call before frona has recorded it (in the
    /// moment after the spawn): a caller then waits up to 2 s for it rather than being refused.
    /// 0 if there is still none.
    pub fn agent_root(&self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let root = self.root.load(Ordering::SeqCst);
            if root > 0 || Instant::now() >= deadline {
                return root;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Whether `peer` is the agent or one of its descendants: who may use the broker's socket,
    /// the credential proxy and the egress proxy. Blocks only while the agent is not yet
    /// recorded.
    pub fn in_agent_tree(&self, peer: Option<Peer>) -> bool {
        let root = self.agent_root();
        root > 0 && peer.is_some_and(|p| descends_from(p.pid, root))
    }
}

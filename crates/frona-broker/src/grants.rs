//! Grants: a human's answer to an `ask`, remembered. A grant covers one agent calling one tool
//! with one set of credentials, once, for a while, or until revoked. Grants live in an embedded
//! database (redb) so they survive restarts; each change is one transaction, so a once-grant is
//! consumed exactly once however many calls race for it, and an expired or revoked grant is
//! never used.

use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition};
use serde::{Deserialize, Serialize};

const GRANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("grants");

/// How long an approval lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    Once,
    For(Duration),
    Permanent,
}

impl std::str::FromStr for Lifetime {
    type Err = frona_policy::duration::DurationError;
    /// `once`, `permanent`, or a duration (`30m`, `2h`, `3d`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "once" => Ok(Lifetime::Once),
            "permanent" => Ok(Lifetime::Permanent),
            other => frona_policy::duration::parse_positive(other).map(Lifetime::For),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub id: String,
    pub agent: String,
    pub tool: String,
    pub credentials: Vec<String>,
    /// The `ask` rule the approval answered.
    pub rule: String,
    pub created: Timestamp,
    /// `None`: until revoked.
    pub expires: Option<Timestamp>,
    pub once: bool,
}

impl Grant {
    fn covers(&self, agent: &str, tool: &str, credentials: &[String], now: Timestamp) -> bool {
        let mut wanted = credentials.to_vec();
        wanted.sort();
        let mut held = self.credentials.clone();
        held.sort();
        self.agent == agent
            && self.tool == tool
            && held == wanted
            && self.expires.is_none_or(|e| now < e)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("cannot use the grants database `{path}`: {detail}")]
    Database { path: String, detail: String },
    #[error("no randomness for a grant id")]
    Random,
}

/// The grants database.
#[derive(Debug)]
pub struct Grants {
    db: Database,
    path: String,
}

fn new_id() -> Result<String, GrantError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|_| GrantError::Random)?;
    Ok(format!("g-{}", hex::encode(bytes)))
}

impl Grants {
    pub fn open(path: &Path) -> Result<Self, GrantError> {
        let name = path.display().to_string();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| GrantError::Database {
                path: name.clone(),
                detail: e.to_string(),
            })?;
        }
        let db = Database::create(path).map_err(|e| GrantError::Database {
            path: name.clone(),
            detail: e.to_string(),
        })?;
        let grants = Self { db, path: name };
        // Make sure the table exists, so that readers never see it missing.
        grants.write(|_| Ok(()))?;
        Ok(grants)
    }

    fn error(&self, e: impl std::fmt::Display) -> GrantError {
        GrantError::Database {
            path: self.path.clone(),
            detail: e.to_string(),
        }
    }

    fn write<T>(
        &self,
        change: impl FnOnce(&mut redb::Table<&str, &[u8]>) -> Result<T, GrantError>,
    ) -> Result<T, GrantError> {
        let txn = self.db.begin_write().map_err(|e| self.error(e))?;
        let result = {
            let mut table = txn.open_table(GRANTS).map_err(|e| self.error(e))?;
            change(&mut table)?
        };
        txn.commit().map_err(|e| self.error(e))?;
        Ok(result)
    }

    /// Records an approval.
    pub fn create(
        &self,
        agent: &str,
        tool: &str,
        credentials: &[String],
        rule: &str,
        lifetime: Lifetime,
        now: Timestamp,
    ) -> Result<Grant, GrantError> {
        let expires = match lifetime {
            Lifetime::For(d) => Some(
                now.checked_add(
                    jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX),
                )
                .unwrap_or(Timestamp::MAX),
            ),
            Lifetime::Once | Lifetime::Permanent => None,
        };
        let grant = Grant {
            id: new_id()?,
            agent: agent.into(),
            tool: tool.into(),
            credentials: credentials.to_vec(),
            rule: rule.into(),
            created: now,
            expires,
            once: lifetime == Lifetime::Once,
        };
        let bytes = serde_json::to_vec(&grant).map_err(|e| self.error(e))?;
        self.write(|table| {
            table
                .insert(grant.id.as_str(), bytes.as_slice())
                .map(drop)
                .map_err(|e| self.error(e))
        })?;
        Ok(grant)
    }

    /// Uses a grant covering this call, if one exists: a once-grant is deleted in the same
    /// transaction (so two racing calls cannot both use it); expired grants are purged.
    pub fn use_grant(
        &self,
        agent: &str,
        tool: &str,
        credentials: &[String],
        now: Timestamp,
    ) -> Result<Option<Grant>, GrantError> {
        self.write(|table| {
            let mut found = None;
            let mut expired = Vec::new();
            for entry in table.iter().map_err(|e| self.error(e))? {
                let (key, value) = entry.map_err(|e| self.error(e))?;
                let Ok(grant) = serde_json::from_slice::<Grant>(value.value()) else {
                    continue;
                };
                if grant.expires.is_some_and(|e| now >= e) {
                    expired.push(key.value().to_owned());
                } else if found.is_none() && grant.covers(agent, tool, credentials, now) {
                    found = Some(grant);
                }
            }
            for id in expired {
                table.remove(id.as_str()).map_err(|e| self.error(e))?;
            }
            if let Some(grant) = &found
                && grant.once
            {
                table.remove(grant.id.as_str()).map_err(|e| self.error(e))?;
            }
            Ok(found)
        })
    }

    /// Every live grant (expired ones are purged first).
    pub fn list(&self, now: Timestamp) -> Result<Vec<Grant>, GrantError> {
        self.write(|table| {
            table
                .retain(|_, value| {
                    serde_json::from_slice::<Grant>(value)
                        .map(|g| g.expires.is_none_or(|e| now < e))
                        .unwrap_or(false)
                })
                .map_err(|e| self.error(e))
        })?;
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let table = txn.open_table(GRANTS).map_err(|e| self.error(e))?;
        let mut grants = Vec::new();
        for entry in table.iter().map_err(|e| self.error(e))? {
            let (_, value) = entry.map_err(|e| self.error(e))?;
            if let Ok(grant) = serde_json::from_slice(value.value()) {
                grants.push(grant);
            }
        }
        Ok(grants)
    }

    /// Revokes a grant; returns whether it existed.
    pub fn revoke(&self, id: &str) -> Result<bool, GrantError> {
        self.write(|table| {
            table
                .remove(id)
                .map(|old| old.is_some())
                .map_err(|e| self.error(e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(name: &str) -> (Grants, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("frona-grants-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (Grants::open(&dir.join("grants.redb")).unwrap(), dir)
    }

    fn creds() -> Vec<String> {
        vec!["stripe-key".into()]
    }

    #[test]
    fn once_grants_are_consumed_and_timed_grants_expire() {
        let (g, _dir) = grants("life");
        let now = Timestamp::now();
        g.create("ci", "curl", &creds(), "ask-rule", Lifetime::Once, now)
            .unwrap();
        assert!(g.use_grant("ci", "curl", &creds(), now).unwrap().is_some());
        assert!(
            g.use_grant("ci", "curl", &creds(), now).unwrap().is_none(),
            "once means once"
        );
        g.create(
            "ci",
            "curl",
            &creds(),
            "ask-rule",
            "2h".parse().unwrap(),
            now,
        )
        .unwrap();
        assert!(g.use_grant("ci", "curl", &creds(), now).unwrap().is_some());
        assert!(
            g.use_grant("ci", "curl", &creds(), now).unwrap().is_some(),
            "reusable within its time"
        );
        let later = now
            .checked_add(jiff::SignedDuration::from_hours(3))
            .unwrap();
        assert!(
            g.use_grant("ci", "curl", &creds(), later)
                .unwrap()
                .is_none(),
            "expired"
        );
        assert!(g.list(later).unwrap().is_empty(), "purged");
    }

    #[test]
    fn grants_are_narrow_and_revocable_and_persist() {
        let (g, dir) = grants("narrow");
        let now = Timestamp::now();
        let grant = g
            .create("ci", "curl", &creds(), "r", Lifetime::Permanent, now)
            .unwrap();
        assert!(
            g.use_grant("other-agent", "curl", &creds(), now)
                .unwrap()
                .is_none()
        );
        assert!(g.use_grant("ci", "wget", &creds(), now).unwrap().is_none());
        assert!(
            g.use_grant("ci", "curl", &["aws".into()], now)
                .unwrap()
                .is_none()
        );
        drop(g);
        let g = Grants::open(&dir.join("grants.redb")).unwrap();
        assert_eq!(g.list(now).unwrap(), std::slice::from_ref(&grant));
        assert!(g.revoke(&grant.id).unwrap());
        assert!(
            g.use_grant("ci", "curl", &creds(), now).unwrap().is_none(),
            "revoked"
        );
    }

    #[test]
    fn a_once_grant_is_used_by_exactly_one_of_many_racing_calls() {
        let (g, _dir) = grants("race");
        let g = std::sync::Arc::new(g);
        let now = Timestamp::now();
        g.create("ci", "curl", &creds(), "r", Lifetime::Once, now)
            .unwrap();
        let used: usize = (0..16)
            .map(|_| {
                let g = std::sync::Arc::clone(&g);
                std::thread::spawn(move || {
                    g.use_grant("ci", "curl", &creds(), now).unwrap().is_some()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| usize::from(t.join().unwrap()))
            .sum();
        assert_eq!(used, 1);
    }
}

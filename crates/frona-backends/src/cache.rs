//! Fetched secret values, kept for a TTL. Evicted and replaced values are zeroized (they are
//! [`Secret`]s); `invalidate` is what `credential rotate` calls.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::Secret;

/// A TTL cache keyed by credential name.
#[derive(Debug)]
pub struct SecretCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Secret)>>,
}

impl SecretCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached value, if it is younger than the TTL; an expired one is dropped (zeroized).
    pub fn get(&self, name: &str) -> Option<Secret> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(name) {
            Some((at, value)) if at.elapsed() < self.ttl => Some(value.clone()),
            Some(_) => {
                entries.remove(name);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, name: &str, value: Secret) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
        entries.insert(name.to_owned(), (Instant::now(), value));
    }

    pub fn invalidate(&self, name: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_and_invalidates() {
        let cache = SecretCache::new(Duration::from_millis(30));
        cache.put("a", Secret::from_string("1".into()));
        assert_eq!(cache.get("a").unwrap().expose(), b"1");
        cache.invalidate("a");
        assert!(cache.get("a").is_none());
        cache.put("b", Secret::from_string("2".into()));
        std::thread::sleep(Duration::from_millis(40));
        assert!(cache.get("b").is_none());
        assert!(cache.is_empty());
    }
}

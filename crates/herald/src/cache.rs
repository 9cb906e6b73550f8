//! A small map of recently used values, shared by the service's caches (sends,
//! messages, domain signers): bounded (emptied when full, cheaper than LRU
//! bookkeeping on a hot path) and optionally expiring.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) struct Recent<K, V> {
    map: Mutex<HashMap<K, (Instant, Arc<V>)>>,
    capacity: usize,
    ttl: Option<Duration>,
}

impl<K: Eq + Hash, V> Recent<K, V> {
    /// At most `capacity` entries, each kept at most `ttl` (none: forever).
    pub(crate) fn new(capacity: usize, ttl: Option<Duration>) -> Self {
        Recent {
            map: Mutex::new(HashMap::new()),
            capacity,
            ttl,
        }
    }

    /// The value for `key`, unless absent or expired.
    pub(crate) fn get(&self, key: &K) -> Option<Arc<V>> {
        let (at, v) = self.map.lock().ok()?.get(key).cloned()?;
        match self.ttl {
            Some(ttl) if at.elapsed() >= ttl => None,
            _ => Some(v),
        }
    }

    /// Keeps `value` for `key`; a full map is emptied first.
    pub(crate) fn insert(&self, key: K, value: Arc<V>) {
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= self.capacity {
                map.clear();
            }
            map.insert(key, (Instant::now(), value));
        }
    }

    /// Forgets the entries for which `keep` is false.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        if let Ok(mut map) = self.map.lock() {
            map.retain(|k, (_, v)| keep(k, v));
        }
    }
}

//! The hash multisets the proxy keeps between polls, per (database, foreign source): valid
//! while the source's `poll_seq` in the catalog is the one they were stored with, so several
//! proxies polling one database stay consistent.

use std::collections::HashMap;
use std::sync::Mutex;

use pgtrickle_cdc::poll::HashMultiset;

/// Per (database, foreign table): the `poll_seq` and the multiset it describes.
#[derive(Default)]
pub struct MultisetCache {
    sets: Mutex<HashMap<(String, u32), (i64, HashMultiset)>>,
}

impl MultisetCache {
    /// Takes the cached multiset of `oid`, if it is the one of `seq`.
    pub fn take(&self, database: &str, oid: u32, seq: i64) -> Option<HashMultiset> {
        let mut sets = self.sets.lock().unwrap_or_else(|p| p.into_inner());
        match sets.remove(&(database.to_string(), oid)) {
            Some((s, set)) if s == seq => Some(set),
            _ => None,
        }
    }

    /// Keeps `set` as the multiset of `oid` at `seq`.
    pub fn store(&self, database: &str, oid: u32, seq: i64, set: HashMultiset) {
        let mut sets = self.sets.lock().unwrap_or_else(|p| p.into_inner());
        sets.insert((database.to_string(), oid), (seq, set));
    }

    /// Forgets the multiset of `oid` in `database` (its mirror was dropped or rebuilt).
    pub fn forget(&self, database: &str, oid: u32) {
        let mut sets = self.sets.lock().unwrap_or_else(|p| p.into_inner());
        sets.remove(&(database.to_string(), oid));
    }
}

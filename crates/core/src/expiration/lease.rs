//! The durable lease record and the in-memory expiry index built from those records.
//!
//! Storage is the source of truth (it survives restarts and leader changes); the index is only
//! a schedule, rebuilt from storage whenever this node starts serving, so it may be dropped at
//! any time without losing a lease.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::keys::EXPIRE_PREFIX;

/// Storage prefix of lease records; the rest of the key is the lease id.
pub(crate) fn lease_root() -> String {
    format!("{EXPIRE_PREFIX}id/")
}

/// Storage key of one lease record.
pub(crate) fn lease_key(lease_id: &str) -> String {
    format!("{EXPIRE_PREFIX}id/{lease_id}")
}

/// One lease: what expires when, and what to revoke then.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct LeaseEntry {
    pub lease_id: String,
    /// Set for the lease of a service token: the token to revoke.
    #[serde(default)]
    pub token_hash: Option<String>,
    /// Unix seconds.
    pub issue_time: i64,
    /// Unix seconds.
    pub expire_time: i64,
    #[serde(default)]
    pub last_renewal: Option<i64>,
    pub renewable: bool,
}

/// Leases ordered by expiry, for the revocation timer.
#[derive(Debug, Default)]
pub(crate) struct LeaseIndex {
    by_time: BTreeSet<(i64, String)>,
    by_id: HashMap<String, i64>,
}

impl LeaseIndex {
    /// Schedules (or reschedules) `lease_id` to expire at `expire_time`.
    pub fn insert(&mut self, lease_id: &str, expire_time: i64) {
        if let Some(old) = self.by_id.insert(lease_id.to_owned(), expire_time) {
            self.by_time.remove(&(old, lease_id.to_owned()));
        }
        self.by_time.insert((expire_time, lease_id.to_owned()));
    }

    /// Forgets `lease_id`.
    pub fn remove(&mut self, lease_id: &str) {
        if let Some(old) = self.by_id.remove(lease_id) {
            self.by_time.remove(&(old, lease_id.to_owned()));
        }
    }

    /// Up to `limit` leases due at `now`, earliest first. They stay scheduled until removed.
    pub fn due(&self, now: i64, limit: usize) -> Vec<String> {
        self.by_time
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(limit)
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// The earliest scheduled expiry.
    pub fn next_expiry(&self) -> Option<i64> {
        self.by_time.iter().next().map(|(t, _)| *t)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn clear(&mut self) {
        self.by_time.clear();
        self.by_id.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_orders_by_expiry_and_reschedules() {
        // Why: a renewed lease must leave its old slot, or the timer would revoke it early.
        let mut idx = LeaseIndex::default();
        idx.insert("a", 10);
        idx.insert("b", 5);
        idx.insert("a", 20);
        assert_eq!(idx.due(10, 10), vec!["b".to_owned()]);
        assert_eq!(idx.next_expiry(), Some(5));
        idx.remove("b");
        assert_eq!(idx.due(19, 10), Vec::<String>::new());
        assert_eq!(idx.due(20, 10), vec!["a".to_owned()]);
        assert_eq!(idx.len(), 1);
    }

    #[test]
    fn due_is_bounded() {
        // Why: one tick must not try to revoke an unbounded backlog at once.
        let mut idx = LeaseIndex::default();
        for i in 0..10 {
            idx.insert(&format!("l{i}"), i);
        }
        assert_eq!(idx.due(100, 3).len(), 3);
    }
}

//! An in-memory [`Store`], for backend tests and tools that need no encryption or
//! durability. Core never serves requests from it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use crate::{BackendError, Op, Store};

/// A map with the [`Store`] contract: ordered keys, Vault-style listing, atomic batches.
#[derive(Default)]
pub struct MemStore {
    map: Mutex<BTreeMap<String, Vec<u8>>>,
    /// The most operations any one `write` carried.
    largest_write: AtomicUsize,
}

impl MemStore {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every key, absolute, in order.
    pub fn keys(&self) -> Vec<String> {
        self.map().keys().cloned().collect()
    }

    /// The most operations any one atomic write has carried so far.
    pub fn largest_write(&self) -> usize {
        self.largest_write.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Store for MemStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.map().get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BackendError> {
        let map = self.map();
        let mut out: Vec<String> = Vec::new();
        for key in map.keys().filter_map(|k| k.strip_prefix(prefix)) {
            let child = match key.find('/') {
                Some(i) => &key[..=i],
                None => key,
            };
            if !child.is_empty() && out.last().map(String::as_str) != Some(child) {
                out.push(child.to_owned());
            }
        }
        Ok(out)
    }

    async fn scan_keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, BackendError> {
        Ok(self
            .map()
            .keys()
            .filter(|k| k.starts_with(prefix) && after.is_none_or(|a| k.as_str() > a))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn write(&self, ops: Vec<Op>) -> Result<(), BackendError> {
        self.largest_write.fetch_max(ops.len(), Ordering::Relaxed);
        let mut map = self.map();
        for op in ops {
            match op {
                Op::Put { key, value } => {
                    map.insert(key, value);
                }
                Op::Delete { key } => {
                    map.remove(&key);
                }
            }
        }
        Ok(())
    }
}

//! Volatile in-memory storage for `server -dev` and tests.

use std::collections::BTreeMap;
use std::ops::Bound;

use async_trait::async_trait;
use tokio::sync::RwLock;

use crate::{Op, Storage, StorageError, StorageStatus, immediate_children};

/// A `BTreeMap` behind a lock: ordered, atomic per batch, gone on exit.
#[derive(Default)]
pub struct InmemStorage {
    map: RwLock<BTreeMap<String, Vec<u8>>>,
}

impl InmemStorage {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Storage for InmemStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.map.read().await.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let map = self.map.read().await;
        let keys = map
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .map(|(k, _)| k.as_str())
            .take_while(|k| k.starts_with(prefix));
        Ok(immediate_children(prefix, keys))
    }

    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let map = self.map.read().await;
        let start = match after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Included(prefix),
        };
        Ok(map
            .range::<str, _>((start, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn write(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        let mut map = self.map.write().await;
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

    async fn export(&self, max_bytes: usize) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let map = self.map.read().await;
        let total: usize = map.iter().map(|(k, v)| k.len() + v.len()).sum();
        if total > max_bytes {
            return Err(StorageError::TooLarge(format!(
                "storage holds {total} bytes; the export limit is {max_bytes}"
            )));
        }
        Ok(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    async fn replace_all(&self, pairs: Vec<(String, Vec<u8>)>) -> Result<(), StorageError> {
        *self.map.write().await = pairs.into_iter().collect();
        Ok(())
    }

    fn status(&self) -> StorageStatus {
        StorageStatus {
            storage_type: "inmem",
            ha_enabled: false,
            is_leader: true,
            ..StorageStatus::default()
        }
    }
}

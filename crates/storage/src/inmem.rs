//! Volatile in-memory storage for `server -dev` and tests.

use std::collections::BTreeMap;
use std::io;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use tokio::sync::RwLock;

use crate::keyspace::{KeyClass, classify};
use crate::replog::engine::{self, ApplyError, BucketSet, KvTxn, ReplShared};
use crate::replog::{self, MerkleTree, ReplCommand, ReplStatus, WalPosition, WalRead};
use crate::{Op, Storage, StorageError, StorageStatus, immediate_children};

/// A `BTreeMap` behind a lock: ordered, atomic per batch, gone on exit. The replication log
/// and merkle index are updated under the same write lock as the data; the log's own keys
/// are hidden from `get`, `list`, `scan` and `export` (only `wal_read` serves them).
pub struct InmemStorage {
    map: RwLock<BTreeMap<String, Vec<u8>>>,
    repl: ReplShared,
    restores: AtomicU64,
}

impl Default for InmemStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl InmemStorage {
    pub fn new() -> Self {
        InmemStorage {
            map: RwLock::new(BTreeMap::new()),
            repl: ReplShared::empty(),
            restores: AtomicU64::new(0),
        }
    }
}

/// The map as a [`KvTxn`]; memory operations cannot fail.
struct MapTxn<'a>(&'a mut BTreeMap<String, Vec<u8>>);

impl KvTxn for MapTxn<'_> {
    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(self.0.get(key).cloned())
    }

    fn put(&mut self, key: &str, value: &[u8]) -> io::Result<()> {
        self.0.insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn delete(&mut self, key: &str) -> io::Result<()> {
        self.0.remove(key);
        Ok(())
    }

    fn replicated_keys(&self) -> io::Result<Vec<String>> {
        Ok(self
            .0
            .keys()
            .filter(|k| classify(k) != KeyClass::ClusterLocal)
            .cloned()
            .collect())
    }

    fn clear(&mut self) -> io::Result<()> {
        self.0.clear();
        Ok(())
    }
}

fn io_error(context: &str, e: io::Error) -> StorageError {
    if e.kind() == io::ErrorKind::InvalidData {
        StorageError::Corrupt(e.to_string())
    } else {
        StorageError::io(context, e)
    }
}

#[async_trait]
impl Storage for InmemStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        if replog::is_wal_key(key) {
            return Ok(None);
        }
        Ok(self.map.read().await.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let map = self.map.read().await;
        let keys = map
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .map(|(k, _)| k.as_str())
            .take_while(|k| k.starts_with(prefix))
            .filter(|k| !replog::is_wal_key(k));
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
            .filter(|(k, _)| !replog::is_wal_key(k))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn write(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        engine::check_user_ops(&ops)?;
        let mut map = self.map.write().await;
        let mut stage = self.repl.begin();
        stage
            .local_batch(&mut MapTxn(&mut map), ops, engine::unix_us())
            .map_err(|e| io_error("writing to memory", e))?;
        self.repl.finish(self.repl.commit_lock(), stage);
        Ok(())
    }

    async fn export(&self, max_bytes: usize) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let map = self.map.read().await;
        let pairs = map.iter().filter(|(k, _)| !replog::is_wal_key(k));
        let total: usize = pairs.clone().map(|(k, v)| k.len() + v.len()).sum();
        if total > max_bytes {
            return Err(StorageError::TooLarge(format!(
                "storage holds {total} bytes; the export limit is {max_bytes}"
            )));
        }
        Ok(pairs.map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    async fn replace_all(&self, pairs: Vec<(String, Vec<u8>)>) -> Result<(), StorageError> {
        let mut map = self.map.write().await;
        let mut stage = self.repl.begin();
        let seed = [
            engine::unix_us().to_be_bytes(),
            self.restores.fetch_add(1, Ordering::Relaxed).to_be_bytes(),
        ]
        .concat();
        stage
            .replace_all(&mut MapTxn(&mut map), &pairs, &seed)
            .map_err(|e| io_error("restoring into memory", e))?;
        self.repl.finish(self.repl.commit_lock(), stage);
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

    async fn apply_replication(&self, cmd: ReplCommand) -> Result<(), StorageError> {
        let mut map = self.map.write().await;
        let mut stage = self.repl.begin();
        match stage.repl(&mut MapTxn(&mut map), cmd) {
            Ok(()) => {}
            Err(ApplyError::Rejected(e)) => return Err(e),
            Err(ApplyError::Io(e)) => return Err(io_error("applying a replication command", e)),
        }
        self.repl.finish(self.repl.commit_lock(), stage);
        Ok(())
    }

    fn replication_status(&self) -> ReplStatus {
        self.repl.status()
    }

    async fn wal_read(
        &self,
        after: WalPosition,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<WalRead, StorageError> {
        let map = self.map.read().await;
        engine::wal_read(|k| Ok(map.get(k).cloned()), after, max_entries, max_bytes)
            .map_err(|e| io_error("reading the WAL", e))
    }

    async fn wal_position_at(&self, index: u64) -> Result<Option<WalPosition>, StorageError> {
        let map = self.map.read().await;
        engine::wal_position_at(|k| Ok(map.get(k).cloned()), index)
            .map_err(|e| io_error("reading the WAL", e))
    }

    fn wal_watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.repl.watch()
    }

    fn wal_committed_at(&self, index: u64) -> Option<u64> {
        self.repl.committed_at(index)
    }

    fn merkle_hashes(&self, tree: MerkleTree, page: Option<u8>) -> Vec<[u8; 32]> {
        self.repl.hashes(tree, page)
    }

    async fn export_buckets(
        &self,
        tree: MerkleTree,
        buckets: Vec<u16>,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let set = BucketSet::new(&buckets);
        let map = self.map.read().await;
        Ok(map
            .iter()
            .filter(|(k, _)| set.wants(tree, k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn set_wal_retention(&self, max_entries: u64, max_bytes: u64) {
        self.repl.set_retention(max_entries, max_bytes);
    }

    async fn rebuild_merkle(&self) -> Result<(), StorageError> {
        let map = self.map.read().await;
        let guard = self.repl.commit_lock();
        let merkle =
            replog::engine::merkle_from_pairs(map.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
        self.repl.rebuild(guard, merkle);
        Ok(())
    }
}

//! The physical storage layer: an ordered key/value store with atomic multi-key batches.
//!
//! Everything above this crate (barrier, core, engines, replication) sees storage only through
//! the [`Storage`] trait, so the same code runs on the in-memory backend of `-dev` and tests and
//! on Raft integrated storage. Values handed to this layer are barrier ciphertext, except for
//! the few plaintext bootstrap records the barrier itself keeps (seal configuration, the
//! encrypted root key): this crate never sees a secret in the clear.

#![forbid(unsafe_code)]

mod error;
mod inmem;
pub mod keyspace;
mod op;
mod raft;
pub mod replog;

pub use error::StorageError;
pub use inmem::InmemStorage;
pub mod cluster;
pub use cluster::{BoxStream, Cluster, Dialer, Leadership, PeerStream, ServerInfo};
pub use op::Op;
/// In-memory cluster transport with fault injection (feature `test-support`).
#[cfg(any(test, feature = "test-support"))]
pub use raft::testing;
pub use raft::{APPLY_LAG_SECONDS, RaftNode, RaftOptions, RaftStorage, RaftTuning};
pub use replog::{MerkleTree, ReplCommand, ReplStatus, WalEntry, WalPosition, WalRead};

use async_trait::async_trait;

/// A snapshot of a storage backend's identity and progress, for `sys/leader`,
/// `sys/storage/raft/configuration` and metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StorageStatus {
    /// `"raft"` or `"inmem"`, as reported in `sys/seal-status.storage_type`.
    pub storage_type: &'static str,
    /// Whether this backend offers high availability (Raft does, memory does not).
    pub ha_enabled: bool,
    /// This node's id within its cluster (empty for memory).
    pub node_id: String,
    /// Whether this node currently leads its cluster (always true for memory).
    pub is_leader: bool,
    /// The Raft log index known committed (0 for memory).
    pub committed_index: u64,
    /// The Raft log index applied to the state machine (0 for memory).
    pub applied_index: u64,
    /// The log index of the membership configuration in force.
    pub config_index: u64,
    /// The members of the cluster.
    pub peers: Vec<Peer>,
}

/// One member of a storage cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Peer {
    pub node_id: String,
    /// The cluster address (host:port of the cluster listener).
    pub address: String,
    pub leader: bool,
    pub voter: bool,
}

/// An ordered key/value store with atomic batches and prefix listing.
///
/// Keys are `/`-separated paths. A successful [`Storage::write`] is durable (fsync'd on disk
/// backends) before it returns, and all of its ops become visible together or not at all.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;

    /// Lists the immediate children of `prefix`, in key order, Vault-style: a child that has
    /// keys below it appears once with a trailing `/`.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError>;

    /// Returns every key/value pair whose key starts with `prefix`, in key order, at most
    /// `limit` of them, starting strictly after `after` when given. Used by snapshots and
    /// (later) merkle sync to walk storage in bounded pages.
    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError>;

    /// Applies `ops` atomically and durably, in order.
    async fn write(&self, ops: Vec<Op>) -> Result<(), StorageError>;

    /// Every key/value pair, read from one consistent point in time (snapshot save), except
    /// the replication log's own bookkeeping (see [`replog::is_wal_key`]). Fails
    /// with [`StorageError::TooLarge`] when keys and values together exceed `max_bytes`.
    async fn export(&self, max_bytes: usize) -> Result<Vec<(String, Vec<u8>)>, StorageError>;

    /// The largest total of keys and values that [`Storage::replace_all`] accepts.
    fn max_replace_all_bytes(&self) -> usize {
        usize::MAX
    }

    /// Replaces the whole content with `pairs`, atomically (snapshot restore). The merkle index
    /// is rebuilt and the WAL jumps to a fresh position (`last_wal + 1`, new hash, nothing
    /// retained), so secondaries cannot resume across a restore and fall back to merkle sync.
    async fn replace_all(&self, pairs: Vec<(String, Vec<u8>)>) -> Result<(), StorageError>;

    /// Identity and progress of this backend.
    fn status(&self) -> StorageStatus;

    /// Stops background tasks and flushes; further calls may fail.
    async fn shutdown(&self) -> Result<(), StorageError> {
        Ok(())
    }

    /// Applies a replication command atomically (through Raft on Raft storage, so every node
    /// of the cluster applies it). Chain mismatches of `ApplyRemote` fail with
    /// [`StorageError::Diverged`].
    async fn apply_replication(&self, cmd: ReplCommand) -> Result<(), StorageError>;

    /// WAL position, retention and merkle root of this node's state machine.
    fn replication_status(&self) -> ReplStatus;

    /// Retained WAL entries strictly after `after`, if `after` is still a position of our
    /// chain (its hash matches); [`WalRead::Gone`] otherwise. At most `max_entries` entries
    /// and about `max_bytes` encoded bytes (always at least one entry when any is due).
    async fn wal_read(
        &self,
        after: WalPosition,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<WalRead, StorageError>;

    /// The chain position of WAL entry `index` while this node still retains it (or it is the
    /// tip), `None` otherwise. A performance primary checks a secondary's resume position with
    /// it. The default knows only the tip (from [`Storage::replication_status`]), so a wrapper
    /// that does not forward this answers `None` for older entries: a secondary behind the tip
    /// then runs a merkle diff instead of resuming, which is correct but slower.
    async fn wal_position_at(&self, index: u64) -> Result<Option<WalPosition>, StorageError> {
        let status = self.replication_status();
        Ok(
            (index == status.last_wal && status.last_hash != replog::SYNC_IN_PROGRESS)
                .then(|| status.position()),
        )
    }

    /// The last WAL index, updated after every apply that moves it.
    fn wal_watch(&self) -> tokio::sync::watch::Receiver<u64>;

    /// When WAL entry `index` was committed on this node (unix µs), if it is recent enough
    /// to be remembered; sent with streamed entries so secondaries measure lag from it.
    fn wal_committed_at(&self, _index: u64) -> Option<u64> {
        None
    }

    /// `None`: the 256 page hashes of `tree`; `Some(p)`: the 256 bucket sums of page `p`.
    fn merkle_hashes(&self, tree: MerkleTree, page: Option<u8>) -> Vec<[u8; 32]>;

    /// Every pair of `tree`'s class whose bucket is listed, from one consistent read, in key
    /// order.
    async fn export_buckets(
        &self,
        tree: MerkleTree,
        buckets: Vec<u16>,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError>;

    /// How many WAL entries and bytes to retain; trimming happens on the next apply.
    fn set_wal_retention(&self, max_entries: u64, max_bytes: u64);

    /// Rebuilds the merkle index from a full scan (reindex).
    async fn rebuild_merkle(&self) -> Result<(), StorageError>;

    /// Writes one key.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StorageError> {
        self.write(vec![Op::Put {
            key: key.to_owned(),
            value,
        }])
        .await
    }

    /// Deletes one key; deleting an absent key succeeds.
    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.write(vec![Op::Delete {
            key: key.to_owned(),
        }])
        .await
    }
}

/// Reduces a sorted run of full keys under `prefix` to Vault-style immediate children.
///
/// Shared by every backend so that listing behaves identically on memory and on Raft.
pub fn immediate_children<'a>(prefix: &str, keys: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in keys {
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        let child = match rest.find('/') {
            Some(i) => &rest[..=i],
            None => rest,
        };
        if child.is_empty() {
            continue;
        }
        if out.last().map(String::as_str) != Some(child) {
            out.push(child.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immediate_children_folds_subtrees_into_folders() {
        // Why: LIST must show a folder once, however many keys sit below it.
        let keys = ["a/x", "a/y/1", "a/y/2", "a/z", "b"];
        let got = immediate_children("a/", keys.iter().copied());
        assert_eq!(got, vec!["x", "y/", "z"]);
    }
}

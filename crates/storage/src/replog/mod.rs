//! The replication log: what a DR primary ships and how a secondary proves it caught up.
//!
//! Replication must never lose or reorder a change, and must survive restarts without forcing
//! every secondary into a full resync. So each storage batch that touches replicated keys gets
//! a write-ahead-log entry in the same atomic step as the data (same lock hold in memory, same
//! redb transaction on Raft), chained by hash so a secondary can tell "I hold exactly the
//! primary's history up to here" from "we forked". Next to it a merkle index over the
//! replicated keys lets two clusters find the few keys that differ without shipping everything.
//!
//! The logic here is backend-agnostic: both backends drive it through [`engine`] with their
//! own transaction type, so memory and Raft behave identically.

pub(crate) mod engine;
mod entry;
mod merkle;
mod meta;
mod reads;

pub use self::engine::SYNC_IN_PROGRESS;
pub use entry::{WalEntry, WalPosition};
pub use merkle::{MerkleTree, PairIndex, bucket_of, empty_tree_hashes, leaf_hash};

use serde::{Deserialize, Serialize};

/// Key prefix of retained WAL entries (cluster-local: never replicated themselves).
pub const WAL_ENTRY_PREFIX: &str = "core/replication/wal/";
/// Key of the persisted WAL position and retention counters.
pub const WAL_META_KEY: &str = "core/replication/wal-meta";

/// Default number of WAL entries kept for resuming secondaries.
pub const DEFAULT_RETAINED_ENTRIES: u64 = 100_000;
/// Default byte budget of retained WAL entries.
pub const DEFAULT_RETAINED_BYTES: u64 = 256 * 1024 * 1024;

/// The storage key of the WAL entry at `index`; zero-padded so key order is index order.
pub fn wal_entry_key(index: u64) -> String {
    format!("{WAL_ENTRY_PREFIX}{index:020}")
}

/// Whether `key` belongs to the WAL bookkeeping that only this module may write.
pub fn is_wal_key(key: &str) -> bool {
    key == WAL_META_KEY || key.starts_with(WAL_ENTRY_PREFIX)
}

/// A replication-driven change to storage, applied atomically like a write batch.
///
/// Raft logs it as is (postcard, which encodes variants by position): append variants only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplCommand {
    /// Secondary: apply one primary WAL entry and store it verbatim. It must continue our
    /// chain (`index == last_wal + 1`, `prev_hash == last_hash`), else
    /// [`crate::StorageError::Diverged`]; an entry we already hold (same index and hash) is a
    /// no-op.
    ApplyRemote(WalEntry),
    /// Several consecutive primary entries applied in one atomic step (one fsync): the
    /// whole chain is checked before anything is written.
    ApplyRemoteBatch(Vec<WalEntry>),
    /// Merkle sync: apply replicated-key ops without creating a WAL entry.
    SyncOps(Vec<crate::Op>),
    /// After a merkle sync: adopt the primary's position, dropping our retained WAL.
    SetPosition(WalPosition),
    /// Secondary enable: delete every replicated key and reset WAL and merkle state.
    WipeReplicated,
    /// `WipeReplicated` and then these replicated-key ops, in one atomic step: a secondary
    /// being enabled never exists wiped but without the primary's keyring records.
    WipeReplicatedThen(Vec<crate::Op>),
    /// Promotion: later local entries continue the chain under epoch + 1.
    BumpEpoch,
}

/// Replication progress of this storage, for `sys/replication/*/status` and the shipper.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplStatus {
    /// Index of the newest WAL entry (0: none yet).
    pub last_wal: u64,
    /// Number of WAL entries that carried shared (performance-replicated) ops.
    pub last_performance_wal: u64,
    /// Epoch of the chain; bumped on promotion.
    pub epoch: u64,
    /// Chain hash of the entry at `last_wal` (zeros when none).
    pub last_hash: [u8; 32],
    /// Oldest retained entry index (`last_wal + 1` when none is retained).
    pub first_retained: u64,
    pub retained_entries: u64,
    pub retained_bytes: u64,
    /// On a secondary: the last primary WAL index applied.
    pub last_remote_wal: u64,
    /// 40 hex characters summarizing both merkle trees.
    pub merkle_root: String,
}

impl ReplStatus {
    /// The current chain position.
    pub fn position(&self) -> WalPosition {
        WalPosition {
            index: self.last_wal,
            epoch: self.epoch,
            hash: self.last_hash,
        }
    }
}

/// The answer to [`crate::Storage::wal_read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalRead {
    /// Entries strictly after the requested position, in order (possibly none).
    Entries(Vec<WalEntry>),
    /// The position is no longer retained, or its hash does not match ours: resync.
    Gone,
}

#[cfg(test)]
mod tests;

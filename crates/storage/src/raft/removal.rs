//! The "removed from the cluster" flag, kept in the log database so that it survives restarts.
//!
//! A removed node must seal and stop serving (Vault 1.19's `removed_from_cluster`), and it must
//! keep knowing that after a restart: its own log still names it in an old membership, and the
//! cluster no longer replicates to it, so nothing but this flag tells it the truth.

use redb::{Database, ReadableDatabase};

use super::db;
use crate::StorageError;

const KEY_REMOVED: &str = "removed";

/// Whether this node's log database records that the cluster removed it.
pub fn load(log: &Database) -> Result<bool, StorageError> {
    let txn = log
        .begin_read()
        .map_err(|e| StorageError::io("reading the removed flag", e))?;
    let meta = txn
        .open_table(db::RAFT_META)
        .map_err(|e| StorageError::io("reading the removed flag", e))?;
    let flag: Option<bool> =
        db::read_json(&meta, KEY_REMOVED).map_err(|e| StorageError::Corrupt(e.to_string()))?;
    Ok(flag.unwrap_or(false))
}

/// Records durably that the cluster removed this node (blocking).
pub fn persist(log: &Database) -> std::io::Result<()> {
    let txn = log
        .begin_write()
        .map_err(|e| db::io_err("recording the removed flag", e))?;
    {
        let mut meta = txn
            .open_table(db::RAFT_META)
            .map_err(|e| db::io_err("recording the removed flag", e))?;
        db::write_json(&mut meta, KEY_REMOVED, &true)?;
    }
    txn.commit()
        .map_err(|e| db::io_err("recording the removed flag", e))
}

//! Which node a data directory belongs to.
//!
//! Votes and membership in the log name this node by its numeric Raft id, derived from the
//! operator's `node_id`. Opening the directory under another name would make the node a
//! stranger to its own log, so the name is recorded on first open and checked on every open.

use redb::{Database, ReadableDatabase};

use super::db;
use super::types::raft_id_for;
use crate::StorageError;

/// What the database records about the node that owns it.
#[derive(serde::Serialize, serde::Deserialize)]
struct NodeIdentity {
    node_id: String,
    raft_id: u64,
}

/// Records the node id on first open and refuses a directory that belongs to another node.
pub fn check(db: &Database, node_id: &str) -> Result<(), StorageError> {
    let stored: Option<NodeIdentity> = {
        let txn = db
            .begin_read()
            .map_err(|e| StorageError::io("reading the node identity", e))?;
        let meta = txn
            .open_table(db::RAFT_META)
            .map_err(|e| StorageError::io("reading the node identity", e))?;
        db::read_json(&meta, db::KEY_IDENTITY).map_err(|e| StorageError::Corrupt(e.to_string()))?
    };
    match stored {
        Some(id) if id.node_id == node_id => Ok(()),
        Some(id) => Err(StorageError::Config(format!(
            "the raft data directory belongs to node {:?} but node_id is {node_id:?}; \
             set node_id back or point path at this node's own directory",
            id.node_id
        ))),
        None => {
            let txn = db
                .begin_write()
                .map_err(|e| StorageError::io("recording the node identity", e))?;
            {
                let mut meta = txn
                    .open_table(db::RAFT_META)
                    .map_err(|e| StorageError::io("recording the node identity", e))?;
                let identity = NodeIdentity {
                    node_id: node_id.to_owned(),
                    raft_id: raft_id_for(node_id),
                };
                db::write_json(&mut meta, db::KEY_IDENTITY, &identity)
                    .map_err(|e| StorageError::io("recording the node identity", e))?;
            }
            txn.commit()
                .map_err(|e| StorageError::io("recording the node identity", e))
        }
    }
}

//! What a Raft snapshot carries: a read view of the state machine, not a copy of it.
//!
//! The state machine already lives in redb, durable after each checkpoint, so a snapshot needs
//! no second copy of the keyspace: building one is a durable commit of its meta, and the data
//! is a redb read transaction (an MVCC view frozen at exactly that meta) that is encoded into
//! the [`snapshot_codec`](super::snapshot_codec) format only if someone asks for the bytes, as
//! a follower catching up would. Copying the keyspace at every snapshot cost a full scan, a
//! keyspace-sized allocation and a keyspace-sized write every 8,192 entries.

use std::fmt;
use std::io;

use redb::ReadTransaction;

use super::db::{SM_DATA, io_err};
use super::snapshot_codec::{self, SnapshotEncoder};

/// The data half of a snapshot.
pub enum SnapshotData {
    /// Encoded bytes, as received from a peer. Only a node-to-node transport builds these, and
    /// the single-node build has none yet (the tests below do).
    #[cfg_attr(not(test), allow(dead_code))]
    Encoded(Vec<u8>),
    /// A consistent view of this node's state machine at the snapshot's meta.
    View(ReadTransaction),
}

impl SnapshotData {
    /// The snapshot in its wire format (scans the view, or copies the bytes), for a transport.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn encode(&self) -> io::Result<Vec<u8>> {
        match self {
            SnapshotData::Encoded(bytes) => Ok(bytes.clone()),
            SnapshotData::View(txn) => {
                let mut enc = SnapshotEncoder::new();
                for (k, v) in scan(txn)? {
                    enc.push(&k, &v)?;
                }
                Ok(enc.finish())
            }
        }
    }

    /// Every key/value pair of the snapshot (checks the encoding of received bytes).
    pub fn into_pairs(self) -> io::Result<Vec<(String, Vec<u8>)>> {
        match self {
            SnapshotData::Encoded(bytes) => snapshot_codec::decode(&bytes),
            SnapshotData::View(txn) => scan(&txn),
        }
    }
}

fn scan(txn: &ReadTransaction) -> io::Result<Vec<(String, Vec<u8>)>> {
    let table = txn
        .open_table(SM_DATA)
        .map_err(|e| io_err("opening the state machine", e))?;
    let mut pairs = Vec::new();
    for item in redb::ReadableTable::iter(&table).map_err(|e| io_err("scanning a snapshot", e))? {
        let (k, v) = item.map_err(|e| io_err("scanning a snapshot", e))?;
        pairs.push((k.value().to_owned(), v.value().to_vec()));
    }
    Ok(pairs)
}

/// Never prints contents: snapshot data is barrier ciphertext, but still not for logs.
impl fmt::Debug for SnapshotData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotData::Encoded(bytes) => {
                write!(f, "SnapshotData::Encoded({} bytes)", bytes.len())
            }
            SnapshotData::View(_) => f.write_str("SnapshotData::View"),
        }
    }
}

#[cfg(test)]
mod tests {
    use redb::{Database, ReadableDatabase};

    use super::*;

    #[test]
    fn a_view_encodes_to_bytes_that_decode_to_the_same_pairs() {
        // Why: a follower installs what a leader's view encodes; the two forms of a snapshot
        // must carry exactly the same keyspace.
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("sm.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(SM_DATA).unwrap();
            t.insert("a/1", b"one".as_slice()).unwrap();
            t.insert("b/2", b"".as_slice()).unwrap();
        }
        txn.commit().unwrap();
        let view = SnapshotData::View(db.begin_read().unwrap());

        let received = SnapshotData::Encoded(view.encode().unwrap());

        let expected = vec![
            ("a/1".to_owned(), b"one".to_vec()),
            ("b/2".to_owned(), Vec::new()),
        ];
        assert_eq!(received.into_pairs().unwrap(), expected);
        assert_eq!(view.into_pairs().unwrap(), expected);
    }
}

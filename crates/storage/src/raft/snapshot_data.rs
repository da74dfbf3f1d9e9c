//! What a Raft snapshot carries: a read view of the state machine, not a copy of it.
//!
//! The state machine already lives in redb, durable after each checkpoint, so a snapshot needs
//! no second copy of the keyspace: building one is a durable commit of its meta, and the data
//! is a redb read transaction (an MVCC view frozen at exactly that meta) that is encoded into
//! the [`snapshot_codec`](super::snapshot_codec) format only if someone asks for the bytes, as
//! a follower catching up would, and then a chunk at a time as the transport sends it. A
//! received snapshot is staged in a file beside the databases and installed from there, so
//! neither end holds the keyspace in memory. Copying the keyspace at every snapshot cost a full scan, a
//! keyspace-sized allocation and a keyspace-sized write every 8,192 entries.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use redb::{ReadTransaction, ReadableTableMetadata};

use super::db::{SM_DATA, io_err};
use super::snapshot_codec::{self, ChunkEncoder, SnapshotEncoder};

/// The data half of a snapshot.
pub enum SnapshotData {
    /// Encoded bytes held in memory (tests).
    #[cfg_attr(not(test), allow(dead_code))]
    Encoded(Vec<u8>),
    /// A consistent view of this node's state machine at the snapshot's meta.
    View(ReadTransaction),
    /// Encoded bytes received from a leader, staged in a file that is deleted on drop.
    Staged(StagedFile),
}

/// The name of a snapshot being received, in the data directory: `snapshot-incoming-<pid>-<n>.tmp`.
pub fn staged_name(n: u64) -> String {
    format!("{STAGED_PREFIX}{}-{n}{STAGED_SUFFIX}", std::process::id())
}
const STAGED_PREFIX: &str = "snapshot-incoming-";
const STAGED_SUFFIX: &str = ".tmp";

/// Removes staged snapshots a crashed process left in `dir` (blocking; at open, before Raft
/// runs, so none of them can be in use). A file that cannot be removed is logged and left.
pub fn remove_stale_staged(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(STAGED_PREFIX) && name.ends_with(STAGED_SUFFIX)) {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => {
                tracing::info!(file = %name, "removed a snapshot left half-received by an earlier run")
            }
            Err(e) => {
                tracing::warn!(file = %name, error = %e, "could not remove a stale staged snapshot")
            }
        }
    }
}

/// A received snapshot's file; removed when the snapshot is dropped (installed or not).
pub struct StagedFile {
    path: PathBuf,
    len: u64,
}

impl StagedFile {
    /// Takes ownership of a fully written file of `len` bytes.
    pub fn new(path: PathBuf, len: u64) -> Self {
        Self { path, len }
    }

    /// Records the final length once every chunk is written.
    pub fn set_len(&mut self, len: u64) {
        self.len = len;
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(file = %self.path.display(), error = %e, "removing a staged snapshot");
        }
    }
}

impl SnapshotData {
    /// The snapshot in its wire format (scans the view, or copies the bytes), for a transport.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn encode(&self) -> io::Result<Vec<u8>> {
        match self {
            SnapshotData::Encoded(bytes) => Ok(bytes.clone()),
            SnapshotData::Staged(file) => std::fs::read(file.path()),
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
    #[cfg(test)]
    pub fn into_pairs(self) -> io::Result<Vec<(String, Vec<u8>)>> {
        let mut pairs = Vec::new();
        self.for_each_pair(|k, v| {
            pairs.push((k, v));
            Ok(())
        })?;
        Ok(pairs)
    }

    /// Hands every pair to `f` in key order without collecting them (blocking). For received
    /// bytes the digest is checked last, so `f` must stage pairs where an error can undo them.
    pub fn for_each_pair(
        self,
        mut f: impl FnMut(String, Vec<u8>) -> io::Result<()>,
    ) -> io::Result<()> {
        match self {
            SnapshotData::Encoded(bytes) => {
                snapshot_codec::decode_from(&bytes[..], bytes.len() as u64, f)
            }
            SnapshotData::Staged(file) => {
                let reader = io::BufReader::new(std::fs::File::open(file.path())?);
                snapshot_codec::decode_from(reader, file.len, f)
            }
            SnapshotData::View(txn) => {
                for (k, v) in scan(&txn)? {
                    f(k, v)?;
                }
                Ok(())
            }
        }
    }

    /// Encodes the snapshot in chunks of about `chunk_bytes`, handing each to `send` as it is
    /// produced (blocking); `send` returning false stops early (the receiver went away).
    pub fn encode_chunks(
        self,
        chunk_bytes: usize,
        mut send: impl FnMut(Vec<u8>) -> bool,
    ) -> io::Result<()> {
        match self {
            SnapshotData::View(txn) => {
                let table = txn
                    .open_table(SM_DATA)
                    .map_err(|e| io_err("opening the state machine", e))?;
                let count = table.len().map_err(|e| io_err("counting a snapshot", e))?;
                let mut enc = ChunkEncoder::new(count, chunk_bytes);
                for item in redb::ReadableTable::iter(&table)
                    .map_err(|e| io_err("scanning a snapshot", e))?
                {
                    let (k, v) = item.map_err(|e| io_err("scanning a snapshot", e))?;
                    if let Some(chunk) = enc.push(k.value(), v.value())?
                        && !send(chunk)
                    {
                        return Ok(());
                    }
                }
                send(enc.finish()?);
                Ok(())
            }
            other => {
                let bytes = other.encode()?;
                for chunk in bytes.chunks(chunk_bytes.max(1)) {
                    if !send(chunk.to_vec()) {
                        return Ok(());
                    }
                }
                Ok(())
            }
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
            SnapshotData::Staged(file) => write!(f, "SnapshotData::Staged({} bytes)", file.len),
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

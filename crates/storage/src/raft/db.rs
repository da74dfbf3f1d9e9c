//! The one redb file that holds the Raft log, the Raft metadata and the state machine.
//!
//! Keeping all of it in one database lets the state machine commit its data, its last-applied
//! log id and its membership in one transaction, and keeps backup and corruption handling to a
//! single file. Every commit uses redb's default `Durability::Immediate` (fsync), so anything
//! openraft is told is persisted really is.

use std::io;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableTable, Table, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StorageError;

/// File name of the database inside the configured storage path.
pub const DB_FILE: &str = "strongroom.redb";

/// Log entries by index, JSON-encoded.
pub const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// Log-side metadata: vote, committed and purged log ids, node identity.
pub const RAFT_META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
/// The state machine: the Strongroom keyspace itself, values verbatim.
pub const SM_DATA: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_data");
/// State-machine metadata: last applied log id and last membership.
pub const SM_META: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_meta");
/// The most recently built or installed snapshot (metadata and encoded data).
pub const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");

pub const KEY_VOTE: &str = "vote";
pub const KEY_COMMITTED: &str = "committed";
pub const KEY_PURGED: &str = "purged";
pub const KEY_IDENTITY: &str = "identity";
pub const KEY_FORMAT: &str = "format";
pub const KEY_APPLIED: &str = "last_applied";
pub const KEY_MEMBERSHIP: &str = "last_membership";
pub const KEY_SNAPSHOT_META: &str = "meta";
pub const KEY_SNAPSHOT_DATA: &str = "data";

/// On-disk layout version, bumped on any incompatible change to the tables above.
pub const FORMAT_VERSION: u32 = 1;

/// redb's page cache. Its default (1 GiB) dominated resident memory below a million secrets;
/// the OS page cache still holds the file, so a smaller private cache costs reads little.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Opens (or creates) the database under `dir` and makes sure every table exists.
pub fn open(dir: &Path) -> Result<Arc<Database>, StorageError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        StorageError::io(
            format!("creating the raft storage directory {}", dir.display()),
            e,
        )
    })?;
    let file = dir.join(DB_FILE);
    let db = Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create(&file)
        .map_err(|e| open_error(&file, e))?;
    let txn = db
        .begin_write()
        .map_err(|e| StorageError::io("starting the table setup transaction", e))?;
    {
        let setup = |e: redb::TableError| StorageError::io("creating the raft tables", e);
        txn.open_table(LOG).map_err(setup)?;
        txn.open_table(SM_DATA).map_err(setup)?;
        txn.open_table(SM_META).map_err(setup)?;
        txn.open_table(SNAPSHOT).map_err(setup)?;
        let mut meta = txn.open_table(RAFT_META).map_err(setup)?;
        let format: Option<u32> =
            read_json(&meta, KEY_FORMAT).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        match format {
            None => write_json(&mut meta, KEY_FORMAT, &FORMAT_VERSION)
                .map_err(|e| StorageError::io("recording the storage format", e))?,
            Some(FORMAT_VERSION) => {}
            Some(other) => {
                return Err(StorageError::Corrupt(format!(
                    "{} has storage format {other}, this build reads format {FORMAT_VERSION}; \
                     restore a snapshot with a matching release",
                    file.display()
                )));
            }
        }
    }
    txn.commit()
        .map_err(|e| StorageError::io("committing the table setup", e))?;
    Ok(Arc::new(db))
}

/// Turns a redb open failure into an error that tells the operator what to do.
fn open_error(file: &Path, e: redb::DatabaseError) -> StorageError {
    let shown = file.display();
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StorageError::io(
            format!("opening {shown}"),
            "the database is already open, probably by another strongroom process using the same storage path",
        ),
        redb::DatabaseError::UpgradeRequired(v) => StorageError::Corrupt(format!(
            "{shown} uses redb file format {v}, which this build cannot read; restore from a snapshot"
        )),
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(msg)) => {
            StorageError::Corrupt(format!(
                "{shown} is not a valid strongroom database ({msg}); restore from a snapshot or move the file away"
            ))
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() == io::ErrorKind::InvalidData =>
        {
            StorageError::Corrupt(format!(
                "{shown} is not a valid strongroom database ({io}); restore from a snapshot or move the file away"
            ))
        }
        other => StorageError::io(format!("opening {shown}"), other),
    }
}

/// An `io::Error` naming what failed, for the openraft storage traits.
pub fn io_err(context: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{context}: {e}"))
}

/// An `io::Error` for stored bytes that do not decode.
pub fn corrupt(context: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{context}: stored data is corrupt: {e}"),
    )
}

/// Reads and decodes one JSON metadata record.
pub fn read_json<T, Tbl>(table: &Tbl, key: &str) -> io::Result<Option<T>>
where
    T: DeserializeOwned,
    Tbl: ReadableTable<&'static str, &'static [u8]>,
{
    let Some(raw) = table.get(key).map_err(|e| io_err("reading metadata", e))? else {
        return Ok(None);
    };
    serde_json::from_slice(raw.value())
        .map(Some)
        .map_err(|e| corrupt(&format!("decoding metadata record {key:?}"), e))
}

/// Encodes and stores one JSON metadata record.
pub fn write_json<T: Serialize>(
    table: &mut Table<'_, &'static str, &'static [u8]>,
    key: &str,
    value: &T,
) -> io::Result<()> {
    let bytes =
        serde_json::to_vec(value).map_err(|e| io_err(&format!("encoding record {key:?}"), e))?;
    table
        .insert(key, bytes.as_slice())
        .map_err(|e| io_err(&format!("writing record {key:?}"), e))?;
    Ok(())
}

/// Runs blocking redb work (transactions, fsync) off the async worker threads.
pub async fn blocking<T, F>(f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io_err("running a storage task", e))?
}

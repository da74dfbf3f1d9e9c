//! The two redb files behind Raft storage: the Raft log, and the state machine.
//!
//! The log (`raft-log.redb`: entries, vote, committed and purged ids, node identity) is the
//! durability point: every append is fsync'd before openraft is told it is persisted. The state
//! machine (`strongroom.redb`: the keyspace, last-applied id, membership, checkpoint meta) commits
//! its applies without an fsync and is made durable by a checkpoint (a snapshot build), because
//! the log can always re-apply what a crash rolled back. Two files rather than one keep each
//! log fsync small: a commit of the shared file had to flush every state-machine page dirtied
//! since the last one (about 19 pages per write, against about 5 now), and fsync time on this
//! class of disk grows with the pages it writes.
//!
//! Architecture invariant: the log is never purged past the state machine's durable
//! last-applied id. Purges follow snapshots, and building a snapshot is a durable commit of the
//! state machine file.

use std::io;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StorageError;

/// File name of the state-machine database inside the configured storage path.
pub const DB_FILE: &str = "strongroom.redb";
/// File name of the Raft log database inside the configured storage path.
pub const LOG_FILE: &str = "raft-log.redb";

/// Log entries by index, JSON-encoded.
pub const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// Log-side metadata: vote, committed and purged log ids, node identity, format.
pub const RAFT_META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
/// The state machine: the Strongroom keyspace itself, values verbatim.
pub const SM_DATA: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_data");
/// State-machine metadata: last applied log id, last membership, format.
pub const SM_META: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_meta");
/// The meta of the newest checkpoint (built snapshot or installed one); the data is the state
/// machine itself, encoded on demand.
pub const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");

pub const KEY_VOTE: &str = "vote";
pub const KEY_COMMITTED: &str = "committed";
pub const KEY_PURGED: &str = "purged";
pub const KEY_IDENTITY: &str = "identity";
pub const KEY_FORMAT: &str = "format";
pub const KEY_APPLIED: &str = "last_applied";
pub const KEY_MEMBERSHIP: &str = "last_membership";
pub const KEY_SNAPSHOT_META: &str = "meta";
/// Format 1 stored a full copy of the encoded state machine here; format 2 does not.
const KEY_SNAPSHOT_DATA_V1: &str = "data";

/// On-disk layout version, bumped on any incompatible change to the tables above.
/// 1: one file for everything. 2: the log in its own file, no stored snapshot data.
pub const FORMAT_VERSION: u32 = 2;
const FORMAT_V1: u32 = 1;
/// The log file's own layout version. 3: entries are postcard (see `entry_codec`); this build
/// still reads the JSON entries of format 2 and marks the file 3 on open, so that a release
/// which reads only JSON refuses the file by its format instead of calling new entries corrupt.
pub const LOG_FORMAT_VERSION: u32 = 3;
/// Log formats this build upgrades in place (by recording [`LOG_FORMAT_VERSION`]).
const LOG_FORMATS_READ: &[u32] = &[FORMAT_VERSION];

/// redb's page cache for the state machine. Its default (1 GiB) dominated resident memory
/// below a million secrets; the OS page cache still holds the file, so a smaller private cache
/// costs reads little.
const SM_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// The log is read back only near its tail (apply, and followers catching up).
const LOG_CACHE_BYTES: usize = 4 * 1024 * 1024;

/// The opened pair of databases.
#[derive(Clone)]
pub struct Files {
    pub log: Arc<Database>,
    pub sm: Arc<Database>,
}

/// Opens (or creates) both databases under `dir`, upgrading a format-1 directory in place.
pub fn open(dir: &Path) -> Result<Files, StorageError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        StorageError::io(
            format!("creating the raft storage directory {}", dir.display()),
            e,
        )
    })?;
    let sm_file = dir.join(DB_FILE);
    let log_file = dir.join(LOG_FILE);
    let (sm_existed, log_existed) = (sm_file.exists(), log_file.exists());
    let sm = open_file(&sm_file, SM_CACHE_BYTES)?;
    let v1 = stored_format(&sm, RAFT_META)? == Some(FORMAT_V1);
    let sm_v2 = stored_format(&sm, SM_META)?.is_some();
    // The two files are one store: either alone would silently lose the log (vote, identity,
    // unapplied entries) or the state machine, so a half directory is refused.
    if (sm_v2 && !log_existed) || (!sm_existed && log_existed) {
        let (missing, present) = if log_existed {
            (&sm_file, &log_file)
        } else {
            (&log_file, &sm_file)
        };
        return Err(StorageError::Corrupt(format!(
            "{} is missing but {} exists: the raft log and the state machine belong together; \
             restore both files from the same backup, or restore a snapshot into an empty directory",
            missing.display(),
            present.display()
        )));
    }
    let log = open_file(&log_file, LOG_CACHE_BYTES)?;
    if v1 {
        upgrade_v1(&sm, &log)?;
        tracing::info!(file = %sm_file.display(), "moved the raft log into {LOG_FILE} (storage format 1 -> 2)");
    }
    let sm_format = Format {
        current: FORMAT_VERSION,
        upgradable: &[],
    };
    setup(&sm, SM_META, &sm_file, sm_format, |txn| {
        txn.open_table(SM_DATA)?;
        txn.open_table(SNAPSHOT).map(drop)
    })?;
    let log_format = Format {
        current: LOG_FORMAT_VERSION,
        upgradable: LOG_FORMATS_READ,
    };
    setup(&log, RAFT_META, &log_file, log_format, |txn| {
        txn.open_table(LOG).map(drop)
    })?;
    // Binaries of format 1 look for their format in this table of the state-machine file:
    // finding 2 there, they refuse the directory instead of starting over with an empty log.
    setup(&sm, RAFT_META, &sm_file, sm_format, |_| Ok(()))?;
    Ok(Files {
        log: Arc::new(log),
        sm: Arc::new(sm),
    })
}

fn open_file(file: &Path, cache: usize) -> Result<Database, StorageError> {
    Database::builder()
        .set_cache_size(cache)
        .create(file)
        .map_err(|e| open_error(file, e))
}

/// The format recorded in `table` of `db`, if that table exists and holds one.
fn stored_format(
    db: &Database,
    table: TableDefinition<&str, &[u8]>,
) -> Result<Option<u32>, StorageError> {
    let txn = db
        .begin_read()
        .map_err(|e| StorageError::io("reading the storage format", e))?;
    let meta = match txn.open_table(table) {
        Ok(meta) => meta,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(StorageError::io("reading the storage format", e)),
    };
    read_json(&meta, KEY_FORMAT).map_err(|e| StorageError::Corrupt(e.to_string()))
}

/// The format a file must have, and older ones it may be upgraded from by recording `current`.
#[derive(Clone, Copy)]
struct Format {
    current: u32,
    upgradable: &'static [u32],
}

/// Creates the tables (`create`, plus `meta_table`) and records or checks the format in
/// `meta_table`, in one durable commit.
fn setup(
    db: &Database,
    meta_table: TableDefinition<&str, &[u8]>,
    file: &Path,
    want: Format,
    create: impl FnOnce(&WriteTransaction) -> Result<(), redb::TableError>,
) -> Result<(), StorageError> {
    let txn = db
        .begin_write()
        .map_err(|e| StorageError::io("starting the table setup transaction", e))?;
    {
        let setup = |e: redb::TableError| StorageError::io("creating the raft tables", e);
        create(&txn).map_err(setup)?;
        let mut meta = txn.open_table(meta_table).map_err(setup)?;
        let format: Option<u32> =
            read_json(&meta, KEY_FORMAT).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        match format {
            Some(f) if f == want.current => {}
            Some(f) if !want.upgradable.contains(&f) => {
                return Err(StorageError::Corrupt(format!(
                    "{} has storage format {f}, this build reads format {}; \
                     restore a snapshot with a matching release",
                    file.display(),
                    want.current
                )));
            }
            None | Some(_) => write_json(&mut meta, KEY_FORMAT, &want.current)
                .map_err(|e| StorageError::io("recording the storage format", e))?,
        }
    }
    txn.commit()
        .map_err(|e| StorageError::io("committing the table setup", e))
}

/// Moves a format-1 directory's log and log metadata out of the state-machine file.
///
/// Copy first (durably), then delete from the old file: a crash in between leaves the old
/// file still marked format 1, and the next open copies again over the partial copy.
fn upgrade_v1(sm: &Database, log: &Database) -> Result<(), StorageError> {
    let upgrade = |e: &dyn std::fmt::Display| {
        StorageError::io("upgrading raft storage from format 1", e.to_string())
    };
    let read = sm.begin_read().map_err(|e| upgrade(&e))?;
    let old_log = read.open_table(LOG).map_err(|e| upgrade(&e))?;
    let old_meta = read.open_table(RAFT_META).map_err(|e| upgrade(&e))?;
    let txn = log.begin_write().map_err(|e| upgrade(&e))?;
    {
        let mut new_log = txn.open_table(LOG).map_err(|e| upgrade(&e))?;
        new_log.retain(|_, _| false).map_err(|e| upgrade(&e))?;
        for item in old_log.iter().map_err(|e| upgrade(&e))? {
            let (k, v) = item.map_err(|e| upgrade(&e))?;
            new_log
                .insert(k.value(), v.value())
                .map_err(|e| upgrade(&e))?;
        }
        let mut new_meta = txn.open_table(RAFT_META).map_err(|e| upgrade(&e))?;
        new_meta.retain(|_, _| false).map_err(|e| upgrade(&e))?;
        for item in old_meta.iter().map_err(|e| upgrade(&e))? {
            let (k, v) = item.map_err(|e| upgrade(&e))?;
            if k.value() != KEY_FORMAT {
                new_meta
                    .insert(k.value(), v.value())
                    .map_err(|e| upgrade(&e))?;
            }
        }
        write_json(&mut new_meta, KEY_FORMAT, &LOG_FORMAT_VERSION).map_err(|e| upgrade(&e))?;
    }
    txn.commit().map_err(|e| upgrade(&e))?;
    drop((old_log, old_meta, read));

    let txn = sm.begin_write().map_err(|e| upgrade(&e))?;
    txn.delete_table(LOG).map_err(|e| upgrade(&e))?;
    {
        // Only the format stays, now 2 (see `open`).
        let mut old_meta = txn.open_table(RAFT_META).map_err(|e| upgrade(&e))?;
        old_meta.retain(|_, _| false).map_err(|e| upgrade(&e))?;
        write_json(&mut old_meta, KEY_FORMAT, &FORMAT_VERSION).map_err(|e| upgrade(&e))?;
        let mut snapshot = txn.open_table(SNAPSHOT).map_err(|e| upgrade(&e))?;
        snapshot
            .remove(KEY_SNAPSHOT_DATA_V1)
            .map_err(|e| upgrade(&e))?;
        let mut meta = txn.open_table(SM_META).map_err(|e| upgrade(&e))?;
        write_json(&mut meta, KEY_FORMAT, &FORMAT_VERSION).map_err(|e| upgrade(&e))?;
    }
    txn.commit().map_err(|e| upgrade(&e))
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

/// Runs blocking redb work (transactions, fsync) without stalling other tasks.
///
/// On the multi-threaded runtime the work runs right here, after tokio has moved this worker's
/// other tasks to another thread (`block_in_place`): a write crosses five of these calls on its
/// way from a client to a DR secondary, and handing each to the blocking pool and back cost
/// two thread wake-ups apiece, the larger part of the replication lag on an idle machine.
/// A current-thread runtime (some tests) cannot do that, so there it goes to the pool.
pub async fn blocking<T, F>(f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| io_err("running a storage task", e))?,
    }
}

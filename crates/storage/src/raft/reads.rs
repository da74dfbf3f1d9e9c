//! Reads served straight from the state-machine table.
//!
//! On a single-node cluster the leader's state machine is the truth, and `write` returns only
//! after its entry is applied, so a plain redb read transaction already gives read-your-writes
//! without a Raft round trip. Each read sees one committed redb state, never a half-applied
//! batch. The replication log's own keys are hidden here; `wal_read` serves them.

use std::io;
use std::ops::Bound;

use redb::{Database, ReadableDatabase};

use super::db::{SM_DATA, io_err};
use crate::immediate_children;
use crate::replog::engine;
use crate::replog::{WalPosition, WalRead, is_wal_key};

fn data_table(db: &Database) -> io::Result<redb::ReadOnlyTable<&'static str, &'static [u8]>> {
    let txn = db.begin_read().map_err(|e| io_err("opening a read", e))?;
    txn.open_table(SM_DATA)
        .map_err(|e| io_err("opening the state machine", e))
}

pub fn get(db: &Database, key: &str) -> io::Result<Option<Vec<u8>>> {
    if is_wal_key(key) {
        return Ok(None);
    }
    let table = data_table(db)?;
    Ok(table
        .get(key)
        .map_err(|e| io_err("reading a key", e))?
        .map(|v| v.value().to_vec()))
}

pub fn list(db: &Database, prefix: &str) -> io::Result<Vec<String>> {
    let table = data_table(db)?;
    let mut keys = Vec::new();
    for item in table
        .range::<&str>((Bound::Included(prefix), Bound::Unbounded))
        .map_err(|e| io_err("listing keys", e))?
    {
        let (k, _) = item.map_err(|e| io_err("listing keys", e))?;
        let key = k.value();
        if !key.starts_with(prefix) {
            break;
        }
        if !is_wal_key(key) {
            keys.push(key.to_owned());
        }
    }
    Ok(immediate_children(prefix, keys.iter().map(String::as_str)))
}

pub fn scan(
    db: &Database,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> io::Result<Vec<(String, Vec<u8>)>> {
    let table = data_table(db)?;
    let start = match after {
        Some(a) => Bound::Excluded(a),
        None => Bound::Included(prefix),
    };
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    for item in table
        .range::<&str>((start, Bound::Unbounded))
        .map_err(|e| io_err("scanning keys", e))?
    {
        let (k, v) = item.map_err(|e| io_err("scanning keys", e))?;
        let key = k.value();
        if !key.starts_with(prefix) {
            break;
        }
        if is_wal_key(key) {
            continue;
        }
        out.push((key.to_owned(), v.value().to_vec()));
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// All pairs of the keyspace, or the byte total reached when it went over the limit.
pub type Export = Result<Vec<(String, Vec<u8>)>, usize>;

/// Every pair whose key passes `wanted`, from one read transaction, in key order.
pub fn filtered(
    db: &Database,
    wanted: impl Fn(&str) -> bool,
) -> io::Result<Vec<(String, Vec<u8>)>> {
    let table = data_table(db)?;
    let mut out = Vec::new();
    for item in table
        .range::<&str>(..)
        .map_err(|e| io_err("scanning keys", e))?
    {
        let (k, v) = item.map_err(|e| io_err("scanning keys", e))?;
        if wanted(k.value()) {
            out.push((k.value().to_owned(), v.value().to_vec()));
        }
    }
    Ok(out)
}

/// The merkle index of the whole state machine, from one read transaction.
pub fn index(db: &Database) -> io::Result<engine::MerkleIndex> {
    super::state_machine::index_table(&data_table(db)?)
}

/// WAL entries after `after`, with the meta read in the same transaction as the entries.
pub fn wal_read(
    db: &Database,
    after: WalPosition,
    max_entries: usize,
    max_bytes: usize,
) -> io::Result<WalRead> {
    let table = data_table(db)?;
    engine::wal_read(
        |k| {
            Ok(table
                .get(k)
                .map_err(|e| io_err("reading the WAL", e))?
                .map(|v| v.value().to_vec()))
        },
        after,
        max_entries,
        max_bytes,
    )
}

/// The chain position of WAL entry `index`, with the meta read in the same transaction.
pub fn wal_position_at(db: &Database, index: u64) -> io::Result<Option<WalPosition>> {
    let table = data_table(db)?;
    engine::wal_position_at(
        |k| {
            Ok(table
                .get(k)
                .map_err(|e| io_err("reading the WAL", e))?
                .map(|v| v.value().to_vec()))
        },
        index,
    )
}

/// Every pair (except the replication log's own bookkeeping) from one read transaction, so
/// the result is one point in time.
pub fn export(db: &Database, max_bytes: usize) -> io::Result<Export> {
    let table = data_table(db)?;
    let mut out = Vec::new();
    let mut total = 0usize;
    for item in table
        .range::<&str>(..)
        .map_err(|e| io_err("exporting keys", e))?
    {
        let (k, v) = item.map_err(|e| io_err("exporting keys", e))?;
        if is_wal_key(k.value()) {
            continue;
        }
        total += k.value().len() + v.value().len();
        if total > max_bytes {
            return Ok(Err(total));
        }
        out.push((k.value().to_owned(), v.value().to_vec()));
    }
    Ok(Ok(out))
}

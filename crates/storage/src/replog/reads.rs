//! Read-side helpers shared by both backends: WAL reads, bucket exports, index rebuilds.
//!
//! They run against one consistent view that the backend provides (a map under its read
//! lock, a redb read transaction), so the meta and the entries they return always agree.

use std::io;

use super::entry::{WalEntry, WalPosition};
use super::merkle::{MerkleIndex, MerkleTree, bucket_of};
use super::meta::WalMeta;
use super::{WAL_META_KEY, WalRead, wal_entry_key};

/// A merkle index of a full scan (for reindex and recovery).
pub(crate) fn merkle_from_pairs<'a>(
    pairs: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> MerkleIndex {
    MerkleIndex::from_pairs(pairs)
}

/// An empty merkle index to fill with [`MerkleIndex::insert`] while scanning.
pub(crate) fn empty_merkle() -> MerkleIndex {
    MerkleIndex::new()
}

/// Serves [`crate::Storage::wal_read`] from one consistent view of the keyspace.
pub(crate) fn wal_read(
    get: impl Fn(&str) -> io::Result<Option<Vec<u8>>>,
    after: WalPosition,
    max_entries: usize,
    max_bytes: usize,
) -> io::Result<WalRead> {
    let meta = get(WAL_META_KEY)?
        .map(|raw| WalMeta::decode(&raw))
        .transpose()?
        .unwrap_or_default();
    // A position taken in the middle of a merkle sync describes no real history.
    if after.index > meta.last_wal || after.hash == super::engine::SYNC_IN_PROGRESS {
        return Ok(WalRead::Gone);
    }
    if after.index == meta.last_wal {
        return Ok(if after.hash == meta.last_hash {
            WalRead::Entries(Vec::new())
        } else {
            WalRead::Gone
        });
    }
    if meta.retained_entries == 0 || after.index.saturating_add(1) < meta.first_retained {
        return Ok(WalRead::Gone);
    }
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut index = after.index + 1;
    while index <= meta.last_wal && out.len() < max_entries.max(1) {
        let raw = get(&wal_entry_key(index))?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("retained WAL entry {index} is missing; run a reindex"),
            )
        })?;
        if !out.is_empty() && bytes + raw.len() > max_bytes {
            break;
        }
        let entry = WalEntry::decode(&raw)?;
        if out.is_empty() && entry.prev_hash != after.hash {
            return Ok(WalRead::Gone);
        }
        bytes += raw.len();
        out.push(entry);
        index += 1;
    }
    Ok(WalRead::Entries(out))
}

/// Serves [`crate::Storage::wal_position_at`] from one consistent view of the keyspace: the
/// tip from the meta record, an older index from its retained entry, `None` otherwise (and in
/// the middle of a merkle sync, whose position describes no history).
pub(crate) fn wal_position_at(
    get: impl Fn(&str) -> io::Result<Option<Vec<u8>>>,
    index: u64,
) -> io::Result<Option<WalPosition>> {
    let meta = get(WAL_META_KEY)?
        .map(|raw| WalMeta::decode(&raw))
        .transpose()?
        .unwrap_or_default();
    if meta.last_hash == super::engine::SYNC_IN_PROGRESS || index > meta.last_wal {
        return Ok(None);
    }
    if index == meta.last_wal {
        return Ok(Some(meta.position()));
    }
    if meta.retained_entries == 0 || index < meta.first_retained {
        return Ok(None);
    }
    match get(&wal_entry_key(index))? {
        Some(raw) => {
            let entry = WalEntry::decode(&raw)?;
            if entry.index != index {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the WAL entry stored as {index} says it is {}", entry.index),
                ));
            }
            Ok(Some(entry.position()))
        }
        None => Ok(None),
    }
}

/// Bitmap of requested buckets.
pub(crate) struct BucketSet(Vec<bool>);

impl BucketSet {
    pub fn new(buckets: &[u16]) -> Self {
        let mut set = vec![false; 1 << 16];
        for b in buckets {
            set[usize::from(*b)] = true;
        }
        BucketSet(set)
    }

    /// Whether `key` is in `tree` and in one of the requested buckets.
    pub fn wants(&self, tree: MerkleTree, key: &str) -> bool {
        MerkleTree::of_key(key) == Some(tree) && self.0[usize::from(bucket_of(key))]
    }
}

//! How one Raft log entry is stored in `raft-log.redb`: a format byte, then postcard.
//!
//! The log is written on every acknowledged write, so its encoding is on the fsync path: a
//! compact binary form keeps the pages per commit few. Releases before this one stored each
//! entry as JSON (see [`super::legacy_command`]); such entries stay in the log until a snapshot
//! purges them, and must still apply after an upgrade. A JSON entry always starts with `{`, so
//! the first byte tells the two apart without guessing.

use std::io;

use openraft::EntryPayload;

use super::db::{corrupt, io_err};
use super::legacy_command::LegacyCommand;
use super::types::{Entry, RaftNode, TypeConfig};

/// First byte of an entry stored as postcard.
const FORMAT_POSTCARD: u8 = 1;
/// First byte of an entry stored as JSON by earlier releases.
const FORMAT_LEGACY_JSON: u8 = b'{';

/// A log entry as earlier releases wrote it: the same log id and membership, their payload.
type LegacyEntry = openraft::impls::Entry<
    openraft::alias::CommittedLeaderIdOf<TypeConfig>,
    EntryPayload<LegacyCommand, u64, RaftNode>,
>;

/// The stored bytes of `entry`.
pub fn encode(entry: &Entry) -> io::Result<Vec<u8>> {
    postcard::to_extend(entry, vec![FORMAT_POSTCARD])
        .map_err(|e| io_err(&format!("encoding log entry {}", entry.log_id.index), e))
}

/// Decodes the stored bytes of the entry at `index`, in either format.
pub fn decode(index: u64, raw: &[u8]) -> io::Result<Entry> {
    let context = || format!("decoding log entry {index}");
    match raw.first() {
        Some(&FORMAT_POSTCARD) => {
            let (entry, rest) = postcard::take_from_bytes::<Entry>(&raw[1..])
                .map_err(|e| corrupt(&context(), e))?;
            if !rest.is_empty() {
                return Err(corrupt(&context(), "trailing bytes after the entry"));
            }
            Ok(entry)
        }
        Some(&FORMAT_LEGACY_JSON) => {
            let legacy: LegacyEntry =
                serde_json::from_slice(raw).map_err(|e| corrupt(&context(), e))?;
            let payload = match legacy.payload {
                EntryPayload::Blank => EntryPayload::Blank,
                EntryPayload::Normal(cmd) => {
                    EntryPayload::Normal(cmd.into_command().map_err(|e| corrupt(&context(), e))?)
                }
                EntryPayload::Membership(m) => EntryPayload::Membership(m),
            };
            Ok(Entry {
                log_id: legacy.log_id,
                payload,
            })
        }
        Some(other) => Err(corrupt(
            &context(),
            format!("unknown log entry format byte {other}"),
        )),
        None => Err(corrupt(&context(), "the entry is empty")),
    }
}

#[cfg(test)]
#[path = "entry_codec_tests.rs"]
mod tests;

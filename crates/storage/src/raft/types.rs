//! The vocabulary shared by the Raft log, the state machine and (later) the cluster transport.
//!
//! Everything here is persisted in the log or in snapshots, and will cross the wire between
//! nodes, so the shapes are chosen for stability: node identity is derived from the operator's
//! string node id with a fixed hash, and the log payload is the storage and replication
//! vocabulary itself (`Op`, `ReplCommand`), encoded compactly by `entry_codec`.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Op;
use crate::replog::{ReplCommand, WalEntry};

openraft::declare_raft_types!(
    /// The openraft type configuration of Strongroom's integrated storage.
    pub TypeConfig:
        D = Command,
        R = ApplyOutcome,
        NodeId = u64,
        Node = RaftNode,
);

/// A log entry of this configuration.
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
/// A log position of this configuration.
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
/// A vote of this configuration.
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
/// The membership in force with the log id that introduced it.
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
/// Snapshot metadata of this configuration.
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot whose data is a view of the state machine or its encoding (see `snapshot_data`).
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, super::snapshot_data::SnapshotData>;

/// A cluster member as recorded in Raft membership: the operator's node id and where its
/// cluster listener can be reached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftNode {
    /// The node id string from the server configuration (`node_id = "node1"`).
    pub node_id: String,
    /// host:port of the node's cluster listener.
    pub cluster_addr: String,
}

/// Maps an operator-chosen node id string to openraft's numeric id.
///
/// A hash rather than a counter so that every node computes the same number for the same name
/// without coordination; the string itself travels in [`RaftNode`] so status output never has to
/// reverse the hash.
pub fn raft_id_for(node_id: &str) -> u64 {
    let digest = Sha256::digest(node_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The application payload of one Raft log entry: a storage write or the replication layer's
/// own [`ReplCommand`], carried as is, so no second vocabulary has to be kept in step with it.
///
/// The log stores it with postcard (see `entry_codec`), which encodes an enum variant by its
/// position: variants (here and in [`ReplCommand`], [`Op`] and [`crate::WalEntry`]) may only be
/// appended, never reordered or removed. Entries written before this encoding are JSON
/// [`super::legacy_command::LegacyCommand`]s and are converted when read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// An atomic batch from [`crate::Storage::write`], stamped with the proposer's clock in
    /// microseconds so that the WAL entry it creates is byte-identical on every node (0: the
    /// entry predates clocks).
    Write { unix_us: u64, ops: Vec<Op> },
    /// The whole keyspace, replacing everything (snapshot restore).
    ReplaceAll(Vec<(String, Vec<u8>)>),
    /// A replication-driven change, exactly as [`crate::Storage::apply_replication`] got it.
    Repl(ReplCommand),
}

/// What applying one entry did, returned to the proposer.
///
/// Replication commands can be refused by the state machine (a WAL entry that does not
/// continue the chain); the refusal must reach the caller as a typed error without failing the
/// state machine, and every node refuses identically because the check is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApplyOutcome {
    #[default]
    Applied,
    /// See [`crate::StorageError::Diverged`].
    Diverged(String),
    /// See [`crate::StorageError::Rejected`].
    Rejected(String),
}

impl Command {
    /// Payload bytes (keys plus values) carried by this command, for size limits.
    pub fn payload_bytes(&self) -> usize {
        match self {
            Command::Write { ops, .. } => ops_bytes(ops),
            Command::ReplaceAll(pairs) => pairs.iter().map(|(k, v)| k.len() + v.len()).sum(),
            Command::Repl(cmd) => match cmd {
                ReplCommand::ApplyRemote(entry) => entry.payload_bytes(),
                ReplCommand::ApplyRemoteBatch(entries) => {
                    entries.iter().map(WalEntry::payload_bytes).sum()
                }
                ReplCommand::SyncOps(ops) | ReplCommand::WipeReplicatedThen(ops) => ops_bytes(ops),
                ReplCommand::SetPosition(_)
                | ReplCommand::WipeReplicated
                | ReplCommand::BumpEpoch => 0,
            },
        }
    }
}

/// Keys plus values of `ops`.
pub fn ops_bytes(ops: &[Op]) -> usize {
    ops.iter()
        .map(|op| match op {
            Op::Put { key, value } => key.len() + value.len(),
            Op::Delete { key } => key.len(),
        })
        .sum()
}

/// Log output never shows keys or values, only the shape of the command.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Write { ops, .. } => write!(f, "batch({} ops)", ops.len()),
            Command::ReplaceAll(pairs) => write!(f, "replace_all({} pairs)", pairs.len()),
            Command::Repl(cmd) => match cmd {
                ReplCommand::ApplyRemote(e) => write!(f, "apply_remote(wal {})", e.index),
                ReplCommand::ApplyRemoteBatch(entries) => {
                    write!(f, "apply_remote_batch({} entries)", entries.len())
                }
                ReplCommand::SyncOps(ops) => write!(f, "sync_ops({} ops)", ops.len()),
                ReplCommand::SetPosition(pos) => write!(f, "set_position({})", pos.index),
                ReplCommand::WipeReplicated => f.write_str("wipe_replicated"),
                ReplCommand::WipeReplicatedThen(ops) => {
                    write!(f, "wipe_replicated_then({} ops)", ops.len())
                }
                ReplCommand::BumpEpoch => f.write_str("bump_epoch"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_id_is_stable_for_a_name() {
        // Why: the numeric id is persisted in votes and membership; it must never change for a
        // given node name, across restarts or builds.
        assert_eq!(raft_id_for("node1"), raft_id_for("node1"));
        assert_ne!(raft_id_for("node1"), raft_id_for("node2"));
        assert_eq!(raft_id_for("node1"), 0xca12_f31b_8cbf_5f29);
    }

    #[test]
    fn display_never_shows_keys_or_values() {
        // Why: openraft logs payloads at debug level; storage keys can name tokens.
        let cmd = Command::Write {
            unix_us: 1,
            ops: vec![Op::Put {
                key: "sys/token/id/secret".into(),
                value: b"v".to_vec(),
            }],
        };
        assert_eq!(cmd.to_string(), "batch(1 ops)");
        let sync = Command::Repl(ReplCommand::SyncOps(vec![Op::Delete {
            key: "sys/token/id/secret".into(),
        }]));
        assert_eq!(sync.to_string(), "sync_ops(1 ops)");
    }
}

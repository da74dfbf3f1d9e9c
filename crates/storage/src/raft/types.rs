//! The vocabulary shared by the Raft log, the state machine and (later) the cluster transport.
//!
//! Everything here is persisted in the log or in snapshots, and will cross the wire between
//! nodes, so the shapes are chosen for stability: node identity is derived from the operator's
//! string node id with a fixed hash, and byte values travel base64-encoded inside JSON so a log
//! entry stays compact and greppable without a second binary codec.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Op;

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

/// The application payload of one Raft log entry.
/// One encoded WAL entry inside a batch command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodedEntry(#[serde(with = "b64")] pub Vec<u8>);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// An atomic batch from [`crate::Storage::write`].
    Batch(Vec<WireOp>),
    /// The whole keyspace, replacing everything (snapshot restore).
    ReplaceAll(Vec<WirePair>),
    /// An atomic batch stamped with the proposer's clock in milliseconds (logs written before
    /// [`Command::BatchStamped`]; applied as that many thousand microseconds).
    BatchAt { unix_ms: u64, ops: Vec<WireOp> },
    /// A primary's WAL entry to apply verbatim ([`crate::WalEntry::encode`] bytes).
    ApplyRemote(#[serde(with = "b64")] Vec<u8>),
    /// An atomic batch stamped with the proposer's clock in microseconds, so that the WAL entry
    /// it creates is byte-identical on every node.
    BatchStamped { unix_us: u64, ops: Vec<WireOp> },
    /// Consecutive primary WAL entries applied in one step (each [`crate::WalEntry::encode`]).
    ApplyRemoteBatch(Vec<EncodedEntry>),
    /// Merkle-sync ops: applied without creating a WAL entry.
    SyncOps(Vec<WireOp>),
    /// Adopt a primary's WAL position (hash hex-encoded).
    SetPosition {
        index: u64,
        epoch: u64,
        hash: String,
    },
    /// Delete every replicated key and reset WAL and merkle state.
    WipeReplicated,
    /// Wipe, then these merkle-sync style ops, in one step.
    WipeReplicatedThen(Vec<WireOp>),
    /// Continue the chain under the next epoch.
    BumpEpoch,
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
            Command::Batch(ops)
            | Command::BatchAt { ops, .. }
            | Command::BatchStamped { ops, .. }
            | Command::SyncOps(ops) => ops.iter().map(WireOp::payload_bytes).sum(),
            Command::ReplaceAll(pairs) => pairs.iter().map(|p| p.key.len() + p.value.len()).sum(),
            Command::ApplyRemote(bytes) => bytes.len(),
            Command::ApplyRemoteBatch(entries) => entries.iter().map(|e| e.0.len()).sum(),
            Command::SetPosition { .. } | Command::WipeReplicated | Command::BumpEpoch => 0,
            Command::WipeReplicatedThen(ops) => ops.iter().map(WireOp::payload_bytes).sum(),
        }
    }
}

/// Log output never shows keys or values, only the shape of the command.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Batch(ops) => write!(f, "batch({} ops)", ops.len()),
            Command::ReplaceAll(pairs) => write!(f, "replace_all({} pairs)", pairs.len()),
            Command::BatchAt { ops, .. } | Command::BatchStamped { ops, .. } => {
                write!(f, "batch({} ops)", ops.len())
            }
            Command::ApplyRemote(bytes) => write!(f, "apply_remote({} bytes)", bytes.len()),
            Command::ApplyRemoteBatch(entries) => {
                write!(f, "apply_remote_batch({} entries)", entries.len())
            }
            Command::SyncOps(ops) => write!(f, "sync_ops({} ops)", ops.len()),
            Command::SetPosition { index, .. } => write!(f, "set_position({index})"),
            Command::WipeReplicated => f.write_str("wipe_replicated"),
            Command::WipeReplicatedThen(ops) => {
                write!(f, "wipe_replicated_then({} ops)", ops.len())
            }
            Command::BumpEpoch => f.write_str("bump_epoch"),
        }
    }
}

/// [`Op`] as it is stored in the log, with the value base64-encoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum WireOp {
    Put {
        key: String,
        #[serde(with = "b64")]
        value: Vec<u8>,
    },
    Delete {
        key: String,
    },
}

impl From<Op> for WireOp {
    fn from(op: Op) -> Self {
        match op {
            Op::Put { key, value } => WireOp::Put { key, value },
            Op::Delete { key } => WireOp::Delete { key },
        }
    }
}

impl From<WireOp> for Op {
    fn from(op: WireOp) -> Self {
        match op {
            WireOp::Put { key, value } => Op::Put { key, value },
            WireOp::Delete { key } => Op::Delete { key },
        }
    }
}

impl WireOp {
    fn payload_bytes(&self) -> usize {
        match self {
            WireOp::Put { key, value } => key.len() + value.len(),
            WireOp::Delete { key } => key.len(),
        }
    }
}

/// One key/value pair of a [`Command::ReplaceAll`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WirePair {
    pub key: String,
    #[serde(with = "b64")]
    pub value: Vec<u8>,
}

/// Serde adapter: bytes as a standard base64 string.
mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
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
    fn command_round_trips_through_json_with_binary_values() {
        // Why: log entries are persisted as JSON; arbitrary ciphertext bytes must survive.
        let cmd = Command::Batch(vec![
            WireOp::Put {
                key: "a/b".into(),
                value: vec![0, 255, 1, 128],
            },
            WireOp::Delete { key: "c".into() },
        ]);
        let text = serde_json::to_string(&cmd).unwrap();
        let back: Command = serde_json::from_str(&text).unwrap();
        assert_eq!(back, cmd);
        assert!(text.contains("AP8BgA=="));
    }

    #[test]
    fn replication_commands_round_trip_through_json() {
        // Why: new log variants must decode on every node exactly as proposed.
        let cmds = [
            Command::BatchAt {
                unix_ms: 5,
                ops: vec![WireOp::Delete { key: "k".into() }],
            },
            Command::ApplyRemote(vec![1, 0, 255]),
            Command::SyncOps(vec![]),
            Command::SetPosition {
                index: 3,
                epoch: 1,
                hash: "ab".repeat(32),
            },
            Command::WipeReplicated,
            Command::BumpEpoch,
        ];
        for cmd in cmds {
            let text = serde_json::to_string(&cmd).unwrap();
            assert_eq!(serde_json::from_str::<Command>(&text).unwrap(), cmd);
        }
        let legacy = r#"{"Batch":[{"op":"put","key":"a","value":"AQ=="}]}"#;
        assert!(matches!(
            serde_json::from_str::<Command>(legacy).unwrap(),
            Command::Batch(_)
        ));
    }

    #[test]
    fn display_never_shows_keys_or_values() {
        // Why: openraft logs payloads at debug level; storage keys can name tokens.
        let cmd = Command::Batch(vec![WireOp::Put {
            key: "sys/token/id/secret".into(),
            value: b"v".to_vec(),
        }]);
        assert_eq!(cmd.to_string(), "batch(1 ops)");
    }
}

//! The log payload as releases before the postcard log encoding wrote it, kept only to read
//! their entries.
//!
//! Those releases stored each Raft entry as JSON with this payload: their own mirror of the
//! storage and replication commands, bytes base64-encoded, WAL entries as their
//! [`WalEntry::encode`] bytes and hashes as hex. A log written by them still holds such entries
//! until the next snapshot purges it, and they must apply exactly as before, so each is turned
//! into today's [`Command`] when read. Nothing writes this type any more.

use serde::{Deserialize, Serialize};

use super::types::Command;
use crate::Op;
use crate::replog::{ReplCommand, WalEntry, WalPosition};

/// One encoded WAL entry inside a batch command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodedEntry(#[serde(with = "b64")] pub Vec<u8>);

/// The JSON log payload of earlier releases (variant names are the stored tags).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LegacyCommand {
    Batch(Vec<WireOp>),
    ReplaceAll(Vec<WirePair>),
    BatchAt {
        unix_ms: u64,
        ops: Vec<WireOp>,
    },
    ApplyRemote(#[serde(with = "b64")] Vec<u8>),
    BatchStamped {
        unix_us: u64,
        ops: Vec<WireOp>,
    },
    ApplyRemoteBatch(Vec<EncodedEntry>),
    SyncOps(Vec<WireOp>),
    SetPosition {
        index: u64,
        epoch: u64,
        hash: String,
    },
    WipeReplicated,
    WipeReplicatedThen(Vec<WireOp>),
    BumpEpoch,
}

/// openraft wants payloads displayable; a legacy entry is never logged before conversion.
impl std::fmt::Display for LegacyCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("legacy command")
    }
}

/// An [`Op`] as the JSON log stored it.
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

/// One key/value pair of a [`LegacyCommand::ReplaceAll`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WirePair {
    pub key: String,
    #[serde(with = "b64")]
    pub value: Vec<u8>,
}

impl From<WireOp> for Op {
    fn from(op: WireOp) -> Self {
        match op {
            WireOp::Put { key, value } => Op::Put { key, value },
            WireOp::Delete { key } => Op::Delete { key },
        }
    }
}

impl From<Op> for WireOp {
    fn from(op: Op) -> Self {
        match op {
            Op::Put { key, value } => WireOp::Put { key, value },
            Op::Delete { key } => WireOp::Delete { key },
        }
    }
}

fn ops(wire: Vec<WireOp>) -> Vec<Op> {
    wire.into_iter().map(Op::from).collect()
}

impl LegacyCommand {
    /// Today's command with the same effect. Fails only on bytes that release never wrote (a
    /// WAL entry that does not decode, a hash that is not 64 hex characters).
    pub fn into_command(self) -> Result<Command, String> {
        Ok(match self {
            // Entries written before WAL support carry no clock; 0 marks "unknown".
            LegacyCommand::Batch(w) => Command::Write {
                unix_us: 0,
                ops: ops(w),
            },
            LegacyCommand::BatchAt { unix_ms, ops: w } => Command::Write {
                unix_us: unix_ms.saturating_mul(1000),
                ops: ops(w),
            },
            LegacyCommand::BatchStamped { unix_us, ops: w } => Command::Write {
                unix_us,
                ops: ops(w),
            },
            LegacyCommand::ReplaceAll(pairs) => {
                Command::ReplaceAll(pairs.into_iter().map(|p| (p.key, p.value)).collect())
            }
            LegacyCommand::ApplyRemote(bytes) => Command::Repl(ReplCommand::ApplyRemote(
                WalEntry::decode(&bytes).map_err(|e| e.to_string())?,
            )),
            LegacyCommand::ApplyRemoteBatch(encoded) => {
                let entries = encoded
                    .iter()
                    .map(|e| WalEntry::decode(&e.0).map_err(|e| e.to_string()))
                    .collect::<Result<_, _>>()?;
                Command::Repl(ReplCommand::ApplyRemoteBatch(entries))
            }
            LegacyCommand::SyncOps(w) => Command::Repl(ReplCommand::SyncOps(ops(w))),
            LegacyCommand::SetPosition { index, epoch, hash } => {
                let mut h = [0u8; 32];
                hex::decode_to_slice(hash.as_bytes(), &mut h)
                    .map_err(|_| "WAL position hash is not 64 hex characters".to_owned())?;
                Command::Repl(ReplCommand::SetPosition(WalPosition {
                    index,
                    epoch,
                    hash: h,
                }))
            }
            LegacyCommand::WipeReplicated => Command::Repl(ReplCommand::WipeReplicated),
            LegacyCommand::WipeReplicatedThen(w) => {
                Command::Repl(ReplCommand::WipeReplicatedThen(ops(w)))
            }
            LegacyCommand::BumpEpoch => Command::Repl(ReplCommand::BumpEpoch),
        })
    }
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

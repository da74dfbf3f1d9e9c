//! The persisted WAL position and retention counters.
//!
//! Stored under [`super::WAL_META_KEY`] in the same atomic step as the entries it describes, so
//! after a crash the position, the retained range and the data always agree.

use std::io;

use serde::{Deserialize, Serialize};

use super::entry::WalPosition;

/// Where the chain stands and what part of it is still retained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalMeta {
    pub last_wal: u64,
    #[serde(with = "hex_hash")]
    pub last_hash: [u8; 32],
    pub epoch: u64,
    pub last_performance_wal: u64,
    /// Oldest retained index; `last_wal + 1` when nothing is retained.
    pub first_retained: u64,
    pub retained_entries: u64,
    pub retained_bytes: u64,
    pub last_remote_wal: u64,
}

impl Default for WalMeta {
    fn default() -> Self {
        WalMeta {
            last_wal: 0,
            last_hash: [0u8; 32],
            epoch: 0,
            last_performance_wal: 0,
            first_retained: 1,
            retained_entries: 0,
            retained_bytes: 0,
            last_remote_wal: 0,
        }
    }
}

impl WalMeta {
    pub fn position(&self) -> WalPosition {
        WalPosition {
            index: self.last_wal,
            epoch: self.epoch,
            hash: self.last_hash,
        }
    }

    pub fn encode(&self) -> io::Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| io::Error::other(format!("encoding WAL meta: {e}")))
    }

    pub fn decode(bytes: &[u8]) -> io::Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("WAL meta record is corrupt: {e}"),
            )
        })
    }

    /// Forgets every retained entry (the caller deletes them) and continues at `pos`.
    pub fn restart_at(&mut self, pos: &WalPosition) {
        self.last_wal = pos.index;
        self.last_hash = pos.hash;
        self.epoch = pos.epoch;
        self.first_retained = pos.index.saturating_add(1);
        self.retained_entries = 0;
        self.retained_bytes = 0;
    }
}

mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(h))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(text.as_bytes(), &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

//! One mutation inside an atomic batch.

use serde::{Deserialize, Serialize};

/// A single mutation. Batches of ops are applied atomically by [`crate::Storage::write`].
///
/// Raft logs ops as is (postcard, which encodes variants by position): append variants only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

impl Op {
    /// The key this op touches.
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key } => key,
        }
    }
}

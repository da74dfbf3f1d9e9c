//! Storage errors, typed so that callers can tell "try again elsewhere" from "broken".

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StorageError {
    /// The disk or database failed; the message names the operation.
    #[error("storage I/O failed while {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// This node cannot accept writes (not the Raft leader, or shutting down).
    #[error("storage is not writable on this node: {0}")]
    NotLeader(String),
    /// Stored bytes could not be decoded: the data directory is damaged or foreign.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A request exceeded a configured limit (entry size, batch size).
    #[error("storage limit exceeded: {0}")]
    TooLarge(String),
    /// The backend's configuration does not fit its data (e.g. a node id that does not match
    /// the data directory); the message says which setting to fix.
    #[error("storage configuration is invalid: {0}")]
    Config(String),
    /// A replicated WAL entry does not continue this cluster's chain (gap, fork, or an entry
    /// older than the retained log): the secondary must resynchronize with a merkle sync.
    #[error("replication log diverged: {0}")]
    Diverged(String),
    /// The request is not acceptable (a reserved key, a replicated change that fails its own
    /// checks); nothing was written.
    #[error("storage rejected the request: {0}")]
    Rejected(String),
}

impl StorageError {
    /// Wraps any error with the operation that failed.
    pub fn io(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StorageError::Io {
            context: context.into(),
            source: source.into(),
        }
    }
}

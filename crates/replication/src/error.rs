//! Replication errors, typed so callers can tell a refused peer from a broken link or disk.

use strongroom_storage::StorageError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ReplicationError {
    /// Generating, issuing or parsing a replication certificate failed.
    #[error("replication certificate operation failed while {context}: {source}")]
    Pki {
        context: String,
        #[source]
        source: rcgen::Error,
    },
    /// A certificate, key or CA could not be turned into a TLS configuration.
    #[error("replication TLS configuration is invalid: {0}")]
    Tls(String),
    /// The network failed; the context names the operation.
    #[error("replication network I/O failed while {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A peer announced a frame larger than the protocol allows.
    #[error(
        "replication frame of {0} bytes exceeds the 16 MiB limit; the peer is broken or hostile"
    )]
    FrameTooLarge(usize),
    /// A frame did not decode as a protocol message (version mismatch or corruption).
    #[error("malformed replication message: {0}")]
    Decode(String),
    /// The peer sent a message that makes no sense in the current protocol state.
    #[error("replication protocol violation: {0}")]
    Protocol(String),
    /// Local storage failed while serving or applying replication data.
    #[error("storage failed during replication: {0}")]
    Storage(#[from] StorageError),
    /// The primary refused this secondary (revoked, unknown cluster, not a primary).
    #[error("the primary refused replication ({code}): {message}")]
    Refused { code: String, message: String },
    /// An operation did not finish in time.
    #[error("timed out while {0}")]
    Timeout(String),
    /// A cluster address could not be parsed or resolved.
    #[error("invalid primary cluster address {0:?}: expected host:port or https://host:port")]
    Address(String),
}

impl ReplicationError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ReplicationError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn pki(context: impl Into<String>, source: rcgen::Error) -> Self {
        ReplicationError::Pki {
            context: context.into(),
            source,
        }
    }
}

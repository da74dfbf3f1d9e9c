//! Typed errors of the request pipeline; `http` maps each variant to one status code.

use strongroom_barrier::BarrierError;
use strongroom_logical::BackendError;
use strongroom_storage::StorageError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CoreError {
    /// Any non-raw request while the barrier is sealed (503).
    #[error("Vault is sealed")]
    Sealed,
    /// Missing, unknown or insufficient token (403).
    #[error("permission denied")]
    PermissionDenied,
    /// Bad parameters or a request the path refuses (400).
    #[error("{0}")]
    InvalidRequest(String),
    /// A read that found nothing (404 with an empty error list).
    #[error("not found")]
    NotFound,
    /// A read that found nothing to return but still answers with a body: 404 carrying the
    /// full success envelope (KV v2 deleted or destroyed versions, invalid v2 paths).
    #[error("not found")]
    NotFoundWith(Box<crate::Response>),
    /// No mount or handler owns the path (404).
    #[error("no handler for route \"{0}\". route entry not found.")]
    UnsupportedPath(String),
    /// The path exists but not for this verb (405).
    #[error("unsupported operation")]
    UnsupportedOperation,
    /// `sys/init` on an initialized server (400).
    #[error("Vault is already initialized")]
    AlreadyInitialized,
    /// A request that needs an initialized server (400 for raw sys paths).
    #[error("Vault is not initialized")]
    NotInitialized,
    /// This node cannot serve the request now, e.g. not the Raft leader (503).
    #[error("{0}")]
    Unavailable(String),
    /// A limit was exceeded (413).
    #[error("{0}")]
    TooLarge(String),
    /// Anything else (500). The message is logged; clients see it too, as Vault does.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<BarrierError> for CoreError {
    fn from(e: BarrierError) -> Self {
        match e {
            BarrierError::Sealed => CoreError::Sealed,
            BarrierError::Storage(s) => s.into(),
            other => CoreError::Internal(other.to_string()),
        }
    }
}

impl From<StorageError> for CoreError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotLeader(m) => CoreError::Unavailable(m),
            StorageError::TooLarge(m) => CoreError::TooLarge(m),
            other => CoreError::Internal(other.to_string()),
        }
    }
}

impl From<BackendError> for CoreError {
    /// Variant for variant, so a backend's error answers with the same status and message
    /// as when backends lived in core.
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Sealed => CoreError::Sealed,
            BackendError::PermissionDenied => CoreError::PermissionDenied,
            BackendError::InvalidRequest(m) => CoreError::InvalidRequest(m),
            BackendError::NotFound => CoreError::NotFound,
            BackendError::NotFoundWith(r) => CoreError::NotFoundWith(r),
            BackendError::UnsupportedPath(p) => CoreError::UnsupportedPath(p),
            BackendError::UnsupportedOperation => CoreError::UnsupportedOperation,
            BackendError::Unavailable(m) => CoreError::Unavailable(m),
            BackendError::TooLarge(m) => CoreError::TooLarge(m),
            BackendError::Internal(m) => CoreError::Internal(m),
        }
    }
}

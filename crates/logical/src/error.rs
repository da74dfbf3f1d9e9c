//! The one error type a backend returns; core maps each variant to the `CoreError` of the
//! same name, so the status code and message a client sees do not depend on which side of
//! the crate boundary the error was raised.

use thiserror::Error;

use crate::Response;

/// Why a backend could not serve a request. The messages are the client-visible ones.
#[derive(Debug, Error)]
pub enum BackendError {
    /// Storage is sealed (503).
    #[error("Vault is sealed")]
    Sealed,
    /// Missing or unusable token for this backend (403).
    #[error("permission denied")]
    PermissionDenied,
    /// Bad parameters or a request the path refuses (400).
    #[error("{0}")]
    InvalidRequest(String),
    /// A read that found nothing (404 with an empty error list).
    #[error("not found")]
    NotFound,
    /// Nothing to return but still a body: 404 carrying the full success envelope.
    #[error("not found")]
    NotFoundWith(Box<Response>),
    /// No handler below the mount owns the path (404); carries the full request path.
    #[error("no handler for route \"{0}\". route entry not found.")]
    UnsupportedPath(String),
    /// The path exists but not for this verb (405).
    #[error("unsupported operation")]
    UnsupportedOperation,
    /// Storage cannot serve the request now, e.g. not the Raft leader, or a queue is full
    /// (503).
    #[error("{0}")]
    Unavailable(String),
    /// A limit was exceeded (413).
    #[error("{0}")]
    TooLarge(String),
    /// Anything else (500).
    #[error("internal error: {0}")]
    Internal(String),
}

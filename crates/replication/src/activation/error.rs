//! Why fetching an activation bundle failed, split by who can fix it.

use thiserror::Error;

/// A failed unwrap of an activation token. Core answers `Invalid` as a client error (the
/// operator's token, address or TLS files are at fault) and `Internal` as a server error.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ActivationError {
    /// The request or the primary's answer is unusable; the message says what to change.
    #[error("{0}")]
    Invalid(String),
    /// Local setup failed (TLS provider, HTTP client).
    #[error("{0}")]
    Internal(String),
}

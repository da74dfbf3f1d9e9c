//! Errors of starting a listener or loading its TLS material.
//!
//! These surface at startup and on SIGHUP, where an operator has to fix a file or a setting,
//! so every variant names the address or file involved. Per-request failures never use this
//! type: they become HTTP error responses.

use std::path::PathBuf;

use thiserror::Error;

/// Why a listener could not start or its certificate could not be (re)loaded.
#[derive(Debug, Error)]
pub enum HttpError {
    /// The listen address could not be bound (in use, no permission, bad host).
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
    /// A TLS file could not be read.
    #[error("cannot read {what} file {}: {source}", path.display())]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A TLS file was read but holds no usable PEM content of the expected kind.
    #[error("invalid {what} file {}: {detail}", path.display())]
    InvalidPem {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    /// The TLS settings contradict each other or rustls refused them.
    #[error("invalid TLS configuration: {0}")]
    TlsConfig(String),
}

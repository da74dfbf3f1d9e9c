//! Vault's HTTP wire format, and nothing else.
//!
//! This crate is the only place that knows status codes, headers, the JSON envelope and the
//! listener's TLS settings. Core speaks typed requests and errors; keeping the translation in
//! one crate means a wire-compatibility fix (a header, a status code, a field) is made once and
//! cannot leak into the business logic.

#![forbid(unsafe_code)]

mod body;
mod call;
mod client_cert;
pub mod consistency;
mod error;
pub mod forward;
mod health;
mod join;
mod listener;
mod logical;
mod parse;
mod raw;
mod rekey;
mod reply;
mod router;
mod standby;
pub mod tls;

pub use error::HttpError;
pub use forward::{
    ForwardHandler, Forwarder, ForwarderOptions, PrimaryForwardHandler, PrimaryForwarder,
};
pub use listener::{ListenerOptions, ServerHandle, serve};
pub use router::{DEFAULT_MAX_REQUEST_SIZE, RouterOptions, router};
pub use standby::{NO_FORWARDING_HEADER, send_echo};
pub use tls::{ReloadableCert, TlsOptions, TlsVersion};

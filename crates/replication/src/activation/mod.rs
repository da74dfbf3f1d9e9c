//! The client side of DR activation tokens: their JWT form and the call that unwraps one.
//!
//! A primary hands a new secondary an activation token; in the JWT form it names the primary's
//! API address and carries a wrapping token, which the secondary unwraps over HTTPS. Both the
//! token codec ([`jwt`]) and that HTTPS call ([`fetch_wrapped_data`]) are transport concerns, so
//! they live here and core stays free of an HTTP client: core decides what the unwrapped bundle
//! means and what the cluster becomes.

mod error;
mod fetch;
pub mod jwt;

pub use error::ActivationError;
pub use fetch::{UnwrapTls, fetch_wrapped_data};

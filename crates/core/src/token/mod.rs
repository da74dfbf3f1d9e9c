//! The token store: service, batch and root tokens, looked up by hash.
//!
//! Tokens are never stored or logged in the clear: the storage key is the SHA-256 of the token,
//! so a lookup costs the same whatever the presented token shares with a real one, and a dump
//! of storage (already barrier-encrypted) does not even reveal token hashes.
//!
//! Interface used by the rest of core (keep these signatures):
//! - [`Core::lookup_token`] resolves a presented token (expired or used-up tokens fail);
//! - [`Core::consume_token_use`] counts one use of a limited-use token;
//! - [`Core::issue_token`] creates a token (token create, logins, wrapping tokens);
//! - [`route`] serves `auth/token/*`.
//!
//! [`Core::lookup_token`]: crate::Core::lookup_token
//! [`Core::consume_token_use`]: crate::Core::consume_token_use
//! [`Core::issue_token`]: crate::Core::issue_token

mod batch;
mod create;
mod entry;
mod roles;
mod routes;
mod store;
mod tidy;

use sha2::{Digest, Sha256};

pub(crate) use entry::rfc3339_secs;
pub use entry::{IssueRequest, IssuedToken, TokenEntry, TokenType};
pub(crate) use routes::route;

/// The storage identity of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Current time in whole Unix seconds.
pub(crate) fn now_secs() -> i64 {
    entry::unix_secs(std::time::SystemTime::now())
}

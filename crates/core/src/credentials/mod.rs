//! Auth methods other than tokens: each is a [`crate::engines::Backend`] mounted under `auth/`.
//!
//! A method only proves who the caller is and says what token they deserve (a
//! [`crate::response::LoginRequest`]); the pipeline issues the token, so TTL limits and the
//! token store's rules live in one place for every method.

pub(crate) mod approle;
mod cidr;
#[cfg(test)]
mod test_support;
mod token_fields;
pub(crate) mod userpass;

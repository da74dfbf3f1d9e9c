//! Auth methods other than tokens: each is a [`strongroom_logical::Backend`] mounted under
//! `auth/`.
//!
//! A method only proves who the caller is and says what token they deserve (a
//! [`strongroom_logical::LoginRequest`]); core issues the token, so TTL limits and the
//! token store's rules live in one place for every method.

pub(crate) mod approle;
mod token_fields;
pub(crate) mod userpass;

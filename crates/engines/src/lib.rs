//! Secrets engines and auth methods: each sees only the views its
//! [`strongroom_logical::Ctx`] carries.
//!
//! A backend receives the path below its mount and reads and writes through views that
//! prefix every key with the mount's data prefix (or, for cubbyhole, the calling token's), so
//! no backend can touch another mount's data or system keys. This crate depends on
//! `strongroom-logical` and not on core, the barrier or storage: the compiler keeps backends
//! behind their views. Auth methods (userpass, approle) are backends too: a login answers with
//! a [`strongroom_logical::LoginRequest`] and core issues the token.

#![forbid(unsafe_code)]

mod credentials;
mod cubbyhole;
pub mod kv;
#[cfg(test)]
mod test_support;

use strongroom_logical::Backend;

/// The backend implementing a mount type (`kv`, `generic`, `cubbyhole`, `userpass`,
/// `approle`), or `None` for a type this server does not know.
pub fn backend_for(engine: &str) -> Option<&'static dyn Backend> {
    match engine {
        "kv" | "generic" => Some(&kv::Kv),
        "cubbyhole" => Some(&cubbyhole::Cubbyhole),
        "userpass" => Some(&credentials::userpass::Userpass),
        "approle" => Some(&credentials::approle::AppRole),
        _ => None,
    }
}

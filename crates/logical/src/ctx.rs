//! What a backend may see while serving one request: its views, its mount and the caller.
//!
//! Everything here is a plain value or a [`View`]. Settings that live in core (the system
//! default lease TTL, say) arrive already resolved, so a backend never needs core itself.

use crate::{TokenType, View};

/// The mount a request arrived on, as much of it as backends use.
#[derive(Debug, Clone, Copy)]
pub struct MountInfo<'a> {
    /// With trailing slash; auth mounts carry the `auth/` prefix (`auth/userpass/`).
    pub path: &'a str,
    /// Stable across remounts: the identity backends key per-mount state by.
    pub uuid: &'a str,
    /// `options.version` of a KV mount: 2, or 1 for anything else.
    pub kv_version: u8,
    /// Seconds: the mount's `default_lease_ttl`, or the system default when it has none.
    pub default_lease_ttl: i64,
    /// Seconds: the effective maximum lease TTL, the smaller of the mount's `max_lease_ttl`
    /// (which may exceed the system maximum, as in Vault) and the system maximum.
    pub max_lease_ttl: i64,
}

/// The caller's token, as much of it as backends use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenInfo {
    pub token_type: TokenType,
}

/// The context of one request to one backend.
pub struct Ctx<'a> {
    pub mount: MountInfo<'a>,
    /// The caller's token (absent on unauthenticated paths such as logins, and while the
    /// pipeline asks a backend whether a path exists).
    pub token: Option<TokenInfo>,
    /// The mount's own data (replicated with the mount; cluster-local for local mounts).
    pub view: View<'a>,
    /// The mount's cluster-local data, never sent to performance secondaries. The same
    /// keys as `view` for a local mount.
    pub local_view: View<'a>,
    /// The calling service token's private storage: set on cubbyhole mounts only, and
    /// only for a token that has one.
    pub cubbyhole: Option<View<'a>>,
}

//! Which replication a stream carries: disaster recovery (every replicated key, the
//! secondary mirrors the primary's chain) or performance (shared keys through a path filter,
//! applied as the secondary's own writes). One enum so that logs, metric names, ALPNs and the
//! secondary's storage adapter are all chosen from the same value.

use crate::wire::{ALPN_DR, ALPN_PERFORMANCE};

/// The kind of a replication stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicationKind {
    Dr,
    Performance,
}

impl ReplicationKind {
    /// `"dr"` or `"performance"`, as Vault's paths and status name them.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicationKind::Dr => "dr",
            ReplicationKind::Performance => "performance",
        }
    }

    /// How logs name the peer: `"DR"` or `"performance"`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            ReplicationKind::Dr => "DR",
            ReplicationKind::Performance => "performance",
        }
    }

    /// The cluster-port ALPN of this kind's stream.
    pub fn alpn(self) -> &'static [u8] {
        match self {
            ReplicationKind::Dr => ALPN_DR,
            ReplicationKind::Performance => ALPN_PERFORMANCE,
        }
    }
}

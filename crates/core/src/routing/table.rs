//! The table of every built-in path: the system backend and the token store.
//!
//! A built-in path answers only if it is listed here, so adding an endpoint means adding a
//! row, and the door test (`tests/door.rs`) walks every row to prove that the row's requests
//! are audited, spend token uses, honour CIDR bounds and are refused while sealed. A handler
//! that nobody listed is unreachable (404), which is the point: no endpoint can be added
//! beside the door by accident. Mounted engines and auth methods are routed by the mount
//! table instead and pass the same door.

use crate::Operation;

/// How a path is admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Needs a token whose policies grant the operation (and `sudo` where
    /// [`super::requires_sudo`] says so).
    Token,
    /// Passes the door without a token (the handler checks what it needs, e.g. a wrapping
    /// token or a `dr_operation_token`); still audited and refused while sealed.
    Unauthenticated,
    /// Without a token for reads only (`sys/internal/ui/mounts`); writes need a token.
    UnauthenticatedRead,
    /// Describes or changes the node's seal state itself and is answered by `http` before
    /// the door, unaudited and without a token, as Vault does: it must work while sealed,
    /// before any token exists. Core never routes these paths.
    NodeState,
}

/// One row: a path pattern, how it is admitted, and a concrete request the door test sends.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    /// Segments separated by `/`; `+` matches one non-empty segment, a trailing `*` matches
    /// the rest of the path (zero or more segments). The first matching row wins.
    pub pattern: &'static str,
    pub access: Access,
    /// A path matching `pattern` and an operation the handler implements.
    pub sample: (&'static str, Operation),
}

const fn row(
    pattern: &'static str,
    access: Access,
    sample: &'static str,
    op: Operation,
) -> RouteSpec {
    RouteSpec {
        pattern,
        access,
        sample: (sample, op),
    }
}

use Access::{NodeState, Token, Unauthenticated, UnauthenticatedRead};
use Operation::{Delete, List, Read, Update};

/// Every built-in path.
pub const ROUTES: &[RouteSpec] = &[
    // Seal state and node description: answered by `http` before the door. Rekeying is
    // authorized by the unseal key shares themselves, as in Vault.
    row("sys/init", NodeState, "sys/init", Read),
    row("sys/seal-status", NodeState, "sys/seal-status", Read),
    row("sys/unseal", NodeState, "sys/unseal", Update),
    row("sys/health", NodeState, "sys/health", Read),
    row("sys/leader", NodeState, "sys/leader", Read),
    row(
        "sys/generate-root/attempt",
        NodeState,
        "sys/generate-root/attempt",
        Read,
    ),
    row(
        "sys/generate-root/update",
        NodeState,
        "sys/generate-root/update",
        Update,
    ),
    row("sys/rekey/init", NodeState, "sys/rekey/init", Read),
    row("sys/rekey/update", NodeState, "sys/rekey/update", Update),
    row("sys/rekey/verify", NodeState, "sys/rekey/verify", Read),
    // A new node joins before it is initialized, with no token.
    row(
        "sys/storage/raft/join",
        NodeState,
        "sys/storage/raft/join",
        Update,
    ),
    // Seal, leadership, metrics and snapshots: through the door, answered raw by `http`.
    row("sys/seal", Token, "sys/seal", Update),
    row("sys/step-down", Token, "sys/step-down", Update),
    row("sys/metrics", Token, "sys/metrics", Read),
    row(
        "sys/storage/raft/snapshot",
        Token,
        "sys/storage/raft/snapshot",
        Read,
    ),
    row(
        "sys/storage/raft/snapshot-force",
        Token,
        "sys/storage/raft/snapshot-force",
        Update,
    ),
    row(
        "sys/storage/raft/configuration",
        Token,
        "sys/storage/raft/configuration",
        Read,
    ),
    // Raft membership and HA (see `ha`). The join's leader half has no token to show: the
    // challenge itself is the authorization.
    row(
        "sys/storage/raft/bootstrap/challenge",
        Unauthenticated,
        "sys/storage/raft/bootstrap/challenge",
        Update,
    ),
    row(
        "sys/storage/raft/bootstrap/answer",
        Unauthenticated,
        "sys/storage/raft/bootstrap/answer",
        Update,
    ),
    row(
        "sys/storage/raft/remove-peer",
        Token,
        "sys/storage/raft/remove-peer",
        Update,
    ),
    row(
        "sys/storage/raft/promote",
        Token,
        "sys/storage/raft/promote",
        Update,
    ),
    row(
        "sys/storage/raft/demote",
        Token,
        "sys/storage/raft/demote",
        Update,
    ),
    row("sys/ha-status", Token, "sys/ha-status", Read),
    row(
        "sys/storage/raft/autopilot/configuration",
        Token,
        "sys/storage/raft/autopilot/configuration",
        Read,
    ),
    row(
        "sys/storage/raft/autopilot/state",
        Token,
        "sys/storage/raft/autopilot/state",
        Read,
    ),
    // Keys.
    row("sys/rekey/backup", Token, "sys/rekey/backup", Read),
    row("sys/rotate", Token, "sys/rotate", Update),
    row("sys/key-status", Token, "sys/key-status", Read),
    // Policies and capabilities.
    row("sys/policy", Token, "sys/policy", Read),
    row("sys/policy/+", Token, "sys/policy/door", Read),
    row("sys/policies/acl", Token, "sys/policies/acl", List),
    row("sys/policies/acl/+", Token, "sys/policies/acl/door", Read),
    row("sys/capabilities", Token, "sys/capabilities", Update),
    row(
        "sys/capabilities-self",
        Token,
        "sys/capabilities-self",
        Update,
    ),
    row(
        "sys/capabilities-accessor",
        Token,
        "sys/capabilities-accessor",
        Update,
    ),
    // Leases.
    row("sys/leases/lookup", Token, "sys/leases/lookup", Update),
    row(
        "sys/leases/lookup/*",
        Token,
        "sys/leases/lookup/auth/",
        List,
    ),
    row("sys/leases/renew", Token, "sys/leases/renew", Update),
    row("sys/leases/renew/*", Token, "sys/leases/renew/x", Update),
    row("sys/leases/revoke", Token, "sys/leases/revoke", Update),
    row("sys/leases/revoke/*", Token, "sys/leases/revoke/x", Update),
    row(
        "sys/leases/revoke-prefix/*",
        Token,
        "sys/leases/revoke-prefix/x/",
        Update,
    ),
    row(
        "sys/leases/revoke-force/*",
        Token,
        "sys/leases/revoke-force/x/",
        Update,
    ),
    row("sys/leases/tidy", Token, "sys/leases/tidy", Update),
    row("sys/renew", Token, "sys/renew", Update),
    row("sys/renew/*", Token, "sys/renew/x", Update),
    row("sys/revoke", Token, "sys/revoke", Update),
    row("sys/revoke/*", Token, "sys/revoke/x", Update),
    // Response wrapping: unwrap and lookup authenticate with the wrapping token itself.
    row("sys/wrapping/wrap", Token, "sys/wrapping/wrap", Update),
    row(
        "sys/wrapping/unwrap",
        Unauthenticated,
        "sys/wrapping/unwrap",
        Update,
    ),
    row(
        "sys/wrapping/lookup",
        Unauthenticated,
        "sys/wrapping/lookup",
        Update,
    ),
    row("sys/wrapping/rewrap", Token, "sys/wrapping/rewrap", Update),
    // Audit devices.
    row("sys/audit", Token, "sys/audit", Read),
    row("sys/audit/*", Token, "sys/audit/door", Delete),
    row("sys/audit-hash/*", Token, "sys/audit-hash/file", Update),
    // Mounts and auth methods.
    row("sys/mounts", Token, "sys/mounts", Read),
    row("sys/mounts/*", Token, "sys/mounts/secret/tune", Read),
    row("sys/auth", Token, "sys/auth", Read),
    row("sys/auth/*", Token, "sys/auth/userpass/tune", Read),
    row("sys/remount", Token, "sys/remount", Update),
    row("sys/remount/status/+", Token, "sys/remount/status/x", Read),
    row(
        "sys/internal/ui/mounts",
        UnauthenticatedRead,
        "sys/internal/ui/mounts",
        Read,
    ),
    row(
        "sys/internal/ui/mounts/*",
        UnauthenticatedRead,
        "sys/internal/ui/mounts/secret",
        Read,
    ),
    row(
        "sys/mounts-all/*",
        UnauthenticatedRead,
        "sys/mounts-all/secret",
        Read,
    ),
    // Replication: status and DR operations need no token (DR-op paths check their own
    // `dr_operation_token`); everything else does.
    row(
        "sys/replication/status",
        Unauthenticated,
        "sys/replication/status",
        Read,
    ),
    row(
        "sys/replication/dr/status",
        Unauthenticated,
        "sys/replication/dr/status",
        Read,
    ),
    row(
        "sys/replication/performance/status",
        Unauthenticated,
        "sys/replication/performance/status",
        Read,
    ),
    row(
        "sys/replication/dr/primary/+",
        Token,
        "sys/replication/dr/primary/disable",
        Update,
    ),
    row(
        "sys/replication/dr/secondary/enable",
        Token,
        "sys/replication/dr/secondary/enable",
        Update,
    ),
    row(
        "sys/replication/dr/secondary/generate-public-key",
        Token,
        "sys/replication/dr/secondary/generate-public-key",
        Update,
    ),
    row(
        "sys/replication/dr/secondary/promote",
        Unauthenticated,
        "sys/replication/dr/secondary/promote",
        Update,
    ),
    row(
        "sys/replication/dr/secondary/disable",
        Unauthenticated,
        "sys/replication/dr/secondary/disable",
        Update,
    ),
    row(
        "sys/replication/dr/secondary/recover",
        Unauthenticated,
        "sys/replication/dr/secondary/recover",
        Update,
    ),
    row(
        "sys/replication/dr/secondary/reindex",
        Unauthenticated,
        "sys/replication/dr/secondary/reindex",
        Update,
    ),
    row(
        "sys/replication/dr/secondary/update-primary",
        Unauthenticated,
        "sys/replication/dr/secondary/update-primary",
        Update,
    ),
    row(
        "sys/replication/dr/secondary/operation-token/delete",
        Unauthenticated,
        "sys/replication/dr/secondary/operation-token/delete",
        Update,
    ),
    row(
        "sys/replication/dr/secondary/generate-operation-token/attempt",
        Unauthenticated,
        "sys/replication/dr/secondary/generate-operation-token/attempt",
        Read,
    ),
    row(
        "sys/replication/dr/secondary/generate-operation-token/update",
        Unauthenticated,
        "sys/replication/dr/secondary/generate-operation-token/update",
        Update,
    ),
    row(
        "sys/replication/recover",
        Token,
        "sys/replication/recover",
        Update,
    ),
    row(
        "sys/replication/reindex",
        Token,
        "sys/replication/reindex",
        Update,
    ),
    // Performance replication: every operation takes an ordinary token (a performance
    // secondary serves its own tokens), `secondary-token` with sudo. The un-typed
    // `primary/*` and `secondary/*` paths are Vault's legacy aliases of `performance/`.
    row(
        "sys/replication/performance/*",
        Token,
        "sys/replication/performance/primary/paths-filter/sample",
        Read,
    ),
    row(
        "sys/replication/primary/*",
        Token,
        "sys/replication/primary/revoke-secondary",
        Update,
    ),
    row(
        "sys/replication/secondary/*",
        Token,
        "sys/replication/secondary/disable",
        Update,
    ),
    // The token store.
    row("auth/token/create", Token, "auth/token/create", Update),
    row(
        "auth/token/create/+",
        Token,
        "auth/token/create/door",
        Update,
    ),
    row(
        "auth/token/create-orphan",
        Token,
        "auth/token/create-orphan",
        Update,
    ),
    row("auth/token/lookup", Token, "auth/token/lookup", Update),
    row(
        "auth/token/lookup-self",
        Token,
        "auth/token/lookup-self",
        Read,
    ),
    row(
        "auth/token/lookup-accessor",
        Token,
        "auth/token/lookup-accessor",
        Update,
    ),
    row("auth/token/renew", Token, "auth/token/renew", Update),
    row(
        "auth/token/renew-self",
        Token,
        "auth/token/renew-self",
        Update,
    ),
    row(
        "auth/token/renew-accessor",
        Token,
        "auth/token/renew-accessor",
        Update,
    ),
    row("auth/token/revoke", Token, "auth/token/revoke", Update),
    row(
        "auth/token/revoke-self",
        Token,
        "auth/token/revoke-self",
        Update,
    ),
    row(
        "auth/token/revoke-accessor",
        Token,
        "auth/token/revoke-accessor",
        Update,
    ),
    row(
        "auth/token/revoke-orphan",
        Token,
        "auth/token/revoke-orphan",
        Update,
    ),
    row("auth/token/roles", Token, "auth/token/roles", List),
    row("auth/token/roles/+", Token, "auth/token/roles/door", Read),
    row("auth/token/accessors", Token, "auth/token/accessors", List),
    row("auth/token/tidy", Token, "auth/token/tidy", Update),
    // Path forms that carry a token or accessor in the path answer a 400 saying to send it
    // in the body; they are routes all the same.
    row("auth/token/lookup/*", Token, "auth/token/lookup/x", Update),
    row(
        "auth/token/lookup-accessor/*",
        Token,
        "auth/token/lookup-accessor/x",
        Update,
    ),
    row("auth/token/renew/*", Token, "auth/token/renew/x", Update),
    row(
        "auth/token/renew-accessor/*",
        Token,
        "auth/token/renew-accessor/x",
        Update,
    ),
    row("auth/token/revoke/*", Token, "auth/token/revoke/x", Update),
    row(
        "auth/token/revoke-accessor/*",
        Token,
        "auth/token/revoke-accessor/x",
        Update,
    ),
    row(
        "auth/token/revoke-orphan/*",
        Token,
        "auth/token/revoke-orphan/x",
        Update,
    ),
];

/// The row for a built-in path, if any. Trailing slashes are ignored (`sys/audit/` is
/// `sys/audit`).
pub fn lookup(path: &str) -> Option<&'static RouteSpec> {
    let trimmed = path.trim_end_matches('/');
    ROUTES.iter().find(|r| matches(r.pattern, trimmed))
}

/// Whether `path` is a built-in path (system backend or token store).
pub fn is_builtin(path: &str) -> bool {
    path == "sys"
        || path.starts_with("sys/")
        || path == "auth/token"
        || path.starts_with("auth/token/")
}

fn matches(pattern: &str, path: &str) -> bool {
    let mut want = pattern.split('/');
    let mut have = path.split('/');
    loop {
        match (want.next(), have.next()) {
            (None, None) => return true,
            (Some("*"), _) => return true,
            (Some("+"), Some(seg)) if !seg.is_empty() => {}
            (Some(w), Some(seg)) if w == seg => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_segments_and_tails() {
        // Why: a pattern that matched too much would let an unlisted path through; one that
        // matched too little would answer 404 to a real endpoint.
        assert!(matches("sys/policy/+", "sys/policy/admin"));
        assert!(!matches("sys/policy/+", "sys/policy/admin/extra"));
        assert!(!matches("sys/policy/+", "sys/policy"));
        assert!(matches("sys/mounts/*", "sys/mounts/a/b/tune"));
        assert!(matches(
            "sys/leases/revoke-prefix/*",
            "sys/leases/revoke-prefix"
        ));
        assert!(!matches("sys/seal", "sys/seal-status"));
        assert_eq!(lookup("sys/audit/").map(|r| r.pattern), Some("sys/audit"));
        assert!(lookup("sys/nonexistent").is_none());
        assert!(lookup("auth/token/bogus").is_none());
    }

    #[test]
    fn every_sample_matches_its_own_row() {
        // Why: the door test sends each row's sample; a sample that resolved to another row
        // would leave its own row untested.
        for row in ROUTES {
            let found = lookup(row.sample.0).map(|r| r.pattern);
            assert_eq!(found, Some(row.pattern), "sample of {}", row.pattern);
        }
    }
}

//! Which handler owns a path, and which paths need no token or need `sudo`.
//!
//! Kept in one module so the security-relevant lists can be reviewed in one place: the
//! table of built-in paths and how each is admitted (`table.rs`), and the root-protected
//! paths (below).

pub mod table;

pub use table::{Access, ROUTES, RouteSpec};

use crate::backend::backend_for;
use crate::mounts::MountEntry;
use crate::{Core, Operation};

/// The handler of one request.
#[derive(Debug, Clone)]
pub(crate) enum Route {
    /// The system backend (`sys/...`).
    Sys,
    /// The token store (`auth/token/...`); the path below `auth/token/`.
    Token(String),
    /// A mounted engine or auth method, and the path below its mount.
    Mount(Box<MountEntry>, String),
}

impl Route {
    /// The mount, for audit and response `mount_type`.
    pub fn mount(&self) -> Option<&MountEntry> {
        match self {
            Route::Mount(m, _) => Some(m),
            _ => None,
        }
    }
}

/// Resolves `path` to its handler; `None` when nothing answers there. A built-in path
/// resolves only if the route table lists it and core serves it (node-state paths are
/// answered by `http` before the door and never reach here).
pub(crate) async fn resolve(core: &Core, path: &str) -> Option<Route> {
    if table::is_builtin(path) {
        let row = table::lookup(path)?;
        if row.access == Access::NodeState {
            return None;
        }
        return match path.strip_prefix("auth/token/") {
            Some(rest) => Some(Route::Token(rest.to_owned())),
            None if path == "auth/token" => Some(Route::Token(String::new())),
            None => Some(Route::Sys),
        };
    }
    core.resolve_mount(path)
        .await
        .map(|(m, rest)| Route::Mount(Box::new(m), rest))
}

/// Whether a request may proceed without a token.
pub(crate) fn unauthenticated(route: &Route, path: &str, op: Operation) -> bool {
    match route {
        Route::Sys | Route::Token(_) => match table::lookup(path).map(|r| r.access) {
            Some(Access::Unauthenticated) => true,
            Some(Access::UnauthenticatedRead) => op == Operation::Read,
            _ => false,
        },
        Route::Mount(m, rest) => backend_for(m).is_some_and(|b| b.unauthenticated(rest, op)),
    }
}

/// Replication paths that need no token: status (polled by monitoring) and the DR operation
/// paths, which check their own `dr_operation_token` (a DR secondary has no usable ACL).
#[cfg(test)]
fn replication_unauthenticated(path: &str) -> bool {
    path.starts_with("sys/replication/")
        && table::lookup(path).is_some_and(|r| r.access == Access::Unauthenticated)
}

/// Path forms that carry a token in the path (`auth/token/lookup/<token>`): they are refused
/// with a 400, but the request is still logged and audited first, so the token part must
/// never be written as it is. Returns the path up to and including the last `/` before the
/// token, and the token.
pub fn token_in_path(path: &str) -> Option<(&str, &str)> {
    const FORMS: &[&str] = &[
        "auth/token/lookup/",
        "auth/token/renew/",
        "auth/token/revoke/",
        "auth/token/revoke-orphan/",
    ];
    FORMS.iter().find_map(|form| {
        let tail = path.strip_prefix(form)?;
        (!tail.is_empty()).then(|| path.split_at(form.len()))
    })
}

/// Root-protected paths: the ACL must grant `sudo` besides the verb capability.
pub fn requires_sudo(path: &str, op: Operation) -> bool {
    // Handlers ignore trailing slashes, so the check must too (`create-orphan/` is
    // `create-orphan`).
    let path = path.trim_end_matches('/');
    const EXACT: &[&str] = &[
        "sys/seal",
        "sys/step-down",
        "sys/ha-status",
        "sys/storage/raft/promote",
        "sys/storage/raft/demote",
        "sys/audit",
        "sys/rotate",
        "sys/remount",
        "sys/rekey/backup",
        "auth/token/revoke-orphan",
        "auth/token/create-orphan",
        "sys/replication/primary/secondary-token",
        "sys/replication/dr/primary/secondary-token",
        "sys/replication/performance/primary/secondary-token",
        "sys/replication/reindex",
        "sys/replication/dr/reindex",
        "sys/replication/performance/reindex",
    ];
    const PREFIX: &[&str] = &[
        "sys/audit/",
        "sys/raw/",
        "sys/leases/revoke-prefix/",
        "sys/leases/revoke-force/",
        "sys/storage/raft/snapshot",
        "sys/storage/raft/remove-peer",
        "sys/host-info",
        "sys/config/",
        "auth/token/accessors",
        "auth/token/revoke-orphan/",
    ];
    // A prefix `x/` also covers the bare path `x` (no trailing slash, empty argument).
    if EXACT.contains(&path)
        || PREFIX
            .iter()
            .any(|p| path.starts_with(p) || Some(path) == p.strip_suffix('/'))
    {
        return true;
    }
    // Tuning an auth method through the mounts path is as privileged as through sys/auth.
    if path.starts_with("sys/mounts/auth/") {
        return true;
    }
    // Enabling, tuning and disabling auth methods is root-protected; listing is not.
    if path.starts_with("sys/auth/") {
        return true;
    }
    // Listing leases by prefix is root-protected.
    op == Operation::List && (path == "sys/leases/lookup" || path.starts_with("sys/leases/lookup/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_protected_paths_need_sudo_and_ordinary_ones_do_not() {
        // Why: a policy without sudo must not reach audit or auth-method configuration.
        assert!(requires_sudo("sys/audit/file", Operation::Update));
        assert!(requires_sudo(
            "auth/token/create-orphan/",
            Operation::Update
        ));
        assert!(requires_sudo("sys/rekey/backup/", Operation::Read));
        assert!(requires_sudo(
            "sys/replication/dr/primary/secondary-token/",
            Operation::Update
        ));
        assert!(requires_sudo("sys/auth/userpass", Operation::Update));
        assert!(requires_sudo("sys/leases/lookup/auth/", Operation::List));
        assert!(!requires_sudo("sys/leases/lookup", Operation::Update));
        assert!(requires_sudo("sys/leases/revoke-prefix", Operation::Update));
        assert!(requires_sudo(
            "sys/mounts/auth/userpass/tune",
            Operation::Update
        ));
        assert!(!requires_sudo("sys/mounts/kv", Operation::Update));
        assert!(!requires_sudo("secret/foo", Operation::Read));
        assert!(requires_sudo(
            "sys/replication/dr/primary/secondary-token",
            Operation::Update
        ));
        assert!(!requires_sudo(
            "sys/replication/dr/primary/enable",
            Operation::Update
        ));
    }

    #[test]
    fn tokens_in_paths_are_found_and_other_paths_are_not() {
        // Why: audit and logs write the path; a token there must be hashed or hidden.
        assert_eq!(
            token_in_path("auth/token/lookup/hvs.abc"),
            Some(("auth/token/lookup/", "hvs.abc"))
        );
        assert_eq!(token_in_path("auth/token/lookup"), None);
        assert_eq!(token_in_path("auth/token/lookup-self"), None);
        assert_eq!(token_in_path("secret/auth/token/lookup/x"), None);
    }

    #[test]
    fn dr_operation_paths_skip_the_token_check_but_enable_does_not() {
        // Why: a DR secondary cannot run the normal ACL check, while converting a cluster
        // into a secondary (which wipes it) must need a token of that cluster.
        assert!(replication_unauthenticated("sys/replication/dr/status"));
        assert!(replication_unauthenticated(
            "sys/replication/dr/secondary/promote"
        ));
        assert!(!replication_unauthenticated(
            "sys/replication/dr/secondary/enable"
        ));
        assert!(!replication_unauthenticated(
            "sys/replication/dr/primary/secondary-token"
        ));
    }
}

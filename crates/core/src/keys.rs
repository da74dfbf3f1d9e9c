//! The storage layout: every key prefix core writes, in one place.
//!
//! Replication ships keys by class (see `strongroom_storage::keyspace`), so where a record
//! lives decides where it travels. Keep this list and the classifier in step.

/// Cluster name and id (cluster-local).
pub const CLUSTER_INFO: &str = "core/cluster/local/info";
/// The active node's addresses (see `ha::advert`); cluster-local.
pub const LEADER_ADVERT: &str = "core/cluster/local/leader";
/// The cluster-internal CA of the cluster port (see `ha::tls`); cluster-local.
pub const CLUSTER_CA: &str = "core/cluster/local/tls-ca";
/// Node ids that joined as non-voters and stay so (autopilot does not promote them).
pub const RAFT_NON_VOTERS: &str = "core/cluster/local/raft/non-voters";
/// The autopilot configuration.
pub const AUTOPILOT_CONFIG: &str = "core/cluster/local/raft/autopilot";
/// Secrets mount table (shared) and its local twin (local mounts; DR only).
pub const MOUNTS: &str = "core/mounts";
pub const LOCAL_MOUNTS: &str = "core/local-mounts";
/// Auth mount table (shared) and its local twin.
pub const AUTH: &str = "core/auth";
pub const LOCAL_AUTH: &str = "core/local-auth";
/// Results of `sys/remount` (shared: any node may be asked for the status).
pub const MOUNT_MIGRATION_PREFIX: &str = "core/mount-migration/";
/// Audit device table (shared) and per-device salts.
pub const AUDIT: &str = "core/audit";
pub const AUDIT_SALT_PREFIX: &str = "core/audit-salt/";
/// ACL policies, one record per policy name.
pub const POLICY_PREFIX: &str = "sys/policy/";
/// Token store: entries by token hash, accessors, parent/child index, roles.
pub const TOKEN_ID_PREFIX: &str = "sys/token/id/";
pub const TOKEN_ACCESSOR_PREFIX: &str = "sys/token/accessor/";
pub const TOKEN_PARENT_PREFIX: &str = "sys/token/parent/";
pub const TOKEN_ROLE_PREFIX: &str = "sys/token/roles/";
/// Per-token private storage (cubbyhole), deleted with the token.
pub const CUBBYHOLE_PREFIX: &str = "sys/token/cubbyhole/";
/// The PGP-encrypted unseal key shares kept by a rekey with `backup` (`sys/rekey/backup`).
pub const REKEY_BACKUP: &str = "core/unseal-keys-backup";
/// Leases and their expiry index.
pub const EXPIRE_PREFIX: &str = "sys/expire/";

/// Data of a non-local secrets mount.
pub fn logical_prefix(uuid: &str) -> String {
    format!("logical/{uuid}/")
}

/// Data of a non-local auth mount.
pub fn auth_prefix(uuid: &str) -> String {
    format!("auth/{uuid}/")
}

/// Data of a local mount (secrets or auth): replicated to DR secondaries only.
pub fn local_prefix(uuid: &str) -> String {
    format!("local/{uuid}/")
}

/// The cubbyhole of the token whose hash is `token_hash`.
pub fn cubbyhole_prefix(token_hash: &str) -> String {
    format!("{CUBBYHOLE_PREFIX}{token_hash}/")
}

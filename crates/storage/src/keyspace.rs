//! The one classifier that decides which keys replicate where.
//!
//! Architecture invariant: every storage key belongs to exactly one [`KeyClass`], decided by
//! its prefix here and nowhere else. Replication (a later milestone) ships only what this
//! function allows; new subsystems add their prefix here when they add keys.

/// Where a key may travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyClass {
    /// This cluster's identity, replication state, certificates, Raft bookkeeping. Never
    /// leaves the cluster.
    ClusterLocal,
    /// Tokens, leases, local mounts and their data: replicated to DR secondaries only.
    ReplicatedLocal,
    /// Everything else (keyring, seal config, policies, mounts, KV data): replicated to DR
    /// and performance secondaries.
    ReplicatedShared,
}

/// Prefixes of keys that never leave this cluster.
pub const CLUSTER_LOCAL_PREFIXES: &[&str] = &["core/cluster/local/", "core/replication/", "raft/"];

/// Prefixes of keys that replicate to DR secondaries only.
pub const REPLICATED_LOCAL_PREFIXES: &[&str] = &[
    "sys/token/",
    "sys/expire/",
    "local/",
    "core/local-mounts",
    "core/local-auth",
    "core/perf-replication/",
];

/// A performance secondary's applied position in its primary's stream (as the stream presents
/// it), written by the secondary in the same storage write as the data it describes.
/// Replicated-local: the secondary's own DR secondaries inherit it, performance secondaries
/// never see it.
pub const PERF_POSITION_KEY: &str = "core/perf-replication/position";

/// Classifies one storage key.
pub fn classify(key: &str) -> KeyClass {
    if CLUSTER_LOCAL_PREFIXES.iter().any(|p| key.starts_with(p)) {
        KeyClass::ClusterLocal
    } else if REPLICATED_LOCAL_PREFIXES.iter().any(|p| key.starts_with(p)) {
        KeyClass::ReplicatedLocal
    } else {
        KeyClass::ReplicatedShared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_prefix_lands_in_its_class() {
        // Why: a misclassified token would leak to performance secondaries.
        assert_eq!(classify("core/cluster/local/info"), KeyClass::ClusterLocal);
        assert_eq!(classify("sys/token/id/abc"), KeyClass::ReplicatedLocal);
        assert_eq!(classify("core/keyring"), KeyClass::ReplicatedShared);
        assert_eq!(classify("logical/1234/foo"), KeyClass::ReplicatedShared);
        assert_eq!(classify("local/1234/foo"), KeyClass::ReplicatedLocal);
        assert_eq!(classify("core/local-mounts"), KeyClass::ReplicatedLocal);
        assert_eq!(classify("core/mounts"), KeyClass::ReplicatedShared);
        assert_eq!(classify(PERF_POSITION_KEY), KeyClass::ReplicatedLocal);
        assert_eq!(
            classify("core/perf-replication/config"),
            KeyClass::ReplicatedLocal
        );
    }
}

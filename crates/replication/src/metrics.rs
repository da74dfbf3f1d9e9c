//! Names of the replication protocol's metrics, in one place so dashboards and code agree.

pub const RPC_SERVER_STREAM_WALS_TOTAL: &str = "vault_replication_rpc_server_stream_wals_total";
pub const MERKLE_DIFF_SECONDS: &str = "vault_replication_merkle_diff_seconds";
pub const MERKLE_SYNC_SECONDS: &str = "vault_replication_merkle_sync_seconds";
pub const MERKLE_SYNC_KEYS_TOTAL: &str = "vault_replication_merkle_sync_keys_total";
pub const STREAM_APPLY_SECONDS: &str = "vault_replication_stream_apply_seconds";
/// Per streamed WAL entry, on the secondary: from the primary's proposal of the entry (its
/// clock) to the end of the apply that stored it here (our clock). Includes any clock skew
/// between the clusters; exact when they share a clock.
pub const STREAM_LAG_SECONDS: &str = "vault_replication_stream_lag_seconds";
/// Per streamed WAL entry, on the secondary: from the primary's commit of the entry (its
/// local apply, which a client's write waits for before its ack) to the end of the apply
/// here. The replication lag as a client sees it; clock skew as above.
pub const STREAM_COMMIT_LAG_SECONDS: &str = "vault_replication_stream_commit_lag_seconds";
/// Bucket bounds of [`STREAM_LAG_SECONDS`] and [`STREAM_COMMIT_LAG_SECONDS`]: fine below 10 ms, where the lag goals are.
pub const STREAM_LAG_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.000_75, 0.001, 0.001_25, 0.001_5, 0.001_75, 0.002, 0.002_5, 0.003, 0.004,
    0.005, 0.007_5, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Gauge labelled `secondary_id`: 1 while that secondary is connected.
pub const SECONDARY_CONNECTED: &str = "vault_replication_secondary_connected";
pub const SECONDARY_LAST_HEARTBEAT_AGE_SECONDS: &str =
    "vault_replication_secondary_last_heartbeat_age_seconds";
/// Counters on the secondary: connections that resumed streaming from our WAL position, and
/// those that had to run a merkle diff (and a sync when it found differences). A leader
/// change on either side must add to the first, never the second.
pub const STREAM_RESUMES_TOTAL: &str = "vault_replication_stream_resumes_total";
pub const MERKLE_DIFFS_TOTAL: &str = "vault_replication_merkle_diffs_total";
/// Counter on the secondary: redirects from a primary standby to its active node.
pub const REDIRECTS_TOTAL: &str = "vault_replication_redirects_total";

// Performance replication: the same measures under their own names, so that a cluster that is
// both a DR and a performance primary (or secondary) never mixes the two streams.

pub const PERF_RPC_SERVER_STREAM_WALS_TOTAL: &str =
    "vault_replication_performance_rpc_server_stream_wals_total";
pub const PERF_MERKLE_DIFF_SECONDS: &str = "vault_replication_performance_merkle_diff_seconds";
pub const PERF_MERKLE_SYNC_SECONDS: &str = "vault_replication_performance_merkle_sync_seconds";
pub const PERF_MERKLE_SYNC_KEYS_TOTAL: &str =
    "vault_replication_performance_merkle_sync_keys_total";
pub const PERF_STREAM_APPLY_SECONDS: &str = "vault_replication_performance_stream_apply_seconds";
/// As [`STREAM_LAG_SECONDS`], for the performance stream (same buckets).
pub const PERF_STREAM_LAG_SECONDS: &str = "vault_replication_performance_stream_lag_seconds";
/// As [`STREAM_COMMIT_LAG_SECONDS`], for the performance stream (same buckets).
pub const PERF_STREAM_COMMIT_LAG_SECONDS: &str =
    "vault_replication_performance_stream_commit_lag_seconds";
pub const PERF_SECONDARY_CONNECTED: &str = "vault_replication_performance_secondary_connected";
pub const PERF_SECONDARY_LAST_HEARTBEAT_AGE_SECONDS: &str =
    "vault_replication_performance_secondary_last_heartbeat_age_seconds";
pub const PERF_STREAM_RESUMES_TOTAL: &str = "vault_replication_performance_stream_resumes_total";
pub const PERF_MERKLE_DIFFS_TOTAL: &str = "vault_replication_performance_merkle_diffs_total";
pub const PERF_REDIRECTS_TOTAL: &str = "vault_replication_performance_redirects_total";
/// Gauge on the primary, labelled `secondary_id`: the last WAL index that secondary reported
/// applied in its heartbeat.
pub const SECONDARY_LAST_REMOTE_WAL: &str = "vault_replication_secondary_last_remote_wal";
pub const PERF_SECONDARY_LAST_REMOTE_WAL: &str =
    "vault_replication_performance_secondary_last_remote_wal";

/// The metric names of one kind of stream.
pub(crate) struct Names {
    pub rpc_server_stream_wals_total: &'static str,
    pub merkle_diff_seconds: &'static str,
    pub merkle_sync_seconds: &'static str,
    pub merkle_sync_keys_total: &'static str,
    pub stream_apply_seconds: &'static str,
    pub stream_lag_seconds: &'static str,
    pub stream_commit_lag_seconds: &'static str,
    pub secondary_connected: &'static str,
    pub secondary_last_heartbeat_age_seconds: &'static str,
    pub stream_resumes_total: &'static str,
    pub merkle_diffs_total: &'static str,
    pub redirects_total: &'static str,
    pub secondary_last_remote_wal: &'static str,
}

const DR: Names = Names {
    rpc_server_stream_wals_total: RPC_SERVER_STREAM_WALS_TOTAL,
    merkle_diff_seconds: MERKLE_DIFF_SECONDS,
    merkle_sync_seconds: MERKLE_SYNC_SECONDS,
    merkle_sync_keys_total: MERKLE_SYNC_KEYS_TOTAL,
    stream_apply_seconds: STREAM_APPLY_SECONDS,
    stream_lag_seconds: STREAM_LAG_SECONDS,
    stream_commit_lag_seconds: STREAM_COMMIT_LAG_SECONDS,
    secondary_connected: SECONDARY_CONNECTED,
    secondary_last_heartbeat_age_seconds: SECONDARY_LAST_HEARTBEAT_AGE_SECONDS,
    stream_resumes_total: STREAM_RESUMES_TOTAL,
    merkle_diffs_total: MERKLE_DIFFS_TOTAL,
    redirects_total: REDIRECTS_TOTAL,
    secondary_last_remote_wal: SECONDARY_LAST_REMOTE_WAL,
};

const PERFORMANCE: Names = Names {
    rpc_server_stream_wals_total: PERF_RPC_SERVER_STREAM_WALS_TOTAL,
    merkle_diff_seconds: PERF_MERKLE_DIFF_SECONDS,
    merkle_sync_seconds: PERF_MERKLE_SYNC_SECONDS,
    merkle_sync_keys_total: PERF_MERKLE_SYNC_KEYS_TOTAL,
    stream_apply_seconds: PERF_STREAM_APPLY_SECONDS,
    stream_lag_seconds: PERF_STREAM_LAG_SECONDS,
    stream_commit_lag_seconds: PERF_STREAM_COMMIT_LAG_SECONDS,
    secondary_connected: PERF_SECONDARY_CONNECTED,
    secondary_last_heartbeat_age_seconds: PERF_SECONDARY_LAST_HEARTBEAT_AGE_SECONDS,
    stream_resumes_total: PERF_STREAM_RESUMES_TOTAL,
    merkle_diffs_total: PERF_MERKLE_DIFFS_TOTAL,
    redirects_total: PERF_REDIRECTS_TOTAL,
    secondary_last_remote_wal: PERF_SECONDARY_LAST_REMOTE_WAL,
};

/// The names `kind`'s stream records under.
pub(crate) fn names(kind: crate::ReplicationKind) -> &'static Names {
    match kind {
        crate::ReplicationKind::Dr => &DR,
        crate::ReplicationKind::Performance => &PERFORMANCE,
    }
}

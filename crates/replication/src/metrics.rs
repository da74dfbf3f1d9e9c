//! Names of the replication protocol's metrics, in one place so dashboards and code agree.

pub const RPC_SERVER_STREAM_WALS_TOTAL: &str = "vault_replication_rpc_server_stream_wals_total";
pub const MERKLE_DIFF_SECONDS: &str = "vault_replication_merkle_diff_seconds";
pub const MERKLE_SYNC_SECONDS: &str = "vault_replication_merkle_sync_seconds";
pub const MERKLE_SYNC_KEYS_TOTAL: &str = "vault_replication_merkle_sync_keys_total";
pub const STREAM_APPLY_SECONDS: &str = "vault_replication_stream_apply_seconds";
/// Gauge labelled `secondary_id`: 1 while that secondary is connected.
pub const SECONDARY_CONNECTED: &str = "vault_replication_secondary_connected";
pub const SECONDARY_LAST_HEARTBEAT_AGE_SECONDS: &str =
    "vault_replication_secondary_last_heartbeat_age_seconds";

//! What one side of a replication link knows about the other, for status endpoints.

use std::time::SystemTime;

/// A replication peer as `sys/replication/dr/status` shows it in `primaries[]` /
/// `secondaries[]` (the core formats the string-typed JSON fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub api_address: String,
    pub cluster_address: String,
    /// `connected` or `disconnected`.
    pub connection_status: &'static str,
    pub last_heartbeat: Option<SystemTime>,
    /// Time spent handling the last heartbeat exchange, as far as this side can measure it.
    pub last_heartbeat_duration_ms: u64,
    /// Peer clock minus ours at the last heartbeat, including one-way network delay.
    pub clock_skew_ms: i64,
    /// The peer's id: the secondary id for entries of `secondaries[]`.
    pub node_id: String,
    /// Age of the newest primary WAL entry seen applied (end-to-end lag indicator).
    pub canary_age_ms: u64,
}

impl Default for PeerInfo {
    fn default() -> Self {
        PeerInfo {
            api_address: String::new(),
            cluster_address: String::new(),
            connection_status: "disconnected",
            last_heartbeat: None,
            last_heartbeat_duration_ms: 0,
            clock_skew_ms: 0,
            node_id: String::new(),
            canary_age_ms: 0,
        }
    }
}

//! What a secondary is configured with and reports: its activation bundle, the callbacks
//! into core, and the status the runner publishes. Apart from the driver so that the types
//! core builds and reads are in one short place.

use std::time::SystemTime;

use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::ReplicationKind;
use crate::peer::PeerInfo;

/// What a secondary needs to replicate: its activation bundle.
#[derive(Clone)]
pub struct SecondaryConfig {
    pub secondary_id: String,
    pub cluster_id: String,
    pub primary_cluster_addrs: Vec<String>,
    /// The primary's replication CA (trusted for the server certificate).
    pub ca_pem: String,
    pub client_cert_pem: String,
    /// Secret: the client private key issued by the primary.
    pub client_key_pem: Zeroizing<String>,
    /// Our advertised API address, shown in the primary's `secondaries[]`.
    pub api_address: String,
    /// Our advertised cluster address, shown in the primary's `secondaries[]`.
    pub cluster_address: String,
    /// DR (mirror the primary's chain) or performance (apply shared keys as our own writes,
    /// through [`crate::PerformanceStore`]).
    pub kind: ReplicationKind,
}

impl std::fmt::Debug for SecondaryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondaryConfig")
            .field("kind", &self.kind)
            .field("secondary_id", &self.secondary_id)
            .field("cluster_id", &self.cluster_id)
            .field("primary_cluster_addrs", &self.primary_cluster_addrs)
            .field("client_key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Which keys an apply changed, so the core reloads only the caches they stale.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Changed {
    /// Exactly these keys (streamed entries' ops).
    Keys(Vec<String>),
    /// Anything may have changed (a merkle sync).
    #[default]
    Unknown,
}

/// Callbacks into the core.
#[async_trait]
pub trait SecondaryHooks: Send + Sync {
    /// Replicated data was applied to storage (refresh caches of mounts, policies...).
    async fn after_apply(&self, _changed: &Changed) {}
    /// The primary advertised a new set of node cluster addresses; persist them.
    async fn known_addrs_changed(&self, _addrs: Vec<String>) {}
    /// A performance primary stated the path filter our data passes through.
    async fn paths_filter(&self, _filter: Option<crate::wire::PathsFilterWire>) {}
}

/// Merkle-sync progress, as `merkle_sync_progress` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncProgress {
    /// Keys received from the primary so far.
    pub sync_progress: u64,
    /// Estimated keys to receive (extrapolated from the buckets done so far).
    pub sync_total_keys: u64,
}

/// A secondary's replication status, for `sys/replication/{dr,performance}/status`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecondaryStatus {
    /// `idle`, `connecting`, `merkle-diff`, `merkle-sync` or `stream-wals`.
    pub state: &'static str,
    /// `idle`, `connecting`, `ready`, `transient_failure` or `shutdown`.
    pub connection_state: &'static str,
    pub last_remote_wal: u64,
    /// The primary's last WAL index as of its latest HelloAck or heartbeat: caught up when
    /// `last_remote_wal` reaches it.
    pub primary_last_wal: u64,
    pub known_primary_cluster_addrs: Vec<String>,
    /// The primary we talk to (one entry while an address is selected).
    pub primaries: Vec<PeerInfo>,
    pub last_start: Option<SystemTime>,
    pub last_heartbeat: Option<SystemTime>,
    /// Present during `merkle-sync`.
    pub sync_progress: Option<SyncProgress>,
    /// Why the last connection ended, if it failed.
    pub last_error: Option<String>,
    pub syncs_completed: u64,
    /// Keys written by the last completed merkle sync.
    pub last_sync_written: u64,
    /// Local keys deleted by the last completed merkle sync because the primary lacks them.
    pub last_sync_discarded: u64,
}

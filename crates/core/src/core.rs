//! The `Core`: one per server process, shared by every request.

use std::sync::Arc;
use std::time::SystemTime;

use strongroom_api::{HealthResponse, LeaderResponse, VAULT_COMPAT_VERSION};
use strongroom_barrier::Barrier;
use strongroom_storage::Storage;
use tokio::sync::RwLock;

use crate::mounts::MountTable;
use crate::node_state::{Gates, NodeIdentity, SealState};
use crate::telemetry::Telemetry;
use crate::util::lock;
use crate::{CoreError, Operation, Request, Response};

/// Storage key of this cluster's name and id (cluster-local, encrypted).
pub(crate) const CLUSTER_INFO_KEY: &str = crate::keys::CLUSTER_INFO;

/// Static settings of a core, from the server configuration.
#[derive(Clone, Default)]
pub struct CoreConfig {
    /// `cluster_name` from the config; generated when absent.
    pub cluster_name: Option<String>,
    /// The address clients should use for this node (`api_addr`).
    pub api_addr: String,
    /// The address other nodes use for this node's cluster port (`cluster_addr`).
    pub cluster_addr: String,
    /// Metrics sink shared with the http layer.
    pub telemetry: Telemetry,
    /// System default and maximum lease/token TTLs (`default_lease_ttl`, `max_lease_ttl`;
    /// 768h when not configured).
    pub default_lease_ttl: Option<std::time::Duration>,
    pub max_lease_ttl: Option<std::time::Duration>,
    /// `disable_standby_reads`: standbys forward every request, reads included, to the active
    /// node instead of serving reads themselves (see `ha/reads.rs`).
    pub disable_standby_reads: bool,
}

/// Vault's system default for both lease TTLs: 768 hours (32 days).
pub const DEFAULT_LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(768 * 3600);

impl CoreConfig {
    /// The system default TTL.
    pub fn default_ttl(&self) -> std::time::Duration {
        self.default_lease_ttl.unwrap_or(DEFAULT_LEASE_TTL)
    }

    /// The system maximum TTL.
    pub fn max_ttl(&self) -> std::time::Duration {
        self.max_lease_ttl.unwrap_or(DEFAULT_LEASE_TTL)
    }
}

/// What `sys/health` reports, before query parameters choose the status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    NotInitialized,
    Sealed,
    Standby,
    Active,
    /// Unsealed DR secondary (`drsecondarycode`, 472 by default), whatever its HA role.
    DrSecondary,
    /// A standby whose echoes no longer reach the active node (`haunhealthycode`, 474).
    StandbyUnhealthy,
    /// Removed from its Raft cluster (`removedcode`, 530).
    Removed,
}

/// The shared state of one server.
pub struct Core {
    pub(crate) config: CoreConfig,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) barrier: Barrier,
    /// Seal transitions, unseal progress, root generation.
    pub(crate) seal_state: SealState,
    /// The gates every request holds.
    pub(crate) gates: Gates,
    /// The cluster's name and id and the advertised addresses.
    pub(crate) node: NodeIdentity,
    /// Secrets engines and auth methods (see `mounts`).
    pub(crate) mounts: RwLock<MountTable>,
    /// ACL policies and their parsed/compiled cache.
    pub(crate) policies: crate::policy::PolicyStore,
    /// Lease index and revocation timer (see `expiration`).
    pub(crate) expiration: crate::expiration::ExpirationState,
    /// Enabled audit devices (see `audit`).
    pub(crate) audit: crate::audit::AuditBroker,
    /// DR replication mode, runner and registry (see `replication`).
    pub(crate) replication: crate::replication::ReplicationState,
    /// Performance replication mode, runner, registry and path filters.
    pub(crate) perf: crate::replication::ReplicationState,
    /// Active/standby role, the join, the cluster port's identity (see `ha`).
    pub(crate) ha: crate::ha::HaState,
}

impl Core {
    /// Builds a sealed core over `storage`.
    pub fn new(config: CoreConfig, storage: Arc<dyn Storage>) -> Arc<Core> {
        // Every write core makes passes here, so a request knows whether it wrote (its
        // `X-Vault-Index`) and a standby-local read cannot write (see `ha/tracking.rs`).
        let perf_secondary = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let storage = crate::ha::tracking::TrackingStorage::wrap(storage, perf_secondary.clone());
        let barrier = Barrier::new(storage.clone());
        let node = NodeIdentity::new(config.api_addr.clone(), config.cluster_addr.clone());
        Arc::new_cyclic(|me| Core {
            expiration: crate::expiration::ExpirationState::new(me.clone()),
            replication: crate::replication::ReplicationState::new(
                strongroom_replication::ReplicationKind::Dr,
                me.clone(),
                storage.clone(),
            ),
            perf: crate::replication::ReplicationState::new(
                strongroom_replication::ReplicationKind::Performance,
                me.clone(),
                storage.clone(),
            )
            .marking_secondary(perf_secondary),
            ha: crate::ha::HaState::new(me.clone()),
            node,
            config,
            storage,
            barrier,
            seal_state: SealState::default(),
            gates: Gates::default(),
            mounts: RwLock::new(MountTable::default()),
            policies: crate::policy::PolicyStore::default(),
            audit: crate::audit::AuditBroker::default(),
        })
    }

    /// Sets the addresses reported by `sys/leader`, once the listeners are bound.
    pub fn set_advertised_addrs(&self, api_addr: String, cluster_addr: String) {
        *lock(&self.node.advertised) = (api_addr, cluster_addr);
    }

    /// This node's `api_addr` and `cluster_addr` as advertised.
    pub fn advertised_addrs(&self) -> (String, String) {
        lock(&self.node.advertised).clone()
    }

    /// The metrics sink.
    pub fn telemetry(&self) -> &Telemetry {
        &self.config.telemetry
    }

    /// The storage backend (for shutdown and status).
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Whether the door is open: unsealed, and done loading what an unsealed core keeps (the
    /// replication mode above all, so a DR secondary never serves a client request in the
    /// moment between the barrier opening and its mode being known).
    pub(crate) fn serving(&self) -> bool {
        !self.barrier.sealed() && lock(&self.seal_state.active_since).is_some()
    }

    /// Whether the barrier is sealed.
    pub fn sealed(&self) -> bool {
        self.barrier.sealed()
    }

    /// The logical request pipeline (see `pipeline.rs`): seal gate, routing,
    /// authentication, ACL, audit, handler, token issue on login, wrapping.
    pub async fn handle(&self, req: Request) -> Result<Response, CoreError> {
        let started = std::time::Instant::now();
        let class = crate::telemetry::path_class(&req.path);
        let result = crate::pipeline::handle(self, req).await;
        self.config
            .telemetry
            .record_request(class, started.elapsed(), result.is_ok());
        result
    }

    /// `sys/leader`.
    pub async fn leader(&self) -> Result<LeaderResponse, CoreError> {
        if self.barrier.sealed() {
            return Err(CoreError::Sealed);
        }
        let status = self.storage.status();
        let active = *lock(&self.seal_state.active_since);
        let is_self = status.is_leader && !self.is_standby();
        let (api_addr, cluster_addr) = if is_self || self.cluster().is_none() {
            lock(&self.node.advertised).clone()
        } else {
            self.active_node()
                .await
                .map(|a| (a.api_addr, a.cluster_addr))
                .unwrap_or_default()
        };
        Ok(LeaderResponse {
            ha_enabled: status.ha_enabled,
            is_self,
            active_time: crate::util::rfc3339(
                active.unwrap_or(SystemTime::UNIX_EPOCH),
                active.is_none(),
            ),
            leader_address: if status.ha_enabled {
                api_addr
            } else {
                String::new()
            },
            leader_cluster_address: if status.ha_enabled {
                cluster_addr
            } else {
                String::new()
            },
            performance_standby: false,
            performance_standby_last_remote_wal: 0,
            last_wal: self.storage.replication_status().last_wal,
            raft_committed_index: status.committed_index,
            raft_applied_index: status.applied_index,
        })
    }

    /// `sys/health`: the state and the body; `http` picks the status code from the query.
    pub async fn health(&self) -> Result<(HealthState, HealthResponse), CoreError> {
        let initialized = self.barrier.initialized().await?;
        let sealed = self.barrier.sealed();
        let status = self.storage.status();
        let initialized = initialized || self.pending_join_shape().is_some();
        let removed = self.removed_from_cluster();
        let standby = self.is_standby();
        let (echo_healthy, echo_age_ms, echo_ms) = self.ha_connection();
        let state = if removed {
            HealthState::Removed
        } else if !initialized {
            HealthState::NotInitialized
        } else if sealed {
            HealthState::Sealed
        } else if self.replication.is_dr_secondary() {
            HealthState::DrSecondary
        } else if standby && !echo_healthy {
            HealthState::StandbyUnhealthy
        } else if standby || !status.is_leader {
            HealthState::Standby
        } else {
            HealthState::Active
        };
        let cluster = lock(&self.node.cluster).clone();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Ok((
            state,
            HealthResponse {
                initialized,
                sealed,
                // Vault reports a sealed or uninitialized node as standby, and a DR
                // secondary's nodes by their HA role (its active node is no standby).
                standby: match state {
                    HealthState::Active => false,
                    HealthState::DrSecondary => standby || !status.is_leader,
                    _ => true,
                },
                performance_standby: false,
                replication_performance_mode: self.replication_performance_mode().into(),
                replication_dr_mode: self.replication_dr_mode().into(),
                server_time_utc: now,
                version: VAULT_COMPAT_VERSION.into(),
                cluster_name: cluster.as_ref().map(|c| c.name.clone()),
                cluster_id: cluster.as_ref().map(|c| c.id.clone()),
                enterprise: false,
                echo_duration_ms: if standby {
                    echo_ms.map_or(0, |ms| ms as i64)
                } else {
                    0
                },
                clock_skew_ms: 0,
                last_wal: (!sealed && initialized)
                    .then(|| self.storage.replication_status().last_wal),
                replication_primary_canary_age_ms: if sealed {
                    None
                } else {
                    self.replication_canary_age_ms()
                },
                removed_from_cluster: self.cluster().map(|_| removed),
                ha_connection_healthy: standby.then_some(echo_healthy),
                last_request_forwarding_heartbeat_ms: if standby {
                    echo_age_ms.map(|ms| ms as i64)
                } else {
                    None
                },
            },
        ))
    }

    /// Stops serving and flushes storage.
    pub async fn shutdown(&self) {
        self.barrier.seal().await;
        if let Err(e) = self.storage.shutdown().await {
            tracing::warn!(error = %e, "storage shutdown failed");
        }
    }

    /// Whether a request operation is a write, for metrics and (later) forwarding.
    pub fn is_write(op: Operation) -> bool {
        !matches!(op, Operation::Read | Operation::List)
    }
}

//! The `Core`: one per server process, shared by every request.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use strongroom_api::{HealthResponse, LeaderResponse, VAULT_COMPAT_VERSION};
use strongroom_barrier::Barrier;
use strongroom_storage::Storage;
use tokio::sync::RwLock;

use crate::generate_root::GenerateRootAttempt;
use crate::mounts::MountTable;
use crate::seal::UnsealProgress;
use crate::telemetry::Telemetry;
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClusterInfo {
    pub name: String,
    pub id: String,
}

/// The shared state of one server.
pub struct Core {
    pub(crate) config: CoreConfig,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) barrier: Barrier,
    pub(crate) unseal_progress: Mutex<UnsealProgress>,
    pub(crate) generate_root: Mutex<Option<GenerateRootAttempt>>,
    pub(crate) rekey: Mutex<Option<crate::rekey::RekeyAttempt>>,
    pub(crate) active_since: Mutex<Option<SystemTime>>,
    pub(crate) cluster: Mutex<Option<ClusterInfo>>,
    pub(crate) mounts: RwLock<MountTable>,
    /// Advertised (api_addr, cluster_addr), known once the listeners are bound.
    pub(crate) advertised: Mutex<(String, String)>,
    /// Held shared by every logical request and exclusively by snapshot restore, so no
    /// request reads or writes while the whole keyspace is being replaced.
    pub(crate) request_gate: tokio::sync::RwLock<()>,
    /// Held shared by client (non-replication) requests; a DR demote takes it exclusively to
    /// wait out the writes it admitted before the mode changed.
    pub(crate) client_gate: tokio::sync::RwLock<()>,
    /// Serializes seal-state transitions (unseal, seal, restore) against each other.
    pub(crate) transition: tokio::sync::Mutex<()>,
    /// ACL policies and their parsed/compiled cache.
    pub(crate) policies: crate::policy::PolicyStore,
    /// Lease index and revocation timer (see `expiration`).
    pub(crate) expiration: crate::expiration::ExpirationState,
    /// Enabled audit devices (see `audit`).
    pub(crate) audit: crate::audit::AuditBroker,
    /// DR replication mode, runner and registry (see `replication`).
    pub(crate) replication: crate::replication::ReplicationState,
}

impl Core {
    /// Builds a sealed core over `storage`.
    pub fn new(config: CoreConfig, storage: Arc<dyn Storage>) -> Arc<Core> {
        let barrier = Barrier::new(storage.clone());
        let advertised = (config.api_addr.clone(), config.cluster_addr.clone());
        Arc::new_cyclic(|me| Core {
            expiration: crate::expiration::ExpirationState::new(me.clone()),
            replication: crate::replication::ReplicationState::new(me.clone(), storage.clone()),
            advertised: Mutex::new(advertised),
            config,
            storage,
            barrier,
            unseal_progress: Mutex::new(UnsealProgress::default()),
            generate_root: Mutex::new(None),
            rekey: Mutex::new(None),
            active_since: Mutex::new(None),
            cluster: Mutex::new(None),
            mounts: RwLock::new(MountTable::default()),
            transition: tokio::sync::Mutex::new(()),
            policies: crate::policy::PolicyStore::default(),
            request_gate: tokio::sync::RwLock::new(()),
            client_gate: tokio::sync::RwLock::new(()),
            audit: crate::audit::AuditBroker::default(),
        })
    }

    /// Sets the addresses reported by `sys/leader`, once the listeners are bound.
    pub fn set_advertised_addrs(&self, api_addr: String, cluster_addr: String) {
        *lock(&self.advertised) = (api_addr, cluster_addr);
    }

    /// The metrics sink.
    pub fn telemetry(&self) -> &Telemetry {
        &self.config.telemetry
    }

    /// The storage backend (for shutdown and status).
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
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
        let active = *lock(&self.active_since);
        let is_self = status.is_leader;
        let (api_addr, cluster_addr) = lock(&self.advertised).clone();
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
        let state = if !initialized {
            HealthState::NotInitialized
        } else if sealed {
            HealthState::Sealed
        } else if self.replication.is_dr_secondary() {
            HealthState::DrSecondary
        } else if !status.is_leader {
            HealthState::Standby
        } else {
            HealthState::Active
        };
        let cluster = lock(&self.cluster).clone();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Ok((
            state,
            HealthResponse {
                initialized,
                sealed,
                // Vault reports a sealed or uninitialized node as standby.
                standby: state != HealthState::Active,
                performance_standby: false,
                replication_performance_mode: "disabled".into(),
                replication_dr_mode: self.replication_dr_mode().into(),
                server_time_utc: now,
                version: VAULT_COMPAT_VERSION.into(),
                cluster_name: cluster.as_ref().map(|c| c.name.clone()),
                cluster_id: cluster.as_ref().map(|c| c.id.clone()),
                enterprise: false,
                echo_duration_ms: 0,
                clock_skew_ms: 0,
                last_wal: (!sealed && initialized)
                    .then(|| self.storage.replication_status().last_wal),
                replication_primary_canary_age_ms: if sealed {
                    None
                } else {
                    self.replication_canary_age_ms()
                },
            },
        ))
    }

    /// Authorizes a raw (un-pipelined) sys endpoint through the ACL: the token's policies
    /// must grant `op` on `path`, and `sudo` too when `sudo` is set.
    pub(crate) async fn authorize_raw(
        &self,
        token: Option<&str>,
        op: Operation,
        path: &str,
        sudo: bool,
    ) -> Result<(), CoreError> {
        let entry = self.authenticate(token).await?;
        let decision =
            self.acl_for(&entry.policies)
                .await?
                .check(op, path, &serde_json::Map::new());
        if decision.allowed && (!sudo || decision.sudo) {
            Ok(())
        } else {
            Err(CoreError::PermissionDenied)
        }
    }

    /// `PUT sys/step-down`: needs `update` and `sudo` on the path. A single node has no one to hand leadership
    /// to, so after the check nothing changes; multi-node clusters will transfer leadership.
    pub async fn step_down(&self, token: Option<&str>) -> Result<(), CoreError> {
        if self.barrier.sealed() {
            return Err(CoreError::Sealed);
        }
        self.refuse_on_dr_secondary()?;
        self.authorize_raw(token, Operation::Update, "sys/step-down", true)
            .await
    }

    /// `GET sys/metrics`: needs `read` on the path unless the listener allows unauthenticated
    /// access.
    pub async fn metrics(
        &self,
        token: Option<&str>,
        format: crate::MetricsFormat,
        unauthenticated_access: bool,
    ) -> Result<(&'static str, String), CoreError> {
        if !unauthenticated_access {
            if self.barrier.sealed() {
                return Err(CoreError::Sealed);
            }
            self.refuse_on_dr_secondary()?;
            self.authorize_raw(token, Operation::Read, "sys/metrics", false)
                .await?;
        }
        self.config.telemetry.render(format)
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

/// Locks a std mutex, recovering the data if a panicking thread poisoned it: every guarded
/// value here stays consistent between statements, so poisoning carries no meaning.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

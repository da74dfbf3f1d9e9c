//! Core's in-memory replication state and the transitions between modes.
//!
//! The persisted record ([`DrConfig`]) says what this cluster is; this module keeps the live
//! pieces that follow from it in step: the mode the request gate reads on every request, the
//! registry the cluster-port server consults, the cluster listener's TLS identity, the
//! secondary's streaming runner and the primary's canary writer. Every transition goes
//! through [`Core::apply_dr_config`], so the pieces cannot disagree for longer than one call.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use base64::Engine as _;
use strongroom_replication::{
    ClusterListener, PrimaryServer, SecondaryConfig, SecondaryHandle, SecondaryRunner,
};
use zeroize::Zeroizing;

use super::config::{DrConfig, ReplicationMode};
use super::hooks::Hooks;
use super::op_token::OpTokenAttempt;
use super::registry::Registry;
use crate::util::lock;
use crate::{Core, CoreError};

/// How often a primary writes its canary.
const CANARY_INTERVAL: Duration = Duration::from_secs(1);
/// Storage key of the canary (replicated to every secondary).
pub(crate) const CANARY_KEY: &str = "core/replication-canary";

/// Live replication state of one core.
pub(crate) struct ReplicationState {
    pub(super) me: Weak<Core>,
    pub(super) mode: AtomicU8,
    /// Serializes mode changes (enable, promote, demote, ...) against each other.
    pub(super) ops: tokio::sync::Mutex<()>,
    pub(super) config: Mutex<Option<DrConfig>>,
    /// The private half of `dr/secondary/generate-public-key`, kept in memory until the
    /// activation token encrypted to it is used (single use; gone on restart).
    pub(super) activation_key: Mutex<Option<ring::agreement::EphemeralPrivateKey>>,
    pub(super) registry: Arc<Registry>,
    pub(super) primary_server: Arc<PrimaryServer>,
    pub(super) listener: Mutex<Option<Arc<ClusterListener>>>,
    pub(super) runner: Mutex<Option<SecondaryHandle>>,
    canary: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pub(super) op_attempt: Mutex<Option<OpTokenAttempt>>,
    /// Unix ms written in the newest primary canary applied here (secondary; 0 = none):
    /// its age is the end-to-end replication lag, and keeps growing while the stream stalls.
    pub(super) canary_written_ms: AtomicU64,
    /// This node's own cluster-port certificate from the replication CA (see `topology`).
    pub(super) node_identity: Mutex<Option<super::topology::NodeIdentity>>,
}

impl ReplicationState {
    pub(crate) fn new(me: Weak<Core>, storage: Arc<dyn strongroom_storage::Storage>) -> Self {
        let registry = Arc::new(Registry::default());
        let primary_server = Arc::new(PrimaryServer::new(storage, registry.clone()));
        ReplicationState {
            me,
            mode: AtomicU8::new(ReplicationMode::Disabled.as_u8()),
            ops: tokio::sync::Mutex::new(()),
            config: Mutex::new(None),
            registry,
            primary_server,
            listener: Mutex::new(None),
            runner: Mutex::new(None),
            canary: Mutex::new(None),
            op_attempt: Mutex::new(None),
            activation_key: Mutex::new(None),
            canary_written_ms: AtomicU64::new(0),
            node_identity: Mutex::new(None),
        }
    }

    /// The current DR mode (cheap: read on every request by the gate).
    pub(crate) fn mode(&self) -> ReplicationMode {
        ReplicationMode::from_u8(self.mode.load(Ordering::Acquire))
    }

    /// Whether this cluster is a DR secondary (including a demoted, idle one).
    pub(crate) fn is_dr_secondary(&self) -> bool {
        self.mode() == ReplicationMode::Secondary
    }

    /// Age of the newest primary canary applied here, in milliseconds (0 when none yet).
    pub(super) fn canary_age_ms(&self) -> u64 {
        match self.canary_written_ms.load(Ordering::Relaxed) {
            0 => 0,
            written => super::now_ms().saturating_sub(written),
        }
    }

    /// A copy of the configuration in force.
    pub(super) fn config(&self) -> Option<DrConfig> {
        lock(&self.config).clone()
    }
}

impl Core {
    /// Injects the cluster-port listener (the server owns the socket). Without one a primary
    /// can still be enabled and mint tokens, but nothing listens for secondaries.
    pub fn set_cluster_listener(&self, listener: Arc<ClusterListener>) {
        *lock(&self.replication.listener) = Some(listener);
        let config = self.replication.config();
        self.push_listener_identity(config.as_ref());
    }

    /// The replication server the cluster listener hands connections to.
    pub fn replication_primary_server(&self) -> Arc<PrimaryServer> {
        self.replication.primary_server.clone()
    }

    /// The DR mode, as `sys/health` reports it.
    pub fn replication_dr_mode(&self) -> &'static str {
        self.replication.mode().as_str()
    }

    /// Loads the persisted configuration after unseal and starts what it calls for.
    pub(crate) async fn load_replication(&self) -> Result<(), CoreError> {
        let config = self.read_dr_config().await?;
        self.apply_dr_config(config).await;
        Ok(())
    }

    /// Stops the runner and canary and forgets the in-memory state (seal).
    pub(crate) async fn clear_replication(&self) {
        self.stop_runner().await;
        self.stop_canary();
        *lock(&self.replication.config) = None;
        *lock(&self.replication.op_attempt) = None;
        self.replication
            .canary_written_ms
            .store(0, Ordering::Relaxed);
        self.replication
            .mode
            .store(ReplicationMode::Disabled.as_u8(), Ordering::Release);
        self.replication.registry.refresh(None);
        if self.cluster().is_some() {
            // No longer the active node (or sealed): live streams end with a redirect at
            // their next heartbeat, until the lifecycle tick names the new active node.
            let addrs = self.replication.registry.cluster_addrs();
            self.replication.registry.set_topology(
                strongroom_replication::NodeRole::Standby {
                    active_cluster_addr: None,
                },
                addrs,
            );
        }
        self.push_listener_identity(None);
        self.record_dr_mode_metric();
    }

    /// Makes `config` the configuration in force: mode, registry, listener identity, runner
    /// and canary. Does not persist it (callers write first, then apply).
    pub(super) async fn apply_dr_config(&self, config: Option<DrConfig>) {
        let mode = config.as_ref().map(|c| c.mode).unwrap_or_default();
        self.stop_runner().await;
        if mode != ReplicationMode::Primary {
            self.stop_canary();
        }
        self.replication.registry.refresh(config.as_ref());
        self.push_listener_identity(config.as_ref());
        self.replication.mode.store(mode.as_u8(), Ordering::Release);
        *lock(&self.replication.config) = config.clone();
        self.record_dr_mode_metric();
        match mode {
            ReplicationMode::Primary => self.start_canary(),
            ReplicationMode::Secondary => {
                if let Some(c) = &config {
                    self.start_runner(c);
                }
            }
            ReplicationMode::Disabled => {}
        }
    }

    fn record_dr_mode_metric(&self) {
        metrics::gauge!("vault_replication_dr_mode")
            .set(f64::from(self.replication.mode().as_u8()));
    }

    /// Serves as the primary's identity on the cluster port, or refuses everyone.
    pub(super) fn push_listener_identity(&self, config: Option<&DrConfig>) {
        let Some(listener) = lock(&self.replication.listener).clone() else {
            return;
        };
        let identity = config
            .filter(|c| {
                c.mode == ReplicationMode::Primary
                    || (c.mode == ReplicationMode::Secondary && c.secondary.is_none())
            })
            .and_then(|c| c.primary.as_ref());
        let result = match identity {
            Some(p) => {
                match self.node_replication_identity(
                    &p.ca_cert_pem,
                    &p.ca_key_pem,
                    &p.cluster_addrs,
                ) {
                    Ok((cert, key)) => listener.set_identity(&cert, &key, &p.ca_cert_pem),
                    Err(e) => {
                        tracing::error!(error = %e, "issuing this node's replication certificate failed; serving the one made at enable");
                        listener.set_identity(&p.server_cert_pem, &p.server_key_pem, &p.ca_cert_pem)
                    }
                }
            }
            None => listener.clear_identity(),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "updating the cluster port's replication identity failed");
        }
    }

    /// Starts streaming from the configured primary (no-op for an idle secondary).
    fn start_runner(&self, config: &DrConfig) {
        let Some(s) = &config.secondary else {
            return;
        };
        let mut addrs = s.known_primary_cluster_addrs.clone();
        for a in &s.primary_cluster_addrs {
            if !addrs.contains(a) {
                addrs.push(a.clone());
            }
        }
        let (api_address, cluster_address) = lock(&self.node.advertised).clone();
        let cfg = SecondaryConfig {
            secondary_id: s.secondary_id.clone(),
            cluster_id: config.cluster_id.clone(),
            primary_cluster_addrs: addrs,
            ca_pem: s.ca_pem.clone(),
            client_cert_pem: s.client_cert_pem.clone(),
            client_key_pem: Zeroizing::new(s.client_key_pem.clone()),
            api_address,
            cluster_address,
        };
        let hooks = Arc::new(Hooks::new(self.replication.me.clone()));
        match SecondaryRunner::start(cfg, self.storage.clone(), hooks) {
            Ok(handle) => {
                *lock(&self.replication.runner) = Some(handle);
                tracing::info!(secondary_id = %s.secondary_id, "DR secondary replication started");
            }
            Err(e) => {
                tracing::error!(error = %e, "starting DR secondary replication failed; fix the activation material with update-primary");
            }
        }
    }

    pub(super) async fn stop_runner(&self) {
        let handle = lock(&self.replication.runner).take();
        if let Some(handle) = handle {
            handle.stop().await;
        }
    }

    /// Writes the canary every second while this core is an unsealed primary.
    fn start_canary(&self) {
        let mut slot = lock(&self.replication.canary);
        if slot.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let me = self.replication.me.clone();
        *slot = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(CANARY_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(core) = me.upgrade() else { return };
                if core.replication.mode() != ReplicationMode::Primary || core.barrier.sealed() {
                    return;
                }
                let now = super::now_ms().to_string();
                if let Err(e) = core.barrier.put(CANARY_KEY, now.as_bytes()).await {
                    tracing::debug!(error = %e, "writing the replication canary failed");
                }
            }
        }));
    }

    fn stop_canary(&self) {
        if let Some(task) = lock(&self.replication.canary).take() {
            task.abort();
        }
    }

    /// The signing key of activation tokens, when this cluster is a primary.
    pub(super) fn activation_signing_key(&self) -> Option<Zeroizing<Vec<u8>>> {
        let config = lock(&self.replication.config);
        let c = config.as_ref()?;
        if c.mode != ReplicationMode::Primary {
            return None;
        }
        let p = c.primary.as_ref()?;
        base64::engine::general_purpose::STANDARD
            .decode(&p.signing_key_b64)
            .ok()
            .map(Zeroizing::new)
    }
}

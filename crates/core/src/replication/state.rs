//! Core's in-memory replication state and the transitions between modes.
//!
//! A cluster takes part in two independent replication sets, DR and performance, each with
//! its own [`ReplicationState`]: a cluster may be a DR primary and a PR secondary at once.
//! The persisted record ([`ReplConfig`]) of each says what this cluster is; this module keeps
//! the live pieces that follow from it in step: the mode the request gate reads on every
//! request, the registry the cluster-port server consults, the cluster listener's TLS
//! identity, the secondary's streaming runner and the primary's canary writer. Every
//! transition goes through [`Core::apply_repl_config`], so the pieces cannot disagree for
//! longer than one call.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use base64::Engine as _;
use strongroom_replication::{
    ClusterListener, PrimaryServer, ReplicationKind, SecondaryConfig, SecondaryHandle,
    SecondaryRunner,
};
use zeroize::Zeroizing;

use super::config::{ReplConfig, ReplicationMode};
use super::filter::PathFilters;
use super::hooks::Hooks;
use super::op_token::OpTokenAttempt;
use super::registry::Registry;
use crate::util::lock;
use crate::{Core, CoreError};

/// How often a primary writes its canary.
const CANARY_INTERVAL: Duration = Duration::from_secs(1);
/// Storage key of the canary (replicated to every secondary).
pub(crate) const CANARY_KEY: &str = "core/replication-canary";

/// Live state of one replication kind (DR or performance) of one core.
pub(crate) struct ReplicationState {
    pub(super) kind: ReplicationKind,
    pub(super) me: Weak<Core>,
    pub(super) mode: AtomicU8,
    /// Serializes mode changes (enable, promote, demote, ...) against each other.
    pub(super) ops: tokio::sync::Mutex<()>,
    pub(super) config: Mutex<Option<ReplConfig>>,
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
    /// Performance primary: what each secondary may receive (empty for DR).
    pub(crate) filters: Arc<PathFilters>,
    /// The last primary WAL index the previous runner applied (status of an idle secondary).
    pub(super) last_applied: AtomicU64,
    /// Performance secondary: mounts the stated paths filter hides, sorted.
    pub(crate) hidden_mounts: Mutex<Vec<String>>,
    /// Kept true while this kind's mode is secondary (performance: core's storage wrapper
    /// reads it to hand shared writes to the primary).
    secondary_flag: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl ReplicationState {
    pub(crate) fn new(
        kind: ReplicationKind,
        me: Weak<Core>,
        storage: Arc<dyn strongroom_storage::Storage>,
    ) -> Self {
        let registry = Arc::new(Registry::default());
        let filters = Arc::new(PathFilters::default());
        let primary_server = Arc::new(match kind {
            ReplicationKind::Dr => PrimaryServer::new(storage, registry.clone()),
            ReplicationKind::Performance => {
                PrimaryServer::new_performance(storage, registry.clone(), filters.clone())
            }
        });
        ReplicationState {
            kind,
            filters,
            last_applied: AtomicU64::new(0),
            hidden_mounts: Mutex::new(Vec::new()),
            secondary_flag: None,
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

    /// Keeps `flag` equal to "this kind's mode is secondary".
    pub(crate) fn marking_secondary(mut self, flag: Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.secondary_flag = Some(flag);
        self
    }

    /// Sets the mode (and the secondary flag with it).
    pub(super) fn set_mode(&self, mode: ReplicationMode) {
        self.mode.store(mode.as_u8(), Ordering::Release);
        if let Some(flag) = &self.secondary_flag {
            flag.store(mode == ReplicationMode::Secondary, Ordering::Release);
        }
    }

    /// The current mode (cheap: read on every request by the gate).
    pub(crate) fn mode(&self) -> ReplicationMode {
        ReplicationMode::from_u8(self.mode.load(Ordering::Acquire))
    }

    /// Whether this cluster is a secondary of this kind (including a demoted, idle one).
    /// On the DR state: a DR secondary, which serves no client.
    pub(crate) fn is_dr_secondary(&self) -> bool {
        self.mode() == ReplicationMode::Secondary
    }

    /// The last primary WAL index applied here (0 when not streaming).
    pub(crate) fn applied_remote_wal(&self) -> u64 {
        lock(&self.runner)
            .as_ref()
            .map_or(0, |h| *h.applied().borrow())
    }

    /// A watch of the last primary WAL index applied here, while a runner streams.
    pub(crate) fn applied_watch(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        lock(&self.runner).as_ref().map(|h| h.applied())
    }

    /// Words for log lines and errors: `DR` or `performance`.
    pub(super) fn label(&self) -> &'static str {
        match self.kind {
            ReplicationKind::Dr => "DR",
            ReplicationKind::Performance => "performance",
        }
    }

    /// Age of the newest primary canary applied here, in milliseconds (0 when none yet).
    pub(super) fn canary_age_ms(&self) -> u64 {
        match self.canary_written_ms.load(Ordering::Relaxed) {
            0 => 0,
            written => super::now_ms().saturating_sub(written),
        }
    }

    /// A copy of the configuration in force.
    pub(super) fn config(&self) -> Option<ReplConfig> {
        lock(&self.config).clone()
    }
}

impl Core {
    /// The live state of `kind`.
    pub(crate) fn repl(&self, kind: ReplicationKind) -> &ReplicationState {
        match kind {
            ReplicationKind::Dr => &self.replication,
            ReplicationKind::Performance => &self.perf,
        }
    }

    /// Whether this cluster is a performance secondary (streaming or idle): it serves reads
    /// and its own tokens, and hands changes of shared state to the primary.
    pub fn is_perf_secondary(&self) -> bool {
        self.perf.mode() == ReplicationMode::Secondary
    }

    /// Injects the cluster-port listener (the server owns the socket). Without one a primary
    /// can still be enabled and mint tokens, but nothing listens for secondaries.
    pub fn set_cluster_listener(&self, listener: Arc<ClusterListener>) {
        listener.set_performance_primary(self.perf.primary_server.clone());
        for kind in [ReplicationKind::Dr, ReplicationKind::Performance] {
            *lock(&self.repl(kind).listener) = Some(listener.clone());
            let config = self.repl(kind).config();
            self.push_listener_identity(kind, config.as_ref());
        }
    }

    /// The DR replication server the cluster listener hands connections to.
    pub fn replication_primary_server(&self) -> Arc<PrimaryServer> {
        self.replication.primary_server.clone()
    }

    /// The DR mode, as `sys/health` reports it.
    pub fn replication_dr_mode(&self) -> &'static str {
        self.replication.mode().as_str()
    }

    /// The performance mode, as `sys/health` reports it.
    pub fn replication_performance_mode(&self) -> &'static str {
        self.perf.mode().as_str()
    }

    /// Loads the persisted configurations after unseal and starts what they call for. A DR
    /// secondary loads only its DR record: the performance record it holds is its primary's,
    /// which it adopts on promotion.
    pub(crate) async fn load_replication(&self) -> Result<(), CoreError> {
        let config = self.read_dr_config().await?;
        let dr_secondary = config
            .as_ref()
            .is_some_and(|c| c.mode == ReplicationMode::Secondary);
        self.apply_repl_config(ReplicationKind::Dr, config).await;
        let perf = if dr_secondary {
            None
        } else {
            self.read_repl_config(ReplicationKind::Performance).await?
        };
        self.apply_repl_config(ReplicationKind::Performance, perf)
            .await;
        Ok(())
    }

    /// Stops the runners and canary and forgets the in-memory state (seal).
    pub(crate) async fn clear_replication(&self) {
        self.stop_canary();
        for kind in [ReplicationKind::Dr, ReplicationKind::Performance] {
            self.stop_runner(kind).await;
            let set = self.repl(kind);
            *lock(&set.config) = None;
            *lock(&set.op_attempt) = None;
            set.canary_written_ms.store(0, Ordering::Relaxed);
            set.set_mode(ReplicationMode::Disabled);
            set.registry.refresh(None);
            if self.cluster().is_some() {
                // No longer the active node (or sealed): live streams end with a redirect at
                // their next heartbeat, until the lifecycle tick names the new active node.
                let addrs = set.registry.cluster_addrs();
                set.registry.set_topology(
                    strongroom_replication::NodeRole::Standby {
                        active_cluster_addr: None,
                    },
                    addrs,
                );
            }
            self.push_listener_identity(kind, None);
            self.record_mode_metric(kind);
        }
    }

    /// Makes `config` the configuration of `kind` in force: mode, registry, filters,
    /// listener identity, runner and canary. Does not persist it (callers write first, then
    /// apply).
    pub(super) async fn apply_repl_config(
        &self,
        kind: ReplicationKind,
        config: Option<ReplConfig>,
    ) {
        let set = self.repl(kind);
        let mode = config.as_ref().map(|c| c.mode).unwrap_or_default();
        self.stop_runner(kind).await;
        set.registry.refresh(config.as_ref());
        set.filters.refresh(config.as_ref());
        self.push_listener_identity(kind, config.as_ref());
        set.set_mode(mode);
        *lock(&set.config) = config.clone();
        self.record_mode_metric(kind);
        if self.writes_canary() {
            self.start_canary();
        } else {
            self.stop_canary();
        }
        // A DR secondary takes part in no performance replication (its record is its
        // primary's until promotion).
        let dr_secondary =
            kind == ReplicationKind::Performance && self.replication.is_dr_secondary();
        if mode == ReplicationMode::Secondary
            && !dr_secondary
            && let Some(c) = &config
        {
            self.start_runner(kind, c);
        }
        // What a performance secondary hides depends on its role and filter. (A DR secondary
        // loads nothing: it serves nothing, and must never write its own built-ins.)
        if kind == ReplicationKind::Performance
            && !self.barrier.sealed()
            && !self.replication.is_dr_secondary()
            && let Err(e) = self.load_mounts().await
        {
            tracing::warn!(error = %e, "reloading the mount table after a performance role change failed");
        }
    }

    /// Whether this cluster writes the canary: a primary of either kind, unless it is a
    /// performance secondary, whose shared keys (the canary is one) only its primary writes;
    /// its DR secondaries then measure from the performance primary's canary.
    fn writes_canary(&self) -> bool {
        (self.replication.mode() == ReplicationMode::Primary
            || self.perf.mode() == ReplicationMode::Primary)
            && !self.is_perf_secondary()
    }

    fn record_mode_metric(&self, kind: ReplicationKind) {
        let mode = f64::from(self.repl(kind).mode().as_u8());
        match kind {
            ReplicationKind::Dr => metrics::gauge!("vault_replication_dr_mode").set(mode),
            ReplicationKind::Performance => {
                metrics::gauge!("vault_replication_performance_mode").set(mode)
            }
        }
    }

    /// Serves as the primary's identity of `kind` on the cluster port, or refuses everyone.
    pub(super) fn push_listener_identity(
        &self,
        kind: ReplicationKind,
        config: Option<&ReplConfig>,
    ) {
        let set = self.repl(kind);
        let Some(listener) = lock(&set.listener).clone() else {
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
                let (cert, key) = match self.node_replication_identity(
                    kind,
                    &p.ca_cert_pem,
                    &p.ca_key_pem,
                    &p.cluster_addrs,
                ) {
                    Ok((cert, key)) => (cert, key),
                    Err(e) => {
                        tracing::error!(error = %e, "issuing this node's replication certificate failed; serving the one made at enable");
                        (
                            p.server_cert_pem.clone(),
                            zeroize::Zeroizing::new(p.server_key_pem.clone()),
                        )
                    }
                };
                match kind {
                    ReplicationKind::Dr => listener.set_identity(&cert, &key, &p.ca_cert_pem),
                    ReplicationKind::Performance => {
                        listener.set_performance_identity(&cert, &key, &p.ca_cert_pem)
                    }
                }
            }
            None => match kind {
                ReplicationKind::Dr => listener.clear_identity(),
                ReplicationKind::Performance => {
                    listener.clear_performance_identity();
                    Ok(())
                }
            },
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "updating the cluster port's replication identity failed");
        }
    }

    /// Starts streaming from the configured primary (no-op for an idle secondary).
    fn start_runner(&self, kind: ReplicationKind, config: &ReplConfig) {
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
            kind,
            secondary_id: s.secondary_id.clone(),
            cluster_id: config.cluster_id.clone(),
            primary_cluster_addrs: addrs,
            ca_pem: s.ca_pem.clone(),
            client_cert_pem: s.client_cert_pem.clone(),
            client_key_pem: Zeroizing::new(s.client_key_pem.clone()),
            api_address,
            cluster_address,
        };
        let set = self.repl(kind);
        let hooks = Arc::new(Hooks::new(set.me.clone(), kind));
        match SecondaryRunner::start(cfg, self.storage.clone(), hooks) {
            Ok(handle) => {
                *lock(&set.runner) = Some(handle);
                tracing::info!(secondary_id = %s.secondary_id, kind = set.label(), "secondary replication started");
            }
            Err(e) => {
                tracing::error!(error = %e, kind = set.label(), "starting secondary replication failed; fix the activation material with update-primary");
            }
        }
    }

    pub(super) async fn stop_runner(&self, kind: ReplicationKind) {
        let set = self.repl(kind);
        let handle = lock(&set.runner).take();
        if let Some(handle) = handle {
            handle.stop().await;
            set.last_applied
                .store(handle.status().last_remote_wal, Ordering::Relaxed);
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
                if !core.writes_canary() || core.barrier.sealed() {
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

    /// The signing key of activation tokens of `kind`, when this cluster is its primary.
    pub(super) fn activation_signing_key(
        &self,
        kind: ReplicationKind,
    ) -> Option<Zeroizing<Vec<u8>>> {
        let config = lock(&self.repl(kind).config);
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

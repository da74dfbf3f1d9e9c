//! Standby reads: a standby answers reads itself, from its own copy of the replicated state.
//!
//! A standby's storage is a Raft follower, so it already holds every committed key; what it
//! lacks is the in-memory state a read passes through: the mount table, the policies, the
//! audit devices and the keyring. [`Core::enter_standby_reads`] loads those (and nothing the
//! active node alone runs: no lease timer, no replication runner or canary, no autopilot), and
//! a follower task keeps them in step with what the active node changes.
//!
//! How the follower knows what changed: it reads the node's own replication WAL, which storage
//! writes in the same atomic apply as the data, with the ops of every batch that touches a
//! replicated key, and every record a read depends on is replicated (`core/mounts`,
//! `core/auth`, the local tables, `core/audit` and its salts, `sys/policy/`, `core/keyring`).
//! Each WAL entry therefore names exactly the caches it stales, and the follower reloads only
//! those, instead of reloading everything on every applied index (which would reopen audit
//! files and re-read four mount tables for each KV write) or polling. When the WAL cannot
//! say (the position is no longer retained, or a snapshot install or restore moved the chain),
//! it reloads everything. Why not a storage-level change notification: the WAL already is one,
//! durable and ordered, and the replication code reads it the same way.
//!
//! What the follower publishes is the Raft index its caches are valid for (`synced`): it reads
//! the applied index *before* reading the WAL, so every entry applied by that index is among
//! those it processed. A read carrying `X-Vault-Index` is served only once `synced` reaches the
//! index, so a policy or mount change the active node made before answering a client is seen
//! here before that client's next read. Reads without an index see the state as of the last
//! pass, which is OpenBao's standby-read consistency (eventual, bounded by the follower's lag).
//! A keyring rotation is a WAL entry too; between the apply and the follower's pass, a value
//! written under the new term is still readable because the barrier re-reads the keyring when
//! it meets a term its copy lacks.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use strongroom_barrier::KEYRING_PATH;
use strongroom_storage::{Op, WalPosition, WalRead};

use crate::keys::{
    AUDIT, AUDIT_SALT_PREFIX, AUTH, LOCAL_AUTH, LOCAL_MOUNTS, MOUNT_MIGRATION_PREFIX, MOUNTS,
    POLICY_PREFIX,
};
use crate::util::lock;
use crate::{Core, CoreError, Operation};

/// How long the follower waits for a new applied index before it re-checks anyway (the DR
/// mode, which lives in a cluster-local record that the WAL does not carry).
const FOLLOW_RECHECK: Duration = Duration::from_secs(1);
/// WAL entries and bytes read per call while catching up.
const WAL_PAGE_ENTRIES: usize = 1024;
const WAL_PAGE_BYTES: usize = 8 * 1024 * 1024;

/// A position in a cluster's history, as `X-Vault-Index` carries it (`http` encodes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexState {
    /// The cluster the position belongs to (`sys/health`'s `cluster_id`).
    pub cluster_id: String,
    /// The Raft log index at or after which the state is applied.
    pub raft_index: u64,
    /// This cluster's replication WAL index at that point (for performance replication to
    /// compare across clusters later; not consulted within one cluster).
    pub wal_index: u64,
}

/// What this node may serve, for the consistency check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadRole {
    /// The active node (or a node without a cluster): everything, at its applied index.
    Active { state: IndexState },
    /// A standby serving reads, with the index its caches are valid for.
    StandbyReads { state: IndexState },
    /// A standby that forwards everything (reads disabled, not loaded yet, DR secondary).
    StandbyForwarding,
    /// Sealed or changing roles: the door answers.
    Other,
}

/// The standby-read part of `HaState`.
pub(crate) struct StandbyReads {
    /// Set while this standby has loaded what reads need and its follower runs.
    ready: AtomicBool,
    /// The Raft index the loaded state is valid for.
    synced: tokio::sync::watch::Sender<u64>,
    follower: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Default for StandbyReads {
    fn default() -> Self {
        StandbyReads {
            ready: AtomicBool::new(false),
            synced: tokio::sync::watch::channel(0).0,
            follower: Mutex::new(None),
        }
    }
}

/// Which caches a run of WAL entries stales.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stale {
    pub keyring: bool,
    pub mounts: bool,
    pub audit: bool,
    pub policies: bool,
}

impl Stale {
    pub(crate) fn everything() -> Self {
        Stale {
            keyring: true,
            mounts: true,
            audit: true,
            policies: true,
        }
    }

    /// Notes what one op stales.
    pub(crate) fn note(&mut self, op: &Op) {
        self.note_key(op.key());
    }

    /// Notes what a change of `key` stales.
    pub(crate) fn note_key(&mut self, key: &str) {
        self.keyring |= key == KEYRING_PATH;
        self.mounts |= [MOUNTS, LOCAL_MOUNTS, AUTH, LOCAL_AUTH].contains(&key)
            || key.starts_with(MOUNT_MIGRATION_PREFIX);
        self.audit |= key == AUDIT || key.starts_with(AUDIT_SALT_PREFIX);
        self.policies |= key.starts_with(POLICY_PREFIX);
    }
}

/// Whether a standby serves `op` on `path` itself. Only reads qualify, and not those that
/// describe state only the active node holds in memory (leases, replication, Raft membership
/// and autopilot, the HA registry) or that exist for operators of the active node (snapshots,
/// the rekey backup, remount progress). Everything else that turns out to need a write on the
/// way is still handed on, by the door and the storage wrapper (see `tracking.rs`).
pub fn served_on_standby(path: &str, op: Operation) -> bool {
    if !matches!(op, Operation::Read | Operation::List) {
        return false;
    }
    const ACTIVE_ONLY: &[&str] = &[
        "sys/leases/",
        "sys/replication/",
        "sys/storage/",
        "sys/ha-status",
        "sys/rekey",
        "sys/generate-root",
        "sys/remount",
        "sys/step-down",
        "sys/seal",
    ];
    let path = path.trim_start_matches('/');
    !ACTIVE_ONLY.iter().any(|p| path.starts_with(p))
}

impl Core {
    /// Whether this standby serves reads now (loaded, following, not a DR secondary).
    pub fn serves_standby_reads(&self) -> bool {
        self.ha.reads.ready.load(Ordering::Acquire) && self.is_standby()
    }

    /// What this node may serve, for `X-Vault-Index` checks.
    pub fn read_role(&self) -> ReadRole {
        let cluster_id = lock(&self.node.cluster)
            .as_ref()
            .map(|c| c.id.clone())
            .unwrap_or_default();
        if self.serving() {
            let state = IndexState {
                cluster_id,
                raft_index: self.storage.status().applied_index,
                wal_index: self.storage.replication_status().last_wal,
            };
            return ReadRole::Active { state };
        }
        if !self.is_standby() {
            return ReadRole::Other;
        }
        if !self.serves_standby_reads() {
            return ReadRole::StandbyForwarding;
        }
        let state = IndexState {
            cluster_id,
            raft_index: *self.ha.reads.synced.borrow(),
            wal_index: 0,
        };
        ReadRole::StandbyReads { state }
    }

    /// The state a request that wrote storage leaves behind: its response's `X-Vault-Index`.
    /// Read after the writes returned, so the applied index includes them.
    pub fn written_index(&self) -> IndexState {
        IndexState {
            cluster_id: lock(&self.node.cluster)
                .as_ref()
                .map(|c| c.id.clone())
                .unwrap_or_default(),
            raft_index: self.storage.status().applied_index,
            wal_index: self.storage.replication_status().last_wal,
        }
    }

    /// Waits (at most `timeout`) until this node can serve state at `raft_index`: on a
    /// standby, until its follower has caught up to it; on the active node, until it applied
    /// it. Returns whether it can.
    pub async fn await_index(&self, raft_index: u64, timeout: Duration) -> bool {
        if self.serving() {
            if self.storage.status().applied_index >= raft_index {
                return true;
            }
            return match self.cluster() {
                Some(c) => c.wait_applied(raft_index, timeout).await.is_ok(),
                None => false,
            };
        }
        let mut rx = self.ha.reads.synced.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|synced| *synced >= raft_index))
            .await
            .is_ok_and(|r| r.is_ok())
            && self.serves_standby_reads()
    }

    /// Makes this standby serve reads, if the configuration allows and it does not already:
    /// loads what reads need and starts the follower. Idempotent; a failure leaves the node a
    /// forwarding standby and is retried on the lifecycle's next round. Call under the seal
    /// transition lock.
    pub(crate) async fn enter_standby_reads(&self) {
        if self.config.disable_standby_reads
            || !self.is_standby()
            || self.ha.reads.ready.load(Ordering::Acquire)
        {
            return;
        }
        match self.load_standby_reads().await {
            Ok(true) => tracing::info!("this standby serves reads"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "not serving reads on this standby yet; forwarding them");
                self.leave_standby_reads().await;
            }
        }
    }

    /// Stops serving reads here and drops what was loaded for them (on becoming active, on
    /// seal, and when the load or the follower fails).
    pub(crate) async fn leave_standby_reads(&self) {
        let was = self.ha.reads.ready.swap(false, Ordering::AcqRel);
        if let Some(task) = lock(&self.ha.reads.follower).take() {
            task.abort();
        }
        if was {
            self.policies.clear();
            self.mounts.write().await.clear();
            self.clear_audit();
        }
    }

    /// Loads what reads need; `Ok(false)` when this cluster must not serve reads (a DR
    /// secondary serves no client request, whatever its node's role).
    async fn load_standby_reads(&self) -> Result<bool, CoreError> {
        // Positions first, state second: what is loaded is then at least as new as both.
        let applied = self.storage.status().applied_index;
        let position = self.storage.replication_status().position();
        if self.is_dr_secondary_cluster().await? {
            return Ok(false);
        }
        self.read_cluster_info().await?;
        self.barrier.reload_keyring().await?;
        self.policies.clear();
        self.load_mounts().await?;
        self.load_audit().await?;
        self.ha.reads.synced.send_replace(applied);
        self.ha.reads.ready.store(true, Ordering::Release);
        let task = tokio::spawn(follow(self.ha.core.clone(), position, applied));
        if let Some(old) = lock(&self.ha.reads.follower).replace(task) {
            old.abort();
        }
        Ok(true)
    }

    /// Whether the stored DR configuration makes this cluster a secondary: the record itself,
    /// for the moments the standby view (`replication/topology.rs`) may not have caught up.
    async fn is_dr_secondary_cluster(&self) -> Result<bool, CoreError> {
        Ok(self
            .read_dr_config()
            .await?
            .is_some_and(|c| c.mode == crate::ReplicationMode::Secondary))
    }

    /// The cluster's name and id, without creating them (a standby never writes).
    async fn read_cluster_info(&self) -> Result<(), CoreError> {
        let Some(raw) = self.barrier.get(crate::keys::CLUSTER_INFO).await? else {
            return Err(CoreError::Internal(
                "the cluster's identity is not stored yet; waiting for the active node".into(),
            ));
        };
        let info = serde_json::from_slice(&raw)
            .map_err(|e| CoreError::Internal(format!("cluster info is corrupt: {e}")))?;
        *lock(&self.node.cluster) = Some(info);
        Ok(())
    }

    /// One pass of the follower: processes the WAL from `position` up to at least what was
    /// applied when the pass began, reloads what it staled, and returns that applied index
    /// (`None`: this cluster became a DR secondary, so reads stop).
    async fn follow_once(&self, position: &mut WalPosition) -> Result<Option<u64>, CoreError> {
        let applied = self.storage.status().applied_index;
        let last_wal = self.storage.replication_status().last_wal;
        let mut stale = Stale::default();
        let mut chain_moved = false;
        while position.index < last_wal {
            match self
                .storage
                .wal_read(*position, WAL_PAGE_ENTRIES, WAL_PAGE_BYTES)
                .await?
            {
                WalRead::Entries(entries) if entries.is_empty() => break,
                WalRead::Entries(entries) => {
                    for e in entries {
                        e.ops.iter().for_each(|op| stale.note(op));
                        *position = WalPosition {
                            index: e.index,
                            epoch: e.epoch,
                            hash: e.hash,
                        };
                    }
                }
                WalRead::Gone => {
                    chain_moved = true;
                    stale = Stale::everything();
                    *position = self.storage.replication_status().position();
                    break;
                }
            }
        }
        // The mode the lifecycle's standby view keeps (a cheap read on every pass); the stored
        // record too when the chain moved, as enabling a DR secondary does (its wipe restarts
        // the chain), so reads stop before the view's next tick.
        if self.replication.is_dr_secondary()
            || (chain_moved && self.is_dr_secondary_cluster().await?)
        {
            return Ok(None);
        }
        self.reload_stale(stale).await?;
        Ok(Some(applied))
    }

    pub(crate) async fn reload_stale(&self, stale: Stale) -> Result<(), CoreError> {
        if stale.keyring {
            self.barrier.reload_keyring().await?;
        }
        if stale.mounts {
            self.load_mounts().await?;
        }
        if stale.policies {
            self.policies.clear();
        }
        if stale.audit {
            self.load_audit().await?;
        }
        Ok(())
    }
}

/// The follower: one pass per applied-index change (coalesced), and one per second anyway.
async fn follow(core: Weak<Core>, mut position: WalPosition, mut synced: u64) {
    loop {
        let Some(cluster) = core.upgrade().and_then(|c| c.cluster().cloned()) else {
            return;
        };
        // A timeout is not an error here: the pass re-checks the DR mode all the same.
        let _ = cluster
            .wait_applied(synced.saturating_add(1), FOLLOW_RECHECK)
            .await;
        drop(cluster);
        let Some(core) = core.upgrade() else {
            return;
        };
        if !core.ha.reads.ready.load(Ordering::Acquire) {
            return;
        }
        match core.follow_once(&mut position).await {
            Ok(Some(applied)) => {
                synced = synced.max(applied);
                core.ha.reads.synced.send_if_modified(|s| {
                    let moved = *s < synced;
                    *s = (*s).max(synced);
                    moved
                });
            }
            Ok(None) => {
                tracing::info!("this cluster is a DR secondary; the standby stops serving reads");
                stop_reads(&core).await;
                return;
            }
            Err(e) => {
                // Serving on with caches that failed to reload would answer from stale
                // policies or mounts: forward instead, and let the lifecycle load afresh.
                tracing::warn!(error = %e, "following the active node's changes failed; forwarding reads until they reload");
                stop_reads(&core).await;
                return;
            }
        }
    }
}

/// Leaves standby reads from inside the follower (which `leave_standby_reads` would abort).
async fn stop_reads(core: &Arc<Core>) {
    let _guard = core.seal_state.transition.lock().await;
    // A role change that won the lock first already left standby reads (and loaded what the
    // active node serves from, which must not be cleared here).
    if !core.ha.reads.ready.swap(false, Ordering::AcqRel) {
        return;
    }
    lock(&core.ha.reads.follower).take();
    core.policies.clear();
    core.mounts.write().await.clear();
    core.clear_audit();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str) -> Op {
        Op::Put {
            key: key.into(),
            value: Vec::new(),
        }
    }

    #[test]
    fn each_record_stales_its_own_cache_and_data_stales_none() {
        // Why: a KV write must not reload anything, and a missed record would serve stale
        // policies or mounts at an index that promised them.
        let stale_of = |key: &str| {
            let mut s = Stale::default();
            s.note(&put(key));
            s
        };
        let none = Stale::default();

        assert_eq!(stale_of("logical/1234/secret"), none);
        assert_eq!(stale_of("sys/token/id/abc"), none);
        assert!(stale_of("core/keyring").keyring);
        for key in [
            "core/mounts",
            "core/auth",
            "core/local-mounts",
            "core/local-auth",
        ] {
            assert!(stale_of(key).mounts, "{key}");
        }
        assert!(stale_of("core/mount-migration/x").mounts);
        assert!(stale_of("core/audit").audit);
        assert!(stale_of("core/audit-salt/file/").audit);
        assert!(stale_of("sys/policy/reader").policies);
        assert!(!stale_of("core/mountsx").mounts);
    }

    #[test]
    fn standbys_serve_reads_but_not_active_only_state() {
        // Why: these reads describe memory only the active node holds; everything else a read
        // needs is replicated.
        assert!(served_on_standby("secret/data/a", Operation::Read));
        assert!(served_on_standby("secret/metadata/", Operation::List));
        assert!(served_on_standby("sys/policy/reader", Operation::Read));
        assert!(served_on_standby("sys/mounts", Operation::Read));
        assert!(served_on_standby("auth/token/lookup-self", Operation::Read));
        assert!(!served_on_standby("secret/data/a", Operation::Update));
        assert!(!served_on_standby("secret/data/a", Operation::Delete));
        assert!(!served_on_standby("sys/leases/lookup/x/", Operation::List));
        assert!(!served_on_standby(
            "sys/replication/status",
            Operation::Read
        ));
        assert!(!served_on_standby(
            "sys/storage/raft/configuration",
            Operation::Read
        ));
        assert!(!served_on_standby("sys/ha-status", Operation::Read));
    }
}

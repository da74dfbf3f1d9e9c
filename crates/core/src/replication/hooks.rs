//! What core does when the secondary runner changes storage underneath it.
//!
//! The runner writes replicated data straight into storage, below the barrier and the
//! caches. After each apply core re-reads the keyring (the primary may have rotated it) and
//! measures lag from the primary's canary; when the primary reports new cluster addresses
//! core persists them so a restart can still find the primary after a leader change.
//!
//! A performance secondary serves reads, so it must also see the primary's mount, policy
//! and audit changes: its applies are ordinary writes that land in its own WAL, and after
//! each apply it reads that WAL from where it last looked and reloads only the caches the
//! entries name, as a standby's read follower does (`ha/reads.rs`).

use std::sync::atomic::Ordering;
use std::sync::{Mutex, Weak};

use async_trait::async_trait;
use strongroom_replication::{ReplicationKind, SecondaryHooks};
use strongroom_storage::{WalPosition, WalRead};

use super::config::ReplicationMode;
use super::state::CANARY_KEY;
use crate::ha::Stale;
use crate::util::lock;
use crate::{Core, CoreError};

/// WAL entries read per call while following our own WAL.
const WAL_PAGE_ENTRIES: usize = 1024;
const WAL_PAGE_BYTES: usize = 8 * 1024 * 1024;

pub(crate) struct Hooks {
    core: Weak<Core>,
    kind: ReplicationKind,
    /// Performance: how far our own WAL was read for cache changes (`None`: not yet).
    followed: Mutex<Option<WalPosition>>,
}

impl Hooks {
    pub(crate) fn new(core: Weak<Core>, kind: ReplicationKind) -> Self {
        Hooks {
            core,
            kind,
            followed: Mutex::new(None),
        }
    }

    /// Reloads the caches that our WAL entries since the last call name (everything on
    /// the first call or when the chain moved).
    async fn refresh_caches(&self, core: &Core) -> Result<(), CoreError> {
        let start = *lock(&self.followed);
        let mut position = match start {
            Some(p) => p,
            None => {
                let now = core.storage.replication_status().position();
                *lock(&self.followed) = Some(now);
                return core.reload_stale(Stale::everything()).await;
            }
        };
        let last_wal = core.storage.replication_status().last_wal;
        let mut stale = Stale::default();
        while position.index < last_wal {
            match core
                .storage
                .wal_read(position, WAL_PAGE_ENTRIES, WAL_PAGE_BYTES)
                .await?
            {
                WalRead::Entries(entries) if entries.is_empty() => break,
                WalRead::Entries(entries) => {
                    for e in entries {
                        e.ops.iter().for_each(|op| stale.note(op));
                        position = e.position();
                    }
                }
                WalRead::Gone => {
                    stale = Stale::everything();
                    position = core.storage.replication_status().position();
                    break;
                }
            }
        }
        *lock(&self.followed) = Some(position);
        core.reload_stale(stale).await
    }
}

#[async_trait]
impl SecondaryHooks for Hooks {
    async fn after_apply(&self) {
        let Some(core) = self.core.upgrade() else {
            return;
        };
        if core.barrier.sealed() {
            return;
        }
        if self.kind == ReplicationKind::Performance {
            let applied = lock(&core.perf.runner)
                .as_ref()
                .map(|h| h.status().last_remote_wal);
            if let Some(applied) = applied {
                metrics::gauge!("vault_replication_performance_fsm_last_remote_wal")
                    .set(applied as f64);
            }
            if let Err(e) = self.refresh_caches(&core).await {
                tracing::warn!(error = %e, "reloading caches after a performance apply failed");
            }
        } else if let Err(e) = core.barrier.reload_keyring().await {
            tracing::warn!(error = %e, "reloading the replicated keyring failed");
            return;
        }
        let canary = core
            .barrier
            .get(CANARY_KEY)
            .await
            .ok()
            .flatten()
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|s| s.parse::<u64>().ok());
        if let Some(written) = canary {
            core.repl(self.kind)
                .canary_written_ms
                .store(written, Ordering::Relaxed);
            let lag = super::now_ms().saturating_sub(written);
            match self.kind {
                ReplicationKind::Dr => metrics::gauge!("vault_replication_lag_ms").set(lag as f64),
                ReplicationKind::Performance => {
                    metrics::gauge!("vault_replication_performance_lag_ms").set(lag as f64)
                }
            }
        }
    }

    async fn paths_filter(&self, filter: Option<strongroom_replication::wire::PathsFilterWire>) {
        if let Some(core) = self.core.upgrade() {
            core.adopt_paths_filter(filter).await;
        }
    }

    async fn known_addrs_changed(&self, addrs: Vec<String>) {
        let Some(core) = self.core.upgrade() else {
            return;
        };
        let set = core.repl(self.kind);
        // Never wait on a mode change: it may be stopping this very runner.
        let Ok(_ops) = set.ops.try_lock() else {
            return;
        };
        let Some(mut config) = set.config() else {
            return;
        };
        if config.mode != ReplicationMode::Secondary {
            return;
        }
        let Some(s) = config.secondary.as_mut() else {
            return;
        };
        if s.known_primary_cluster_addrs == addrs {
            return;
        }
        s.known_primary_cluster_addrs = addrs;
        match core.write_repl_config(self.kind, &config).await {
            Ok(()) => *lock(&set.config) = Some(config),
            Err(e) => {
                tracing::warn!(error = %e, "persisting the primary's cluster addresses failed")
            }
        }
    }
}

//! What core does when the secondary runner changes storage underneath it.
//!
//! The runner writes replicated data straight into storage, below the barrier and the
//! caches. After each apply core re-reads the keyring (the primary may have rotated it) and
//! measures lag from the primary's canary; when the primary reports new cluster addresses
//! core persists them so a restart can still find the primary after a leader change.
//!
//! A performance secondary serves reads, so it must also see the primary's mount, policy
//! and audit changes: the runner says which keys each apply changed, and core reloads only
//! the caches they name (as a standby's read follower does, `ha/reads.rs`), everything after a
//! merkle sync. Keys nobody caches (KV data, most of every stream) cost nothing.

use std::sync::Weak;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use strongroom_replication::{Changed, ReplicationKind, SecondaryHooks};

use super::config::ReplicationMode;
use super::state::CANARY_KEY;
use crate::Core;
use crate::ha::Stale;
use crate::util::lock;

pub(crate) struct Hooks {
    core: Weak<Core>,
    kind: ReplicationKind,
}

impl Hooks {
    pub(crate) fn new(core: Weak<Core>, kind: ReplicationKind) -> Self {
        Hooks { core, kind }
    }
}

/// Whether `changed` may include `key`.
fn touches(changed: &Changed, key: &str) -> bool {
    match changed {
        Changed::Keys(keys) => keys.iter().any(|k| k == key),
        Changed::Unknown => true,
    }
}

#[async_trait]
impl SecondaryHooks for Hooks {
    async fn after_apply(&self, changed: &Changed) {
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
            // A performance secondary serves reads: the caches the changed keys name.
            let stale = match changed {
                Changed::Keys(keys) => {
                    let mut stale = Stale::default();
                    keys.iter().for_each(|k| stale.note_key(k));
                    stale
                }
                Changed::Unknown => Stale::everything(),
            };
            if let Err(e) = core.reload_stale(stale).await {
                tracing::warn!(error = %e, "reloading caches after a performance apply failed");
            }
        } else if touches(changed, strongroom_barrier::KEYRING_PATH)
            && let Err(e) = core.barrier.reload_keyring().await
        {
            tracing::warn!(error = %e, "reloading the replicated keyring failed");
            return;
        }
        if !touches(changed, CANARY_KEY) {
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

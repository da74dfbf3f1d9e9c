//! What core does when the secondary runner changes storage underneath it.
//!
//! The runner writes replicated data straight into storage, below the barrier and the
//! caches. After each apply core re-reads the keyring (the primary may have rotated it) and
//! measures lag from the primary's canary; when the primary reports new cluster addresses
//! core persists them so a restart can still find the primary after a leader change.

use std::sync::Weak;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use strongroom_replication::SecondaryHooks;

use super::config::ReplicationMode;
use super::state::CANARY_KEY;
use crate::Core;

pub(crate) struct Hooks {
    core: Weak<Core>,
}

impl Hooks {
    pub(crate) fn new(core: Weak<Core>) -> Self {
        Hooks { core }
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
        if let Err(e) = core.barrier.reload_keyring().await {
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
            core.replication
                .canary_written_ms
                .store(written, Ordering::Relaxed);
            let lag = super::now_ms().saturating_sub(written);
            metrics::gauge!("vault_replication_lag_ms").set(lag as f64);
        }
    }

    async fn known_addrs_changed(&self, addrs: Vec<String>) {
        let Some(core) = self.core.upgrade() else {
            return;
        };
        // Never wait on a mode change: it may be stopping this very runner.
        let Ok(_ops) = core.replication.ops.try_lock() else {
            return;
        };
        let Some(mut config) = core.replication.config() else {
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
        match core.write_dr_config(&config).await {
            Ok(()) => *crate::util::lock(&core.replication.config) = Some(config),
            Err(e) => {
                tracing::warn!(error = %e, "persisting the primary's cluster addresses failed")
            }
        }
    }
}

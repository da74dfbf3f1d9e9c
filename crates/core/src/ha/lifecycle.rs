//! Moving a node between active and standby as Raft's leadership changes.
//!
//! One task per node follows the leadership watch (and re-checks every second, so a failed
//! take-over is retried and a missed notification cannot leave a stale role). Every change
//! runs under the seal transition lock, the same lock unseal and seal take, so a node is in
//! exactly one of sealed, standby or active at any moment.

use std::sync::atomic::Ordering;
use std::time::Duration;

use strongroom_storage::Leadership;

use crate::{Core, CoreError};

/// How long a new leader waits to apply what earlier terms committed before it serves.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the lifecycle task re-checks the role without a leadership change.
const RECHECK_INTERVAL: Duration = Duration::from_secs(1);

impl Core {
    /// Runs after the barrier opened, under the transition lock: a node that leads (or is not
    /// clustered) becomes active before unseal returns; any other node stays a standby and
    /// the lifecycle task takes over from here.
    pub(crate) async fn enter_service(&self) -> Result<(), CoreError> {
        let Some(cluster) = self.cluster().cloned() else {
            return self.post_unseal().await;
        };
        self.start_lifecycle();
        // Present a certificate first: a restarted member cannot hear its peers (nor confirm
        // a leadership it restored from disk) without one.
        if let Err(e) = self.install_own_identity(false).await {
            tracing::error!(error = %e, "cannot present a cluster-port certificate; this node cannot reach its peers");
        }
        let leads = cluster.leadership().borrow().is_self;
        if leads {
            // A leadership restored from disk may not survive contact with the peers; if the
            // take-over fails the node stays a standby and the lifecycle task retries.
            if let Err(e) = self.become_active().await {
                tracing::warn!(error = %e, "not taking over as the active node yet; staying a standby");
                self.drop_active_state().await;
            }
        } else {
            tracing::info!("unsealed as a standby; waiting for the active node");
        }
        // A standby of a DR secondary must refuse clients from its first request on.
        self.follow_replication_topology().await;
        self.enter_standby_reads().await;
        self.config.telemetry.set_unsealed(true);
        Ok(())
    }

    fn start_lifecycle(&self) {
        if self.ha.lifecycle_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let Some(cluster) = self.cluster().cloned() else {
            return;
        };
        let weak = self.ha.core.clone();
        let autopilot = self.ha.core.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(super::autopilot::TICK).await;
                let Some(core) = autopilot.upgrade() else {
                    return;
                };
                if let Err(e) = core.autopilot_tick().await {
                    tracing::warn!(error = %e, "autopilot round failed");
                }
            }
        });
        let mut rx = cluster.leadership();
        tokio::spawn(async move {
            loop {
                let seen = rx.borrow_and_update().clone();
                let Some(core) = weak.upgrade() else {
                    return;
                };
                core.follow_leadership(&seen).await;
                drop(core);
                tokio::select! {
                    changed = rx.changed() => if changed.is_err() { return; },
                    () = tokio::time::sleep(RECHECK_INTERVAL) => {}
                }
            }
        });
    }

    async fn follow_leadership(&self, seen: &Leadership) {
        if seen.removed {
            if !self.ha.removed.swap(true, Ordering::SeqCst) {
                tracing::warn!("this node was removed from the raft cluster; sealing");
                let _guard = self.seal_state.transition.lock().await;
                self.seal_internal().await;
            }
            return;
        }
        let _guard = self.seal_state.transition.lock().await;
        if self.barrier.sealed() {
            return;
        }
        self.retry_own_identity().await;
        let active = self.serving();
        if seen.is_self && !active {
            if let Err(e) = self.become_active().await {
                tracing::error!(error = %e, "taking over as the active node failed; retrying");
                self.drop_active_state().await;
            }
        } else if !seen.is_self && active {
            tracing::info!(leader = ?seen.leader, "lost raft leadership; becoming a standby");
            self.drop_active_state().await;
        }
        if self.follow_replication_topology().await {
            self.seal_internal().await;
            return;
        }
        // Every round, so a standby whose read state failed to load retries.
        self.enter_standby_reads().await;
    }

    /// Loads what an active node serves from, once everything earlier terms committed is
    /// applied here, and advertises this node to the standbys.
    async fn become_active(&self) -> Result<(), CoreError> {
        // The standby-read follower must not reload caches under the active node's feet.
        self.leave_standby_reads().await;
        if let Some(cluster) = self.cluster() {
            let committed = self.storage.status().committed_index;
            cluster
                .wait_applied(committed, CATCH_UP_TIMEOUT)
                .await
                .map_err(|e| CoreError::Internal(format!("catching up before taking over: {e}")))?;
            // An earlier leader may have rotated the keyring.
            self.barrier.reload_keyring().await?;
        }
        self.post_unseal().await?;
        if self.cluster().is_some() {
            let node_id = self.storage.status().node_id;
            self.write_advert(&node_id).await?;
            if let Err(e) = self.install_own_identity(true).await {
                tracing::error!(error = %e, "cannot present a cluster-port certificate; peers cannot reach this node");
            }
            tracing::info!(node_id = %node_id, "this node is now the active node");
        }
        Ok(())
    }

    /// After a restore replaced the keyspace: the restored leader advertisement may name
    /// another node, and an old snapshot may hold no cluster CA; put this node's back.
    pub(crate) async fn readvertise(&self) -> Result<(), CoreError> {
        if self.cluster().is_none() {
            return Ok(());
        }
        let node_id = self.storage.status().node_id;
        self.write_advert(&node_id).await?;
        *crate::util::lock(&self.ha.active) = None;
        if let Err(e) = self.install_own_identity(true).await {
            tracing::error!(error = %e, "cannot present a cluster-port certificate after the restore");
        }
        Ok(())
    }

    /// Drops what only the active node holds, leaving the barrier unsealed (a standby).
    pub(crate) async fn drop_active_state(&self) {
        self.leave_standby_reads().await;
        self.expiration_stop().await;
        self.clear_replication().await;
        self.policies.clear();
        *crate::util::lock(&self.seal_state.active_since) = None;
        *crate::util::lock(&self.seal_state.generate_root) = None;
        *crate::util::lock(&self.seal_state.rekey) = None;
        self.mounts.write().await.clear();
        self.clear_audit();
        *crate::util::lock(&self.ha.active) = None;
    }
}

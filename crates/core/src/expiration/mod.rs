//! The expiration manager: leases, their TTLs, and revocation when they run out.
//!
//! A token that outlives its TTL is a standing credential nobody meant to grant, so expiry is
//! enforced twice: lookups refuse expired tokens at once, and a background timer deletes them
//! (with their children, cubbyholes and lease records) so nothing expired lingers in storage.
//! Every lease is a record in storage first; the timer's schedule is rebuilt from those
//! records whenever this node starts serving, which makes expiry survive restarts and
//! leader changes.
//!
//! Interface used by the rest of core: [`Core::expiration_start`] (after unseal),
//! [`Core::expiration_stop`] (on seal), [`Core::revoke_leases_under`] (disabling a mount) and
//! [`route`] for `sys/leases/*`.

mod lease;
mod routes;
mod tidy;
mod timer;

use std::sync::{Mutex, Weak};

use strongroom_barrier::BarrierOp;

pub(crate) use lease::{LeaseEntry, LeaseIndex, lease_key, lease_root};
pub(crate) use routes::route;

use crate::util::lock;
use crate::{Core, CoreError};

/// Leases revoked per timer tick at most, so a backlog cannot starve other work.
const REVOKE_BATCH: usize = 128;
/// Page size when walking lease records in storage.
pub(crate) const SCAN_PAGE: usize = 512;

/// One page of lease records (see [`Core::lease_page`]).
pub(crate) struct LeasePage {
    pub leases: Vec<LeaseEntry>,
    /// The storage key to continue after; `None` when this was the last page.
    pub next: Option<String>,
}

/// The expiration manager's state inside [`Core`].
pub(crate) struct ExpirationState {
    /// The owning core, for the timer task (weak: the task must not keep a dropped core
    /// alive).
    core: Weak<Core>,
    /// Scheduled expiries of the leases this node knows.
    pub(crate) index: Mutex<LeaseIndex>,
    /// The running timer task, if any.
    task: Mutex<Option<timer::Running>>,
    /// Serializes read-modify-write of token records (use counts, renewals) so concurrent
    /// requests cannot both spend a token's last use.
    pub(crate) token_update: tokio::sync::Mutex<()>,
}

impl ExpirationState {
    pub(crate) fn new(core: Weak<Core>) -> Self {
        ExpirationState {
            core,
            index: Mutex::new(LeaseIndex::default()),
            task: Mutex::new(None),
            token_update: tokio::sync::Mutex::new(()),
        }
    }

    /// Schedules `lease_id` in memory (the caller has written its record).
    pub(crate) fn schedule(&self, lease_id: &str, expire_time: i64) {
        lock(&self.index).insert(lease_id, expire_time);
    }

    /// Drops `lease_id` from the schedule (the caller has deleted its record).
    pub(crate) fn unschedule(&self, lease_id: &str) {
        lock(&self.index).remove(lease_id);
    }
}

impl Core {
    /// Loads pending leases and starts the revocation timer task.
    pub(crate) async fn expiration_start(&self) -> Result<(), CoreError> {
        self.expiration_stop().await;
        // A DR secondary's leases belong to its primary; it starts revoking at promotion.
        if self.replication.is_dr_secondary() {
            return Ok(());
        }
        self.reload_lease_index().await?;
        let running = timer::spawn(self.expiration.core.clone());
        *lock(&self.expiration.task) = Some(running);
        Ok(())
    }

    /// Stops the timer task (on seal and shutdown).
    pub(crate) async fn expiration_stop(&self) {
        let running = lock(&self.expiration.task).take();
        if let Some(running) = running {
            running.stop().await;
        }
        lock(&self.expiration.index).clear();
    }

    /// Rebuilds the in-memory schedule from the lease records in storage, a page at a time.
    pub(crate) async fn reload_lease_index(&self) -> Result<(), CoreError> {
        let mut index = LeaseIndex::default();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .lease_page(&lease_root(), after.as_deref(), SCAN_PAGE)
                .await?;
            for lease in &page.leases {
                index.insert(&lease.lease_id, lease.expire_time);
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        tracing::debug!(leases = index.len(), "lease schedule loaded");
        *lock(&self.expiration.index) = index;
        Ok(())
    }

    /// At most `limit` lease records whose storage key starts with `prefix` (a full storage
    /// prefix) and sorts after `after`. Walking on from `next` is safe while the caller
    /// deletes records of pages it has seen.
    pub(crate) async fn lease_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<LeasePage, CoreError> {
        let raw = self.storage.scan(prefix, after, limit.max(1)).await?;
        let full = raw.len() >= limit.max(1);
        let mut leases = Vec::with_capacity(raw.len());
        let mut last = None;
        for (key, sealed) in raw {
            let plain = self.barrier.decrypt_value(&key, &sealed)?;
            match serde_json::from_slice::<LeaseEntry>(&plain) {
                Ok(lease) => leases.push(lease),
                // A corrupt record cannot be scheduled; leave it for an operator rather
                // than failing every unseal.
                Err(e) => tracing::error!(key = %key, error = %e, "lease record is corrupt"),
            }
            last = Some(key);
        }
        Ok(LeasePage {
            leases,
            next: if full { last } else { None },
        })
    }

    /// Reads one lease record.
    pub(crate) async fn read_lease(&self, lease_id: &str) -> Result<Option<LeaseEntry>, CoreError> {
        let Some(raw) = self.barrier.get(&lease_key(lease_id)).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| CoreError::Internal(format!("lease record is corrupt: {e}")))
    }

    /// The storage op that writes `lease` (to batch with the token write).
    pub(crate) fn lease_put_op(lease: &LeaseEntry) -> Result<BarrierOp, CoreError> {
        Ok(BarrierOp::Put {
            key: lease_key(&lease.lease_id),
            value: serde_json::to_vec(lease)
                .map_err(|e| CoreError::Internal(format!("encoding lease: {e}")))?,
        })
    }

    /// Revokes one lease: for a token lease, the token and its descendants; then the record.
    /// Unknown leases are a no-op.
    pub(crate) async fn revoke_lease(&self, lease_id: &str) -> Result<(), CoreError> {
        let lease = self.read_lease(lease_id).await?;
        if let Some(hash) = lease.as_ref().and_then(|l| l.token_hash.clone()) {
            self.revoke_tree_by_hash(&hash).await?;
        }
        // The token revocation deletes its own lease; this covers other leases and leftovers.
        self.barrier.delete(&lease_key(lease_id)).await?;
        self.expiration.unschedule(lease_id);
        Ok(())
    }

    /// Revokes every lease whose id starts with `prefix` (e.g. `auth/userpass/` when that
    /// auth method is disabled: every token it issued dies). Stops at the first failure.
    pub(crate) async fn revoke_leases_under(&self, prefix: &str) -> Result<usize, CoreError> {
        self.revoke_prefix(prefix, false).await
    }

    /// Like [`Core::revoke_leases_under`], but a lease whose revocation fails is logged and
    /// its record deleted anyway (`sys/leases/revoke-force`).
    pub(crate) async fn revoke_leases_forced(&self, prefix: &str) -> Result<usize, CoreError> {
        self.revoke_prefix(prefix, true).await
    }

    async fn revoke_prefix(&self, prefix: &str, force: bool) -> Result<usize, CoreError> {
        let mut revoked = 0;
        let mut after: Option<String> = None;
        loop {
            let page = self
                .lease_page(&lease_key(prefix), after.as_deref(), SCAN_PAGE)
                .await?;
            for lease in page.leases {
                match self.revoke_lease(&lease.lease_id).await {
                    Ok(()) => revoked += 1,
                    Err(e) if force => {
                        tracing::warn!(prefix = %prefix, error = %e, "forced revocation skipped a lease");
                        self.barrier.delete(&lease_key(&lease.lease_id)).await?;
                        self.expiration.unschedule(&lease.lease_id);
                    }
                    Err(e) => return Err(e),
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(revoked),
            }
        }
    }

    /// Revokes up to `limit` leases due at `now`; returns how many were attempted.
    pub(crate) async fn expire_due(&self, now: i64, limit: usize) -> usize {
        let due = lock(&self.expiration.index).due(now, limit);
        for lease_id in &due {
            // Re-read: a renewal may have moved the expiry since it was scheduled.
            let current = match self.read_lease(lease_id).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "reading a due lease failed; will retry");
                    self.expiration.schedule(lease_id, now + timer::RETRY_SECS);
                    continue;
                }
            };
            match current {
                Some(l) if l.expire_time > now => self.expiration.schedule(lease_id, l.expire_time),
                _ => {
                    if let Err(e) = self.revoke_lease(lease_id).await {
                        tracing::warn!(error = %e, "revoking an expired lease failed; will retry");
                        self.expiration.schedule(lease_id, now + timer::RETRY_SECS);
                    }
                }
            }
        }
        due.len()
    }
}

//! The background task that revokes leases when they expire.
//!
//! It holds only a weak reference to the core and takes the index lock just long enough to
//! copy out the due lease ids, so revocation (which awaits storage) never blocks requests
//! that schedule new leases.

use std::sync::Weak;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::REVOKE_BATCH;
use crate::Core;
use crate::util::lock;

/// Seconds before a failed revocation is retried.
pub(crate) const RETRY_SECS: i64 = 5;
/// Longest sleep between checks: new leases may be scheduled earlier than the next known one.
const MAX_WAIT: Duration = Duration::from_millis(500);
/// How long `stop` waits for an in-flight revocation before aborting the task.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A running timer task and the switch that stops it.
pub(crate) struct Running {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl Running {
    /// Asks the task to stop between revocations; aborts it if it does not within the grace.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let abort = self.handle.abort_handle();
        if tokio::time::timeout(STOP_GRACE, self.handle).await.is_err() {
            tracing::warn!("expiration task did not stop in time; aborting it");
            abort.abort();
        }
    }
}

/// Starts the timer task for `core`.
pub(crate) fn spawn(core: Weak<Core>) -> Running {
    let (stop, mut stopped) = watch::channel(false);
    let handle = tokio::spawn(async move {
        let mut wait = Duration::ZERO;
        let mut was_leader = true;
        loop {
            tokio::select! {
                _ = stopped.changed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            if *stopped.borrow() {
                return;
            }
            let Some(core) = core.upgrade() else { return };
            if core.barrier.sealed() {
                return;
            }
            // Only the node that can write revokes; a node that just became leader reloads
            // the schedule, since leases were written while it was following.
            let leader = core.storage.status().is_leader;
            if !leader {
                was_leader = false;
                wait = MAX_WAIT;
                continue;
            }
            if !was_leader {
                if let Err(e) = core.reload_lease_index().await {
                    tracing::warn!(error = %e, "reloading the lease schedule failed; will retry");
                    wait = MAX_WAIT;
                    continue;
                }
                was_leader = true;
            }
            let now = super::super::token::now_secs();
            let attempted = core.expire_due(now, REVOKE_BATCH).await;
            wait = if attempted == REVOKE_BATCH {
                Duration::ZERO
            } else {
                next_wait(lock(&core.expiration.index).next_expiry())
            };
        }
    });
    Running { stop, handle }
}

/// Time until the next expiry, at most [`MAX_WAIT`].
fn next_wait(next: Option<i64>) -> Duration {
    let Some(next) = next else { return MAX_WAIT };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let due = Duration::from_secs(next.max(0) as u64);
    due.saturating_sub(now).min(MAX_WAIT)
}

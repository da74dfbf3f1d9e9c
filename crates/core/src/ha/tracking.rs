//! What one request did to storage: whether it wrote, and whether a standby must hand it on.
//!
//! Two answers hang on this. The active node stamps `X-Vault-Index` on the response of every
//! request that changed storage, and only those; and a standby serving a read locally must
//! notice the moment that read turns out to need a write (a token use, a lease, a default
//! policy stored on first use) so the request goes to the active node instead. Both are facts
//! about the writes a request makes, wherever in core they happen, so they are observed at the
//! one place every write passes: a [`Storage`] wrapper under the barrier, reading a task-local
//! scope that `http` opens around each request. Why a task-local rather than a flag threaded
//! through every call: writes happen deep inside token, policy, mount and backend code that
//! has no reason to know about HA, and a parameter would have to reach all of it. Why refuse
//! in the wrapper rather than let Raft refuse: a standby then never proposes anything for a
//! request it serves locally (so it never writes storage), and the refusal is immediate and
//! the same on every backend.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use strongroom_storage::{
    MerkleTree, Op, ReplCommand, ReplStatus, Storage, StorageError, StorageStatus, WalPosition,
    WalRead,
};

/// The message of the refusal a standby-local request gets on its first write attempt; the
/// request is then forwarded, so clients never see it.
pub(crate) const STANDBY_WRITE_REFUSED: &str =
    "this standby serves reads only; the request is sent to the active node";

/// The message of the refusal a performance secondary's request gets when it tries to
/// change shared state; the request is then forwarded to the primary.
pub(crate) const PERF_WRITE_REFUSED: &str = "this performance secondary does not change shared state itself; the request is sent to the primary";

/// What a request did, as [`track`] reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tracked {
    /// The request wrote storage (its response carries `X-Vault-Index`).
    pub wrote: bool,
    /// Served as a standby-local read, the request needed the active node (it tried to write,
    /// or the door found it spends a token use or must be wrapped): forward it.
    pub needs_active: bool,
    /// On a performance secondary, the request tried to change shared (replicated) state:
    /// forward it to the primary cluster, as `identity`.
    pub needs_primary: bool,
    /// The caller as the door admitted it (performance secondaries only).
    pub identity: Option<crate::replication::ForwardedIdentity>,
}

struct Scope {
    standby_local: bool,
    wrote: Cell<bool>,
    needs_active: Cell<bool>,
    needs_primary: Cell<bool>,
    identity: RefCell<Option<crate::replication::ForwardedIdentity>>,
}

tokio::task_local! {
    static SCOPE: Scope;
}

/// Runs `fut` (one request) and reports what it did to storage. `standby_local`: the request
/// is a read this standby serves itself, so any write it attempts is refused and flagged.
pub async fn track<F: Future>(standby_local: bool, fut: F) -> (F::Output, Tracked) {
    let scope = Scope {
        standby_local,
        wrote: Cell::new(false),
        needs_active: Cell::new(false),
        needs_primary: Cell::new(false),
        identity: RefCell::new(None),
    };
    SCOPE
        .scope(scope, async {
            let out = fut.await;
            let tracked = SCOPE
                .try_with(|s| Tracked {
                    wrote: s.wrote.get(),
                    needs_active: s.needs_active.get(),
                    needs_primary: s.needs_primary.get(),
                    identity: s.identity.borrow_mut().take(),
                })
                .unwrap_or_default();
            (out, tracked)
        })
        .await
}

/// Records who the current request's caller is, for a forward to the primary.
pub(crate) fn note_identity(identity: crate::replication::ForwardedIdentity) {
    let _ = SCOPE.try_with(|s| *s.identity.borrow_mut() = Some(identity));
}

/// Whether the current request is a read served on a standby.
pub(crate) fn standby_local() -> bool {
    SCOPE.try_with(|s| s.standby_local).unwrap_or(false)
}

/// Marks the current standby-local request as one the active node must serve.
pub(crate) fn needs_active() {
    let _ = SCOPE.try_with(|s| s.needs_active.set(true));
}

/// Called before every write: records it, and says whether it must be refused.
/// `changes_shared`: the write touches replicated-shared keys and this cluster is a
/// performance secondary, whose shared state only its primary changes.
fn before_write(changes_shared: bool) -> Result<(), StorageError> {
    let refused = SCOPE
        .try_with(|s| {
            if s.standby_local {
                s.needs_active.set(true);
                Some(STANDBY_WRITE_REFUSED)
            } else if changes_shared {
                s.needs_primary.set(true);
                Some(PERF_WRITE_REFUSED)
            } else {
                s.wrote.set(true);
                None
            }
        })
        .unwrap_or(None);
    match refused {
        Some(why) => Err(StorageError::NotLeader(why.into())),
        None => Ok(()),
    }
}

/// The storage core uses: the server's backend, with every write seen by [`before_write`].
pub(crate) struct TrackingStorage {
    inner: Arc<dyn Storage>,
    /// This cluster is a performance secondary (core keeps it in step with the mode).
    perf_secondary: Arc<AtomicBool>,
}

impl TrackingStorage {
    /// Wraps `inner`; `perf_secondary` says whether request writes of shared keys go to a
    /// performance primary instead.
    pub(crate) fn wrap(
        inner: Arc<dyn Storage>,
        perf_secondary: Arc<AtomicBool>,
    ) -> Arc<dyn Storage> {
        Arc::new(TrackingStorage {
            inner,
            perf_secondary,
        })
    }

    fn changes_shared(&self, ops: &[Op]) -> bool {
        self.perf_secondary.load(Ordering::Acquire)
            && ops.iter().any(|op| {
                strongroom_storage::keyspace::classify(op.key())
                    == strongroom_storage::keyspace::KeyClass::ReplicatedShared
            })
    }
}

#[async_trait]
impl Storage for TrackingStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.inner.list(prefix).await
    }

    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.inner.scan(prefix, after, limit).await
    }

    async fn write(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        before_write(self.changes_shared(&ops))?;
        self.inner.write(ops).await
    }

    async fn export(&self, max_bytes: usize) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.inner.export(max_bytes).await
    }

    fn max_replace_all_bytes(&self) -> usize {
        self.inner.max_replace_all_bytes()
    }

    async fn replace_all(&self, pairs: Vec<(String, Vec<u8>)>) -> Result<(), StorageError> {
        before_write(false)?;
        self.inner.replace_all(pairs).await
    }

    fn status(&self) -> StorageStatus {
        self.inner.status()
    }

    async fn shutdown(&self) -> Result<(), StorageError> {
        self.inner.shutdown().await
    }

    async fn apply_replication(&self, cmd: ReplCommand) -> Result<(), StorageError> {
        before_write(false)?;
        self.inner.apply_replication(cmd).await
    }

    fn replication_status(&self) -> ReplStatus {
        self.inner.replication_status()
    }

    async fn wal_read(
        &self,
        after: WalPosition,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<WalRead, StorageError> {
        self.inner.wal_read(after, max_entries, max_bytes).await
    }

    fn wal_watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.wal_watch()
    }

    async fn wal_position_at(&self, index: u64) -> Result<Option<WalPosition>, StorageError> {
        self.inner.wal_position_at(index).await
    }

    fn wal_committed_at(&self, index: u64) -> Option<u64> {
        self.inner.wal_committed_at(index)
    }

    fn merkle_hashes(&self, tree: MerkleTree, page: Option<u8>) -> Vec<[u8; 32]> {
        self.inner.merkle_hashes(tree, page)
    }

    async fn export_buckets(
        &self,
        tree: MerkleTree,
        buckets: Vec<u16>,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.inner.export_buckets(tree, buckets).await
    }

    fn set_wal_retention(&self, max_entries: u64, max_bytes: u64) {
        self.inner.set_wal_retention(max_entries, max_bytes);
    }

    async fn rebuild_merkle(&self) -> Result<(), StorageError> {
        self.inner.rebuild_merkle().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strongroom_storage::InmemStorage;

    fn put(key: &str) -> Vec<Op> {
        vec![Op::Put {
            key: key.into(),
            value: b"v".to_vec(),
        }]
    }

    #[tokio::test]
    async fn a_write_is_recorded_on_the_active_side_and_refused_on_a_standby_read() {
        // Why: the index header and the standby's forward both hang on seeing every write.
        let storage = TrackingStorage::wrap(
            Arc::new(InmemStorage::new()),
            Arc::new(AtomicBool::new(false)),
        );

        let (active, on_active) = track(false, storage.write(put("a"))).await;
        let (standby, on_standby) = track(true, storage.write(put("b"))).await;
        let (read, reading) = track(true, storage.get("a")).await;

        assert!(active.is_ok());
        assert_eq!(
            on_active,
            Tracked {
                wrote: true,
                ..Tracked::default()
            }
        );
        assert!(matches!(standby, Err(StorageError::NotLeader(_))));
        assert_eq!(
            on_standby,
            Tracked {
                needs_active: true,
                ..Tracked::default()
            }
        );
        assert_eq!(storage.get("b").await.unwrap(), None);
        assert_eq!(read.unwrap(), Some(b"v".to_vec()));
        assert_eq!(reading, Tracked::default());
    }

    #[tokio::test]
    async fn a_performance_secondary_request_writes_local_keys_and_hands_shared_ones_on() {
        // Why: tokens and leases are the secondary's own; shared state only the primary changes.
        let perf = Arc::new(AtomicBool::new(true));
        let storage = TrackingStorage::wrap(Arc::new(InmemStorage::new()), perf.clone());

        let (local, on_local) = track(false, storage.write(put("sys/token/id/abc"))).await;
        let (shared, on_shared) = track(false, storage.write(put("logical/u1/key"))).await;
        let (background, _) = (storage.write(put("logical/u1/bg")).await, ());
        perf.store(false, Ordering::Release);
        let (primary, on_primary) = track(false, storage.write(put("logical/u1/key"))).await;

        assert!(local.is_ok());
        assert!(on_local.wrote && !on_local.needs_primary);
        assert!(matches!(shared, Err(StorageError::NotLeader(_))));
        assert!(on_shared.needs_primary && !on_shared.wrote);
        assert!(
            background.is_ok(),
            "writes outside a request (the runner) pass"
        );
        assert!(primary.is_ok() && on_primary.wrote);
    }
}

//! The storage a performance secondary's runner applies through.
//!
//! The FSM and the runner were written for DR, where the secondary's storage mirrors the
//! primary's chain entry by entry. A performance secondary keeps its own chain (its own DR
//! secondaries stream it, local tokens included), so it applies the primary's entries as
//! ordinary writes, with the position it reached in the primary's stream written in the same
//! atomic write. This adapter gives the FSM the DR-shaped view it expects: the chain position
//! is that recorded one, the local merkle tree is empty on both ends (local keys never travel
//! to or from a performance secondary, so that tree can never differ), and replication
//! commands become writes after the checks storage makes for DR. Hashes are the stream's
//! transformed ones, so only their chaining is checked, never an entry's own hash.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use strongroom_storage::keyspace::{KeyClass, PERF_POSITION_KEY, classify};
use strongroom_storage::replog::{SYNC_IN_PROGRESS, empty_tree_hashes};
use strongroom_storage::{
    MerkleTree, Op, ReplCommand, ReplStatus, Storage, StorageError, StorageStatus, WalEntry,
    WalPosition, WalRead,
};

/// Version byte of the stored position record.
const POSITION_VERSION: u8 = 1;
/// Its length: version, index, epoch, hash.
const POSITION_LEN: usize = 1 + 8 + 8 + 32;
/// Keys plus values per storage write, well below Raft's default entry limit (1 MiB): a
/// coalesced backlog or a merkle-sync chunk (up to 4 MiB) is written in several steps, each
/// with its own position, so every step is still atomic and continuous.
const WRITE_BUDGET: usize = 256 * 1024;

/// A performance secondary's storage as its replication runner sees it.
pub struct PerformanceStore {
    inner: Arc<dyn Storage>,
    /// The recorded position, as of the last write through this adapter.
    position: Mutex<WalPosition>,
    /// Serializes applies, so a position is never read and rewritten by two at once.
    apply: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for PerformanceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerformanceStore")
            .field("position", &self.position())
            .finish_non_exhaustive()
    }
}

impl PerformanceStore {
    /// The adapter over `inner`, at the position recorded there (zeros when none is).
    pub async fn open(inner: Arc<dyn Storage>) -> Result<Self, StorageError> {
        let position = match inner.get(PERF_POSITION_KEY).await? {
            Some(raw) => Self::decode_position(&raw)?,
            None => WalPosition::default(),
        };
        Ok(Self::at(inner, position))
    }

    /// The adapter over `inner` at position zero, whatever is recorded: the next connection
    /// runs a merkle diff, and the sync rewrites the record (for a record that is damaged).
    pub fn starting_over(inner: Arc<dyn Storage>) -> Self {
        Self::at(inner, WalPosition::default())
    }

    fn at(inner: Arc<dyn Storage>, position: WalPosition) -> Self {
        PerformanceStore {
            inner,
            position: Mutex::new(position),
            apply: tokio::sync::Mutex::new(()),
        }
    }

    /// The recorded position in the primary's stream.
    pub fn position(&self) -> WalPosition {
        *self.position.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stored form of a position record.
    pub fn encode_position(pos: &WalPosition) -> Vec<u8> {
        let mut out = Vec::with_capacity(POSITION_LEN);
        out.push(POSITION_VERSION);
        out.extend_from_slice(&pos.index.to_be_bytes());
        out.extend_from_slice(&pos.epoch.to_be_bytes());
        out.extend_from_slice(&pos.hash);
        out
    }

    /// Decodes [`PerformanceStore::encode_position`] output.
    pub fn decode_position(raw: &[u8]) -> Result<WalPosition, StorageError> {
        let corrupt = |why: &str| {
            StorageError::Corrupt(format!(
                "the performance replication position at {PERF_POSITION_KEY} {why}"
            ))
        };
        match raw.first() {
            Some(&POSITION_VERSION) => {}
            Some(v) => return Err(corrupt(&format!("has unknown version {v}"))),
            None => return Err(corrupt("is empty")),
        }
        if raw.len() != POSITION_LEN {
            return Err(corrupt(&format!(
                "is {} bytes long, expected {POSITION_LEN}",
                raw.len()
            )));
        }
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&raw[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&raw[17..POSITION_LEN]);
        Ok(WalPosition {
            index: u64_at(1),
            epoch: u64_at(9),
            hash,
        })
    }

    /// Writes `ops` and the record of `pos` in one atomic write, then remembers `pos`.
    async fn write_at(&self, mut ops: Vec<Op>, pos: WalPosition) -> Result<(), StorageError> {
        ops.push(Op::Put {
            key: PERF_POSITION_KEY.to_owned(),
            value: Self::encode_position(&pos),
        });
        self.inner.write(ops).await?;
        *self.position.lock().unwrap_or_else(|p| p.into_inner()) = pos;
        Ok(())
    }

    /// Checks the chain of `entries` from our position first (all or nothing), then writes
    /// the fresh ones' ops, each step with the position it reaches.
    async fn apply_entries(&self, entries: Vec<WalEntry>) -> Result<(), StorageError> {
        let _one_at_a_time = self.apply.lock().await;
        let mut at = self.position();
        let mut fresh = Vec::with_capacity(entries.len());
        for entry in entries {
            if entry.index <= at.index && fresh.is_empty() {
                if entry.index == at.index && entry.hash != at.hash {
                    return Err(StorageError::Diverged(format!(
                        "WAL entry {} differs from the one this secondary applied last",
                        entry.index
                    )));
                }
                continue; // applied already
            }
            if entry.index != at.index.saturating_add(1) {
                return Err(StorageError::Diverged(format!(
                    "WAL entry {} does not follow the applied entry {}",
                    entry.index, at.index
                )));
            }
            if entry.prev_hash != at.hash {
                return Err(StorageError::Diverged(format!(
                    "WAL entry {} was built on a different history than the applied entry {}",
                    entry.index, at.index
                )));
            }
            check_shared(&entry.ops)?;
            at = entry.position();
            fresh.push(entry);
        }
        let mut ops = Vec::new();
        let mut bytes = 0usize;
        let mut reached = None;
        for entry in fresh {
            let size = entry.payload_bytes();
            if let Some(pos) = reached
                && !ops.is_empty()
                && bytes + size > WRITE_BUDGET
            {
                self.write_at(std::mem::take(&mut ops), pos).await?;
                bytes = 0;
            }
            bytes += size;
            reached = Some(entry.position());
            ops.extend(entry.ops);
        }
        match reached {
            Some(pos) => self.write_at(ops, pos).await,
            None => Ok(()),
        }
    }

    /// Merkle-sync ops: shared keys only. The first sync write also records the
    /// [`SYNC_IN_PROGRESS`] hash, so no stream resumes on a half-synced keyspace.
    async fn sync_ops(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        check_shared(&ops)?;
        let _one_at_a_time = self.apply.lock().await;
        let mut chunk = Vec::new();
        let mut bytes = 0usize;
        for op in ops {
            let size = op_bytes(&op);
            if !chunk.is_empty() && bytes + size > WRITE_BUDGET {
                self.sync_write(std::mem::take(&mut chunk)).await?;
                bytes = 0;
            }
            bytes += size;
            chunk.push(op);
        }
        if chunk.is_empty() {
            return Ok(());
        }
        self.sync_write(chunk).await
    }

    async fn sync_write(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        let pos = self.position();
        if pos.hash == SYNC_IN_PROGRESS {
            return self.inner.write(ops).await;
        }
        let poisoned = WalPosition {
            hash: SYNC_IN_PROGRESS,
            ..pos
        };
        self.write_at(ops, poisoned).await
    }
}

fn op_bytes(op: &Op) -> usize {
    match op {
        Op::Put { key, value } => key.len() + value.len(),
        Op::Delete { key } => key.len(),
    }
}

/// Refuses ops on keys that never travel to a performance secondary.
fn check_shared(ops: &[Op]) -> Result<(), StorageError> {
    match ops
        .iter()
        .find(|op| classify(op.key()) != KeyClass::ReplicatedShared)
    {
        Some(op) => Err(StorageError::Rejected(format!(
            "performance replication names the non-shared key {:?}; the primary is misbehaving",
            op.key()
        ))),
        None => Ok(()),
    }
}

fn command_name(cmd: &ReplCommand) -> &'static str {
    match cmd {
        ReplCommand::ApplyRemote(_) => "ApplyRemote",
        ReplCommand::ApplyRemoteBatch(_) => "ApplyRemoteBatch",
        ReplCommand::SyncOps(_) => "SyncOps",
        ReplCommand::SetPosition(_) => "SetPosition",
        ReplCommand::WipeReplicated => "WipeReplicated",
        ReplCommand::WipeReplicatedThen(_) => "WipeReplicatedThen",
        ReplCommand::BumpEpoch => "BumpEpoch",
    }
}

#[async_trait]
impl Storage for PerformanceStore {
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
        self.inner.write(ops).await
    }

    async fn export(&self, max_bytes: usize) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.inner.export(max_bytes).await
    }

    async fn replace_all(&self, _pairs: Vec<(String, Vec<u8>)>) -> Result<(), StorageError> {
        Err(StorageError::Rejected(
            "a performance secondary's replication never replaces its whole keyspace".into(),
        ))
    }

    fn status(&self) -> StorageStatus {
        self.inner.status()
    }

    async fn apply_replication(&self, cmd: ReplCommand) -> Result<(), StorageError> {
        match cmd {
            ReplCommand::ApplyRemote(entry) => self.apply_entries(vec![entry]).await,
            ReplCommand::ApplyRemoteBatch(entries) => self.apply_entries(entries).await,
            ReplCommand::SyncOps(ops) => self.sync_ops(ops).await,
            ReplCommand::SetPosition(pos) => {
                let _one_at_a_time = self.apply.lock().await;
                self.write_at(Vec::new(), pos).await
            }
            other => Err(StorageError::Rejected(format!(
                "a performance secondary does not apply {}",
                command_name(&other)
            ))),
        }
    }

    /// The inner status with the recorded position as the chain position.
    fn replication_status(&self) -> ReplStatus {
        let pos = self.position();
        ReplStatus {
            last_wal: pos.index,
            epoch: pos.epoch,
            last_hash: pos.hash,
            last_remote_wal: pos.index,
            ..self.inner.replication_status()
        }
    }

    /// This adapter holds none of the primary's entries, so it can stream none.
    async fn wal_read(
        &self,
        _after: WalPosition,
        _max_entries: usize,
        _max_bytes: usize,
    ) -> Result<WalRead, StorageError> {
        Ok(WalRead::Gone)
    }

    fn wal_watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.wal_watch()
    }

    fn merkle_hashes(&self, tree: MerkleTree, page: Option<u8>) -> Vec<[u8; 32]> {
        match tree {
            MerkleTree::Shared => self.inner.merkle_hashes(tree, page),
            MerkleTree::Local => empty_tree_hashes(page),
        }
    }

    async fn export_buckets(
        &self,
        tree: MerkleTree,
        buckets: Vec<u16>,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        match tree {
            MerkleTree::Shared => self.inner.export_buckets(tree, buckets).await,
            MerkleTree::Local => Ok(Vec::new()),
        }
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

    fn put(key: &str) -> Op {
        Op::Put {
            key: key.into(),
            value: key.as_bytes().to_vec(),
        }
    }

    /// An entry after `prev` whose hash is not its content hash, as a performance stream
    /// presents entries.
    fn presented(prev: &WalPosition, ops: Vec<Op>) -> WalEntry {
        let mut entry = WalEntry::next(prev, 1, 0, ops);
        entry.hash = [entry.index as u8; 32];
        entry
    }

    async fn recorded(inner: &InmemStorage) -> WalPosition {
        let raw = inner.get(PERF_POSITION_KEY).await.unwrap().unwrap();
        PerformanceStore::decode_position(&raw).unwrap()
    }

    async fn store() -> (Arc<InmemStorage>, PerformanceStore) {
        let inner = Arc::new(InmemStorage::new());
        inner.put("local/own/key", b"mine".to_vec()).await.unwrap();
        let store = PerformanceStore::open(inner.clone()).await.unwrap();
        (inner, store)
    }

    const START: WalPosition = WalPosition {
        index: 5,
        epoch: 1,
        hash: [9u8; 32],
    };

    #[tokio::test]
    async fn entries_apply_only_in_chain_order_with_their_position_in_the_same_write() {
        // Why: the recorded position is all a secondary resumes from; it must move with the
        // data, only along the presented chain, and never past a refused entry.
        let (inner, store) = store().await;
        store
            .apply_replication(ReplCommand::SetPosition(START))
            .await
            .unwrap();
        let e6 = presented(&START, vec![put("logical/u1/a")]);
        let e7 = presented(&e6.position(), vec![]);
        let e8 = presented(&e7.position(), vec![put("logical/u1/b")]);
        let skip_nine = WalPosition {
            index: 9,
            ..e8.position()
        };
        let gap = presented(&skip_nine, vec![put("logical/u1/gap")]);
        let fork = presented(&START, vec![put("logical/u1/fork")]);
        let fork8 = WalEntry { index: 8, ..fork };
        let token = presented(
            &e7.position(),
            vec![put("logical/u1/c"), put("sys/token/id/t")],
        );

        store
            .apply_replication(ReplCommand::ApplyRemoteBatch(vec![e6.clone(), e7.clone()]))
            .await
            .unwrap();
        let own_chain = inner.replication_status().last_wal;
        let again = store
            .apply_replication(ReplCommand::ApplyRemoteBatch(vec![e6.clone(), e7.clone()]))
            .await;
        let half = store
            .apply_replication(ReplCommand::ApplyRemoteBatch(vec![e8.clone(), gap.clone()]))
            .await;
        let forked = store
            .apply_replication(ReplCommand::ApplyRemote(fork8))
            .await;
        let refused = store
            .apply_replication(ReplCommand::ApplyRemote(token))
            .await;
        let changed_tip = store
            .apply_replication(ReplCommand::ApplyRemote(WalEntry {
                hash: [0xaa; 32],
                ..e7.clone()
            }))
            .await;

        assert_eq!(recorded(&inner).await, e7.position());
        assert_eq!(store.position(), e7.position());
        let status = store.replication_status();
        assert_eq!((status.last_wal, status.last_remote_wal), (7, 7));
        assert_eq!(status.last_hash, e7.hash);
        assert!(again.is_ok());
        assert_eq!(
            inner.replication_status().last_wal,
            own_chain,
            "duplicates write nothing"
        );
        assert!(matches!(half, Err(StorageError::Diverged(_))));
        assert!(matches!(forked, Err(StorageError::Diverged(_))));
        assert!(matches!(refused, Err(StorageError::Rejected(m)) if m.contains("misbehaving")));
        assert!(matches!(changed_tip, Err(StorageError::Diverged(_))));
        assert_eq!(
            inner.get("logical/u1/a").await.unwrap(),
            Some(b"logical/u1/a".to_vec())
        );
        for absent in [
            "logical/u1/b",
            "logical/u1/c",
            "sys/token/id/t",
            "logical/u1/fork",
        ] {
            assert_eq!(inner.get(absent).await.unwrap(), None, "{absent}");
        }
        assert_eq!(
            inner.get("local/own/key").await.unwrap(),
            Some(b"mine".to_vec())
        );
    }

    #[tokio::test]
    async fn sync_writes_poison_the_position_until_the_sync_point_is_adopted() {
        // Why: a crash in the middle of a merkle sync must not let the next connection resume
        // streaming on a half-synced keyspace; and local data never enters or leaves.
        let (inner, store) = store().await;
        store
            .apply_replication(ReplCommand::SetPosition(START))
            .await
            .unwrap();
        let sync_point = WalPosition {
            index: 40,
            epoch: 1,
            hash: [4u8; 32],
        };

        store
            .apply_replication(ReplCommand::SyncOps(vec![put("logical/u1/x")]))
            .await
            .unwrap();
        let during = recorded(&inner).await;
        let stream_mid_sync = store
            .apply_replication(ReplCommand::ApplyRemote(presented(&START, vec![])))
            .await;
        let local_sync = store
            .apply_replication(ReplCommand::SyncOps(vec![put("local/m/x")]))
            .await;
        store
            .apply_replication(ReplCommand::SetPosition(sync_point))
            .await
            .unwrap();
        let wipe = store.apply_replication(ReplCommand::WipeReplicated).await;
        let bump = store.apply_replication(ReplCommand::BumpEpoch).await;

        assert_eq!(
            during,
            WalPosition {
                hash: SYNC_IN_PROGRESS,
                ..START
            }
        );
        assert!(matches!(stream_mid_sync, Err(StorageError::Diverged(_))));
        assert!(matches!(local_sync, Err(StorageError::Rejected(_))));
        assert_eq!(recorded(&inner).await, sync_point);
        assert_eq!(store.replication_status().last_remote_wal, 40);
        assert!(matches!(wipe, Err(StorageError::Rejected(_))));
        assert!(matches!(bump, Err(StorageError::Rejected(_))));
        assert_eq!(inner.get("local/m/x").await.unwrap(), None);
        assert_eq!(
            store.merkle_hashes(MerkleTree::Local, None),
            empty_tree_hashes(None)
        );
        assert_ne!(
            inner.merkle_hashes(MerkleTree::Local, None),
            empty_tree_hashes(None)
        );
        let all: Vec<u16> = (0..=u16::MAX).collect();
        let local = store.export_buckets(MerkleTree::Local, all.clone()).await;
        let shared = store.export_buckets(MerkleTree::Shared, all).await;
        assert!(local.unwrap().is_empty());
        assert_eq!(shared.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_large_backlog_is_written_in_continuous_steps() {
        // Why: Raft refuses writes over its entry limit; a coalesced backlog must be split,
        // each step carrying the position it reached.
        let (inner, store) = store().await;
        store
            .apply_replication(ReplCommand::SetPosition(START))
            .await
            .unwrap();
        let before = inner.replication_status().last_wal;
        let mut prev = START;
        let mut entries = Vec::new();
        for i in 0..6 {
            let entry = presented(
                &prev,
                vec![Op::Put {
                    key: format!("logical/big/{i}"),
                    value: vec![i as u8; 100 * 1024],
                }],
            );
            prev = entry.position();
            entries.push(entry);
        }

        store
            .apply_replication(ReplCommand::ApplyRemoteBatch(entries))
            .await
            .unwrap();

        assert!(inner.replication_status().last_wal - before >= 3);
        assert_eq!(recorded(&inner).await, prev);
        assert_eq!(
            inner.scan("logical/big/", None, 100).await.unwrap().len(),
            6
        );
    }

    #[tokio::test]
    async fn position_records_round_trip_and_damage_is_an_error() {
        // Why: a damaged record must surface as corruption, not as position zero or a panic.
        let pos = WalPosition {
            index: u64::MAX - 1,
            epoch: 3,
            hash: [7u8; 32],
        };
        let raw = PerformanceStore::encode_position(&pos);
        let inner = Arc::new(InmemStorage::new());
        inner
            .put(PERF_POSITION_KEY, raw[..10].to_vec())
            .await
            .unwrap();

        let opened = PerformanceStore::open(inner).await;

        assert_eq!(PerformanceStore::decode_position(&raw).unwrap(), pos);
        assert!(matches!(opened, Err(StorageError::Corrupt(_))));
        let mut other_version = raw.clone();
        other_version[0] = 9;
        for bad in [&[][..], &raw[..POSITION_LEN - 1], &other_version[..]] {
            assert!(matches!(
                PerformanceStore::decode_position(bad),
                Err(StorageError::Corrupt(_))
            ));
        }
    }
}

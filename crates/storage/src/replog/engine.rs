//! Applying batches and replication commands to a backend transaction, WAL and merkle included.
//!
//! Both backends call in here with their own [`KvTxn`] (a locked map, a redb write
//! transaction). Work happens in two phases so that memory never runs ahead of disk: a
//! [`Stage`] records the new WAL meta and the merkle leaf deltas while the backend writes its
//! transaction, and [`ReplShared::finish`] publishes them only after that transaction
//! committed, under the same lock that [`ReplShared::rebuild`] takes, so a rebuild can never
//! interleave with a commit.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::entry::{WalEntry, WalPosition};
pub(crate) use super::merkle::MerkleIndex;
use super::merkle::{LeafDelta, MerkleTree};
use super::meta::WalMeta;
pub(crate) use super::reads::{
    BucketSet, empty_merkle, merkle_from_pairs, wal_position_at, wal_read,
};
use super::{
    DEFAULT_RETAINED_BYTES, DEFAULT_RETAINED_ENTRIES, ReplCommand, ReplStatus, WAL_META_KEY,
    is_wal_key, wal_entry_key,
};
use crate::keyspace::{KeyClass, classify};
use crate::{Op, StorageError};

/// Chain hash of a secondary in the middle of a merkle sync: no real entry hashes to it, so
/// no stream can resume from a position carrying it.
pub const SYNC_IN_PROGRESS: [u8; 32] = [0xff; 32];

/// The mutable view of a backend's keyspace inside one atomic step.
pub(crate) trait KvTxn {
    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>>;
    fn put(&mut self, key: &str, value: &[u8]) -> io::Result<()>;
    fn delete(&mut self, key: &str) -> io::Result<()>;
    /// Every key that is not cluster-local (used by the rare full wipe).
    fn replicated_keys(&self) -> io::Result<Vec<String>>;
    /// Removes every key.
    fn clear(&mut self) -> io::Result<()>;
}

/// Why a replication command was not applied.
#[derive(Debug)]
pub(crate) enum ApplyError {
    /// The command is not acceptable in the current state; nothing was written.
    Rejected(StorageError),
    /// The backend failed.
    Io(io::Error),
}

impl From<io::Error> for ApplyError {
    fn from(e: io::Error) -> Self {
        ApplyError::Io(e)
    }
}

/// Microseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Refuses batches that would write the WAL bookkeeping directly.
pub(crate) fn check_user_ops(ops: &[Op]) -> Result<(), StorageError> {
    match ops.iter().find(|op| is_wal_key(op.key())) {
        Some(op) => Err(StorageError::Rejected(format!(
            "key {:?} belongs to the replication log and cannot be written directly",
            op.key()
        ))),
        None => Ok(()),
    }
}

/// Refuses replicated ops that name cluster-local keys (a primary never ships those).
pub(crate) fn check_replicated_ops(ops: &[Op]) -> Result<(), StorageError> {
    match ops
        .iter()
        .find(|op| classify(op.key()) == KeyClass::ClusterLocal)
    {
        Some(op) => Err(StorageError::Rejected(format!(
            "replicated change names cluster-local key {:?}; the primary is misbehaving",
            op.key()
        ))),
        None => Ok(()),
    }
}

struct State {
    meta: WalMeta,
    merkle: MerkleIndex,
}

/// Commits whose WAL commit times are kept (a few seconds at the highest write rates).
const COMMIT_TIMES_KEPT: usize = 16_384;

/// Replication state shared by a backend's write path and its status readers.
pub(crate) struct ReplShared {
    state: Mutex<State>,
    max_entries: AtomicU64,
    max_bytes: AtomicU64,
    watch: watch::Sender<u64>,
    /// When recent WAL entries were committed here: `(first index, last index, unix µs)` per
    /// commit, oldest first, at most [`COMMIT_TIMES_KEPT`] commits. For lag measured from the
    /// commit a client's write waits for, rather than from its proposal.
    commit_times: Mutex<VecDeque<(u64, u64, u64)>>,
    /// True while a backend re-applies its log at open: entries applied then are old, and
    /// their proposal-to-apply times would only pollute the lag histogram.
    recovering: AtomicBool,
}

/// The lock held while a backend commits; pass it to [`ReplShared::finish`].
pub(crate) struct CommitGuard<'a>(MutexGuard<'a, State>);

impl ReplShared {
    /// State recovered from storage: the meta record (if any) and a merkle built by a scan.
    pub fn load(meta: Option<&[u8]>, merkle: MerkleIndex) -> io::Result<Self> {
        let meta = meta.map(WalMeta::decode).transpose()?.unwrap_or_default();
        Ok(Self::from_parts(meta, merkle))
    }

    /// The state of an empty keyspace (nothing to recover).
    pub fn empty() -> Self {
        let shared = Self::from_parts(WalMeta::default(), MerkleIndex::new());
        shared.set_recovering(false);
        shared
    }

    fn from_parts(meta: WalMeta, merkle: MerkleIndex) -> Self {
        let (watch, _) = watch::channel(meta.last_wal);
        let shared = ReplShared {
            state: Mutex::new(State { meta, merkle }),
            max_entries: AtomicU64::new(DEFAULT_RETAINED_ENTRIES),
            max_bytes: AtomicU64::new(DEFAULT_RETAINED_BYTES),
            watch,
            recovering: AtomicBool::new(true),
            commit_times: Mutex::new(VecDeque::new()),
        };
        shared.publish(&shared.lock().0.meta);
        shared
    }

    /// When WAL entry `index` was committed on this node (unix µs), while it is recent.
    pub fn committed_at(&self, index: u64) -> Option<u64> {
        let times = self.commit_times.lock().unwrap_or_else(|p| p.into_inner());
        let at = times.partition_point(|&(_, last, _)| last < index);
        let &(first, _, t) = times.get(at)?;
        (first <= index).then_some(t)
    }

    /// Marks the end (or start) of the open-time log replay.
    pub fn set_recovering(&self, recovering: bool) {
        self.recovering.store(recovering, Ordering::Relaxed);
    }

    pub fn is_recovering(&self) -> bool {
        self.recovering.load(Ordering::Relaxed)
    }

    fn lock(&self) -> CommitGuard<'_> {
        CommitGuard(self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Starts an atomic step from the current meta.
    pub fn begin(&self) -> Stage {
        let meta = self.lock().0.meta.clone();
        Stage {
            meta,
            meta_dirty: false,
            base: None,
            deltas: Vec::new(),
            max_entries: self.max_entries.load(Ordering::Relaxed),
            max_bytes: self.max_bytes.load(Ordering::Relaxed),
            appended: None,
        }
    }

    /// Locks out readers of the merkle and rebuilds for the backend's commit.
    pub fn commit_lock(&self) -> CommitGuard<'_> {
        self.lock()
    }

    /// Publishes a committed stage.
    pub fn finish(&self, mut guard: CommitGuard<'_>, stage: Stage) {
        let state = &mut guard.0;
        let rebuilt = stage.base.is_some();
        if let Some(base) = stage.base {
            state.merkle = base;
        }
        for d in &stage.deltas {
            state.merkle.apply(d);
        }
        let before = state.meta.last_wal;
        state.meta = stage.meta;
        self.publish(&state.meta);
        let last_wal = state.meta.last_wal;
        // Recorded before the guard is released, so a reader that sees the new entries also
        // finds their time (lock order: state, then commit times; lookups take only the latter).
        {
            let mut times = self.commit_times.lock().unwrap_or_else(|p| p.into_inner());
            let continues = times.back().is_none_or(|&(_, last, _)| last == before);
            match stage.appended {
                // Entries appended right after the last recorded ones: a commit to remember,
                // unless it is the open-time replay of old entries.
                Some((first, last)) if first == before + 1 && !rebuilt => {
                    if !continues {
                        times.clear();
                    }
                    if self.is_recovering() {
                        times.clear();
                    } else {
                        if times.len() == COMMIT_TIMES_KEPT {
                            times.pop_front();
                        }
                        times.push_back((first, last, unix_us()));
                    }
                }
                // The chain jumped or was replaced (wipe, sync, restore, adopted position):
                // the remembered times describe other entries.
                _ if last_wal != before || rebuilt => times.clear(),
                _ => {}
            }
        }
        drop(guard);
        self.watch.send_if_modified(|v| {
            let changed = *v != last_wal;
            *v = last_wal;
            changed
        });
    }

    fn publish(&self, meta: &WalMeta) {
        metrics::gauge!("vault_replication_wal_last_wal").set(meta.last_wal as f64);
        metrics::gauge!("vault_replication_wal_last_dr_wal").set(meta.last_wal as f64);
        // Every index travels on the performance stream too (entries without shared ops go
        // empty), so a performance secondary's last_remote_wal compares with this one.
        metrics::gauge!("vault_replication_wal_last_performance_wal").set(meta.last_wal as f64);
        metrics::gauge!("vault_replication_wal_retained_entries").set(meta.retained_entries as f64);
        metrics::gauge!("vault_replication_wal_retained_bytes").set(meta.retained_bytes as f64);
        metrics::gauge!("vault_replication_fsm_last_remote_wal").set(meta.last_remote_wal as f64);
    }

    /// Replaces the merkle index with one built from a full read (reindex). The caller holds
    /// `guard` across its read so that no commit lands in between.
    pub fn rebuild(&self, mut guard: CommitGuard<'_>, merkle: MerkleIndex) {
        guard.0.merkle = merkle;
    }

    pub fn status(&self) -> ReplStatus {
        let mut guard = self.lock();
        let State { meta, merkle } = &mut *guard.0;
        ReplStatus {
            last_wal: meta.last_wal,
            last_performance_wal: meta.last_performance_wal,
            epoch: meta.epoch,
            last_hash: meta.last_hash,
            first_retained: meta.first_retained,
            retained_entries: meta.retained_entries,
            retained_bytes: meta.retained_bytes,
            last_remote_wal: meta.last_remote_wal,
            merkle_root: merkle.combined_root(),
        }
    }

    pub fn hashes(&self, tree: MerkleTree, page: Option<u8>) -> Vec<[u8; 32]> {
        self.lock().0.merkle.hashes(tree, page)
    }

    /// The newest committed WAL index, without taking the commit lock.
    pub fn last_wal(&self) -> u64 {
        *self.watch.borrow()
    }

    pub fn watch(&self) -> watch::Receiver<u64> {
        self.watch.subscribe()
    }

    pub fn set_retention(&self, max_entries: u64, max_bytes: u64) {
        self.max_entries.store(max_entries, Ordering::Relaxed);
        self.max_bytes.store(max_bytes, Ordering::Relaxed);
    }
}

/// The replication side effects of one atomic step, not yet visible to readers.
pub(crate) struct Stage {
    meta: WalMeta,
    meta_dirty: bool,
    base: Option<MerkleIndex>,
    deltas: Vec<LeafDelta>,
    max_entries: u64,
    max_bytes: u64,
    /// First and last index of the WAL entries this stage appended, if any.
    appended: Option<(u64, u64)>,
}

impl Stage {
    fn put(&mut self, txn: &mut impl KvTxn, key: &str, value: &[u8]) -> io::Result<()> {
        if let Some(add) = LeafDelta::of(key, value, true) {
            if let Some(old) = txn.get(key)? {
                self.deltas.push(LeafDelta {
                    leaf: super::merkle::leaf_hash(key, &old),
                    add: false,
                    ..add
                });
            }
            self.deltas.push(add);
        }
        txn.put(key, value)
    }

    fn delete(&mut self, txn: &mut impl KvTxn, key: &str) -> io::Result<()> {
        if MerkleTree::of_key(key).is_some()
            && let Some(old) = txn.get(key)?
            && let Some(sub) = LeafDelta::of(key, &old, false)
        {
            self.deltas.push(sub);
        }
        txn.delete(key)
    }

    fn apply_ops(&mut self, txn: &mut impl KvTxn, ops: &[Op]) -> io::Result<()> {
        for op in ops {
            match op {
                Op::Put { key, value } => self.put(txn, key, value)?,
                Op::Delete { key } => self.delete(txn, key)?,
            }
        }
        Ok(())
    }

    /// A local write: all ops applied; the replicated ones become the next WAL entry.
    pub fn local_batch(
        &mut self,
        txn: &mut impl KvTxn,
        ops: Vec<Op>,
        unix_us: u64,
    ) -> io::Result<()> {
        self.apply_ops(txn, &ops)?;
        let replicated: Vec<Op> = ops
            .into_iter()
            .filter(|op| classify(op.key()) != KeyClass::ClusterLocal)
            .collect();
        if replicated.is_empty() {
            return Ok(());
        }
        let entry = WalEntry::next(&self.meta.position(), self.meta.epoch, unix_us, replicated);
        self.append(txn, &entry)?;
        self.write_meta(txn)
    }

    /// Stores `entry` as the new chain tip and trims retention.
    fn append(&mut self, txn: &mut impl KvTxn, entry: &WalEntry) -> io::Result<()> {
        let bytes = entry.encode();
        txn.put(&wal_entry_key(entry.index), &bytes)?;
        self.appended = Some(match self.appended {
            Some((first, _)) => (first, entry.index),
            None => (entry.index, entry.index),
        });
        let m = &mut self.meta;
        m.last_wal = entry.index;
        m.last_hash = entry.hash;
        m.epoch = entry.epoch;
        if entry.shared {
            m.last_performance_wal += 1;
        }
        if m.retained_entries == 0 {
            m.first_retained = entry.index;
        }
        m.retained_entries += 1;
        m.retained_bytes += bytes.len() as u64;
        self.meta_dirty = true;
        self.trim(txn)
    }

    fn trim(&mut self, txn: &mut impl KvTxn) -> io::Result<()> {
        while self.meta.retained_entries > 0
            && (self.meta.retained_entries > self.max_entries
                || self.meta.retained_bytes > self.max_bytes)
        {
            let key = wal_entry_key(self.meta.first_retained);
            let len = txn.get(&key)?.map_or(0, |v| v.len() as u64);
            txn.delete(&key)?;
            self.meta.retained_entries -= 1;
            self.meta.retained_bytes = self.meta.retained_bytes.saturating_sub(len);
            self.meta.first_retained += 1;
            self.meta_dirty = true;
        }
        if self.meta.retained_entries == 0 {
            self.meta.retained_bytes = 0;
        }
        Ok(())
    }

    /// Deletes every retained entry (before a position jump or a wipe).
    fn drop_retained(&mut self, txn: &mut impl KvTxn) -> io::Result<()> {
        if self.meta.retained_entries > 0 {
            for index in self.meta.first_retained..=self.meta.last_wal {
                txn.delete(&wal_entry_key(index))?;
            }
        }
        Ok(())
    }

    fn write_meta(&mut self, txn: &mut impl KvTxn) -> io::Result<()> {
        if self.meta_dirty {
            txn.put(WAL_META_KEY, &self.meta.encode()?)?;
            self.meta_dirty = false;
        }
        Ok(())
    }

    /// Deletes every replicated key and resets the WAL position and merkle index.
    fn wipe(&mut self, txn: &mut impl KvTxn) -> io::Result<()> {
        for key in txn.replicated_keys()? {
            txn.delete(&key)?;
        }
        self.drop_retained(txn)?;
        self.meta = WalMeta::default();
        self.meta_dirty = true;
        self.base = Some(MerkleIndex::new());
        self.deltas.clear();
        Ok(())
    }

    /// A replication command; rejections happen before anything is written.
    pub fn repl(&mut self, txn: &mut impl KvTxn, cmd: ReplCommand) -> Result<(), ApplyError> {
        match cmd {
            ReplCommand::ApplyRemote(entry) => return self.apply_remote(txn, entry),
            ReplCommand::ApplyRemoteBatch(entries) => return self.apply_remote_batch(txn, entries),
            ReplCommand::SyncOps(ops) => {
                check_replicated_ops(&ops).map_err(ApplyError::Rejected)?;
                // The first sync write poisons our chain position in the same atomic step:
                // until SetPosition adopts the primary's sync point, no one (a reconnect after
                // a crash, another primary, or a secondary of ours after a forced promote) can
                // resume streaming on top of a half-synced keyspace.
                if self.meta.last_hash != SYNC_IN_PROGRESS {
                    self.drop_retained(txn)?;
                    let at = WalPosition {
                        index: self.meta.last_wal,
                        epoch: self.meta.epoch,
                        hash: SYNC_IN_PROGRESS,
                    };
                    self.meta.restart_at(&at);
                    self.meta_dirty = true;
                }
                self.apply_ops(txn, &ops)?;
            }
            ReplCommand::SetPosition(pos) => {
                self.drop_retained(txn)?;
                self.meta.restart_at(&pos);
                self.meta.last_remote_wal = pos.index;
                self.meta_dirty = true;
            }
            ReplCommand::WipeReplicated => self.wipe(txn)?,
            ReplCommand::WipeReplicatedThen(ops) => {
                check_replicated_ops(&ops).map_err(ApplyError::Rejected)?;
                self.wipe(txn)?;
                self.apply_ops(txn, &ops)?;
            }
            ReplCommand::BumpEpoch => {
                self.meta.epoch += 1;
                // Promoted in the middle of a merkle sync: start a fresh chain from a derived
                // hash rather than build new history on the sentinel.
                if self.meta.last_hash == SYNC_IN_PROGRESS {
                    let mut h = Sha256::new();
                    h.update(b"strongroom/promoted-mid-sync");
                    h.update(self.meta.epoch.to_be_bytes());
                    h.update(self.meta.last_wal.to_be_bytes());
                    let at = WalPosition {
                        index: self.meta.last_wal,
                        epoch: self.meta.epoch,
                        hash: h.finalize().into(),
                    };
                    self.meta.restart_at(&at);
                }
                self.meta_dirty = true;
            }
        }
        self.write_meta(txn)?;
        Ok(())
    }

    /// Checks every entry of `entries` against the chain first, then applies the new ones:
    /// a batch is all or nothing. Entries we already hold (equal hash) are skipped.
    fn apply_remote_batch(
        &mut self,
        txn: &mut impl KvTxn,
        entries: Vec<WalEntry>,
    ) -> Result<(), ApplyError> {
        let (mut last_index, mut last_hash) = (self.meta.last_wal, self.meta.last_hash);
        let mut fresh = Vec::with_capacity(entries.len());
        for entry in entries {
            if entry.index <= last_index && entry.index > 0 && fresh.is_empty() {
                // Already held: verify it matches, exactly as a single remote apply would.
                self.check_held(txn, &entry)?;
                continue;
            }
            if entry.index != last_index.saturating_add(1) {
                return Err(ApplyError::Rejected(StorageError::Diverged(format!(
                    "WAL entry {} does not follow entry {last_index}",
                    entry.index
                ))));
            }
            if entry.prev_hash != last_hash {
                return Err(ApplyError::Rejected(StorageError::Diverged(format!(
                    "WAL entry {} was built on a different history than entry {last_index}",
                    entry.index
                ))));
            }
            if !entry.hash_is_valid() {
                return Err(ApplyError::Rejected(StorageError::Rejected(format!(
                    "WAL entry {} does not match its own hash",
                    entry.index
                ))));
            }
            check_replicated_ops(&entry.ops).map_err(ApplyError::Rejected)?;
            (last_index, last_hash) = (entry.index, entry.hash);
            fresh.push(entry);
        }
        for entry in &fresh {
            self.apply_ops(txn, &entry.ops)?;
            self.append(txn, entry)?;
            self.meta.last_remote_wal = entry.index;
        }
        self.write_meta(txn)?;
        Ok(())
    }

    /// Verifies that an entry at or below our last index is the one we hold.
    fn check_held(&self, txn: &mut impl KvTxn, entry: &WalEntry) -> Result<(), ApplyError> {
        let m = &self.meta;
        let ours = if entry.index == m.last_wal {
            Some(m.last_hash)
        } else {
            match txn.get(&wal_entry_key(entry.index))? {
                Some(raw) => Some(WalEntry::decode(&raw)?.hash),
                None => None,
            }
        };
        match ours {
            Some(h) if h == entry.hash => Ok(()),
            Some(_) => Err(ApplyError::Rejected(StorageError::Diverged(format!(
                "WAL entry {} differs from the one this cluster already holds",
                entry.index
            )))),
            None => Err(ApplyError::Rejected(StorageError::Diverged(format!(
                "WAL entry {} is older than this cluster's retained log ({}..={}) and cannot be checked",
                entry.index, m.first_retained, m.last_wal
            )))),
        }
    }

    fn apply_remote(&mut self, txn: &mut impl KvTxn, entry: WalEntry) -> Result<(), ApplyError> {
        let m = &self.meta;
        if entry.index <= m.last_wal && entry.index > 0 {
            let ours = if entry.index == m.last_wal {
                Some(m.last_hash)
            } else {
                match txn.get(&wal_entry_key(entry.index))? {
                    Some(raw) => Some(WalEntry::decode(&raw)?.hash),
                    None => None,
                }
            };
            return match ours {
                Some(h) if h == entry.hash => Ok(()),
                Some(_) => Err(ApplyError::Rejected(StorageError::Diverged(format!(
                    "WAL entry {} differs from the one this cluster already holds",
                    entry.index
                )))),
                None => Err(ApplyError::Rejected(StorageError::Diverged(format!(
                    "WAL entry {} is older than this cluster's retained log ({}..={}) and cannot be checked",
                    entry.index, m.first_retained, m.last_wal
                )))),
            };
        }
        if entry.index != m.last_wal.saturating_add(1) {
            return Err(ApplyError::Rejected(StorageError::Diverged(format!(
                "WAL entry {} does not follow this cluster's last entry {}",
                entry.index, m.last_wal
            ))));
        }
        if entry.prev_hash != m.last_hash {
            return Err(ApplyError::Rejected(StorageError::Diverged(format!(
                "WAL entry {} was built on a different history than this cluster's entry {}",
                entry.index, m.last_wal
            ))));
        }
        if !entry.hash_is_valid() {
            return Err(ApplyError::Rejected(StorageError::Rejected(format!(
                "WAL entry {} does not match its own hash",
                entry.index
            ))));
        }
        check_replicated_ops(&entry.ops).map_err(ApplyError::Rejected)?;
        self.apply_ops(txn, &entry.ops)?;
        self.append(txn, &entry)?;
        self.meta.last_remote_wal = entry.index;
        self.write_meta(txn)?;
        Ok(())
    }

    /// Snapshot restore: the keyspace becomes `pairs` (minus any WAL bookkeeping they carry)
    /// and the chain jumps to a fresh position, so no secondary can resume across it.
    pub fn replace_all(
        &mut self,
        txn: &mut impl KvTxn,
        pairs: &[(String, Vec<u8>)],
        seed: &[u8],
    ) -> io::Result<()> {
        txn.clear()?;
        let mut digest = Sha256::new();
        for (k, v) in pairs.iter().filter(|(k, _)| !is_wal_key(k)) {
            txn.put(k, v)?;
            digest.update((k.len() as u64).to_be_bytes());
            digest.update(k.as_bytes());
            digest.update((v.len() as u64).to_be_bytes());
            digest.update(v);
        }
        let index = self.meta.last_wal.saturating_add(1);
        let mut h = Sha256::new();
        h.update(b"strongroom/replace_all");
        h.update(self.meta.last_hash);
        h.update(index.to_be_bytes());
        h.update(seed);
        h.update(digest.finalize());
        let pos = WalPosition {
            index,
            epoch: self.meta.epoch,
            hash: h.finalize().into(),
        };
        self.meta.restart_at(&pos);
        self.meta_dirty = true;
        self.write_meta(txn)?;
        self.base = Some(MerkleIndex::from_pairs(
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
        ));
        self.deltas.clear();
        Ok(())
    }

    /// A Raft snapshot was installed: its pairs carry the sender's WAL meta (`meta`) and
    /// entries; `index` is the merkle index of those pairs, built while they were written.
    pub fn adopt_index(&mut self, meta: Option<&[u8]>, index: MerkleIndex) -> io::Result<()> {
        self.meta = meta.map(WalMeta::decode).transpose()?.unwrap_or_default();
        self.meta_dirty = false;
        self.base = Some(index);
        self.deltas.clear();
        Ok(())
    }
}

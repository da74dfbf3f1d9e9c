//! The performance half of a primary session: what travels, how the chain is presented, and
//! the merkle view through one secondary's path filter.
//!
//! A performance secondary receives only shared keys its path filter allows, and keeps its
//! own WAL chain, so it stores our positions rather than our entries. Every chain hash we
//! present to it is transformed with its filter's digest, `h' = SHA256("strongroom/perf-stream"
//! || h || d)`: when core changes the filter, `d` changes, the secondary's stored position no
//! longer matches anything we present, and it falls back to a merkle diff that deletes the
//! keys the new filter denies. No primary state has to remember which filter a secondary saw.
//! Within one session the cursor stays in our own (untransformed) positions, since that is
//! what `wal_read` understands; only what crosses the wire is transformed.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use strongroom_storage::keyspace::{KeyClass, classify};
use strongroom_storage::replog::{PairIndex, empty_tree_hashes};
use strongroom_storage::{MerkleTree, Storage, StorageError, WalEntry, WalPosition};

/// Buckets read per storage call while building a filtered merkle view (16 reads in all), so
/// the primary never holds every shared pair at once.
const BUCKETS_PER_READ: u32 = 4096;

/// What core decides about each performance secondary: which shared keys it may receive.
pub trait PerformanceFilter: Send + Sync {
    /// A digest of `secondary_id`'s filter: it changes whenever what the filter allows does.
    fn digest(&self, secondary_id: &str) -> [u8; 32];
    /// Whether the shared key `key` may travel to `secondary_id`.
    fn allows(&self, secondary_id: &str, key: &str) -> bool;
    /// Whether `secondary_id`'s filter denies anything at all; when it does not, our own
    /// merkle index is the secondary's view and no filtered index is built.
    fn filters_anything(&self, secondary_id: &str) -> bool;
    /// `secondary_id`'s filter as the stream states it to the secondary (`None`: none).
    fn wire_filter(&self, _secondary_id: &str) -> Option<crate::wire::PathsFilterWire> {
        None
    }
}

/// The hash a performance stream with filter digest `digest` presents for our hash `h`.
pub(crate) fn present_hash(h: &[u8; 32], digest: &[u8; 32]) -> [u8; 32] {
    let mut sha = Sha256::new();
    sha.update(b"strongroom/perf-stream");
    sha.update(h);
    sha.update(digest);
    sha.finalize().into()
}

/// The state of one performance session.
pub(crate) struct PerfSession {
    filter: Arc<dyn PerformanceFilter>,
    peer_id: String,
    /// The filter digest the session started with; every presented hash uses it.
    digest: [u8; 32],
    /// Whether the filter denied anything when the session started.
    filtered: bool,
    /// Our position the secondary resumed from, when its Hello position matched.
    resume_from: Option<WalPosition>,
    /// The merkle view of the allowed shared keys, built at the first page request.
    index: Option<PairIndex>,
}

impl PerfSession {
    pub fn start(filter: Arc<dyn PerformanceFilter>, peer_id: &str) -> Self {
        PerfSession {
            digest: filter.digest(peer_id),
            filtered: filter.filters_anything(peer_id),
            filter,
            peer_id: peer_id.to_owned(),
            resume_from: None,
            index: None,
        }
    }

    /// Whether the filter changed since the session started: the session must end so the
    /// secondary reconnects (and diffs against the new filter).
    pub fn filter_changed(&self) -> bool {
        self.filter.digest(&self.peer_id) != self.digest
    }

    /// Our position as this stream presents it.
    pub fn present(&self, pos: WalPosition) -> WalPosition {
        WalPosition {
            hash: present_hash(&pos.hash, &self.digest),
            ..pos
        }
    }

    fn travels(&self, key: &str) -> bool {
        classify(key) == KeyClass::ReplicatedShared && self.filter.allows(&self.peer_id, key)
    }

    /// `entry` as this stream presents it: only the ops that travel (possibly none: the
    /// entry still goes, so that positions stay continuous) and transformed hashes.
    pub fn present_entry(&self, entry: WalEntry) -> WalEntry {
        let ops: Vec<_> = entry
            .ops
            .into_iter()
            .filter(|op| self.travels(op.key()))
            .collect();
        WalEntry {
            index: entry.index,
            epoch: entry.epoch,
            prev_hash: present_hash(&entry.prev_hash, &self.digest),
            hash: present_hash(&entry.hash, &self.digest),
            shared: !ops.is_empty(),
            unix_us: entry.unix_us,
            ops,
        }
    }

    /// Whether the secondary can stream on from `presented` (its Hello position): index 0
    /// never can (data older than the retained WAL would never reach it), otherwise we must
    /// still hold that index and present exactly that hash for it.
    pub async fn resume(
        &mut self,
        storage: &dyn Storage,
        presented: WalPosition,
    ) -> Result<bool, StorageError> {
        if presented.index == 0 {
            return Ok(false);
        }
        match storage.wal_position_at(presented.index).await? {
            Some(ours) if self.present(ours).hash == presented.hash => {
                self.resume_from = Some(ours);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Our position behind `presented` (a `StreamFrom`): the resume position or the sync
    /// point of this session, else a retained entry that presents as it; `None` when we
    /// present no such position.
    pub async fn ours(
        &self,
        storage: &dyn Storage,
        sync_point: WalPosition,
        presented: WalPosition,
    ) -> Result<Option<WalPosition>, StorageError> {
        for known in self.resume_from.into_iter().chain([sync_point]) {
            if known.index == presented.index && self.present(known).hash == presented.hash {
                return Ok(Some(known));
            }
        }
        Ok(storage
            .wal_position_at(presented.index)
            .await?
            .filter(|ours| self.present(*ours).hash == presented.hash))
    }

    /// The merkle hashes the secondary's view of our data has: an empty local tree (local
    /// keys never travel), our shared tree when nothing is filtered, else the index of the
    /// allowed shared keys.
    pub async fn page_hashes(
        &mut self,
        storage: &dyn Storage,
        tree: MerkleTree,
        page: Option<u8>,
    ) -> Result<Vec<[u8; 32]>, StorageError> {
        match tree {
            MerkleTree::Local => Ok(empty_tree_hashes(page)),
            MerkleTree::Shared if !self.filtered => Ok(storage.merkle_hashes(tree, page)),
            MerkleTree::Shared => {
                if self.index.is_none() {
                    self.index = Some(self.build_index(storage).await?);
                }
                Ok(self
                    .index
                    .as_mut()
                    .map(|index| index.hashes(tree, page))
                    .unwrap_or_default())
            }
        }
    }

    /// The merkle index of every shared pair that travels, read in bucket ranges. Not one
    /// point in time, like the pages a DR secondary reads: the sync point precedes every
    /// read, and replaying from it converges.
    async fn build_index(&self, storage: &dyn Storage) -> Result<PairIndex, StorageError> {
        let mut index = PairIndex::new();
        let mut first: u32 = 0;
        while first <= u32::from(u16::MAX) {
            let last = (first + BUCKETS_PER_READ - 1).min(u32::from(u16::MAX));
            let buckets = (first..=last)
                .filter_map(|b| u16::try_from(b).ok())
                .collect();
            for (key, value) in storage.export_buckets(MerkleTree::Shared, buckets).await? {
                if self.travels(&key) {
                    index.insert(&key, &value);
                }
            }
            first = last + 1;
        }
        Ok(index)
    }

    /// The pairs of `buckets` that travel to this secondary.
    pub async fn bucket_pairs(
        &self,
        storage: &dyn Storage,
        tree: MerkleTree,
        buckets: Vec<u16>,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        if tree == MerkleTree::Local {
            return Ok(Vec::new());
        }
        let mut pairs = storage.export_buckets(tree, buckets).await?;
        pairs.retain(|(key, _)| self.travels(key));
        Ok(pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use strongroom_storage::{InmemStorage, Op};

    /// Denies keys under the prefixes it holds; its digest is the prefix list.
    #[derive(Default)]
    struct Deny(Mutex<Vec<String>>);

    impl PerformanceFilter for Deny {
        fn digest(&self, _: &str) -> [u8; 32] {
            Sha256::digest(self.0.lock().unwrap().join("\n")).into()
        }
        fn allows(&self, _: &str, key: &str) -> bool {
            !self.0.lock().unwrap().iter().any(|p| key.starts_with(p))
        }
        fn filters_anything(&self, _: &str) -> bool {
            !self.0.lock().unwrap().is_empty()
        }
    }

    fn put(key: &str) -> Op {
        Op::Put {
            key: key.into(),
            value: key.as_bytes().to_vec(),
        }
    }

    #[test]
    fn presented_entries_carry_only_allowed_shared_ops_and_still_chain() {
        // Why: a secondary checks continuity on presented hashes; an entry whose ops are all
        // filtered must still arrive and chain, or the stream would stall at a gap.
        let filter = Arc::new(Deny(Mutex::new(vec!["logical/u2/".into()])));
        let session = PerfSession::start(filter.clone(), "pr-1");
        let first = WalEntry::next(
            &WalPosition::default(),
            0,
            1,
            vec![put("logical/u1/a"), put("sys/token/id/t"), put("local/m/x")],
        );
        let second = WalEntry::next(&first.position(), 0, 2, vec![put("logical/u2/b")]);

        let (a, b) = (
            session.present_entry(first.clone()),
            session.present_entry(second.clone()),
        );
        filter.0.lock().unwrap().clear();
        let other = PerfSession::start(filter, "pr-1");

        assert_eq!(a.ops, vec![put("logical/u1/a")]);
        assert!(b.ops.is_empty() && !b.shared);
        assert_eq!(b.index, 2);
        assert_eq!(b.prev_hash, a.hash);
        assert_eq!(a.prev_hash, session.present(WalPosition::default()).hash);
        assert_ne!(a.hash, first.hash);
        assert_ne!(
            other.present_entry(first).hash,
            a.hash,
            "digest changes hashes"
        );
    }

    #[tokio::test]
    async fn resume_and_stream_positions_map_back_to_ours() {
        // Why: the cursor must be our own position, found from what the secondary presents;
        // a position presented under another digest must not resume.
        let storage = InmemStorage::new();
        for key in ["logical/a", "logical/b", "logical/c"] {
            storage.write(vec![put(key)]).await.unwrap();
        }
        let filter = Arc::new(Deny::default());
        let mut session = PerfSession::start(filter.clone(), "pr-1");
        let ours = storage.wal_position_at(2).await.unwrap().unwrap();
        let tip = storage.replication_status().position();

        let resumed = session.resume(&storage, session.present(ours)).await;
        let from_tip = session.ours(&storage, tip, session.present(tip)).await;
        let fresh = session.resume(&storage, WalPosition::default()).await;
        filter.0.lock().unwrap().push("logical/x".into());
        let mut changed = PerfSession::start(filter, "pr-1");
        let stale = changed.resume(&storage, session.present(ours)).await;
        let unknown = changed.ours(&storage, tip, session.present(ours)).await;

        assert!(resumed.unwrap());
        assert_eq!(session.resume_from, Some(ours));
        assert_eq!(from_tip.unwrap(), Some(tip));
        assert!(!fresh.unwrap());
        assert!(session.filter_changed());
        assert!(!stale.unwrap());
        assert_eq!(unknown.unwrap(), None);
    }

    #[tokio::test]
    async fn the_merkle_view_holds_exactly_the_allowed_shared_keys() {
        // Why: the secondary diffs its storage against this view; a denied key in it would be
        // fetched, one missing would be deleted from the secondary.
        let primary = InmemStorage::new();
        primary
            .write(vec![
                put("logical/u1/a"),
                put("logical/u2/b"),
                put("sys/token/id/t"),
            ])
            .await
            .unwrap();
        let expected = InmemStorage::new();
        expected.write(vec![put("logical/u1/a")]).await.unwrap();
        let filter = Arc::new(Deny(Mutex::new(vec!["logical/u2/".into()])));
        let mut session = PerfSession::start(filter, "pr-1");

        let top = session
            .page_hashes(&primary, MerkleTree::Shared, None)
            .await
            .unwrap();
        let local = session
            .page_hashes(&primary, MerkleTree::Local, None)
            .await
            .unwrap();
        let all: Vec<u16> = (0..=u16::MAX).collect();
        let pairs = session
            .bucket_pairs(&primary, MerkleTree::Shared, all.clone())
            .await
            .unwrap();
        let local_pairs = session
            .bucket_pairs(&primary, MerkleTree::Local, all)
            .await
            .unwrap();

        assert_eq!(top, expected.merkle_hashes(MerkleTree::Shared, None));
        assert_eq!(local, empty_tree_hashes(None));
        assert_eq!(
            pairs.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            vec!["logical/u1/a"]
        );
        assert!(local_pairs.is_empty());
    }
}

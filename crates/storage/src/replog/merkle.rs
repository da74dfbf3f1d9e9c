//! The merkle index over replicated keys: two fixed-shape trees (shared, local).
//!
//! Buckets are summed, not hashed in order: a bucket sum is the 256-bit wrapping sum of its
//! leaves, so a write adds or subtracts one leaf (O(1), no sorted key list) and the same data
//! yields the same root in any write order. Pages (256 buckets) and roots are hashed lazily
//! when asked for, so the apply path only ever touches one bucket per op.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keyspace::{KeyClass, classify};

const BUCKETS: usize = 1 << 16;
const PAGES: usize = 256;
const PER_PAGE: usize = 256;

/// Which of the two trees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MerkleTree {
    /// Keys replicated to DR and performance secondaries.
    Shared,
    /// Keys replicated to DR secondaries only.
    Local,
}

impl MerkleTree {
    /// The tree a key is indexed in; `None` for cluster-local keys.
    pub fn of_key(key: &str) -> Option<MerkleTree> {
        match classify(key) {
            KeyClass::ClusterLocal => None,
            KeyClass::ReplicatedLocal => Some(MerkleTree::Local),
            KeyClass::ReplicatedShared => Some(MerkleTree::Shared),
        }
    }

    fn slot(self) -> usize {
        match self {
            MerkleTree::Shared => 0,
            MerkleTree::Local => 1,
        }
    }
}

/// The bucket of a key: the first two bytes of SHA256(key), big-endian.
pub fn bucket_of(key: &str) -> u16 {
    let d = Sha256::digest(key.as_bytes());
    u16::from_be_bytes([d[0], d[1]])
}

/// The leaf of a pair: SHA256(key || 0x00 || SHA256(value)).
pub fn leaf_hash(key: &str, value: &[u8]) -> [u8; 32] {
    let value_hash = Sha256::digest(value);
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update([0u8]);
    h.update(value_hash);
    h.finalize().into()
}

/// A leaf to add to or remove from a bucket, computed outside any lock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeafDelta {
    pub tree: MerkleTree,
    pub bucket: u16,
    pub leaf: [u8; 32],
    pub add: bool,
}

impl LeafDelta {
    /// The delta for a pair, or `None` for a cluster-local key.
    pub fn of(key: &str, value: &[u8], add: bool) -> Option<Self> {
        MerkleTree::of_key(key).map(|tree| LeafDelta {
            tree,
            bucket: bucket_of(key),
            leaf: leaf_hash(key, value),
            add,
        })
    }
}

struct Tree {
    sums: Vec<[u8; 32]>,
    pages: Vec<[u8; 32]>,
    dirty: Vec<bool>,
}

impl Tree {
    fn new() -> Self {
        Tree {
            sums: vec![[0u8; 32]; BUCKETS],
            pages: vec![[0u8; 32]; PAGES],
            dirty: vec![true; PAGES],
        }
    }

    fn refresh(&mut self) {
        for page in 0..PAGES {
            if self.dirty[page] {
                let mut h = Sha256::new();
                for sum in &self.sums[page * PER_PAGE..(page + 1) * PER_PAGE] {
                    h.update(sum);
                }
                self.pages[page] = h.finalize().into();
                self.dirty[page] = false;
            }
        }
    }

    fn root(&mut self) -> [u8; 32] {
        self.refresh();
        let mut h = Sha256::new();
        for page in &self.pages {
            h.update(page);
        }
        h.finalize().into()
    }
}

/// Both trees' bucket sums, with page hashes cached until a bucket below them changes.
pub(crate) struct MerkleIndex {
    trees: [Tree; 2],
}

impl MerkleIndex {
    pub fn new() -> Self {
        MerkleIndex {
            trees: [Tree::new(), Tree::new()],
        }
    }

    /// Builds the index of a full set of pairs (cluster-local keys are skipped).
    pub fn from_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a [u8])>) -> Self {
        let mut index = MerkleIndex::new();
        for (k, v) in pairs {
            index.insert(k, v);
        }
        index
    }

    /// Adds one stored pair (a no-op for cluster-local keys); used while scanning.
    pub fn insert(&mut self, key: &str, value: &[u8]) {
        if let Some(d) = LeafDelta::of(key, value, true) {
            self.apply(&d);
        }
    }

    pub fn apply(&mut self, d: &LeafDelta) {
        let tree = &mut self.trees[d.tree.slot()];
        let sum = &mut tree.sums[usize::from(d.bucket)];
        if d.add {
            add256(sum, &d.leaf);
        } else {
            sub256(sum, &d.leaf);
        }
        tree.dirty[usize::from(d.bucket >> 8)] = true;
    }

    /// `None`: the 256 page hashes; `Some(p)`: the 256 bucket sums of page `p`.
    pub fn hashes(&mut self, tree: MerkleTree, page: Option<u8>) -> Vec<[u8; 32]> {
        let t = &mut self.trees[tree.slot()];
        match page {
            None => {
                t.refresh();
                t.pages.clone()
            }
            Some(p) => {
                let start = usize::from(p) * PER_PAGE;
                t.sums[start..start + PER_PAGE].to_vec()
            }
        }
    }

    /// The root of one tree.
    pub fn root(&mut self, tree: MerkleTree) -> [u8; 32] {
        self.trees[tree.slot()].root()
    }

    /// 40 hex characters: the first 20 bytes of SHA256(shared root || local root).
    pub fn combined_root(&mut self) -> String {
        let mut h = Sha256::new();
        h.update(self.root(MerkleTree::Shared));
        h.update(self.root(MerkleTree::Local));
        let digest = h.finalize();
        hex::encode(&digest[..20])
    }
}

/// A merkle index over pairs held outside storage, e.g. a performance primary's view of its
/// shared keys through one secondary's path filter. Its hashes are exactly what
/// [`crate::Storage::merkle_hashes`] answers for a keyspace holding the same pairs, so a
/// secondary can diff its storage against it.
pub struct PairIndex(MerkleIndex);

impl Default for PairIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for PairIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairIndex")
    }
}

impl PairIndex {
    /// An index of no pairs.
    pub fn new() -> Self {
        PairIndex(MerkleIndex::new())
    }

    /// The index of these pairs (cluster-local keys are skipped, as storage skips them).
    pub fn from_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a [u8])>) -> Self {
        PairIndex(MerkleIndex::from_pairs(pairs))
    }

    /// Adds one pair to the tree of its key's class.
    pub fn insert(&mut self, key: &str, value: &[u8]) {
        self.0.insert(key, value);
    }

    /// As [`crate::Storage::merkle_hashes`]: `None`, the 256 page hashes of `tree`;
    /// `Some(p)`, the 256 bucket sums of page `p`.
    pub fn hashes(&mut self, tree: MerkleTree, page: Option<u8>) -> Vec<[u8; 32]> {
        self.0.hashes(tree, page)
    }
}

/// What [`crate::Storage::merkle_hashes`] answers for a tree that holds no key.
pub fn empty_tree_hashes(page: Option<u8>) -> Vec<[u8; 32]> {
    match page {
        Some(_) => vec![[0u8; 32]; PER_PAGE],
        None => {
            let mut h = Sha256::new();
            for _ in 0..PER_PAGE {
                h.update([0u8; 32]);
            }
            vec![h.finalize().into(); PAGES]
        }
    }
}

/// `a += b` modulo 2^256, big-endian.
fn add256(a: &mut [u8; 32], b: &[u8; 32]) {
    let mut carry = 0u16;
    for i in (0..32).rev() {
        let s = u16::from(a[i]) + u16::from(b[i]) + carry;
        a[i] = (s & 0xff) as u8;
        carry = s >> 8;
    }
}

/// `a -= b` modulo 2^256, big-endian.
fn sub256(a: &mut [u8; 32], b: &[u8; 32]) {
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        if d < 0 {
            d += 256;
            borrow = 1;
        } else {
            borrow = 0;
        }
        a[i] = d as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_then_sub_restores_the_sum_with_carries() {
        // Why: a delete must cancel its put exactly, including across byte carries.
        let mut a = [0xffu8; 32];
        let b = {
            let mut b = [0u8; 32];
            b[31] = 1;
            b[0] = 0x80;
            b
        };
        let orig = a;
        add256(&mut a, &b);
        assert_ne!(a, orig);
        sub256(&mut a, &b);
        assert_eq!(a, orig);
    }

    #[test]
    fn put_and_delete_cancel_in_the_root() {
        // Why: a deleted key must leave no trace, or two clusters with equal data disagree.
        let mut m = MerkleIndex::new();
        let empty = m.combined_root();
        let add = LeafDelta::of("logical/a", b"v", true).unwrap();
        m.apply(&add);
        let with = m.combined_root();
        m.apply(&LeafDelta { add: false, ..add });
        assert_ne!(with, empty);
        assert_eq!(m.combined_root(), empty);
        assert_eq!(empty.len(), 40);
    }

    #[test]
    fn a_pair_index_hashes_like_the_storage_index() {
        // Why: a performance primary diffs a secondary against a filtered PairIndex; its
        // hashes must equal the storage index of the same pairs, and empty trees must agree.
        let pairs = [("logical/a", &b"1"[..]), ("sys/token/x", &b"2"[..])];
        let mut storage = MerkleIndex::from_pairs(pairs.iter().copied());
        let mut view = PairIndex::from_pairs(pairs.iter().copied());
        for tree in [MerkleTree::Shared, MerkleTree::Local] {
            assert_eq!(view.hashes(tree, None), storage.hashes(tree, None));
            assert_eq!(view.hashes(tree, Some(7)), storage.hashes(tree, Some(7)));
        }
        let mut empty = MerkleIndex::new();
        assert_eq!(
            empty_tree_hashes(None),
            empty.hashes(MerkleTree::Local, None)
        );
        assert_eq!(
            empty_tree_hashes(Some(3)),
            empty.hashes(MerkleTree::Shared, Some(3))
        );
        assert_ne!(
            empty_tree_hashes(None),
            view.hashes(MerkleTree::Shared, None)
        );
    }

    #[test]
    fn cluster_local_keys_are_not_indexed() {
        // Why: cluster-local keys differ between primary and secondary by design.
        assert!(LeafDelta::of("core/replication/wal-meta", b"x", true).is_none());
        assert_eq!(
            MerkleTree::of_key("sys/token/id/x"),
            Some(MerkleTree::Local)
        );
        assert_eq!(MerkleTree::of_key("core/mounts"), Some(MerkleTree::Shared));
    }
}

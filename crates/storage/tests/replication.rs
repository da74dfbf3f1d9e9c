//! The replication log and merkle index through the public `Storage` trait, on both backends.
//!
//! Every scenario is written once against `&dyn Storage` and run on memory and on Raft, so
//! the two backends cannot drift apart in what a primary ships or a secondary accepts.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use strongroom_storage::replog::{WAL_META_KEY, bucket_of, wal_entry_key};
use strongroom_storage::{
    InmemStorage, MerkleTree, Op, RaftOptions, RaftStorage, RaftTuning, ReplCommand, Storage,
    StorageError, WalEntry, WalPosition, WalRead,
};

fn put(key: &str, value: &[u8]) -> Op {
    Op::Put {
        key: key.into(),
        value: value.to_vec(),
    }
}

fn del(key: &str) -> Op {
    Op::Delete { key: key.into() }
}

fn options(dir: &Path) -> RaftOptions {
    RaftOptions {
        path: dir.to_path_buf(),
        node_id: "node1".into(),
        cluster_addr: "127.0.0.1:8201".into(),
        dialer: None,
    }
}

/// A backend under test; keeps a Raft directory alive until the scenario ends.
enum Backend {
    Mem(Arc<InmemStorage>),
    Raft(Arc<RaftStorage>, tempfile::TempDir),
}

impl Backend {
    async fn new(raft: bool) -> Backend {
        Self::with_tuning(raft, RaftTuning::default()).await
    }

    async fn with_tuning(raft: bool, tuning: RaftTuning) -> Backend {
        if raft {
            let dir = tempfile::tempdir().unwrap();
            let s = RaftStorage::open_single_with(options(dir.path()), tuning)
                .await
                .unwrap();
            Backend::Raft(s, dir)
        } else {
            Backend::Mem(Arc::new(InmemStorage::new()))
        }
    }

    fn s(&self) -> &dyn Storage {
        match self {
            Backend::Mem(s) => s.as_ref(),
            Backend::Raft(s, _) => s.as_ref(),
        }
    }

    async fn close(self) {
        if let Backend::Raft(s, dir) = self {
            s.shutdown().await.unwrap();
            drop(s);
            drop(dir);
        }
    }
}

/// Generates one test per backend for a scenario taking `(primary, secondary)` storages.
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn inmem() {
                super::run(false, super::$name).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn raft() {
                super::run(true, super::$name).await;
            }
        }
    };
}

async fn run<F>(raft: bool, scenario: F)
where
    F: AsyncFnOnce(&dyn Storage, &dyn Storage),
{
    let a = Backend::new(raft).await;
    let b = Backend::new(raft).await;
    scenario(a.s(), b.s()).await;
    a.close().await;
    b.close().await;
}

/// Every retained entry, read from the very start of the chain.
async fn all_entries(s: &dyn Storage) -> Vec<WalEntry> {
    match s
        .wal_read(WalPosition::default(), usize::MAX, usize::MAX)
        .await
        .unwrap()
    {
        WalRead::Entries(e) => e,
        WalRead::Gone => panic!("the start of the chain is not retained"),
    }
}

async fn entries_after(s: &dyn Storage, pos: WalPosition) -> WalRead {
    s.wal_read(pos, usize::MAX, usize::MAX).await.unwrap()
}

// ---------------------------------------------------------------------------------------------

on_both_backends!(merkle_root_ignores_write_order);
async fn merkle_root_ignores_write_order(a: &dyn Storage, b: &dyn Storage) {
    // Why: primary and secondary reach the same data by different paths; equal data must give
    // equal roots or every comparison would trigger a needless resync.
    let empty = a.replication_status().merkle_root;
    a.write(vec![put("logical/1", b"x"), put("sys/token/id/t", b"tok")])
        .await
        .unwrap();
    a.write(vec![put("logical/2", b"y")]).await.unwrap();
    a.write(vec![put("logical/1", b"x2"), put("logical/tmp", b"z")])
        .await
        .unwrap();
    a.delete("logical/tmp").await.unwrap();
    b.write(vec![put("logical/2", b"y"), put("logical/1", b"x2")])
        .await
        .unwrap();
    b.write(vec![
        put("sys/token/id/t", b"tok"),
        put("core/cluster/local/id", b"b"),
    ])
    .await
    .unwrap();

    let (ra, rb) = (a.replication_status(), b.replication_status());

    assert_eq!(ra.merkle_root, rb.merkle_root);
    assert_ne!(ra.merkle_root, empty);
    assert_eq!(ra.merkle_root.len(), 40);
    for tree in [MerkleTree::Shared, MerkleTree::Local] {
        assert_eq!(a.merkle_hashes(tree, None), b.merkle_hashes(tree, None));
    }
    assert_ne!(ra.last_wal, rb.last_wal, "different histories, same data");
}

on_both_backends!(wal_entries_carry_only_replicated_ops);
async fn wal_entries_carry_only_replicated_ops(a: &dyn Storage, _b: &dyn Storage) {
    // Why: cluster-local keys (identity, replication state) must never reach a secondary.
    a.write(vec![
        put("core/cluster/local/info", b"local"),
        put("logical/k", b"v"),
        put("sys/token/id/t", b"tok"),
        del("core/replication/dr/state"),
    ])
    .await
    .unwrap();
    a.write(vec![put("core/cluster/local/only", b"x")])
        .await
        .unwrap();

    let entries = all_entries(a).await;
    let status = a.replication_status();

    assert_eq!(
        entries.len(),
        1,
        "a cluster-local-only batch creates no entry"
    );
    let e = &entries[0];
    assert_eq!(
        e.ops,
        vec![put("logical/k", b"v"), put("sys/token/id/t", b"tok")]
    );
    assert_eq!((e.index, e.epoch, e.prev_hash), (1, 0, [0u8; 32]));
    assert!(e.shared);
    assert!(e.hash_is_valid());
    assert_eq!(status.position(), e.position());
    assert_eq!((status.last_wal, status.last_performance_wal), (1, 1));
    assert_eq!((status.first_retained, status.retained_entries), (1, 1));
    assert!(status.retained_bytes > 0);
    a.write(vec![put("sys/token/id/u", b"tok")]).await.unwrap();
    let local_only = &all_entries(a).await[1];
    assert!(!local_only.shared);
    assert_eq!(local_only.prev_hash, e.hash);
    assert_eq!(a.replication_status().last_performance_wal, 1);
}

on_both_backends!(wal_keys_are_reserved_and_hidden);
async fn wal_keys_are_reserved_and_hidden(a: &dyn Storage, _b: &dyn Storage) {
    // Why: a caller writing the log's bookkeeping could forge or erase replication history.
    a.put("logical/x", b"1".to_vec()).await.unwrap();

    let forged = a.put(WAL_META_KEY, b"{}".to_vec()).await;
    let forged_entry = a.delete(&wal_entry_key(1)).await;
    let listing = a.list("core/replication/").await.unwrap();
    let everything = a.scan("", None, 100).await.unwrap();
    let exported = a.export(usize::MAX).await.unwrap();

    assert!(
        matches!(forged, Err(StorageError::Rejected(_))),
        "{forged:?}"
    );
    assert!(matches!(forged_entry, Err(StorageError::Rejected(_))));
    assert!(listing.is_empty(), "{listing:?}");
    assert_eq!(everything, vec![("logical/x".into(), b"1".to_vec())]);
    assert_eq!(exported, everything);
    assert_eq!(a.get(WAL_META_KEY).await.unwrap(), None);
    assert_eq!(all_entries(a).await.len(), 1);
}

on_both_backends!(retention_trims_by_count_and_bytes);
async fn retention_trims_by_count_and_bytes(a: &dyn Storage, _b: &dyn Storage) {
    // Why: the retained log must stay bounded, and its counters must match what is kept.
    for i in 0..5u8 {
        a.put(&format!("logical/{i}"), vec![i; 10]).await.unwrap();
    }
    let history = all_entries(a).await;

    a.set_wal_retention(3, u64::MAX);
    a.put("logical/5", vec![5; 10]).await.unwrap();
    let by_count = a.replication_status();
    let one_size = by_count.retained_bytes / 3;
    a.set_wal_retention(100, one_size * 2);
    a.put("logical/6", vec![6; 10]).await.unwrap();
    let by_bytes = a.replication_status();

    assert_eq!(
        (
            by_count.last_wal,
            by_count.first_retained,
            by_count.retained_entries
        ),
        (6, 4, 3)
    );
    assert_eq!(by_count.retained_bytes % 3, 0, "equal-sized entries");
    assert_eq!(
        (
            by_bytes.first_retained,
            by_bytes.retained_entries,
            by_bytes.retained_bytes
        ),
        (6, 2, one_size * 2)
    );
    assert_eq!(
        entries_after(a, WalPosition::default()).await,
        WalRead::Gone
    );
    assert_eq!(entries_after(a, history[3].position()).await, WalRead::Gone);
    let WalRead::Entries(kept) = entries_after(a, history[4].position()).await else {
        panic!("the predecessor of the first retained entry must be resumable");
    };
    assert_eq!(kept.iter().map(|e| e.index).collect::<Vec<_>>(), vec![6, 7]);
}

on_both_backends!(wal_read_resumes_only_from_our_chain);
async fn wal_read_resumes_only_from_our_chain(a: &dyn Storage, _b: &dyn Storage) {
    // Why: streaming from a position that is not ours would silently skip or fork history.
    for i in 0..4u8 {
        a.put(&format!("logical/{i}"), vec![i]).await.unwrap();
    }
    let history = all_entries(a).await;
    let tip = a.replication_status().position();

    let from_two = entries_after(a, history[1].position()).await;
    let paged = a
        .wal_read(WalPosition::default(), 2, usize::MAX)
        .await
        .unwrap();
    let tiny = a.wal_read(WalPosition::default(), 10, 1).await.unwrap();
    let at_tip = entries_after(a, tip).await;
    let forked = WalPosition {
        hash: [7u8; 32],
        ..history[1].position()
    };
    let wrong_tip = WalPosition {
        hash: [7u8; 32],
        ..tip
    };
    let future = WalPosition { index: 9, ..tip };

    assert_eq!(from_two, WalRead::Entries(history[2..].to_vec()));
    assert_eq!(paged, WalRead::Entries(history[..2].to_vec()));
    assert_eq!(
        tiny,
        WalRead::Entries(history[..1].to_vec()),
        "one entry despite max_bytes"
    );
    assert_eq!(at_tip, WalRead::Entries(vec![]));
    assert_eq!(entries_after(a, forked).await, WalRead::Gone);
    assert_eq!(entries_after(a, wrong_tip).await, WalRead::Gone);
    assert_eq!(entries_after(a, future).await, WalRead::Gone);
}

on_both_backends!(wal_position_at_answers_retained_entries_and_the_tip);
async fn wal_position_at_answers_retained_entries_and_the_tip(a: &dyn Storage, _b: &dyn Storage) {
    // Why: a performance primary checks a secondary's resume position with it; a position it
    // no longer holds, or one in the middle of a sync, must never be taken for ours.
    for i in 0..5u8 {
        a.put(&format!("logical/{i}"), vec![i]).await.unwrap();
    }
    let history = all_entries(a).await;
    a.set_wal_retention(3, u64::MAX);
    a.put("logical/5", vec![5]).await.unwrap();
    let tip = a.replication_status().position();

    let retained = a.wal_position_at(4).await.unwrap();
    let trimmed = a.wal_position_at(2).await.unwrap();
    let at_tip = a.wal_position_at(tip.index).await.unwrap();
    let future = a.wal_position_at(tip.index + 1).await.unwrap();
    let zero = a.wal_position_at(0).await.unwrap();
    a.apply_replication(ReplCommand::SyncOps(vec![put("logical/x", b"x")]))
        .await
        .unwrap();
    let mid_sync = a
        .wal_position_at(a.replication_status().last_wal)
        .await
        .unwrap();

    assert_eq!(retained, Some(history[3].position()));
    assert_eq!(trimmed, None, "entry 2 was trimmed");
    assert_eq!(at_tip, Some(tip));
    assert_eq!(future, None);
    assert_eq!(zero, None);
    assert_eq!(mid_sync, None);
}

on_both_backends!(wal_watch_follows_last_wal);
async fn wal_watch_follows_last_wal(a: &dyn Storage, _b: &dyn Storage) {
    // Why: the shipper sleeps on this channel; a missed bump stalls every secondary.
    let mut rx = a.wal_watch();
    assert_eq!(*rx.borrow_and_update(), 0);

    a.put("logical/a", b"1".to_vec()).await.unwrap();

    assert!(rx.has_changed().unwrap());
    assert_eq!(*rx.borrow_and_update(), 1);
    a.put("core/cluster/local/x", b"1".to_vec()).await.unwrap();
    assert!(!rx.has_changed().unwrap(), "no WAL entry, no wake-up");
}

on_both_backends!(commit_times_of_recent_entries_are_remembered);
async fn commit_times_of_recent_entries_are_remembered(a: &dyn Storage, _b: &dyn Storage) {
    // Why: secondaries measure lag from these; an entry must map to its own commit, and an
    // index this node never committed must map to nothing rather than to a neighbour's time.
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    a.put("logical/a", b"1".to_vec()).await.unwrap();
    a.write(vec![put("logical/b", b"2"), put("logical/c", b"3")])
        .await
        .unwrap();

    let first = a.wal_committed_at(1);
    let second = a.wal_committed_at(2);

    assert!(first.is_some_and(|t| t >= before), "{first:?}");
    assert!(second >= first, "{second:?} < {first:?}");
    assert_eq!(a.wal_committed_at(0), None);
    assert_eq!(a.wal_committed_at(3), None, "no entry 3 was committed");

    // A wipe starts another chain: the old times must not answer for its entries.
    a.apply_replication(ReplCommand::WipeReplicated)
        .await
        .unwrap();
    assert_eq!(a.wal_committed_at(1), None, "a time survived the wipe");
}

on_both_backends!(apply_remote_follows_the_chain);
async fn apply_remote_follows_the_chain(primary: &dyn Storage, secondary: &dyn Storage) {
    // Why: a secondary must hold exactly the primary's history, refuse forks and gaps, and
    // treat redelivery after a reconnect as harmless.
    primary
        .write(vec![put("logical/a", b"1"), put("sys/token/id/t", b"t")])
        .await
        .unwrap();
    primary.write(vec![put("logical/b", b"2")]).await.unwrap();
    primary.write(vec![del("logical/a")]).await.unwrap();
    let entries = all_entries(primary).await;

    let gap = secondary
        .apply_replication(ReplCommand::ApplyRemote(entries[1].clone()))
        .await;
    for e in &entries[..2] {
        secondary
            .apply_replication(ReplCommand::ApplyRemote(e.clone()))
            .await
            .unwrap();
    }
    let duplicate = secondary
        .apply_replication(ReplCommand::ApplyRemote(entries[0].clone()))
        .await;
    let mut forked = entries[2].clone();
    forked.prev_hash = [9u8; 32];
    let wrong_prev = secondary
        .apply_replication(ReplCommand::ApplyRemote(forked))
        .await;
    let mut tampered = entries[2].clone();
    tampered.ops = vec![del("logical/b")];
    let bad_hash = secondary
        .apply_replication(ReplCommand::ApplyRemote(tampered))
        .await;
    let mut sneaky = WalEntry::next(
        &entries[1].position(),
        0,
        0,
        vec![put("core/replication/x", b"")],
    );
    sneaky.shared = true;
    let cluster_local = secondary
        .apply_replication(ReplCommand::ApplyRemote(sneaky))
        .await;
    let mut conflicting = entries[0].clone();
    conflicting.hash = [1u8; 32];
    let conflicting_dup = secondary
        .apply_replication(ReplCommand::ApplyRemote(conflicting))
        .await;
    secondary
        .apply_replication(ReplCommand::ApplyRemote(entries[2].clone()))
        .await
        .unwrap();

    assert!(matches!(gap, Err(StorageError::Diverged(_))), "{gap:?}");
    assert!(duplicate.is_ok(), "{duplicate:?}");
    assert!(
        matches!(wrong_prev, Err(StorageError::Diverged(_))),
        "{wrong_prev:?}"
    );
    assert!(
        matches!(bad_hash, Err(StorageError::Rejected(_))),
        "{bad_hash:?}"
    );
    assert!(
        matches!(cluster_local, Err(StorageError::Rejected(_))),
        "{cluster_local:?}"
    );
    assert!(matches!(conflicting_dup, Err(StorageError::Diverged(_))));
    let (p, s) = (primary.replication_status(), secondary.replication_status());
    assert_eq!(s.position(), p.position());
    assert_eq!(s.merkle_root, p.merkle_root);
    assert_eq!(s.last_remote_wal, 3);
    assert_eq!(s.last_performance_wal, p.last_performance_wal);
    assert_eq!(all_entries(secondary).await, entries, "stored verbatim");
    assert_eq!(secondary.get("logical/a").await.unwrap(), None);
    assert_eq!(
        secondary.get("sys/token/id/t").await.unwrap(),
        Some(b"t".to_vec())
    );
}

on_both_backends!(sync_ops_then_set_position_resumes_streaming);
async fn sync_ops_then_set_position_resumes_streaming(
    primary: &dyn Storage,
    secondary: &dyn Storage,
) {
    // Why: merkle sync repairs data without inventing WAL history, then streaming must
    // continue from the primary's sync point.
    primary
        .write(vec![put("logical/a", b"1"), put("sys/token/id/t", b"t")])
        .await
        .unwrap();
    primary.write(vec![put("logical/b", b"2")]).await.unwrap();
    secondary
        .put("logical/stale", b"old".to_vec())
        .await
        .unwrap();
    let sync_point = primary.replication_status().position();

    secondary
        .apply_replication(ReplCommand::SyncOps(vec![
            put("logical/a", b"1"),
            put("logical/b", b"2"),
            put("sys/token/id/t", b"t"),
            del("logical/stale"),
        ]))
        .await
        .unwrap();
    let after_sync = secondary.replication_status();
    let resume_mid_sync = secondary
        .wal_read(after_sync.position(), 10, 1 << 20)
        .await
        .unwrap();
    secondary
        .apply_replication(ReplCommand::SetPosition(sync_point))
        .await
        .unwrap();
    let positioned = secondary.replication_status();
    primary.put("logical/c", b"3".to_vec()).await.unwrap();
    let WalRead::Entries(next) = entries_after(primary, sync_point).await else {
        panic!("the sync point is retained on the primary");
    };
    for e in next {
        secondary
            .apply_replication(ReplCommand::ApplyRemote(e))
            .await
            .unwrap();
    }
    let bad_sync = secondary
        .apply_replication(ReplCommand::SyncOps(vec![put("core/cluster/local/x", b"")]))
        .await;

    assert_eq!(after_sync.last_wal, 1, "sync ops create no WAL entry");
    // Why: mid-sync, our own entries no longer describe the data; nothing may resume from them.
    assert_eq!(after_sync.retained_entries, 0);
    assert_eq!(
        after_sync.last_hash,
        strongroom_storage::replog::SYNC_IN_PROGRESS,
        "a half-synced position cannot be resumed from"
    );
    assert!(
        matches!(resume_mid_sync, WalRead::Gone),
        "nobody streams from a mid-sync position"
    );
    assert_eq!(positioned.position(), sync_point);
    assert_eq!(positioned.retained_entries, 0);
    assert_eq!(positioned.first_retained, sync_point.index + 1);
    assert_eq!(positioned.last_remote_wal, sync_point.index);
    let (p, s) = (primary.replication_status(), secondary.replication_status());
    assert_eq!(s.position(), p.position());
    assert_eq!(s.merkle_root, p.merkle_root);
    assert!(
        matches!(bad_sync, Err(StorageError::Rejected(_))),
        "{bad_sync:?}"
    );
}

on_both_backends!(wipe_replicated_keeps_cluster_local_keys);
async fn wipe_replicated_keeps_cluster_local_keys(a: &dyn Storage, _b: &dyn Storage) {
    // Why: enabling a secondary drops replicated data but must keep the cluster's identity.
    a.write(vec![
        put("core/cluster/local/info", b"me"),
        put("core/replication/dr/config", b"cfg"),
        put("logical/a", b"1"),
        put("sys/token/id/t", b"t"),
    ])
    .await
    .unwrap();
    let empty_root = InmemStorage::new().replication_status().merkle_root;

    a.apply_replication(ReplCommand::WipeReplicated)
        .await
        .unwrap();

    let left = a.scan("", None, 100).await.unwrap();
    assert_eq!(
        left,
        vec![
            ("core/cluster/local/info".into(), b"me".to_vec()),
            ("core/replication/dr/config".into(), b"cfg".to_vec()),
        ]
    );
    let s = a.replication_status();
    assert_eq!((s.last_wal, s.retained_entries, s.epoch), (0, 0, 0));
    assert_eq!(s.merkle_root, empty_root);
    assert_eq!(all_entries(a).await, vec![]);
}

on_both_backends!(bump_epoch_continues_the_chain);
async fn bump_epoch_continues_the_chain(a: &dyn Storage, _b: &dyn Storage) {
    // Why: after promotion the new primary's entries must chain onto the old history under a
    // new epoch, so a demoted old primary can resume without resync.
    a.put("logical/a", b"1".to_vec()).await.unwrap();

    a.apply_replication(ReplCommand::BumpEpoch).await.unwrap();
    a.put("logical/b", b"2".to_vec()).await.unwrap();

    let entries = all_entries(a).await;
    assert_eq!(
        entries.iter().map(|e| e.epoch).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert_eq!(entries[1].prev_hash, entries[0].hash);
    assert!(entries[1].hash_is_valid());
    assert_eq!(a.replication_status().epoch, 1);
}

on_both_backends!(export_buckets_returns_exactly_those_buckets);
async fn export_buckets_returns_exactly_those_buckets(a: &dyn Storage, _b: &dyn Storage) {
    // Why: merkle sync fetches only the differing buckets; a missing or extra key there
    // either leaves a difference or deletes a good key.
    let mut ops = Vec::new();
    for i in 0..200 {
        ops.push(put(&format!("logical/k{i}"), b"v"));
        ops.push(put(&format!("sys/token/id/{i}"), b"t"));
    }
    ops.push(put("core/cluster/local/k0", b"x"));
    a.write(ops).await.unwrap();
    let wanted: Vec<u16> = vec![
        bucket_of("logical/k1"),
        bucket_of("logical/k7"),
        bucket_of("sys/token/id/3"),
    ];

    let shared = a
        .export_buckets(MerkleTree::Shared, wanted.clone())
        .await
        .unwrap();
    let local = a
        .export_buckets(MerkleTree::Local, wanted.clone())
        .await
        .unwrap();

    let expect_shared: Vec<String> = (0..200)
        .map(|i| format!("logical/k{i}"))
        .filter(|k| wanted.contains(&bucket_of(k)))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let expect_local: Vec<String> = (0..200)
        .map(|i| format!("sys/token/id/{i}"))
        .filter(|k| wanted.contains(&bucket_of(k)))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        shared.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        expect_shared
    );
    assert_eq!(
        local.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        expect_local
    );
    assert!(expect_shared.contains(&"logical/k1".to_owned()));
    assert!(expect_local.contains(&"sys/token/id/3".to_owned()));
    assert!(shared.iter().all(|(_, v)| v == b"v"));
    let page = (bucket_of("logical/k1") >> 8) as u8;
    let sums = a.merkle_hashes(MerkleTree::Shared, Some(page));
    assert_eq!(sums.len(), 256);
    assert_ne!(sums[usize::from(bucket_of("logical/k1") & 0xff)], [0u8; 32]);
    assert_eq!(a.merkle_hashes(MerkleTree::Local, None).len(), 256);
}

on_both_backends!(replace_all_breaks_the_chain_and_reindexes);
async fn replace_all_breaks_the_chain_and_reindexes(a: &dyn Storage, b: &dyn Storage) {
    // Why: after a snapshot restore no secondary may resume streaming as if nothing happened,
    // and the merkle index must describe the restored data.
    a.put("logical/old", b"x".to_vec()).await.unwrap();
    a.put("logical/older", b"y".to_vec()).await.unwrap();
    let before = a.replication_status();
    let snapshot = vec![
        ("logical/new".to_owned(), b"1".to_vec()),
        ("sys/token/id/t".to_owned(), b"t".to_vec()),
        (wal_entry_key(1), b"foreign WAL bytes".to_vec()),
    ];
    b.write(vec![put("logical/new", b"1"), put("sys/token/id/t", b"t")])
        .await
        .unwrap();

    a.replace_all(snapshot).await.unwrap();
    a.rebuild_merkle().await.unwrap();

    let after = a.replication_status();
    assert_eq!(after.last_wal, before.last_wal + 1);
    assert_ne!(after.last_hash, before.last_hash);
    assert_eq!(after.retained_entries, 0);
    assert_eq!(after.merkle_root, b.replication_status().merkle_root);
    assert_eq!(entries_after(a, before.position()).await, WalRead::Gone);
    assert_eq!(a.scan("", None, 10).await.unwrap().len(), 2);
    a.put("logical/later", b"z".to_vec()).await.unwrap();
    let WalRead::Entries(next) = entries_after(a, after.position()).await else {
        panic!("the post-restore position is resumable");
    };
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].prev_hash, after.last_hash);
}

on_both_backends!(rebuild_merkle_matches_incremental_index);
async fn rebuild_merkle_matches_incremental_index(a: &dyn Storage, _b: &dyn Storage) {
    // Why: reindex must agree with the incrementally kept index, or it would "repair" a tree
    // that was right.
    for i in 0..50 {
        a.put(&format!("logical/{i}"), vec![i as u8; i])
            .await
            .unwrap();
    }
    for i in 0..50 {
        if i % 3 == 0 {
            a.delete(&format!("logical/{i}")).await.unwrap();
        }
    }
    let incremental = a.replication_status().merkle_root;

    a.rebuild_merkle().await.unwrap();

    assert_eq!(a.replication_status().merkle_root, incremental);
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_produce_identical_chains() {
    // Why: a secondary on Raft must accept a primary on memory and the reverse.
    let mem = Backend::new(false).await;
    let raft = Backend::new(true).await;
    for s in [mem.s(), raft.s()] {
        s.write(vec![
            put("logical/a", b"1"),
            put("core/cluster/local/x", b""),
        ])
        .await
        .unwrap();
        s.write(vec![put("sys/token/id/t", b"t"), del("logical/a")])
            .await
            .unwrap();
    }

    let (m, r) = (mem.s().replication_status(), raft.s().replication_status());

    assert_eq!(m.position(), r.position());
    assert_eq!(m.merkle_root, r.merkle_root);
    let strip = |mut v: Vec<WalEntry>| {
        for e in &mut v {
            e.unix_us = 0;
        }
        v
    };
    assert_eq!(
        strip(all_entries(mem.s()).await),
        strip(all_entries(raft.s()).await)
    );
    mem.close().await;
    raft.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_wal_and_merkle_survive_reopen() {
    // Why: a primary restart must not force its secondaries into a full resync, and the
    // rebuilt merkle index must describe exactly the data on disk.
    let dir = tempfile::tempdir().unwrap();
    let s = RaftStorage::open_single(options(dir.path())).await.unwrap();
    for i in 0..5u8 {
        s.write(vec![
            put(&format!("logical/{i}"), &[i]),
            put("sys/token/id/t", &[i]),
        ])
        .await
        .unwrap();
    }
    let history = all_entries(s.as_ref()).await;
    s.set_wal_retention(3, u64::MAX);
    s.apply_replication(ReplCommand::BumpEpoch).await.unwrap();
    s.delete("logical/0").await.unwrap();
    let before = s.replication_status();
    let tail_before = entries_after(s.as_ref(), history[2].position()).await;

    s.shutdown().await.unwrap();
    drop(s);
    let s = RaftStorage::open_single(options(dir.path())).await.unwrap();

    let after = s.replication_status();
    assert_eq!(after, before);
    assert_eq!(
        (after.first_retained, after.last_wal, after.epoch),
        (4, 6, 1)
    );
    assert_eq!(
        entries_after(s.as_ref(), history[2].position()).await,
        tail_before
    );
    let same_data = InmemStorage::new();
    let pairs = s.scan("", None, 1000).await.unwrap();
    same_data
        .write(
            pairs
                .into_iter()
                .map(|(k, v)| Op::Put { key: k, value: v })
                .collect(),
        )
        .await
        .unwrap();
    assert_eq!(
        after.merkle_root,
        same_data.replication_status().merkle_root
    );
    s.put("logical/after", b"x".to_vec()).await.unwrap();
    let WalRead::Entries(next) = entries_after(s.as_ref(), after.position()).await else {
        panic!("the pre-restart tip is resumable");
    };
    assert_eq!(
        (next[0].index, next[0].epoch, next[0].prev_hash),
        (7, 1, after.last_hash)
    );
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_splits_large_sync_batches_and_limits_remote_entries() {
    // Why: merkle sync hands over pages of up to 4 MiB; Raft entries are capped far lower,
    // so the ops must be split rather than refused, while a WAL entry (atomic) cannot be.
    let tuning = RaftTuning {
        max_batch_bytes: 64,
        ..RaftTuning::default()
    };
    let b = Backend::with_tuning(true, tuning).await;
    let s = b.s();
    let ops: Vec<Op> = (0..20)
        .map(|i| put(&format!("logical/{i:02}"), &[i as u8; 20]))
        .collect();

    s.apply_replication(ReplCommand::SyncOps(ops.clone()))
        .await
        .unwrap();
    let big = WalEntry::next(&WalPosition::default(), 0, 0, ops);
    let refused = s.apply_replication(ReplCommand::ApplyRemote(big)).await;

    assert_eq!(s.scan("logical/", None, 100).await.unwrap().len(), 20);
    assert_eq!(s.replication_status().last_wal, 0);
    assert!(
        matches!(refused, Err(StorageError::TooLarge(_))),
        "{refused:?}"
    );
    b.close().await;
}

on_both_backends!(apply_remote_batch_is_all_or_nothing);
async fn apply_remote_batch_is_all_or_nothing(primary: &dyn Storage, secondary: &dyn Storage) {
    // Why: a secondary applies each streamed message in one step; a bad entry anywhere in
    // it must leave nothing applied, and redelivered entries must be skipped.
    for i in 0..4 {
        primary
            .write(vec![put(&format!("logical/k{i}"), b"v")])
            .await
            .unwrap();
    }
    let entries = all_entries(primary).await;
    let mut broken = entries.clone();
    broken[3].prev_hash = [7u8; 32];

    let refused = secondary
        .apply_replication(ReplCommand::ApplyRemoteBatch(broken))
        .await;
    let after_refusal = secondary.replication_status().last_wal;
    secondary
        .apply_replication(ReplCommand::ApplyRemoteBatch(entries[..2].to_vec()))
        .await
        .unwrap();
    secondary
        .apply_replication(ReplCommand::ApplyRemoteBatch(entries.clone()))
        .await
        .unwrap();

    assert!(
        matches!(refused, Err(StorageError::Diverged(_))),
        "{refused:?}"
    );
    assert_eq!(after_refusal, 0, "a refused batch applies nothing");
    let (p, s) = (primary.replication_status(), secondary.replication_status());
    assert_eq!((s.last_wal, s.last_hash), (p.last_wal, p.last_hash));
    assert_eq!(s.merkle_root, p.merkle_root);
    assert_eq!(s.last_remote_wal, 4);
}

on_both_backends!(wipe_then_adopts_records_in_one_step);
async fn wipe_then_adopts_records_in_one_step(a: &dyn Storage, _b: &dyn Storage) {
    // Why: enabling a secondary must never leave a wiped node without a keyring.
    a.put("logical/old", b"x".to_vec()).await.unwrap();
    a.put("core/cluster/local/id", b"me".to_vec())
        .await
        .unwrap();

    a.apply_replication(ReplCommand::WipeReplicatedThen(vec![put(
        "core/keyring",
        b"primary-keyring",
    )]))
    .await
    .unwrap();
    let refused = a
        .apply_replication(ReplCommand::WipeReplicatedThen(vec![put(
            "core/cluster/local/x",
            b"",
        )]))
        .await;

    assert_eq!(a.get("logical/old").await.unwrap(), None);
    assert_eq!(
        a.get("core/keyring").await.unwrap().as_deref(),
        Some(&b"primary-keyring"[..])
    );
    assert_eq!(
        a.get("core/cluster/local/id").await.unwrap().as_deref(),
        Some(&b"me"[..])
    );
    assert!(
        matches!(refused, Err(StorageError::Rejected(_))),
        "{refused:?}"
    );
    assert_eq!(
        a.get("core/keyring").await.unwrap().as_deref(),
        Some(&b"primary-keyring"[..]),
        "a refused command changes nothing"
    );
}

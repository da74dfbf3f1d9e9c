//! RaftStorage through the public `Storage` trait: semantics, durability, concurrency, errors.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use strongroom_storage::{
    InmemStorage, Op, RaftOptions, RaftStorage, RaftTuning, Storage, StorageError, StorageStatus,
};

fn options(dir: &Path) -> RaftOptions {
    RaftOptions {
        path: dir.to_path_buf(),
        node_id: "node1".into(),
        cluster_addr: "127.0.0.1:8201".into(),
        dialer: None,
    }
}

async fn open(dir: &Path) -> Arc<RaftStorage> {
    RaftStorage::open_single(options(dir)).await.unwrap()
}

/// Stops raft and releases the database file so the directory can be reopened.
async fn close(storage: Arc<RaftStorage>) {
    storage.shutdown().await.unwrap();
    drop(storage);
}

/// Status once the metrics caught up with the last apply (they are published asynchronously,
/// just after the writer is released).
/// The status once Raft's metrics (published asynchronously, so they can trail an
/// acknowledged write by a moment) show at least `applied` applied and nothing pending.
async fn settled_status(s: &RaftStorage, applied: u64) -> StorageStatus {
    for _ in 0..200 {
        let status = s.status();
        if status.applied_index == status.committed_index && status.applied_index >= applied {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("raft metrics never settled: {:?}", s.status());
}

fn put(key: &str, value: &[u8]) -> Op {
    Op::Put {
        key: key.into(),
        value: value.to_vec(),
    }
}

/// Runs the same ops and reads against any backend and returns what it observed, so that two
/// backends can be compared result for result.
async fn observe(s: &dyn Storage) -> Vec<String> {
    s.write(vec![
        put("a", b"1"),
        put("b/c", b"2"),
        put("b/d/e", b"3"),
        put("b/d/f", b"4"),
        put("b/x", b"5"),
        put("ba", b"6"),
        put("c/", b"7"),
    ])
    .await
    .unwrap();
    s.write(vec![
        Op::Delete { key: "a".into() },
        Op::Delete {
            key: "never-existed".into(),
        },
        put("b/x", b"5b"),
    ])
    .await
    .unwrap();
    let mut seen = Vec::new();
    for prefix in ["", "b/", "b/d/", "c/", "nothing/", "b"] {
        seen.push(format!(
            "list {prefix:?} = {:?}",
            s.list(prefix).await.unwrap()
        ));
    }
    for (prefix, after, limit) in [
        ("", None, 100),
        ("b/", None, 2),
        ("b/", Some("b/d/e"), 10),
        ("b", None, 100),
        ("b/", Some("b/x"), 10),
        ("", Some("0"), 0),
    ] {
        seen.push(format!(
            "scan {prefix:?} {after:?} {limit} = {:?}",
            s.scan(prefix, after, limit).await.unwrap()
        ));
    }
    for key in ["a", "b/x", "c/", "zzz"] {
        seen.push(format!("get {key:?} = {:?}", s.get(key).await.unwrap()));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_and_memory_backends_agree() {
    // Why: everything above storage is tested on memory; Raft must behave the same.
    let dir = tempfile::tempdir().unwrap();
    let raft = open(dir.path()).await;
    let mem = InmemStorage::new();

    let from_raft = observe(raft.as_ref()).await;
    let from_mem = observe(&mem).await;

    assert_eq!(from_raft, from_mem);
    close(raft).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_crud_and_status() {
    // Why: the basic contract (put, get, delete, list, scan) and the status other layers report.
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;

    s.put("secret/foo", b"v1".to_vec()).await.unwrap();
    s.put("secret/bar/baz", b"v2".to_vec()).await.unwrap();
    let got = s.get("secret/foo").await.unwrap();
    let listed = s.list("secret/").await.unwrap();
    s.delete("secret/foo").await.unwrap();
    let after_delete = s.get("secret/foo").await.unwrap();
    let scanned = s.scan("secret/", None, 10).await.unwrap();
    // membership, leader blank, then the three writes
    let status = settled_status(&s, 4).await;

    assert_eq!(got, Some(b"v1".to_vec()));
    assert_eq!(listed, vec!["bar/", "foo"]);
    assert_eq!(after_delete, None);
    assert_eq!(scanned, vec![("secret/bar/baz".into(), b"v2".to_vec())]);
    assert_eq!(status.storage_type, "raft");
    assert!(status.ha_enabled);
    assert!(status.is_leader);
    assert_eq!(status.node_id, "node1");
    // membership, leader blank, then the three writes
    assert_eq!(status.applied_index, 4, "{status:?}");
    assert_eq!(status.peers.len(), 1);
    assert_eq!(status.peers[0].node_id, "node1");
    assert_eq!(status.peers[0].address, "127.0.0.1:8201");
    assert!(status.peers[0].leader && status.peers[0].voter);
    close(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_close_and_reopen() {
    // Why: an acknowledged write must be on disk, and the node must lead again after restart.
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    s.put("core/keyring", b"ring".to_vec()).await.unwrap();
    s.write(vec![put("x/1", b"a"), put("x/2", b"b")])
        .await
        .unwrap();
    // membership, leader blank, then the two writes
    let applied_before = settled_status(&s, 3).await.applied_index;
    close(s).await;

    let s = open(dir.path()).await;
    let keyring = s.get("core/keyring").await.unwrap();
    let listed = s.list("x/").await.unwrap();
    s.put("x/3", b"c".to_vec()).await.unwrap();
    // leadership is restored without an election (no new blank entry): just the write
    let status = settled_status(&s, applied_before + 1).await;

    assert_eq!(keyring, Some(b"ring".to_vec()));
    assert_eq!(listed, vec!["1", "2"]);
    assert_eq!(s.get("x/3").await.unwrap(), Some(b"c".to_vec()));
    assert!(status.is_leader);
    assert!(status.applied_index > applied_before, "{status:?}");
    close(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_all_land() {
    // Why: group commit batches concurrent appends; no write may be lost or misapplied.
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;

    let mut tasks = Vec::new();
    for t in 0..64 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                s.put(&format!("c/{t:02}/{i:02}"), format!("{t}-{i}").into_bytes())
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    let all = s.scan("c/", None, 10_000).await.unwrap();
    assert_eq!(all.len(), 64 * 20);
    assert_eq!(s.get("c/63/19").await.unwrap(), Some(b"63-19".to_vec()));
    assert_eq!(s.list("c/").await.unwrap().len(), 64);
    close(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_all_swaps_the_keyspace_durably() {
    // Why: snapshot restore must drop every old key and keep the new set across restarts.
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    s.write(vec![put("old/1", b"x"), put("keep", b"old")])
        .await
        .unwrap();

    s.replace_all(vec![
        ("keep".into(), b"new".to_vec()),
        ("new/1".into(), b"y".to_vec()),
    ])
    .await
    .unwrap();
    close(s).await;
    let s = open(dir.path()).await;

    let everything = s.scan("", None, 100).await.unwrap();
    assert_eq!(
        everything,
        vec![
            ("keep".into(), b"new".to_vec()),
            ("new/1".into(), b"y".to_vec()),
        ]
    );
    close(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_entries_are_refused() {
    // Why: a huge entry would stall replication for everyone; callers need TooLarge, not a hang.
    let dir = tempfile::tempdir().unwrap();
    let tuning = RaftTuning {
        max_batch_bytes: 1024,
        max_replace_all_bytes: 2048,
        ..RaftTuning::default()
    };
    let s = RaftStorage::open_single_with(options(dir.path()), tuning)
        .await
        .unwrap();

    let batch = s.put("big", vec![0u8; 2000]).await;
    let restore = s.replace_all(vec![("big".into(), vec![0u8; 4000])]).await;
    let fits = s.replace_all(vec![("ok".into(), vec![0u8; 2000])]).await;

    assert!(matches!(batch, Err(StorageError::TooLarge(_))), "{batch:?}");
    assert!(
        matches!(restore, Err(StorageError::TooLarge(_))),
        "{restore:?}"
    );
    fits.unwrap();
    assert_eq!(s.get("big").await.unwrap(), None);
    close(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_database_file_is_a_clear_error() {
    // Why: a damaged data file must stop startup with an explanation, never panic.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("strongroom.redb"), vec![0x5a; 64 * 1024]).unwrap();

    let result = RaftStorage::open_single(options(dir.path())).await;

    match result {
        Err(StorageError::Corrupt(msg)) => assert!(msg.contains("strongroom.redb"), "{msg}"),
        Err(other) => panic!("expected Corrupt, got {other}"),
        Ok(_) => panic!("a garbage file opened as a database"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_nodes_directory_is_refused() {
    // Why: reusing a data dir under a new node_id would orphan its votes and membership.
    let dir = tempfile::tempdir().unwrap();
    close(open(dir.path()).await).await;

    let other = RaftOptions {
        node_id: "node2".into(),
        ..options(dir.path())
    };
    let result = RaftStorage::open_single(other).await;

    match result {
        Err(StorageError::Config(msg)) => assert!(msg.contains("node1"), "{msg}"),
        Err(e) => panic!("expected Config, got {e}"),
        Ok(_) => panic!("opened another node's directory"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_after_shutdown_fail_cleanly() {
    // Why: during server shutdown late requests must get an error, not hang or panic.
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    s.shutdown().await.unwrap();

    let result = s.put("k", b"v".to_vec()).await;

    assert!(
        matches!(result, Err(StorageError::NotLeader(_))),
        "{result:?}"
    );
}

//! Multi-node behaviour over the in-memory transport: real Raft, real redb, cut links.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::async_runtime::watch::WatchReceiver;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::testing::MemNetwork;
use super::*;
use crate::{Cluster, MerkleTree};

const WAIT: Duration = Duration::from_secs(10);

fn addr(i: usize) -> String {
    format!("node{i}:8201")
}

fn tuning() -> RaftTuning {
    RaftTuning {
        performance_multiplier: 2,
        ..RaftTuning::default()
    }
}

/// Opens node `i` on `dir` (retrying while a previous incarnation's tasks let go of the files).
async fn start(net: &MemNetwork, dir: &Path, i: usize, tuning: RaftTuning) -> Arc<RaftStorage> {
    let opts = RaftOptions::new(dir, format!("node{i}"), addr(i)).with_dialer(net.dialer(&addr(i)));
    let deadline = Instant::now() + WAIT;
    loop {
        match RaftStorage::open_with(opts.clone(), tuning.clone()).await {
            Ok(s) => {
                net.register(&addr(i), &s);
                return s;
            }
            Err(e) if Instant::now() < deadline && e.to_string().contains("already open") => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("opening node{i}: {e}"),
        }
    }
}

/// Stops node `i` as a crash of its process would look from the network.
async fn stop(net: &MemNetwork, s: Arc<RaftStorage>, i: usize) {
    net.unregister(&addr(i));
    s.shutdown().await.unwrap();
}

/// The node among `nodes` that leads the current term, once one does.
async fn leader_of(nodes: &[&Arc<RaftStorage>]) -> Arc<RaftStorage> {
    let deadline = Instant::now() + WAIT;
    loop {
        for n in nodes {
            if n.status().is_leader && n.leadership().borrow().is_self {
                return Arc::clone(n);
            }
        }
        assert!(Instant::now() < deadline, "no leader elected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Writes through a leader that may not hold its lease yet: a newly elected leader refuses
/// writes (`NotLeader`) until a quorum has acknowledged it, as a client would see.
async fn put_on_leader(leader: &RaftStorage, key: &str, value: &[u8]) {
    let deadline = Instant::now() + WAIT;
    loop {
        match leader.put(key, value.to_vec()).await {
            Ok(()) => return,
            Err(StorageError::NotLeader(m)) if Instant::now() < deadline => {
                tracing::debug!(%m, "retrying a write on a new leader");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("writing {key}: {e}"),
        }
    }
}

/// The index `s` has applied once it has applied all of its log (metrics publish
/// asynchronously, so a bare read could show an index older than the last write).
async fn applied_of(s: &RaftStorage) -> u64 {
    let m = s
        .raft
        .wait(Some(WAIT))
        .metrics(
            |m| m.last_applied.map(|l| l.index) == m.last_log_index,
            "everything in the log applied",
        )
        .await
        .unwrap();
    m.last_applied.map_or(0, |l| l.index)
}

/// Node 1 bootstraps, 2 and 3 join as non-voters and are promoted.
async fn three(net: &MemNetwork, dirs: &[tempfile::TempDir; 3]) -> [Arc<RaftStorage>; 3] {
    let n1 = start(net, dirs[0].path(), 1, tuning()).await;
    n1.bootstrap().await.unwrap();
    let n2 = start(net, dirs[1].path(), 2, tuning()).await;
    let n3 = start(net, dirs[2].path(), 3, tuning()).await;
    for i in [2, 3] {
        n1.add_non_voter(&format!("node{i}"), &addr(i))
            .await
            .unwrap();
    }
    for i in [2, 3] {
        n1.set_voter(&format!("node{i}"), true).await.unwrap();
    }
    [n1, n2, n3]
}

fn dirs3() -> [tempfile::TempDir; 3] {
    [(); 3].map(|_| tempfile::tempdir().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_on_the_leader_is_readable_on_every_member() {
    // Why: this is what a cluster is for; every voter must end up with the same keyspace.
    let net = MemNetwork::new();
    let dirs = dirs3();
    let [n1, n2, n3] = three(&net, &dirs).await;

    n1.put("k/1", b"one".to_vec()).await.unwrap();
    let index = applied_of(&n1).await;

    for n in [&n1, &n2, &n3] {
        n.wait_applied(index, WAIT).await.unwrap();
        assert_eq!(n.get("k/1").await.unwrap(), Some(b"one".to_vec()));
    }
    // The leader's progress metrics publish asynchronously; wait until they show the write.
    let deadline = Instant::now() + WAIT;
    let servers = loop {
        let servers = n1.servers();
        let followers_seen = servers
            .iter()
            .filter(|s| s.node_id != "node1")
            .all(|s| s.last_index >= index && s.last_contact.is_some());
        if followers_seen || Instant::now() >= deadline {
            break servers;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(servers.len(), 3);
    assert!(servers.iter().all(|s| s.voter));
    assert!(servers.iter().any(|s| s.leader && s.node_id == "node1"));
    assert!(
        servers
            .iter()
            .filter(|s| s.node_id != "node1")
            .all(|s| s.last_index >= index && s.last_contact.is_some()),
        "{servers:?}"
    );
    let refused = n2.put("k/2", b"two".to_vec()).await.unwrap_err();
    assert!(
        matches!(&refused, StorageError::NotLeader(m) if m.contains("node1")),
        "{refused}"
    );
    for (n, i) in [(n1, 1), (n2, 2), (n3, 3)] {
        stop(&net, n, i).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_leader_loses_no_acknowledged_write_and_catches_up_after_restart() {
    // Why: an acknowledged write was committed by a majority; losing the leader must not lose
    // it, and the survivors must go on taking writes.
    let net = MemNetwork::new();
    let dirs = dirs3();
    let [n1, n2, n3] = three(&net, &dirs).await;
    let writer = {
        let n1 = n1.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..10_000u32 {
                match n1.put(&format!("w/{i:05}"), i.to_be_bytes().to_vec()).await {
                    Ok(()) => acked.push(i),
                    Err(_) => break,
                }
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    stop(&net, n1, 1).await;
    let acked = writer.await.unwrap();
    let leader = leader_of(&[&n2, &n3]).await;
    put_on_leader(&leader, "after/1", b"new").await;
    let index = applied_of(&leader).await;
    let n1 = start(&net, dirs[0].path(), 1, tuning()).await;

    assert!(
        !acked.is_empty(),
        "the writer never got a write acknowledged"
    );
    for n in [&n2, &n3] {
        n.wait_applied(index, WAIT).await.unwrap();
        let stored = n.scan("w/", None, 100_000).await.unwrap();
        for i in &acked {
            let key = format!("w/{i:05}");
            assert!(
                stored.iter().any(|(k, _)| *k == key),
                "{key} lost on {}",
                n.node_id
            );
        }
    }
    n1.wait_applied(index, WAIT).await.unwrap();
    assert_eq!(n1.get("after/1").await.unwrap(), Some(b"new".to_vec()));
    for (n, i) in [(n1, 1), (n2, 2), (n3, 3)] {
        stop(&net, n, i).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partitioned_old_leader_never_applies_its_own_write() {
    // Why: Vault's merkle corruption came from a deposed leader still writing. Here a write is
    // applied only through the log committed by the current term's leader: the cut-off leader
    // cannot commit, so its state machine, WAL and merkle index stay put, and after healing it
    // holds the majority's writes and not its own.
    let net = MemNetwork::new();
    let dirs = dirs3();
    let [n1, n2, n3] = three(&net, &dirs).await;
    n1.put("before", b"b".to_vec()).await.unwrap();
    for n in [&n2, &n3] {
        n.wait_applied(applied_of(&n1).await, WAIT).await.unwrap();
    }
    let wal_before = n1.replication_status().last_wal;
    let merkle_before = (
        n1.merkle_hashes(MerkleTree::Shared, None),
        n1.merkle_hashes(MerkleTree::Local, None),
    );
    let applied_before = applied_of(&n1).await;

    net.partition(&addr(1), &[&addr(2), &addr(3)]);
    let proposed =
        tokio::time::timeout(Duration::from_secs(2), n1.put("lost", b"x".to_vec())).await;
    let new_leader = leader_of(&[&n2, &n3]).await;
    put_on_leader(&new_leader, "majority", b"m").await;
    let majority_index = applied_of(&new_leader).await;
    let state_while_cut = (
        n1.get("lost").await.unwrap(),
        n1.replication_status().last_wal,
        n1.merkle_hashes(MerkleTree::Shared, None),
        n1.merkle_hashes(MerkleTree::Local, None),
        n1.status().applied_index,
    );
    net.heal();
    n1.wait_applied(majority_index, WAIT).await.unwrap();

    assert!(
        !matches!(proposed, Ok(Ok(()))),
        "a cut-off leader committed a write"
    );
    assert_eq!(state_while_cut.0, None);
    assert_eq!(state_while_cut.1, wal_before);
    assert_eq!((state_while_cut.2, state_while_cut.3), merkle_before);
    assert_eq!(state_while_cut.4, applied_before);
    assert_eq!(n1.get("majority").await.unwrap(), Some(b"m".to_vec()));
    assert_eq!(n1.get("lost").await.unwrap(), None);
    for n in [&n2, &n3] {
        assert_eq!(n.get("lost").await.unwrap(), None);
    }
    assert!(!n1.leadership().borrow().is_self || n1.status().is_leader);
    for (n, i) in [(n1, 1), (n2, 2), (n3, 3)] {
        stop(&net, n, i).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_node_is_caught_up_by_a_streamed_snapshot() {
    // Why: once the log is purged a joining node can only get the keyspace as a snapshot; it
    // must arrive whole (several chunks here) and equal the leader's.
    let net = MemNetwork::new();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let small = RaftTuning {
        snapshot_every_entries: 20,
        logs_kept_after_snapshot: 0,
        ..tuning()
    };
    let n1 = start(&net, dirs[0].path(), 1, small.clone()).await;
    n1.bootstrap().await.unwrap();
    for i in 0..60u8 {
        n1.put(&format!("s/{i:02}"), vec![i; 40_000]).await.unwrap();
    }
    n1.raft
        .wait(Some(WAIT))
        .metrics(|m| m.purged.is_some(), "a purged log")
        .await
        .unwrap();

    let n2 = start(&net, dirs[1].path(), 2, small).await;
    n1.add_non_voter("node2", &addr(2)).await.unwrap();
    n2.wait_applied(applied_of(&n1).await, WAIT).await.unwrap();

    let received = n2.raft.metrics().borrow_watched().snapshot;
    assert!(received.is_some(), "node2 was not sent a snapshot");
    assert_eq!(
        n2.scan("", None, 10_000).await.unwrap(),
        n1.scan("", None, 10_000).await.unwrap()
    );
    assert_eq!(
        n2.merkle_hashes(MerkleTree::Shared, None),
        n1.merkle_hashes(MerkleTree::Shared, None)
    );
    let leftovers: Vec<_> = std::fs::read_dir(dirs[1].path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "staged snapshot files left behind");
    stop(&net, n1, 1).await;
    stop(&net, n2, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_removed_node_knows_it_also_after_a_restart() {
    // Why: a removed node must seal and stop serving; after a restart nothing in its own log
    // says it was removed, so the flag must have been persisted.
    let net = MemNetwork::new();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let n1 = start(&net, dirs[0].path(), 1, tuning()).await;
    n1.bootstrap().await.unwrap();
    let n2 = start(&net, dirs[1].path(), 2, tuning()).await;
    n1.add_non_voter("node2", &addr(2)).await.unwrap();
    n1.set_voter("node2", true).await.unwrap();
    let mut watch = n2.leadership();

    n1.remove("node2").await.unwrap();
    tokio::time::timeout(WAIT, watch.wait_for(|l| l.removed))
        .await
        .unwrap()
        .unwrap();
    stop(&net, n2, 2).await;
    let n2 = start(&net, dirs[1].path(), 2, tuning()).await;

    assert!(n2.leadership().borrow().removed);
    assert!(!n1.leadership().borrow().removed);
    assert_eq!(n1.servers().len(), 1);
    let refused = n1.remove("node1").await.unwrap_err();
    assert!(matches!(refused, StorageError::Rejected(_)), "{refused}");
    stop(&net, n1, 1).await;
    stop(&net, n2, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn step_down_hands_leadership_to_another_voter() {
    // Why: `sys/step-down` must move leadership, and a lone node must say why it cannot.
    let net = MemNetwork::new();
    let dirs = dirs3();
    let [n1, n2, n3] = three(&net, &dirs).await;

    n1.step_down().await.unwrap();
    let leader = leader_of(&[&n1, &n2, &n3]).await;

    assert_ne!(leader.node_id, "node1");
    // The leadership watch follows openraft's metrics a moment later.
    let mut watch = n1.leadership();
    tokio::time::timeout(WAIT, watch.wait_for(|l| !l.is_self))
        .await
        .unwrap()
        .unwrap();
    put_on_leader(&leader, "k", b"v").await;
    for (n, i) in [(n1, 1), (n2, 2), (n3, 3)] {
        stop(&net, n, i).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let alone = start(&net, dir.path(), 9, tuning()).await;
    alone.bootstrap().await.unwrap();
    let refused = alone.step_down().await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("no other voter to hand leadership to"),
        "{refused}"
    );
    stop(&net, alone, 9).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_malformed_frame_closes_only_its_stream() {
    // Why: a peer (or a bug) sending garbage must cost one connection, never the node.
    let net = MemNetwork::new();
    let dir = tempfile::tempdir().unwrap();
    let n1 = start(&net, dir.path(), 1, tuning()).await;
    n1.bootstrap().await.unwrap();
    let dialer = net.dialer("tester:1");

    let mut oversized = dialer.dial(&addr(1)).await.unwrap();
    oversized.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(WAIT, oversized.read_to_end(&mut rest)).await;
    let mut garbage = dialer.dial(&addr(1)).await.unwrap();
    garbage
        .write_all(&[0, 0, 0, 4, 1, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    let mut rest2 = Vec::new();
    let closed2 = tokio::time::timeout(WAIT, garbage.read_to_end(&mut rest2)).await;

    assert!(matches!(closed, Ok(Ok(0))), "{closed:?}");
    assert!(matches!(closed2, Ok(Ok(0))), "{closed2:?}");
    n1.put("still", b"works".to_vec()).await.unwrap();
    assert_eq!(n1.get("still").await.unwrap(), Some(b"works".to_vec()));
    stop(&net, n1, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_leader_can_tell_a_node_it_was_removed() {
    // Why: every member holds a cluster-CA certificate; if any of them could deliver the
    // removal notice, one compromised member could seal all the others.
    let net = MemNetwork::new();
    let dirs = [
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    ];
    let n1 = start(&net, dirs[0].path(), 1, tuning()).await;
    n1.bootstrap().await.unwrap();
    let n2 = start(&net, dirs[1].path(), 2, tuning()).await;
    n1.add_non_voter("node2", &addr(2)).await.unwrap();
    n1.set_voter("node2", true).await.unwrap();
    let n3 = start(&net, dirs[2].path(), 3, tuning()).await;
    n1.add_non_voter("node3", &addr(3)).await.unwrap();
    let term = n1.leadership().borrow().term;
    let target = types::RaftNode {
        node_id: "node2".into(),
        cluster_addr: addr(2),
    };

    // Act: a notice from node 3, a member but not the leader, then the same from the leader.
    let forged = network::send_removed(
        Some(net.dialer(&addr(3))),
        target.clone(),
        term,
        Duration::from_secs(2),
    )
    .await;
    let forged_took = n2.leadership().borrow().removed;
    let genuine = network::send_removed(
        Some(net.dialer(&addr(1))),
        target,
        term,
        Duration::from_secs(2),
    )
    .await;

    // Assert: the forged notice is refused and changes nothing; the leader's removes.
    assert!(forged.is_err(), "a notice from a non-leader is refused");
    assert!(!forged_took);
    genuine.unwrap();
    assert!(n2.leadership().borrow().removed);
    stop(&net, n1, 1).await;
    stop(&net, n2, 2).await;
    stop(&net, n3, 3).await;
}

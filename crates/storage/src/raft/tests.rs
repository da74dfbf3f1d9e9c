//! Lifecycle behaviour that needs a look inside: snapshots, log purging, recovery from them.

use std::path::Path;
use std::time::Duration;

use openraft::async_runtime::watch::WatchReceiver;
use redb::{ReadableDatabase, ReadableTableMetadata};

use super::*;

fn options(dir: &Path) -> RaftOptions {
    RaftOptions {
        path: dir.to_path_buf(),
        node_id: "node1".into(),
        cluster_addr: "127.0.0.1:8201".into(),
    }
}

fn log_len(s: &RaftStorage) -> u64 {
    let txn = s.db.begin_read().unwrap();
    txn.open_table(db::LOG).unwrap().len().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_purge_the_log_and_recovery_uses_them() {
    // Why: without snapshot + purge the log grows forever; after purge, restart must rebuild
    // state from the snapshot plus the remaining log.
    let dir = tempfile::tempdir().unwrap();
    let tuning = RaftTuning {
        snapshot_every_entries: 10,
        logs_kept_after_snapshot: 0,
        ..RaftTuning::default()
    };
    let s = RaftStorage::open_with(options(dir.path()), tuning.clone())
        .await
        .unwrap();

    for i in 0..40 {
        s.put(&format!("k/{i:02}"), vec![i as u8]).await.unwrap();
    }
    let m = s
        .raft
        .wait(Some(Duration::from_secs(10)))
        .metrics(
            |m| m.purged.is_some() && m.snapshot.is_some(),
            "snapshot and purge",
        )
        .await
        .unwrap();
    let kept = log_len(&s);
    s.shutdown().await.unwrap();
    drop(s);
    let s = RaftStorage::open_with(options(dir.path()), tuning)
        .await
        .unwrap();
    let recovered = s.scan("k/", None, 100).await.unwrap();
    let snapshot = {
        let mut sm = StateMachine::new(s.db.clone(), s.repl.clone());
        openraft::storage::RaftStateMachine::get_current_snapshot(&mut sm)
            .await
            .unwrap()
            .unwrap()
    };

    assert!(kept < 40, "log not purged: {kept} entries kept; {m:?}");
    assert_eq!(recovered.len(), 40);
    assert_eq!(recovered[39], ("k/39".to_owned(), vec![39]));
    let pairs = snapshot_codec::decode(&snapshot.snapshot).unwrap();
    assert!(pairs.len() >= 8, "snapshot holds {} pairs", pairs.len());
    assert!(s.raft.metrics().borrow_watched().state == ServerState::Leader);
    s.shutdown().await.unwrap();
}

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
    let txn = s.log_db.begin_read().unwrap();
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
    let pairs = snapshot_codec::decode(&snapshot.snapshot.encode().unwrap()).unwrap();
    assert!(pairs.len() >= 8, "snapshot holds {} pairs", pairs.len());
    assert!(s.raft.metrics().borrow_watched().state == ServerState::Leader);
    s.shutdown().await.unwrap();
}

/// Rewrites a closed format-2 directory into the format-1 layout: log and log metadata inside
/// the state-machine file, no separate log file.
fn downgrade_to_v1(dir: &Path) {
    let log = redb::Database::open(dir.join(db::LOG_FILE)).unwrap();
    let sm = redb::Database::open(dir.join(db::DB_FILE)).unwrap();
    let read = log.begin_read().unwrap();
    let txn = sm.begin_write().unwrap();
    {
        let mut to_log = txn.open_table(db::LOG).unwrap();
        for item in redb::ReadableTable::iter(&read.open_table(db::LOG).unwrap()).unwrap() {
            let (k, v) = item.unwrap();
            to_log.insert(k.value(), v.value()).unwrap();
        }
        let mut to_meta = txn.open_table(db::RAFT_META).unwrap();
        for item in redb::ReadableTable::iter(&read.open_table(db::RAFT_META).unwrap()).unwrap() {
            let (k, v) = item.unwrap();
            to_meta.insert(k.value(), v.value()).unwrap();
        }
        db::write_json(&mut to_meta, db::KEY_FORMAT, &1u32).unwrap();
        let mut sm_meta = txn.open_table(db::SM_META).unwrap();
        sm_meta.remove(db::KEY_FORMAT).unwrap();
    }
    txn.commit().unwrap();
    drop((read, log, sm));
    std::fs::remove_file(dir.join(db::LOG_FILE)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_1_directory_is_upgraded_in_place() {
    // Why: directories written before the log moved to its own file must open with every
    // acknowledged write and keep working, not be refused.
    let dir = tempfile::tempdir().unwrap();
    let s = RaftStorage::open(options(dir.path())).await.unwrap();
    for i in 0..20 {
        s.put(&format!("k/{i:02}"), vec![i as u8]).await.unwrap();
    }
    s.shutdown().await.unwrap();
    drop(s);
    downgrade_to_v1(dir.path());

    let s = RaftStorage::open(options(dir.path())).await.unwrap();
    s.put("k/20", vec![20]).await.unwrap();
    let recovered = s.scan("k/", None, 100).await.unwrap();
    let sm_still_has_log = {
        let txn = s.db.begin_read().unwrap();
        txn.open_table(db::LOG).is_ok()
    };

    assert_eq!(recovered.len(), 21, "writes lost in the upgrade");
    assert_eq!(recovered[7], ("k/07".to_owned(), vec![7]));
    assert!(log_len(&s) > 20, "the log was not moved");
    assert!(!sm_still_has_log, "the old log table was left behind");
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_lost_in_a_crash_come_back_from_the_log() {
    // Why: applies commit without an fsync; if the state-machine file is rolled back to its
    // last checkpoint, the log (durable, never purged past that checkpoint) must re-apply them.
    let dir = tempfile::tempdir().unwrap();
    let s = RaftStorage::open(options(dir.path())).await.unwrap();
    for i in 0..10 {
        s.put(&format!("k/{i:02}"), vec![i as u8]).await.unwrap();
    }
    let checkpoint = std::fs::read(dir.path().join(db::DB_FILE));
    s.shutdown().await.unwrap();
    drop(s);
    // Simulate the crash: put back the state machine file as it was on disk before shutdown.
    std::fs::write(dir.path().join(db::DB_FILE), checkpoint.unwrap()).unwrap();
    let in_rolled_back_file = {
        let sm = redb::Database::create(dir.path().join(db::DB_FILE)).unwrap();
        let txn = sm.begin_read().unwrap();
        let table = txn.open_table(db::SM_DATA).unwrap();
        redb::ReadableTable::range::<&str>(&table, "k/".."k0")
            .unwrap()
            .count()
    };

    let s = RaftStorage::open(options(dir.path())).await.unwrap();
    let after_rollback = s.scan("k/", None, 100).await.unwrap();

    assert!(
        in_rolled_back_file < 10,
        "the file on disk already held every apply, so nothing was rolled back"
    );
    assert_eq!(
        after_rollback.len(),
        10,
        "applies missing after the rollback"
    );
    s.shutdown().await.unwrap();
}

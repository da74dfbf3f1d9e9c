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
        dialer: None,
    }
}

fn log_len(s: &RaftStorage) -> u64 {
    let txn = s.log_db.begin_read().unwrap();
    txn.open_table(db::LOG).unwrap().len().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_purge_recovers_from_the_checkpoint_and_the_kept_log() {
    // Why: the log is purged behind checkpoints while applies after them are not durable; a
    // crash that rolls the state machine back to its last checkpoint must find every entry
    // after it still in the log.
    let dir = tempfile::tempdir().unwrap();
    let tuning = RaftTuning {
        snapshot_every_entries: 10_000,
        logs_kept_after_snapshot: 0,
        ..RaftTuning::default()
    };
    let s = RaftStorage::open_single_with(options(dir.path()), tuning.clone())
        .await
        .unwrap();
    for i in 0..40 {
        s.put(&format!("k/{i:02}"), vec![i as u8]).await.unwrap();
    }
    // A checkpoint now (the policy alone would not take one), and the purge behind it.
    s.raft.trigger().snapshot().await.unwrap();
    let m = s
        .raft
        .wait(Some(Duration::from_secs(10)))
        .metrics(
            |m| m.purged.is_some() && m.snapshot.is_some_and(|id| id.index >= 41),
            "a snapshot covering the 40 writes, and a purge",
        )
        .await
        .unwrap();
    let kept = log_len(&s);
    // Fewer writes than a checkpoint interval: applied, in the log, not yet checkpointed.
    for i in 40..45 {
        s.put(&format!("k/{i:02}"), vec![i as u8]).await.unwrap();
    }
    // The state machine file on disk is its last checkpoint (non-durable commits stay in
    // redb's memory); keep it to put back after shutdown, as a crash would leave it.
    let at_checkpoint = std::fs::read(dir.path().join(db::DB_FILE)).unwrap();
    s.shutdown().await.unwrap();
    drop(s);
    std::fs::write(dir.path().join(db::DB_FILE), at_checkpoint).unwrap();
    let newest_in_rolled_back_file = {
        let sm = redb::Database::create(dir.path().join(db::DB_FILE)).unwrap();
        let txn = sm.begin_read().unwrap();
        let table = txn.open_table(db::SM_DATA).unwrap();
        redb::ReadableTable::get(&table, "k/44").unwrap().is_some()
    };

    let s = RaftStorage::open_single_with(options(dir.path()), tuning)
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
    assert!(!newest_in_rolled_back_file, "nothing was rolled back");
    assert_eq!(
        recovered.len(),
        45,
        "entries after the checkpoint were lost"
    );
    assert_eq!(recovered[44], ("k/44".to_owned(), vec![44]));
    let pairs = snapshot_codec::decode(&snapshot.snapshot.encode().unwrap()).unwrap();
    assert!(
        pairs.iter().any(|(k, v)| k == "k/44" && v == &vec![44]),
        "the snapshot does not show the recovered state"
    );
    assert!(s.raft.metrics().borrow_watched().state == ServerState::Leader);
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_missing_one_of_its_two_files_is_refused() {
    // Why: opening the state machine without its log (or the reverse) would start an empty
    // log beside it and lose the vote, identity and unapplied entries without a word.
    let dir = tempfile::tempdir().unwrap();
    let s = RaftStorage::open_single(options(dir.path())).await.unwrap();
    s.put("k/1", vec![1]).await.unwrap();
    s.shutdown().await.unwrap();
    drop(s);
    let log = dir.path().join(db::LOG_FILE);
    std::fs::rename(&log, dir.path().join("elsewhere")).unwrap();

    let refused = RaftStorage::open_single(options(dir.path())).await;

    match refused {
        Err(StorageError::Corrupt(msg)) => assert!(msg.contains("raft-log.redb"), "{msg}"),
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("a directory without its log was opened"),
    }
    assert!(!log.exists(), "an empty log was created");
}

#[tokio::test]
async fn snapshots_left_half_received_by_a_crash_are_removed_at_open() {
    // Why: a process killed while a leader streamed it a snapshot leaves the staged file
    // behind; without this, every such crash would leak up to a whole keyspace of disk.
    let dir = tempfile::tempdir().unwrap();
    let s = RaftStorage::open_single(options(dir.path())).await.unwrap();
    s.shutdown().await.unwrap();
    drop(s);
    let stale = dir.path().join("snapshot-incoming-4242-0.tmp");
    let unrelated = dir.path().join("operator-notes.tmp");
    std::fs::write(&stale, b"half a snapshot").unwrap();
    std::fs::write(&unrelated, b"not ours").unwrap();

    let s = RaftStorage::open_single(options(dir.path())).await.unwrap();

    assert!(!stale.exists(), "the stale staged snapshot was removed");
    assert!(
        unrelated.exists(),
        "files that are not staged snapshots are left alone"
    );
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
    let s = RaftStorage::open_single(options(dir.path())).await.unwrap();
    for i in 0..20 {
        s.put(&format!("k/{i:02}"), vec![i as u8]).await.unwrap();
    }
    s.shutdown().await.unwrap();
    drop(s);
    downgrade_to_v1(dir.path());

    let s = RaftStorage::open_single(options(dir.path())).await.unwrap();
    s.put("k/20", vec![20]).await.unwrap();
    let recovered = s.scan("k/", None, 100).await.unwrap();
    let sm_still_has_log = {
        let txn = s.db.begin_read().unwrap();
        txn.open_table(db::LOG).is_ok()
    };

    let (vote, identity) = {
        let txn = s.log_db.begin_read().unwrap();
        let meta = txn.open_table(db::RAFT_META).unwrap();
        (
            redb::ReadableTable::get(&meta, db::KEY_VOTE)
                .unwrap()
                .is_some(),
            redb::ReadableTable::get(&meta, db::KEY_IDENTITY)
                .unwrap()
                .is_some(),
        )
    };
    let old_file_format: Option<u32> = {
        let txn = s.db.begin_read().unwrap();
        db::read_json(&txn.open_table(db::RAFT_META).unwrap(), db::KEY_FORMAT).unwrap()
    };

    assert_eq!(recovered.len(), 21, "writes lost in the upgrade");
    assert_eq!(recovered[7], ("k/07".to_owned(), vec![7]));
    assert!(log_len(&s) > 20, "the log was not moved");
    assert!(vote && identity, "vote or node identity left behind");
    assert!(!sm_still_has_log, "the old log table was left behind");
    assert_eq!(
        old_file_format,
        Some(db::FORMAT_VERSION),
        "a format-1 binary would not see that the directory moved on"
    );
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_lost_in_a_crash_come_back_from_the_log() {
    // Why: applies commit without an fsync; if the state-machine file is rolled back to its
    // last checkpoint, the log (durable, never purged past that checkpoint) must re-apply them.
    let dir = tempfile::tempdir().unwrap();
    let s = RaftStorage::open_single(options(dir.path())).await.unwrap();
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

    let s = RaftStorage::open_single(options(dir.path())).await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_entries_left_by_the_previous_release_apply_after_the_upgrade() {
    // Why: a node upgraded with entries in its log that were written (as JSON) but not yet
    // applied by the previous release must apply them as that release would have, down to the
    // WAL chain hash every secondary checks.
    use crate::raft::legacy_command::{LegacyCommand, WireOp};
    use crate::replog::WalEntry;
    let dir = tempfile::tempdir().unwrap();
    let s = RaftStorage::open_single(options(dir.path())).await.unwrap();
    s.put("logical/a", b"old".to_vec()).await.unwrap();
    let before = s.replication_status();
    s.shutdown().await.unwrap();
    drop(s);
    let stamped = LegacyCommand::BatchStamped {
        unix_us: 1_764_633_600_000_000,
        ops: vec![WireOp::Put {
            key: "logical/b".into(),
            value: vec![0, 255, 7],
        }],
    };
    let unstamped = LegacyCommand::Batch(vec![WireOp::Delete {
        key: "logical/a".into(),
    }]);
    {
        // The log as the previous release leaves it: format 2, JSON entries after the tail.
        let log = redb::Database::create(dir.path().join(db::LOG_FILE)).unwrap();
        let txn = log.begin_write().unwrap();
        {
            let mut meta = txn.open_table(db::RAFT_META).unwrap();
            db::write_json(&mut meta, db::KEY_FORMAT, &db::FORMAT_VERSION).unwrap();
            let mut table = txn.open_table(db::LOG).unwrap();
            let (index, raw) = {
                let (k, v) = redb::ReadableTable::last(&table).unwrap().unwrap();
                (k.value(), v.value().to_vec())
            };
            let tail = entry_codec::decode(index, &raw).unwrap().log_id;
            for (i, cmd) in [stamped, unstamped].into_iter().enumerate() {
                let at = index + 1 + i as u64;
                let entry = serde_json::json!({
                    "log_id": { "leader_id": tail.leader_id, "index": at },
                    "payload": { "Normal": cmd },
                });
                let bytes = serde_json::to_vec(&entry).unwrap();
                table.insert(at, bytes.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }

    let s = RaftStorage::open_single(options(dir.path())).await.unwrap();

    assert_eq!(s.get("logical/b").await.unwrap(), Some(vec![0, 255, 7]));
    assert_eq!(s.get("logical/a").await.unwrap(), None);
    let first = WalEntry::next(
        &before.position(),
        before.epoch,
        0,
        vec![Op::Put {
            key: "logical/b".into(),
            value: vec![0, 255, 7],
        }],
    );
    let second = WalEntry::next(
        &first.position(),
        before.epoch,
        0,
        vec![Op::Delete {
            key: "logical/a".into(),
        }],
    );
    let after = s.replication_status();
    assert_eq!(after.last_wal, before.last_wal + 2);
    assert_eq!(
        after.last_hash, second.hash,
        "the WAL chain differs from the old apply"
    );
    let log_format: Option<u32> = {
        let txn = s.log_db.begin_read().unwrap();
        db::read_json(&txn.open_table(db::RAFT_META).unwrap(), db::KEY_FORMAT).unwrap()
    };
    assert_eq!(log_format, Some(db::LOG_FORMAT_VERSION));
    s.shutdown().await.unwrap();
}

//! The replicated state machine: the Strongroom keyspace as a redb table.
//!
//! Applying a batch of committed entries is one redb transaction that writes the data, the last
//! applied log id and the latest membership together, so after a crash the state machine is
//! exactly at some applied index, never in between, and openraft replays from there.

use std::io;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use redb::{Database, ReadableDatabase, Table, WriteTransaction};

use super::db::{
    self, KEY_APPLIED, KEY_MEMBERSHIP, KEY_SNAPSHOT_DATA, KEY_SNAPSHOT_META, SM_DATA, SM_META,
    SNAPSHOT, blocking, io_err,
};
use super::snapshot_codec::{self, SnapshotEncoder};
use super::types::{
    Command, Entry, LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig, WireOp,
};

/// The state-machine half of the Raft storage. Cheap to clone.
#[derive(Clone)]
pub struct StateMachine {
    db: Arc<Database>,
}

impl StateMachine {
    pub fn new(db: Arc<Database>) -> Self {
        Self { db }
    }
}

/// Builds snapshots from a consistent read of the state machine.
pub struct SnapshotBuilder {
    db: Arc<Database>,
}

type DataTable<'t> = Table<'t, &'static str, &'static [u8]>;

fn open_data(txn: &WriteTransaction) -> io::Result<DataTable<'_>> {
    txn.open_table(SM_DATA)
        .map_err(|e| io_err("opening the state machine", e))
}

fn clear(data: &mut DataTable<'_>) -> io::Result<()> {
    data.retain(|_, _| false)
        .map_err(|e| io_err("clearing the state machine", e))
}

fn put(data: &mut DataTable<'_>, key: &str, value: &[u8]) -> io::Result<()> {
    data.insert(key, value)
        .map(drop)
        .map_err(|e| io_err("writing to the state machine", e))
}

fn apply_command(data: &mut DataTable<'_>, cmd: Command) -> io::Result<()> {
    match cmd {
        Command::Batch(ops) => {
            for op in ops {
                match op {
                    WireOp::Put { key, value } => put(data, &key, &value)?,
                    WireOp::Delete { key } => {
                        data.remove(key.as_str())
                            .map_err(|e| io_err("deleting from the state machine", e))?;
                    }
                }
            }
        }
        Command::ReplaceAll(pairs) => {
            clear(data)?;
            for pair in pairs {
                put(data, &pair.key, &pair.value)?;
            }
        }
    }
    Ok(())
}

/// Applies entries in one transaction (one fsync) with last-applied and membership.
fn apply_batch(db: &Database, entries: Vec<Entry>) -> io::Result<()> {
    let Some(last) = entries.last().map(|e| e.log_id) else {
        return Ok(());
    };
    let txn = db.begin_write().map_err(|e| io_err("starting apply", e))?;
    let mut membership: Option<StoredMembership> = None;
    {
        let mut data = open_data(&txn)?;
        for entry in entries {
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(cmd) => apply_command(&mut data, cmd)?,
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembership::new(Some(entry.log_id), m));
                }
            }
        }
        let mut meta = txn
            .open_table(SM_META)
            .map_err(|e| io_err("opening state machine metadata", e))?;
        db::write_json(&mut meta, KEY_APPLIED, &Some(last))?;
        if let Some(m) = &membership {
            db::write_json(&mut meta, KEY_MEMBERSHIP, m)?;
        }
    }
    txn.commit()
        .map_err(|e| io_err("committing applied entries", e))
}

/// Reads last-applied and membership from any readable transaction's metadata table.
fn read_applied<T>(meta: &T) -> io::Result<(Option<LogId>, StoredMembership)>
where
    T: redb::ReadableTable<&'static str, &'static [u8]>,
{
    let applied: Option<Option<LogId>> = db::read_json(meta, KEY_APPLIED)?;
    let membership: Option<StoredMembership> = db::read_json(meta, KEY_MEMBERSHIP)?;
    Ok((applied.flatten(), membership.unwrap_or_default()))
}

fn store_snapshot(txn: &WriteTransaction, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
    let mut table = txn
        .open_table(SNAPSHOT)
        .map_err(|e| io_err("opening the snapshot table", e))?;
    db::write_json(&mut table, KEY_SNAPSHOT_META, meta)?;
    table
        .insert(KEY_SNAPSHOT_DATA, data)
        .map_err(|e| io_err("storing snapshot data", e))?;
    Ok(())
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let db = self.db.clone();
        blocking(move || {
            // One read transaction: the pairs and the applied id describe the same state.
            let (meta, data) = {
                let txn = db.begin_read().map_err(|e| io_err("opening a read", e))?;
                let sm_meta = txn
                    .open_table(SM_META)
                    .map_err(|e| io_err("opening state machine metadata", e))?;
                let (last_log_id, last_membership) = read_applied(&sm_meta)?;
                let table = txn
                    .open_table(SM_DATA)
                    .map_err(|e| io_err("opening the state machine", e))?;
                let mut enc = SnapshotEncoder::new();
                for item in redb::ReadableTable::iter(&table)
                    .map_err(|e| io_err("scanning the state machine", e))?
                {
                    let (k, v) = item.map_err(|e| io_err("scanning the state machine", e))?;
                    enc.push(k.value(), v.value())?;
                }
                let meta = SnapshotMeta {
                    last_log_id,
                    last_membership,
                };
                (meta, enc.finish())
            };
            let txn = db
                .begin_write()
                .map_err(|e| io_err("starting a write", e))?;
            store_snapshot(&txn, &meta, &data)?;
            txn.commit()
                .map_err(|e| io_err("committing the snapshot", e))?;
            Ok(Snapshot {
                meta,
                snapshot: data,
            })
        })
        .await
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_read().map_err(|e| io_err("opening a read", e))?;
            let meta = txn
                .open_table(SM_META)
                .map_err(|e| io_err("opening state machine metadata", e))?;
            read_applied(&meta)
        })
        .await
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut batch = Vec::new();
        let mut responders = Vec::new();
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            batch.push(entry);
            if let Some(r) = responder {
                responders.push(r);
            }
        }
        let db = self.db.clone();
        blocking(move || apply_batch(&db, batch)).await?;
        // Only now is the batch durable: release the waiting clients.
        for r in responders {
            r.send(());
        }
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, _force: bool) -> Option<SnapshotBuilder> {
        Some(SnapshotBuilder {
            db: self.db.clone(),
        })
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            db: self.db.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let pairs = snapshot_codec::decode(&snapshot)?;
        let meta = meta.clone();
        let db = self.db.clone();
        blocking(move || {
            let txn = db
                .begin_write()
                .map_err(|e| io_err("starting a write", e))?;
            {
                let mut data = open_data(&txn)?;
                clear(&mut data)?;
                for (k, v) in &pairs {
                    put(&mut data, k, v)?;
                }
                let mut sm_meta = txn
                    .open_table(SM_META)
                    .map_err(|e| io_err("opening state machine metadata", e))?;
                db::write_json(&mut sm_meta, KEY_APPLIED, &meta.last_log_id)?;
                db::write_json(&mut sm_meta, KEY_MEMBERSHIP, &meta.last_membership)?;
            }
            store_snapshot(&txn, &meta, &snapshot)?;
            txn.commit()
                .map_err(|e| io_err("committing the installed snapshot", e))
        })
        .await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_read().map_err(|e| io_err("opening a read", e))?;
            let table = txn
                .open_table(SNAPSHOT)
                .map_err(|e| io_err("opening the snapshot table", e))?;
            let Some(meta) = db::read_json::<SnapshotMeta, _>(&table, KEY_SNAPSHOT_META)? else {
                return Ok(None);
            };
            let data = redb::ReadableTable::get(&table, KEY_SNAPSHOT_DATA)
                .map_err(|e| io_err("reading snapshot data", e))?
                .map(|v| v.value().to_vec())
                .ok_or_else(|| {
                    db::corrupt("reading the current snapshot", "metadata without data")
                })?;
            Ok(Some(Snapshot {
                meta,
                snapshot: data,
            }))
        })
        .await
    }
}

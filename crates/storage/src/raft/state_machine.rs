//! The replicated state machine: the Strongroom keyspace as a redb table.
//!
//! Applying a batch of committed entries is one redb transaction that writes the data, the last
//! applied log id and the latest membership together, so after a crash the state machine is
//! exactly at some applied index, never in between, and openraft replays from there. The
//! replication WAL entries and meta are written in that same transaction, and the in-memory
//! merkle index is updated only once it committed.
//!
//! Applies commit without an fsync: the entries are durable in the log file already. The state
//! machine file becomes durable at each checkpoint, which is what openraft calls building a
//! snapshot (see [`super::snapshot_data`]), and only then may the log before it be purged.

use std::io;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use redb::{Database, ReadableDatabase, Table, WriteTransaction};

use super::db::{
    self, KEY_APPLIED, KEY_MEMBERSHIP, KEY_SNAPSHOT_META, SM_DATA, SM_META, SNAPSHOT, blocking,
    io_err,
};
use super::snapshot_data::SnapshotData;
use super::types::{
    ApplyOutcome, Command, Entry, LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig,
};
use crate::StorageError;
use crate::keyspace::{KeyClass, classify};
use crate::replog::engine::{self, ApplyError, KvTxn, MerkleIndex, ReplShared, Stage};
use crate::replog::{ReplCommand, WAL_META_KEY};

/// The state-machine half of the Raft storage. Cheap to clone.
#[derive(Clone)]
pub struct StateMachine {
    db: Arc<Database>,
    repl: Arc<ReplShared>,
}

impl StateMachine {
    pub fn new(db: Arc<Database>, repl: Arc<ReplShared>) -> Self {
        Self { db, repl }
    }

    /// Opens the state machine, recovering replication state from the data (blocking).
    #[cfg(test)]
    pub fn open(db: Arc<Database>) -> io::Result<Self> {
        let repl = Arc::new(load_repl(&db)?);
        Ok(Self { db, repl })
    }
}

/// Recovers the WAL meta and rebuilds the merkle index from a full scan (blocking).
pub fn load_repl(db: &Database) -> io::Result<ReplShared> {
    let txn = db.begin_read().map_err(|e| io_err("opening a read", e))?;
    let table = txn
        .open_table(SM_DATA)
        .map_err(|e| io_err("opening the state machine", e))?;
    let meta = redb::ReadableTable::get(&table, WAL_META_KEY)
        .map_err(|e| io_err("reading the WAL meta", e))?
        .map(|v| v.value().to_vec());
    ReplShared::load(meta.as_deref(), index_table(&table)?)
}

/// The merkle index of every pair in `table`, built while streaming through it.
pub fn index_table<T>(table: &T) -> io::Result<MerkleIndex>
where
    T: redb::ReadableTable<&'static str, &'static [u8]>,
{
    let mut merkle = engine::empty_merkle();
    for item in table.iter().map_err(|e| io_err("indexing storage", e))? {
        let (k, v) = item.map_err(|e| io_err("indexing storage", e))?;
        merkle.insert(k.value(), v.value());
    }
    Ok(merkle)
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

/// The state-machine table as the replication engine's transaction.
struct TableTxn<'a, 't>(&'a mut DataTable<'t>);

impl KvTxn for TableTxn<'_, '_> {
    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(redb::ReadableTable::get(self.0, key)
            .map_err(|e| io_err("reading from the state machine", e))?
            .map(|v| v.value().to_vec()))
    }

    fn put(&mut self, key: &str, value: &[u8]) -> io::Result<()> {
        put(self.0, key, value)
    }

    fn delete(&mut self, key: &str) -> io::Result<()> {
        self.0
            .remove(key)
            .map(drop)
            .map_err(|e| io_err("deleting from the state machine", e))
    }

    fn replicated_keys(&self) -> io::Result<Vec<String>> {
        let mut keys = Vec::new();
        for item in redb::ReadableTable::iter(self.0)
            .map_err(|e| io_err("scanning the state machine", e))?
        {
            let (k, _) = item.map_err(|e| io_err("scanning the state machine", e))?;
            if classify(k.value()) != KeyClass::ClusterLocal {
                keys.push(k.value().to_owned());
            }
        }
        Ok(keys)
    }

    fn clear(&mut self) -> io::Result<()> {
        clear(self.0)
    }
}

/// The typed outcome of a refused replication command.
fn refused(e: StorageError) -> ApplyOutcome {
    match e {
        StorageError::Diverged(m) => ApplyOutcome::Diverged(m),
        other => ApplyOutcome::Rejected(other.to_string()),
    }
}

fn apply_command(
    data: &mut DataTable<'_>,
    stage: &mut Stage,
    cmd: Command,
    log_id: &LogId,
) -> io::Result<ApplyOutcome> {
    let mut txn = TableTxn(data);
    match cmd {
        Command::Write { unix_us, ops } => stage.local_batch(&mut txn, ops, unix_us)?,
        Command::ReplaceAll(pairs) => {
            // The log id is the same on every node, so every node jumps to the same position.
            stage.replace_all(&mut txn, &pairs, log_id.to_string().as_bytes())?;
        }
        Command::Repl(repl) => {
            return match stage.repl(&mut txn, repl) {
                Ok(()) => Ok(ApplyOutcome::Applied),
                Err(ApplyError::Rejected(e)) => Ok(refused(e)),
                Err(ApplyError::Io(e)) => Err(e),
            };
        }
    }
    Ok(ApplyOutcome::Applied)
}

/// Largest batch applied on the calling task rather than through `blocking`.
const INLINE_APPLY_ENTRIES: usize = 16;
const INLINE_APPLY_BYTES: usize = 16 * 1024;

/// Applies entries in one transaction (one fsync) with last-applied and membership; returns
/// one outcome per entry.
fn apply_batch(
    db: &Database,
    repl: &ReplShared,
    entries: Vec<Entry>,
) -> io::Result<Vec<ApplyOutcome>> {
    let Some(last) = entries.last().map(|e| e.log_id) else {
        return Ok(Vec::new());
    };
    let mut txn = db.begin_write().map_err(|e| io_err("starting apply", e))?;
    // No fsync of its own: the entries are already durable in the Raft log file (`append`
    // commits Immediate before it returns), and this file is made durable by the next
    // checkpoint (snapshot build or install). A crash in between rolls this file back to that
    // checkpoint, and openraft re-applies the log after it; applying is deterministic (entries
    // carry the proposer's clock), so acknowledged writes, WAL and merkle come back the same.
    // The log is purged only behind a checkpoint, so the entries to re-apply are always there.
    txn.set_durability(redb::Durability::None)
        .map_err(|e| io_err("configuring apply durability", e))?;
    let mut stage = repl.begin();
    let mut outcomes = Vec::with_capacity(entries.len());
    let mut membership: Option<StoredMembership> = None;
    let mut stamps = Vec::new();
    {
        let mut data = open_data(&txn)?;
        for entry in entries {
            let outcome = match entry.payload {
                EntryPayload::Blank => ApplyOutcome::Applied,
                EntryPayload::Normal(cmd) => {
                    // Entries from before clocks (0) have no lag to report.
                    if let Command::Write { unix_us, .. } = &cmd
                        && *unix_us != 0
                    {
                        stamps.push(*unix_us);
                    }
                    apply_command(&mut data, &mut stage, cmd, &entry.log_id)?
                }
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembership::new(Some(entry.log_id), m));
                    ApplyOutcome::Applied
                }
            };
            outcomes.push(outcome);
        }
        let mut meta = txn
            .open_table(SM_META)
            .map_err(|e| io_err("opening state machine metadata", e))?;
        db::write_json(&mut meta, KEY_APPLIED, &Some(last))?;
        if let Some(m) = &membership {
            db::write_json(&mut meta, KEY_MEMBERSHIP, m)?;
        }
    }
    let guard = repl.commit_lock();
    txn.commit()
        .map_err(|e| io_err("committing applied entries", e))?;
    repl.finish(guard, stage);
    if !stamps.is_empty() && !repl.is_recovering() {
        let now = engine::unix_us();
        let lag = metrics::histogram!(super::APPLY_LAG_SECONDS);
        for stamp in stamps {
            lag.record(now.saturating_sub(stamp) as f64 / 1e6);
        }
    }
    Ok(outcomes)
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

fn store_snapshot_meta(txn: &WriteTransaction, meta: &SnapshotMeta) -> io::Result<()> {
    let mut table = txn
        .open_table(SNAPSHOT)
        .map_err(|e| io_err("opening the snapshot table", e))?;
    db::write_json(&mut table, KEY_SNAPSHOT_META, meta)
}

/// The applied state seen by `view`, as snapshot meta.
fn view_meta(view: &redb::ReadTransaction) -> io::Result<SnapshotMeta> {
    let sm_meta = view
        .open_table(SM_META)
        .map_err(|e| io_err("opening state machine metadata", e))?;
    let (last_log_id, last_membership) = read_applied(&sm_meta)?;
    Ok(SnapshotMeta {
        last_log_id,
        last_membership,
    })
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    /// A checkpoint: records the applied state as the snapshot meta in a durable commit, which
    /// also makes every apply before it durable, and returns a view frozen at that state.
    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let db = self.db.clone();
        blocking(move || {
            // While this write transaction is open nothing else commits, so a read begun now
            // sees exactly the state it starts from.
            let txn = db
                .begin_write()
                .map_err(|e| io_err("starting a checkpoint", e))?;
            let view = db
                .begin_read()
                .map_err(|e| io_err("opening a snapshot view", e))?;
            let meta = view_meta(&view)?;
            store_snapshot_meta(&txn, &meta)?;
            txn.commit()
                .map_err(|e| io_err("committing a checkpoint", e))?;
            Ok(Snapshot {
                meta,
                snapshot: SnapshotData::View(view),
            })
        })
        .await
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
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
            responders.push(responder);
        }
        // A few small writes commit without an fsync in well under a millisecond: run them
        // right here, as a hand-off to another thread would cost more than the work. Commands
        // whose cost is not their size (wipes, restores, positions that drop the retained WAL)
        // leave the worker. An inline apply can still wait for a checkpoint's fsync or a
        // reindex holding the locks; that stalls this worker, not the runtime.
        let small = batch.len() <= INLINE_APPLY_ENTRIES
            && batch.iter().all(|e| match &e.payload {
                EntryPayload::Normal(
                    cmd @ (Command::Write { .. }
                    | Command::Repl(
                        ReplCommand::ApplyRemote(_) | ReplCommand::ApplyRemoteBatch(_),
                    )),
                ) => cmd.payload_bytes() <= INLINE_APPLY_BYTES,
                EntryPayload::Normal(_) => false,
                EntryPayload::Blank | EntryPayload::Membership(_) => true,
            });
        let outcomes = if small {
            apply_batch(&self.db, &self.repl, batch)?
        } else {
            let db = self.db.clone();
            let repl = self.repl.clone();
            blocking(move || apply_batch(&db, &repl, batch)).await?
        };
        // The entries were durable in the log before they were applied: release the clients.
        for (r, outcome) in responders.into_iter().zip(outcomes) {
            if let Some(r) = r {
                r.send(outcome);
            }
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
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let meta = meta.clone();
        let db = self.db.clone();
        let repl = self.repl.clone();
        blocking(move || {
            // Pairs go straight into the uncommitted transaction: a snapshot that fails its
            // digest at the end is dropped with it, and the keyspace is never in memory.
            let txn = db
                .begin_write()
                .map_err(|e| io_err("starting a write", e))?;
            let mut stage = repl.begin();
            {
                let mut data = open_data(&txn)?;
                clear(&mut data)?;
                snapshot.for_each_pair(|k, v| put(&mut data, &k, &v))?;
                let wal_meta = redb::ReadableTable::get(&data, WAL_META_KEY)
                    .map_err(|e| io_err("reading the WAL meta", e))?
                    .map(|v| v.value().to_vec());
                stage.adopt_index(wal_meta.as_deref(), index_table(&data)?)?;
                let mut sm_meta = txn
                    .open_table(SM_META)
                    .map_err(|e| io_err("opening state machine metadata", e))?;
                db::write_json(&mut sm_meta, KEY_APPLIED, &meta.last_log_id)?;
                db::write_json(&mut sm_meta, KEY_MEMBERSHIP, &meta.last_membership)?;
            }
            store_snapshot_meta(&txn, &meta)?;
            let guard = repl.commit_lock();
            txn.commit()
                .map_err(|e| io_err("committing the installed snapshot", e))?;
            repl.finish(guard, stage);
            Ok(())
        })
        .await
    }

    /// `None` until the first checkpoint; then a view of the current applied state, which is
    /// at or past the newest checkpoint (data and meta always describe the same state).
    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let db = self.db.clone();
        blocking(move || {
            let view = db.begin_read().map_err(|e| io_err("opening a read", e))?;
            let checkpointed = {
                let table = view
                    .open_table(SNAPSHOT)
                    .map_err(|e| io_err("opening the snapshot table", e))?;
                db::read_json::<SnapshotMeta, _>(&table, KEY_SNAPSHOT_META)?.is_some()
            };
            if !checkpointed {
                return Ok(None);
            }
            let meta = view_meta(&view)?;
            Ok(Some(Snapshot {
                meta,
                snapshot: SnapshotData::View(view),
            }))
        })
        .await
    }
}

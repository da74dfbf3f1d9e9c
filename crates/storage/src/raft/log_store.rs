//! The Raft log and vote, persisted in the log's own redb file.
//!
//! This is where write latency is decided: openraft hands `append` every entry that piled up
//! while the previous fsync ran, and they all go into one redb transaction, so concurrent
//! clients share one fsync (group commit) instead of queueing behind one each.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use redb::{Database, Durability, ReadableDatabase, ReadableTable};

use super::db::{self, KEY_COMMITTED, KEY_PURGED, KEY_VOTE, LOG, RAFT_META, blocking, io_err};
use super::entry_codec;
use super::types::{Entry, LogId, TypeConfig, Vote};

/// The log half of the Raft storage; cheap to clone (it is also its own log reader).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    /// When the committed id was last written (see `save_committed`).
    committed_saved_at: Arc<Mutex<Option<Instant>>>,
    /// Whether the last append took longer than [`SLOW_APPEND`] (see `append`).
    disk_slow: Arc<AtomicBool>,
    /// Entries in the previous append (see `append`).
    last_batch: Arc<AtomicUsize>,
}

/// Appends up to this size run inline while the disk is fast (see `append`).
const INLINE_APPEND_BYTES: usize = 64 * 1024;
/// An append (write and fsync) slower than this marks the disk slow.
const SLOW_APPEND: Duration = Duration::from_millis(4);

/// Least time between two writes of the committed id.
const COMMITTED_SAVE_INTERVAL: Duration = Duration::from_millis(100);

impl LogStore {
    pub fn new(db: Arc<Database>) -> Self {
        Self {
            db,
            committed_saved_at: Arc::default(),
            disk_slow: Arc::default(),
            last_batch: Arc::default(),
        }
    }

    /// Reads one metadata record from the log-side metadata table.
    async fn read_meta<T>(&self, key: &'static str) -> io::Result<Option<T>>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_read().map_err(|e| io_err("opening a read", e))?;
            let meta = txn
                .open_table(RAFT_META)
                .map_err(|e| io_err("opening raft metadata", e))?;
            db::read_json(&meta, key)
        })
        .await
    }

    /// Stores one metadata record in its own commit, fsync'd when `durability` says so.
    async fn write_meta<T>(
        &self,
        key: &'static str,
        value: T,
        durability: Durability,
    ) -> io::Result<()>
    where
        T: serde::Serialize + Send + 'static,
    {
        let db = self.db.clone();
        blocking(move || {
            let mut txn = db
                .begin_write()
                .map_err(|e| io_err("starting a write", e))?;
            txn.set_durability(durability)
                .map_err(|e| io_err("choosing commit durability", e))?;
            {
                let mut meta = txn
                    .open_table(RAFT_META)
                    .map_err(|e| io_err("opening raft metadata", e))?;
                db::write_json(&mut meta, key, &value)?;
            }
            txn.commit()
                .map_err(|e| io_err(&format!("committing {key}"), e))
        })
        .await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let bounds: (Bound<u64>, Bound<u64>) =
            (range.start_bound().cloned(), range.end_bound().cloned());
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_read().map_err(|e| io_err("opening a read", e))?;
            let log = txn
                .open_table(LOG)
                .map_err(|e| io_err("opening the raft log", e))?;
            let mut out = Vec::new();
            for item in log
                .range::<u64>(bounds)
                .map_err(|e| io_err("reading the raft log", e))?
            {
                let (k, v) = item.map_err(|e| io_err("reading the raft log", e))?;
                out.push(entry_codec::decode(k.value(), v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.read_meta(KEY_VOTE).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_read().map_err(|e| io_err("opening a read", e))?;
            let meta = txn
                .open_table(RAFT_META)
                .map_err(|e| io_err("opening raft metadata", e))?;
            let purged: Option<LogId> = db::read_json(&meta, KEY_PURGED)?;
            let log = txn
                .open_table(LOG)
                .map_err(|e| io_err("opening the raft log", e))?;
            let last = match log
                .last()
                .map_err(|e| io_err("reading the last log entry", e))?
            {
                Some((k, v)) => Some(entry_codec::decode(k.value(), v.value())?.log_id),
                None => purged,
            };
            Ok(LogState {
                last_purged_log_id: purged,
                last_log_id: last,
            })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.write_meta(KEY_VOTE, *vote, Durability::Immediate)
            .await
    }

    /// The committed id is only a recovery hint (applied state is re-derived from the durable
    /// log after a crash, and a leader re-establishes the commit; `open` waits for that), and
    /// openraft saves it on its main loop before every apply. So it is written without an fsync
    /// of its own, becomes durable with the next append, and is written at most every
    /// [`COMMITTED_SAVE_INTERVAL`]: a crash can at worst leave an older value, and every write
    /// would otherwise pay a transaction and its pages in the next fsync for it.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        {
            let mut last = self
                .committed_saved_at
                .lock()
                .map_err(|_| io_err("saving the committed id", "lock poisoned"))?;
            if last.is_some_and(|at| at.elapsed() < COMMITTED_SAVE_INTERVAL) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        self.write_meta(KEY_COMMITTED, committed, Durability::None)
            .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self
            .read_meta::<Option<LogId>>(KEY_COMMITTED)
            .await?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        for entry in entries {
            encoded.push((entry.log_id.index, entry_codec::encode(&entry)?));
        }
        metrics::histogram!("vault_raft_storage_fsync_batch_size").record(encoded.len() as f64);
        // A lone small append on a fast disk runs right here: the thread hand-off of
        // `blocking` costs a good part of a fast fsync. Under concurrency (the last batch held
        // more than one entry) it goes through `blocking`, which keeps this worker serving
        // requests during the fsync, so that the next batch fills up (group commit: inline
        // appends cost 10-15% of throughput at 16-64 clients). A slow disk would stall the
        // worker, so once an append takes long the next ones go through `blocking` as well.
        let small = encoded.iter().map(|(_, b)| b.len()).sum::<usize>() <= INLINE_APPEND_BYTES;
        let alone = encoded.len() == 1 && self.last_batch.swap(1, Ordering::Relaxed) == 1;
        if encoded.len() != 1 {
            self.last_batch.store(encoded.len(), Ordering::Relaxed);
        }
        let inline = small && alone && !self.disk_slow.load(Ordering::Relaxed);
        let started = Instant::now();
        let db = self.db.clone();
        let write = move || {
            let txn = db
                .begin_write()
                .map_err(|e| io_err("starting a write", e))?;
            {
                let mut log = txn
                    .open_table(LOG)
                    .map_err(|e| io_err("opening the raft log", e))?;
                for (index, bytes) in &encoded {
                    log.insert(*index, bytes.as_slice())
                        .map_err(|e| io_err(&format!("writing log entry {index}"), e))?;
                }
            }
            super::fault::slow_disk();
            txn.commit()
                .map_err(|e| io_err("committing log entries", e))
        };
        if inline {
            write()?;
        } else {
            blocking(write).await?;
        }
        let took = started.elapsed();
        if took > SLOW_APPEND {
            self.disk_slow.store(true, Ordering::Relaxed);
        } else if took < SLOW_APPEND / 2 {
            self.disk_slow.store(false, Ordering::Relaxed);
        }
        callback.io_completed(Ok(()));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let start = match &last_log_id {
            Some(id) => Bound::Excluded(id.index),
            None => Bound::Unbounded,
        };
        let db = self.db.clone();
        blocking(move || {
            let txn = db
                .begin_write()
                .map_err(|e| io_err("starting a write", e))?;
            {
                let mut log = txn
                    .open_table(LOG)
                    .map_err(|e| io_err("opening the raft log", e))?;
                log.retain_in::<u64, _>((start, Bound::Unbounded), |_, _| false)
                    .map_err(|e| io_err("truncating the raft log", e))?;
            }
            txn.commit()
                .map_err(|e| io_err("committing a log truncation", e))
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let db = self.db.clone();
        blocking(move || {
            let txn = db
                .begin_write()
                .map_err(|e| io_err("starting a write", e))?;
            {
                let mut meta = txn
                    .open_table(RAFT_META)
                    .map_err(|e| io_err("opening raft metadata", e))?;
                db::write_json(&mut meta, KEY_PURGED, &log_id)?;
                let mut log = txn
                    .open_table(LOG)
                    .map_err(|e| io_err("opening the raft log", e))?;
                log.retain_in::<u64, _>(..=log_id.index, |_, _| false)
                    .map_err(|e| io_err("purging the raft log", e))?;
            }
            txn.commit()
                .map_err(|e| io_err("committing a log purge", e))
        })
        .await
    }
}

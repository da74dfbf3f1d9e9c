//! Raft integrated storage: the durable, replicable backend behind `storage "raft"`.
//!
//! Raft runs even on a single node so that a node grows into a cluster with `raft join` and no
//! data migration: node ids, membership (with cluster addresses) and every write already live
//! in the Raft log and state machine. openraft drives consensus; the log, the vote and the state
//! machine live in two redb files (`<path>/raft-log.redb` and `<path>/strongroom.redb`, see
//! `db`), and every acknowledged write has been fsync'd in the log and applied before
//! [`Storage::write`] returns.

mod db;
mod entry_codec;
mod fault;
mod identity;
mod legacy_command;
mod log_store;
mod membership;
mod network;
mod reads;
mod removal;
mod snapshot_codec;
mod snapshot_data;
mod state_machine;
mod status;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
mod types;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use openraft::async_runtime::watch::WatchReceiver;
use openraft::error::{ClientWriteError, Fatal, RaftError};
use openraft::{Config, Raft, ServerState, SnapshotPolicy};
use redb::Database;

use self::log_store::LogStore;
use self::network::NetworkFactory;
use self::state_machine::StateMachine;
pub use self::types::RaftNode;
use self::types::{ApplyOutcome, Command, TypeConfig, raft_id_for};
use crate::replog::engine::{self, BucketSet, ReplShared};
use crate::replog::{MerkleTree, ReplCommand, ReplStatus, WalPosition, WalRead};
use crate::{Cluster, Dialer, Leadership, Op, Storage, StorageError, StorageStatus};

/// Per stamped entry: from its proposal (the proposer's clock) to the end of its apply on this
/// node. On the leader that is the commit latency a client's write waits for, minus HTTP.
pub const APPLY_LAG_SECONDS: &str = "vault_raft_storage_apply_lag_seconds";

/// A WAL read this close to the newest entry runs inline (see `wal_read`).
const WAL_READ_INLINE_ENTRIES: u64 = 64;

/// How long `shutdown` waits for Raft's background tasks to release the database.
const SHUTDOWN_RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and as whom this node runs Raft; mirrors the `storage "raft"` stanza.
#[derive(Clone)]
pub struct RaftOptions {
    /// Data directory; the databases are `<path>/strongroom.redb` and `<path>/raft-log.redb`.
    pub path: PathBuf,
    /// This node's id (`node_id = "node1"`); must stay the same across restarts.
    pub node_id: String,
    /// host:port of this node's cluster listener, recorded in the Raft membership.
    pub cluster_addr: String,
    /// Opens streams to peers. `None`: this node can only ever be a one-node cluster, and
    /// every RPC to a peer fails as unreachable.
    pub dialer: Option<Arc<dyn Dialer>>,
}

impl RaftOptions {
    /// Options without a dialer (a node that never talks to peers); see [`Self::with_dialer`].
    pub fn new(
        path: impl Into<PathBuf>,
        node_id: impl Into<String>,
        cluster_addr: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            node_id: node_id.into(),
            cluster_addr: cluster_addr.into(),
            dialer: None,
        }
    }

    /// The same options with `dialer` as the peer transport.
    pub fn with_dialer(mut self, dialer: Arc<dyn Dialer>) -> Self {
        self.dialer = Some(dialer);
        self
    }
}

impl std::fmt::Debug for RaftOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftOptions")
            .field("path", &self.path)
            .field("node_id", &self.node_id)
            .field("cluster_addr", &self.cluster_addr)
            .field("dialer", &self.dialer.as_ref().map(|_| "…"))
            .finish()
    }
}

/// Limits and timing knobs; the defaults suit production.
#[derive(Debug, Clone)]
pub struct RaftTuning {
    /// Largest key+value payload of one [`Storage::write`] batch.
    pub max_batch_bytes: usize,
    /// Largest key+value payload of one [`Storage::replace_all`].
    pub max_replace_all_bytes: usize,
    /// How long `open` (and `bootstrap`) wait for a sole voter to become leader and catch up.
    pub leader_timeout: Duration,
    /// Build a snapshot (and purge the log before it) after this many new entries
    /// (Vault's `snapshot_threshold`).
    pub snapshot_every_entries: u64,
    /// Log entries kept behind a snapshot, so slightly lagging followers avoid a full snapshot
    /// (Vault's `trailing_logs`).
    pub logs_kept_after_snapshot: u64,
    /// Vault's `performance_multiplier`: scales the heartbeat (10 ms × m) and the election
    /// timeout (50–100 ms × m). 0 means the default, 5 (50 ms, 250–500 ms); 2 suits tests.
    pub performance_multiplier: u32,
    /// How long sending and installing one snapshot may take before it is retried.
    pub install_snapshot_timeout: Duration,
}

impl RaftTuning {
    /// Vault's default `performance_multiplier`.
    pub const DEFAULT_PERFORMANCE_MULTIPLIER: u32 = 5;

    /// Vault's `snapshot_threshold`.
    pub fn snapshot_threshold(&self) -> u64 {
        self.snapshot_every_entries
    }

    /// Vault's `trailing_logs`.
    pub fn trailing_logs(&self) -> u64 {
        self.logs_kept_after_snapshot
    }

    fn multiplier(&self) -> u64 {
        match self.performance_multiplier {
            0 => u64::from(Self::DEFAULT_PERFORMANCE_MULTIPLIER),
            m => u64::from(m),
        }
    }

    /// Heartbeat interval in milliseconds: 10 ms per multiplier step (50 ms by default).
    pub fn heartbeat_ms(&self) -> u64 {
        10 * self.multiplier()
    }

    /// Election timeout range in milliseconds: 50-100 ms per step (250-500 ms by default).
    /// openraft's followers also refuse votes for `election_timeout_max` after the last
    /// heartbeat (the leader lease), so failover takes roughly the upper bound plus one more
    /// timeout in the worst case; the default keeps that near one second.
    pub fn election_timeout_ms(&self) -> (u64, u64) {
        (50 * self.multiplier(), 100 * self.multiplier())
    }
}

impl Default for RaftTuning {
    fn default() -> Self {
        Self {
            max_batch_bytes: 1024 * 1024,
            max_replace_all_bytes: 64 * 1024 * 1024,
            leader_timeout: Duration::from_secs(10),
            snapshot_every_entries: 8192,
            logs_kept_after_snapshot: 1000,
            performance_multiplier: 0,
            install_snapshot_timeout: Duration::from_secs(120),
        }
    }
}

/// The Raft-backed [`Storage`].
pub struct RaftStorage {
    raft: Raft<TypeConfig, StateMachine>,
    /// The state-machine file (reads are served from it).
    db: Arc<Database>,
    /// The log file, held to know when Raft's tasks have released it.
    log_db: Arc<Database>,
    repl: Arc<ReplShared>,
    node_id: String,
    raft_id: u64,
    cluster_addr: String,
    /// Where received snapshots are staged before they are installed.
    path: PathBuf,
    dialer: Option<Arc<dyn Dialer>>,
    tuning: RaftTuning,
    /// Leadership as published to [`Cluster::leadership`], fed by `membership::follow`.
    leadership: tokio::sync::watch::Sender<Leadership>,
    /// Set once this node learns it was removed; also persisted in the log database.
    removed: Arc<std::sync::atomic::AtomicBool>,
    /// Membership changes one at a time (openraft refuses a change while one is in flight).
    membership_changes: tokio::sync::Mutex<()>,
    /// The highest log index this node wrote and saw applied. openraft publishes its metrics
    /// asynchronously, so right after a write returns they may still show an older applied
    /// index; `status` reports at least this one, so a caller that reads the applied index
    /// after its write (core's `X-Vault-Index`) never gets an index below its own write.
    written: std::sync::atomic::AtomicU64,
}

impl RaftStorage {
    /// Opens (or creates) the store with default tuning; see [`RaftStorage::open_with`].
    pub async fn open(opts: RaftOptions) -> Result<Arc<RaftStorage>, StorageError> {
        Self::open_with(opts, RaftTuning::default()).await
    }

    /// Opens the store and, when the directory is pristine, makes it a one-node cluster
    /// ([`Cluster::bootstrap`]): what `-dev`-like single servers, tools and tests want.
    pub async fn open_single(opts: RaftOptions) -> Result<Arc<RaftStorage>, StorageError> {
        Self::open_single_with(opts, RaftTuning::default()).await
    }

    /// [`RaftStorage::open_single`] with explicit tuning.
    pub async fn open_single_with(
        opts: RaftOptions,
        tuning: RaftTuning,
    ) -> Result<Arc<RaftStorage>, StorageError> {
        let storage = Self::open_with(opts, tuning).await?;
        if !storage.is_member().await?
            && let Err(e) = storage.bootstrap().await
        {
            if let Err(stop) = storage.shutdown().await {
                tracing::warn!(error = %stop, "stopping raft after a failed bootstrap");
            }
            return Err(e);
        }
        Ok(storage)
    }

    /// Opens the store at `opts.path`, recovering log and state machine.
    ///
    /// A pristine directory is left uninitialized: Raft runs, but the node belongs to no
    /// cluster until [`Cluster::bootstrap`] makes it one, or a leader adds it and replicates
    /// to it. That keeps a joining node from electing itself leader of a cluster of its own.
    /// When this node is the only voter of an existing cluster, `open` returns once it leads
    /// and has applied everything committed, so reads see all acknowledged writes.
    pub async fn open_with(
        opts: RaftOptions,
        tuning: RaftTuning,
    ) -> Result<Arc<RaftStorage>, StorageError> {
        if opts.node_id.trim().is_empty() {
            return Err(StorageError::Config(
                "raft storage needs a non-empty node_id".into(),
            ));
        }
        let path = opts.path.clone();
        let node_id = opts.node_id.clone();
        let files = tokio::task::spawn_blocking(move || {
            let files = db::open(&path)?;
            identity::check(&files.log, &node_id)?;
            snapshot_data::remove_stale_staged(&path);
            let repl = state_machine::load_repl(&files.sm).map_err(|e| read_error("open", e))?;
            let removed = removal::load(&files.log)?;
            Ok::<_, StorageError>((files, Arc::new(repl), removed))
        })
        .await
        .map_err(|e| StorageError::io("opening raft storage", e))??;
        let (files, repl, removed) = (files.0, files.1, files.2);

        let raft_id = raft_id_for(&opts.node_id);
        let config = Config {
            cluster_name: "strongroom".into(),
            heartbeat_interval: tuning.heartbeat_ms(),
            election_timeout_min: tuning.election_timeout_ms().0,
            election_timeout_max: tuning.election_timeout_ms().1,
            install_snapshot_timeout: u64::try_from(tuning.install_snapshot_timeout.as_millis())
                .unwrap_or(u64::MAX),
            // A node that cannot win (partitioned, stale) must not bump the term and depose a
            // healthy leader when it comes back.
            enable_pre_vote: Some(true),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(tuning.snapshot_every_entries),
            max_in_snapshot_log_to_keep: tuning.logs_kept_after_snapshot,
            // Applies and `committed` are not fsync'd, which openraft's docs name as the case
            // where a restored leader could serve a rolled-back state machine; `bootstrap`
            // therefore waits for `wait_for_recovery` before `open` returns.
            enable_leader_restore: Some(true),
            ..Config::default()
        }
        .validate()
        .map_err(|e| StorageError::Config(format!("invalid raft configuration: {e}")))?;

        let raft = Raft::new(
            raft_id,
            Arc::new(config),
            NetworkFactory::new(opts.dialer.clone()),
            LogStore::new(files.log.clone()),
            StateMachine::new(files.sm.clone(), repl.clone()),
        )
        .await
        .map_err(|e| StorageError::io("starting raft", e))?;

        let removed = Arc::new(std::sync::atomic::AtomicBool::new(removed));
        let (leadership, _) = tokio::sync::watch::channel(Leadership {
            removed: removed.load(std::sync::atomic::Ordering::SeqCst),
            ..Leadership::default()
        });
        let storage = RaftStorage {
            raft,
            db: files.sm,
            log_db: files.log,
            repl,
            node_id: opts.node_id.clone(),
            raft_id,
            cluster_addr: opts.cluster_addr.clone(),
            path: opts.path.clone(),
            dialer: opts.dialer.clone(),
            tuning,
            leadership,
            removed,
            membership_changes: tokio::sync::Mutex::new(()),
            written: std::sync::atomic::AtomicU64::new(0),
        };
        membership::follow(&storage);
        let opened = match storage.await_ready().await {
            Ok(()) => storage.checkpoint().await,
            Err(e) => Err(e),
        };
        if let Err(e) = opened {
            // Stop the background tasks so the database file is released for a retry.
            if let Err(stop) = storage.shutdown().await {
                tracing::warn!(error = %stop, "stopping raft after a failed open");
            }
            return Err(e);
        }
        storage.repl.set_recovering(false);
        Ok(Arc::new(storage))
    }

    /// Makes everything applied so far durable in the state-machine file (an empty durable
    /// commit). After recovery this turns what the log re-applied into the durable state, so
    /// the snapshot meta openraft read at startup (the re-applied index) is durable too.
    async fn checkpoint(&self) -> Result<(), StorageError> {
        let db = self.db.clone();
        db::blocking(move || {
            let txn = db
                .begin_write()
                .map_err(|e| db::io_err("starting a checkpoint", e))?;
            txn.commit()
                .map_err(|e| db::io_err("committing a checkpoint", e))
        })
        .await
        .map_err(|e| StorageError::io("checkpointing the state machine", e))
    }

    /// Whether Raft holds a vote or log (initialized, or contacted by a leader).
    async fn initialized(&self) -> Result<bool, StorageError> {
        self.raft
            .is_initialized()
            .await
            .map_err(|e| StorageError::io("reading raft state", e))
    }

    /// Makes a pristine node a one-node cluster, then waits as [`Self::await_ready`] does.
    async fn initialize_single(&self) -> Result<(), StorageError> {
        if !self.initialized().await? {
            let me = RaftNode {
                node_id: self.node_id.clone(),
                cluster_addr: self.cluster_addr.clone(),
            };
            self.raft
                .initialize(BTreeMap::from([(self.raft_id, me)]))
                .await
                .map_err(|e| StorageError::io("initializing the single-node raft cluster", e))?;
            tracing::info!(node_id = %self.node_id, "initialized a new single-node raft cluster");
        }
        self.await_ready().await
    }

    /// On an initialized node: waits for leadership when this node alone votes, or (bounded)
    /// for the re-apply of its durable log otherwise. A pristine node returns at once.
    async fn await_ready(&self) -> Result<(), StorageError> {
        if !self.initialized().await? {
            return Ok(());
        }
        let deadline = Instant::now() + self.tuning.leader_timeout;
        // Metrics are published asynchronously; wait until they carry the membership.
        let m = self
            .raft
            .wait(Some(self.tuning.leader_timeout))
            .metrics(
                |m| {
                    m.membership_config
                        .membership()
                        .voter_ids()
                        .next()
                        .is_some()
                },
                "raft membership loaded",
            )
            .await
            .map_err(|e| StorageError::io("loading the raft membership", e))?;
        let (sole_voter, recorded_addr) = {
            let membership = m.membership_config.membership();
            let voters: Vec<u64> = membership.voter_ids().collect();
            let addr = membership
                .get_node(&self.raft_id)
                .map(|n| n.cluster_addr.clone());
            (voters == [self.raft_id], addr)
        };
        if let Some(addr) = recorded_addr
            && addr != self.cluster_addr
        {
            tracing::warn!(
                recorded = %addr,
                configured = %self.cluster_addr,
                "cluster_addr differs from the address recorded in raft membership; peers will use the recorded one"
            );
        }
        if !sole_voter {
            // With other voters, leadership and the commit index come from the cluster, which
            // this node can only hear once the server serves its cluster port, after `open`
            // returns: waiting here would wait for ourselves. Until a leader reaches it, the
            // node serves what it had applied; readers that need a position use
            // `Cluster::wait_applied`.
            return Ok(());
        }

        let left = deadline.saturating_duration_since(Instant::now());
        self.raft
            .wait(Some(left))
            .state(ServerState::Leader, "single-node raft leadership")
            .await
            .map_err(|e| {
                StorageError::NotLeader(format!(
                    "node {} did not become raft leader ({e}); check that the data directory \
                     belongs to this node and that the disk is writable",
                    self.node_id
                ))
            })?;
        let left = deadline.saturating_duration_since(Instant::now());
        self.raft
            .wait_for_recovery(Some(left.max(Duration::from_millis(100))))
            .await
            .map_err(|e| {
                StorageError::NotLeader(format!(
                    "raft leader could not apply its committed log in time ({e})"
                ))
            })?;
        Ok(())
    }

    /// Proposes one entry and waits until it is committed and applied.
    async fn propose(&self, cmd: Command) -> Result<(), StorageError> {
        let started = Instant::now();
        // A leader cut off from its quorum waits for a commit that cannot come until it hears
        // of the next term; once its lease lapses (see `membership::follow`) the write is
        // given up, so the caller is not held for the whole partition. Its outcome is unknown
        // to the caller, but a leader without a quorum cannot commit it.
        let mut lead = self.leadership.subscribe();
        let lost = async move {
            let mut led = lead.borrow_and_update().is_self;
            loop {
                if lead.changed().await.is_err() {
                    return std::future::pending::<()>().await;
                }
                let leads = lead.borrow_and_update().is_self;
                if led && !leads {
                    return;
                }
                led |= leads;
            }
        };
        let resp = tokio::select! {
            resp = self.raft.client_write(cmd) => resp.map_err(write_error)?,
            () = lost => {
                return Err(StorageError::NotLeader(
                    "this node lost contact with its raft quorum while the write was pending; its outcome is unknown, retry against the active node".into(),
                ));
            }
        };
        metrics::histogram!("vault_raft_apply_seconds").record(started.elapsed().as_secs_f64());
        self.written
            .fetch_max(resp.log_id.index, std::sync::atomic::Ordering::AcqRel);
        match resp.data {
            ApplyOutcome::Applied => Ok(()),
            ApplyOutcome::Diverged(m) => Err(StorageError::Diverged(m)),
            ApplyOutcome::Rejected(m) => Err(StorageError::Rejected(m)),
        }
    }

    /// Refuses a command over the per-entry size limit.
    fn check_size(&self, cmd: &Command, what: &str) -> Result<(), StorageError> {
        let size = cmd.payload_bytes();
        if size > self.tuning.max_batch_bytes {
            return Err(StorageError::TooLarge(format!(
                "{what} of {size} bytes exceeds the raft entry limit of {} bytes",
                self.tuning.max_batch_bytes
            )));
        }
        Ok(())
    }

    /// Proposes merkle-sync ops in entries under the size limit; each op is an absolute put
    /// or delete, so splitting keeps the result identical.
    async fn propose_sync_ops(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        engine::check_replicated_ops(&ops)?;
        let mut chunk: Vec<Op> = Vec::new();
        let mut size = 0usize;
        for op in ops {
            let op_size = types::ops_bytes(std::slice::from_ref(&op));
            if !chunk.is_empty() && size + op_size > self.tuning.max_batch_bytes {
                let full = std::mem::take(&mut chunk);
                self.propose(Command::Repl(ReplCommand::SyncOps(full)))
                    .await?;
                size = 0;
            }
            size += op_size;
            chunk.push(op);
        }
        if chunk.is_empty() {
            return Ok(());
        }
        let cmd = Command::Repl(ReplCommand::SyncOps(chunk));
        self.check_size(&cmd, "a merkle-sync op")?;
        self.propose(cmd).await
    }

    /// Proposes consecutive remote WAL entries in as few Raft entries as the size limit
    /// allows (one fsync each); the chain check runs again in every apply.
    async fn propose_remote_batch(
        &self,
        entries: Vec<crate::WalEntry>,
    ) -> Result<(), StorageError> {
        let mut chunk: Vec<crate::WalEntry> = Vec::new();
        let mut size = 0usize;
        for entry in entries {
            let bytes = entry.payload_bytes();
            if bytes > self.tuning.max_batch_bytes {
                return Err(StorageError::TooLarge(format!(
                    "WAL entry {} carries {bytes} bytes, over the raft entry limit of {} bytes",
                    entry.index, self.tuning.max_batch_bytes
                )));
            }
            if !chunk.is_empty() && size + bytes > self.tuning.max_batch_bytes {
                let full = std::mem::take(&mut chunk);
                self.propose(Command::Repl(ReplCommand::ApplyRemoteBatch(full)))
                    .await?;
                size = 0;
            }
            size += bytes;
            chunk.push(entry);
        }
        if chunk.is_empty() {
            return Ok(());
        }
        self.propose(Command::Repl(ReplCommand::ApplyRemoteBatch(chunk)))
            .await
    }

    /// Runs a short, bounded read (one key, or one capped WAL batch) right here: it is served
    /// from redb's cache almost always, and even handing it to `block_in_place` costs a thread
    /// wake-up that is worth more than the read (several per client write).
    fn read_point<T, F>(&self, op: &'static str, f: F) -> Result<T, StorageError>
    where
        F: FnOnce(&Database) -> std::io::Result<T>,
    {
        metrics::counter!("vault_raft_storage_ops_total", "op" => op).increment(1);
        f(&self.db).map_err(|e| read_error(op, e))
    }

    /// Runs a read against the state machine off the async workers.
    async fn read<T, F>(&self, op: &'static str, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> std::io::Result<T> + Send + 'static,
    {
        metrics::counter!("vault_raft_storage_ops_total", "op" => op).increment(1);
        let db = self.db.clone();
        db::blocking(move || f(&db))
            .await
            .map_err(|e| read_error(op, e))
    }
}

fn write_error(e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> StorageError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            StorageError::NotLeader(not_leader_message(f.leader_node.as_ref()))
        }
        RaftError::APIError(other) => StorageError::NotLeader(other.to_string()),
        RaftError::Fatal(Fatal::Stopped) => {
            StorageError::NotLeader("raft storage is shut down".into())
        }
        RaftError::Fatal(fatal) => StorageError::io("replicating a write through raft", fatal),
    }
}

/// The message of a [`StorageError::NotLeader`]: names the leader's node id when known, so a
/// caller (and an operator) can tell where writes go.
fn not_leader_message(leader: Option<&RaftNode>) -> String {
    match leader {
        Some(node) => format!(
            "this node is not the raft leader (leader: {} at {})",
            node.node_id, node.cluster_addr
        ),
        None => "this node is not the raft leader (no leader is known)".to_owned(),
    }
}

fn read_error(op: &str, e: std::io::Error) -> StorageError {
    if e.kind() == std::io::ErrorKind::InvalidData {
        StorageError::Corrupt(e.to_string())
    } else {
        StorageError::io(format!("raft storage {op}"), e)
    }
}

#[async_trait]
impl Storage for RaftStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let key = key.to_owned();
        self.read_point("get", move |db| reads::get(db, &key))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let prefix = prefix.to_owned();
        self.read("list", move |db| reads::list(db, &prefix)).await
    }

    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let prefix = prefix.to_owned();
        let after = after.map(str::to_owned);
        self.read("scan", move |db| {
            reads::scan(db, &prefix, after.as_deref(), limit)
        })
        .await
    }

    async fn export(&self, max_bytes: usize) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.read("export", move |db| reads::export(db, max_bytes))
            .await?
            .map_err(|total| {
                StorageError::TooLarge(format!(
                    "storage holds more than {total} bytes; the export limit is {max_bytes}"
                ))
            })
    }

    fn max_replace_all_bytes(&self) -> usize {
        self.tuning.max_replace_all_bytes
    }

    async fn write(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        metrics::counter!("vault_raft_storage_ops_total", "op" => "write").increment(1);
        if ops.is_empty() {
            return Ok(());
        }
        engine::check_user_ops(&ops)?;
        let cmd = Command::Write {
            unix_us: engine::unix_us(),
            ops,
        };
        self.check_size(&cmd, "write batch")?;
        self.propose(cmd).await
    }

    async fn replace_all(&self, pairs: Vec<(String, Vec<u8>)>) -> Result<(), StorageError> {
        metrics::counter!("vault_raft_storage_ops_total", "op" => "write").increment(1);
        let cmd = Command::ReplaceAll(pairs);
        let size = cmd.payload_bytes();
        if size > self.tuning.max_replace_all_bytes {
            return Err(StorageError::TooLarge(format!(
                "restore of {size} bytes exceeds the raft replace-all limit of {} bytes",
                self.tuning.max_replace_all_bytes
            )));
        }
        self.propose(cmd).await
    }

    fn status(&self) -> StorageStatus {
        let mut status = status::from_metrics(&self.raft.metrics().borrow_watched(), &self.node_id);
        let written = self.written.load(std::sync::atomic::Ordering::Acquire);
        status.applied_index = status.applied_index.max(written);
        status.committed_index = status.committed_index.max(written);
        status
    }

    async fn apply_replication(&self, cmd: ReplCommand) -> Result<(), StorageError> {
        metrics::counter!("vault_raft_storage_ops_total", "op" => "replication").increment(1);
        match &cmd {
            ReplCommand::ApplyRemote(entry)
                if entry.payload_bytes() > self.tuning.max_batch_bytes =>
            {
                return Err(StorageError::TooLarge(format!(
                    "WAL entry {} carries {} bytes, over the raft entry limit of {} bytes",
                    entry.index,
                    entry.payload_bytes(),
                    self.tuning.max_batch_bytes
                )));
            }
            ReplCommand::ApplyRemoteBatch(_) | ReplCommand::SyncOps(_) => {}
            ReplCommand::WipeReplicatedThen(_) => {
                let cmd = Command::Repl(cmd);
                self.check_size(&cmd, "a wipe with keyring records")?;
                return self.propose(cmd).await;
            }
            _ => {}
        }
        match cmd {
            ReplCommand::ApplyRemoteBatch(entries) => self.propose_remote_batch(entries).await,
            ReplCommand::SyncOps(ops) => self.propose_sync_ops(ops).await,
            other => self.propose(Command::Repl(other)).await,
        }
    }

    fn replication_status(&self) -> ReplStatus {
        self.repl.status()
    }

    async fn wal_read(
        &self,
        after: WalPosition,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<WalRead, StorageError> {
        // Near the tail (a streaming secondary) the entries are few and in redb's cache; a
        // secondary catching up reads long runs of cold pages, which belong off the worker.
        let behind = self.repl.last_wal().saturating_sub(after.index);
        if behind <= WAL_READ_INLINE_ENTRIES {
            return self.read_point("wal_read", move |db| {
                reads::wal_read(db, after, max_entries, max_bytes)
            });
        }
        self.read("wal_read", move |db| {
            reads::wal_read(db, after, max_entries, max_bytes)
        })
        .await
    }

    async fn wal_position_at(&self, index: u64) -> Result<Option<WalPosition>, StorageError> {
        self.read_point("wal_position_at", move |db| {
            reads::wal_position_at(db, index)
        })
    }

    fn wal_watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.repl.watch()
    }

    fn wal_committed_at(&self, index: u64) -> Option<u64> {
        self.repl.committed_at(index)
    }

    fn merkle_hashes(&self, tree: MerkleTree, page: Option<u8>) -> Vec<[u8; 32]> {
        self.repl.hashes(tree, page)
    }

    async fn export_buckets(
        &self,
        tree: MerkleTree,
        buckets: Vec<u16>,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let set = BucketSet::new(&buckets);
        self.read("export_buckets", move |db| {
            reads::filtered(db, |k| set.wants(tree, k))
        })
        .await
    }

    fn set_wal_retention(&self, max_entries: u64, max_bytes: u64) {
        self.repl.set_retention(max_entries, max_bytes);
    }

    async fn rebuild_merkle(&self) -> Result<(), StorageError> {
        let repl = self.repl.clone();
        self.read("reindex", move |db| {
            // Held across the scan so that no apply commits between the read and the swap.
            let guard = repl.commit_lock();
            let merkle = reads::index(db)?;
            repl.rebuild(guard, merkle);
            Ok(())
        })
        .await
    }

    /// Stops Raft, makes the state machine durable (so the next open replays nothing), and
    /// waits until Raft's tasks have let go of both files, so that dropping this value closes
    /// them and the directory can be reopened at once.
    async fn shutdown(&self) -> Result<(), StorageError> {
        self.raft
            .shutdown()
            .await
            .map_err(|e| StorageError::io("shutting down raft", e))?;
        self.checkpoint().await?;
        let deadline = Instant::now() + SHUTDOWN_RELEASE_TIMEOUT;
        while Arc::strong_count(&self.db) > 1 || Arc::strong_count(&self.log_db) > 1 {
            if Instant::now() >= deadline {
                return Err(StorageError::io(
                    "shutting down raft",
                    "background raft tasks still hold the databases after 5s",
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod conformance;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod cluster_tests;

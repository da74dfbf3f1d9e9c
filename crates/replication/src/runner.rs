//! The async driver of a DR secondary: sockets, timers and storage around the sans-IO FSM.
//!
//! All decisions are made by [`SecondaryFsm`]; this loop only performs its outputs in order
//! (dial, send, apply, prune, sleep) and turns what happens back into events. Keeping it
//! this thin is what makes the seeded FSM tests meaningful for the real thing.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use strongroom_storage::{Op, ReplCommand, Storage, WalEntry};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use zeroize::Zeroizing;

use crate::client::{ClientTls, connect};
use crate::error::ReplicationError;
use crate::fsm::{Event, FsmConfig, Output, SecondaryFsm, State, StorageView};
use crate::metrics as m;
use crate::peer::PeerInfo;
use crate::wire::{PrimaryMsg, SecondaryMsg, read_frame, write_frame};

/// How often the FSM is ticked (heartbeats, liveness).
const TICK: Duration = Duration::from_millis(250);
/// How long one frame may take to leave.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a secondary needs to replicate: its activation bundle.
#[derive(Clone)]
pub struct SecondaryConfig {
    pub secondary_id: String,
    pub cluster_id: String,
    pub primary_cluster_addrs: Vec<String>,
    /// The primary's replication CA (trusted for the server certificate).
    pub ca_pem: String,
    pub client_cert_pem: String,
    /// Secret: the client private key issued by the primary.
    pub client_key_pem: Zeroizing<String>,
    /// Our advertised API address, shown in the primary's `secondaries[]`.
    pub api_address: String,
    /// Our advertised cluster address, shown in the primary's `secondaries[]`.
    pub cluster_address: String,
}

impl std::fmt::Debug for SecondaryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondaryConfig")
            .field("secondary_id", &self.secondary_id)
            .field("cluster_id", &self.cluster_id)
            .field("primary_cluster_addrs", &self.primary_cluster_addrs)
            .field("client_key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Callbacks into the core.
#[async_trait]
pub trait SecondaryHooks: Send + Sync {
    /// Replicated WAL entries were applied to storage (refresh caches of mounts, policies...).
    async fn after_apply(&self) {}
    /// The primary advertised a new set of node cluster addresses; persist them.
    async fn known_addrs_changed(&self, _addrs: Vec<String>) {}
}

/// Merkle-sync progress, as `merkle_sync_progress` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncProgress {
    /// Keys received from the primary so far.
    pub sync_progress: u64,
    /// Estimated keys to receive (extrapolated from the buckets done so far).
    pub sync_total_keys: u64,
}

/// A secondary's replication status, for `sys/replication/dr/status`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecondaryStatus {
    /// `idle`, `connecting`, `merkle-diff`, `merkle-sync` or `stream-wals`.
    pub state: &'static str,
    /// `idle`, `connecting`, `ready`, `transient_failure` or `shutdown`.
    pub connection_state: &'static str,
    pub last_remote_wal: u64,
    /// The primary's last WAL index as of its latest HelloAck or heartbeat: caught up when
    /// `last_remote_wal` reaches it.
    pub primary_last_wal: u64,
    pub known_primary_cluster_addrs: Vec<String>,
    /// The primary we talk to (one entry while an address is selected).
    pub primaries: Vec<PeerInfo>,
    pub last_start: Option<SystemTime>,
    pub last_heartbeat: Option<SystemTime>,
    /// Present during `merkle-sync`.
    pub sync_progress: Option<SyncProgress>,
    /// Why the last connection ended, if it failed.
    pub last_error: Option<String>,
    pub syncs_completed: u64,
    /// Keys written by the last completed merkle sync.
    pub last_sync_written: u64,
    /// Local keys deleted by the last completed merkle sync because the primary lacks them.
    pub last_sync_discarded: u64,
}

/// Starts secondaries.
pub struct SecondaryRunner;

/// Controls a running secondary.
pub struct SecondaryHandle {
    status: Arc<Mutex<SecondaryStatus>>,
    stop: watch::Sender<bool>,
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for SecondaryHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecondaryHandle")
    }
}

impl SecondaryHandle {
    /// The latest status.
    pub fn status(&self) -> SecondaryStatus {
        match self.status.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Stops replicating and waits until the connection is closed and no apply is running.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().await.take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for SecondaryHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl SecondaryRunner {
    /// Starts replicating into `storage` in a background task.
    pub fn start(
        cfg: SecondaryConfig,
        storage: Arc<dyn Storage>,
        hooks: Arc<dyn SecondaryHooks>,
    ) -> Result<SecondaryHandle, ReplicationError> {
        let tls = ClientTls::new(&cfg.ca_pem, &cfg.client_cert_pem, &cfg.client_key_pem)?;
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ (Arc::as_ptr(&storage) as *const () as usize as u64);
        let fsm = SecondaryFsm::new(
            FsmConfig {
                secondary_id: cfg.secondary_id.clone(),
                cluster_id: cfg.cluster_id.clone(),
                primary_cluster_addrs: cfg.primary_cluster_addrs.clone(),
                api_address: cfg.api_address.clone(),
                cluster_address: cfg.cluster_address.clone(),
            },
            seed,
        );
        let status = Arc::new(Mutex::new(SecondaryStatus {
            state: State::Idle.as_str(),
            connection_state: "idle",
            ..SecondaryStatus::default()
        }));
        let (stop_tx, stop_rx) = watch::channel(false);
        let driver = Driver {
            fsm,
            storage,
            hooks,
            tls,
            status: status.clone(),
            stop: stop_rx,
            conn: None,
            events: VecDeque::from([Event::Start]),
            sync_written: 0,
            sync_discarded: 0,
            last_sync: (0, 0),
            commit_times: BTreeMap::new(),
        };
        let task = tokio::spawn(driver.run());
        Ok(SecondaryHandle {
            status,
            stop: stop_tx,
            task: tokio::sync::Mutex::new(Some(task)),
        })
    }
}

type Stream = TlsStream<TcpStream>;

struct Conn {
    writer: WriteHalf<Stream>,
    incoming: mpsc::Receiver<Result<PrimaryMsg, ReplicationError>>,
    reader: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

struct Driver {
    fsm: SecondaryFsm,
    storage: Arc<dyn Storage>,
    hooks: Arc<dyn SecondaryHooks>,
    tls: ClientTls,
    status: Arc<Mutex<SecondaryStatus>>,
    stop: watch::Receiver<bool>,
    conn: Option<Conn>,
    events: VecDeque<Event>,
    sync_written: u64,
    sync_discarded: u64,
    last_sync: (u64, u64),
    /// The primary's commit time (unix µs) of streamed entries not applied yet, by index;
    /// emptied on every new connection, trimmed to what is past each apply.
    commit_times: BTreeMap<u64, u64>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn time_of(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// What woke the driver up.
enum Next {
    Stop,
    Msg(PrimaryMsg),
    Lost(String),
    Tick,
}

/// Whether the driver keeps going after an output.
enum Flow {
    Continue,
    /// Skip the rest of this batch (an apply failed).
    Abort,
    /// Stop was requested.
    Stop,
}

impl Driver {
    async fn run(mut self) {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            while let Some(event) = self.events.pop_front() {
                let outputs = self
                    .fsm
                    .handle(event, now_ms(), &StorageView(&*self.storage));
                let flow = self.exec(outputs).await;
                self.publish();
                if let Flow::Stop = flow {
                    self.shutdown();
                    return;
                }
            }
            if *self.stop.borrow() {
                self.shutdown();
                return;
            }
            let next = {
                let incoming = async {
                    match self.conn.as_mut() {
                        Some(c) => c.incoming.recv().await,
                        None => std::future::pending().await,
                    }
                };
                // Biased: after a long apply, messages already queued (heartbeats among them)
                // are read before the clock decides the primary went silent.
                tokio::select! {
                    biased;
                    _ = self.stop.changed() => Next::Stop,
                    msg = incoming => match msg {
                        Some(Ok(msg)) => Next::Msg(msg),
                        Some(Err(e)) => Next::Lost(e.to_string()),
                        None => Next::Lost("the primary closed the connection".to_owned()),
                    },
                    _ = ticker.tick() => Next::Tick,
                }
            };
            match next {
                Next::Stop => {
                    self.shutdown();
                    return;
                }
                Next::Tick => self.events.push_back(Event::Tick),
                Next::Msg(PrimaryMsg::Wal {
                    entries,
                    committed_us,
                }) => {
                    note_commit_times(&mut self.commit_times, &entries, &committed_us);
                    self.coalesce_wal(entries)
                }
                Next::Msg(msg) => self.events.push_back(msg.into()),
                Next::Lost(reason) => {
                    self.conn = None;
                    self.events.push_back(Event::Disconnected(reason));
                }
            }
        }
    }

    fn shutdown(&mut self) {
        // Stop only ever asks to close the connection, which happens right here.
        let _ = self
            .fsm
            .handle(Event::Stop, now_ms(), &StorageView(&*self.storage));
        self.conn = None;
        self.publish();
    }

    async fn exec(&mut self, outputs: Vec<Output>) -> Flow {
        for out in outputs {
            let flow = match out {
                Output::Connect(addr) => self.connect(addr).await,
                Output::Send(msg) => {
                    self.send(msg).await;
                    Flow::Continue
                }
                Output::ApplyStorage(cmd) => self.apply(cmd).await,
                Output::PruneBuckets {
                    tree,
                    buckets,
                    keep,
                } => match self.storage.export_buckets(tree, buckets).await {
                    Ok(local) => {
                        let deletes: Vec<Op> = local
                            .into_iter()
                            .filter(|(k, _)| !keep.contains(k))
                            .map(|(key, _)| Op::Delete { key })
                            .collect();
                        let n = deletes.len() as u64;
                        if deletes.is_empty() {
                            Flow::Continue
                        } else {
                            let flow = self.apply(ReplCommand::SyncOps(deletes)).await;
                            if matches!(flow, Flow::Continue) {
                                self.sync_discarded += n;
                            }
                            flow
                        }
                    }
                    Err(e) => {
                        self.events.push_back(Event::ApplyFailed(e.to_string()));
                        Flow::Abort
                    }
                },
                Output::AfterApply => {
                    self.hooks.after_apply().await;
                    Flow::Continue
                }
                Output::Disconnect => {
                    self.conn = None;
                    Flow::Continue
                }
                Output::Sleep(d) => {
                    self.publish();
                    tokio::select! {
                        _ = tokio::time::sleep(d) => Flow::Continue,
                        _ = self.stop.changed() => Flow::Stop,
                    }
                }
                Output::KnownAddrs(addrs) => {
                    self.hooks.known_addrs_changed(addrs).await;
                    Flow::Continue
                }
            };
            match flow {
                Flow::Continue => {}
                other => return other,
            }
        }
        Flow::Continue
    }

    async fn connect(&mut self, addr: String) -> Flow {
        self.conn = None;
        self.publish();
        let dial = connect(&self.tls, &addr);
        let result = tokio::select! {
            r = dial => r,
            _ = self.stop.changed() => return Flow::Stop,
        };
        match result {
            Ok(stream) => {
                let (rd, wr) = tokio::io::split(stream);
                let (tx, rx) = mpsc::channel(32);
                let reader = tokio::spawn(read_loop(rd, tx));
                self.conn = Some(Conn {
                    writer: wr,
                    incoming: rx,
                    reader,
                });
                tracing::info!(%addr, "connected to the DR primary");
                self.commit_times.clear();
                self.events.push_back(Event::Connected);
            }
            Err(e) => {
                tracing::warn!(%addr, error = %e, "cannot reach the DR primary");
                self.events.push_back(Event::Disconnected(e.to_string()));
            }
        }
        Flow::Continue
    }

    async fn send(&mut self, msg: SecondaryMsg) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let sent = tokio::time::timeout(WRITE_TIMEOUT, write_frame(&mut conn.writer, &msg)).await;
        let failure = match sent {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out sending to the primary".to_owned(),
        };
        self.conn = None;
        self.events.push_back(Event::Disconnected(failure));
    }

    async fn apply(&mut self, cmd: ReplCommand) -> Flow {
        let started = Instant::now();
        let stamps: Vec<(u64, u64)> = match &cmd {
            ReplCommand::ApplyRemote(e) => vec![(e.index, e.unix_us)],
            ReplCommand::ApplyRemoteBatch(es) => es.iter().map(|e| (e.index, e.unix_us)).collect(),
            _ => Vec::new(),
        };
        let kind = match &cmd {
            ReplCommand::ApplyRemote(_) | ReplCommand::ApplyRemoteBatch(_) => Some(true),
            ReplCommand::SyncOps(ops) => {
                let puts = ops.iter().filter(|op| matches!(op, Op::Put { .. })).count() as u64;
                if puts > 0 {
                    self.sync_written += puts;
                }
                None
            }
            ReplCommand::SetPosition(_) => Some(false),
            _ => None,
        };
        if let Err(e) = self.storage.apply_replication(cmd).await {
            tracing::warn!(error = %e, "applying replicated data failed; reconnecting");
            self.events.push_back(Event::ApplyFailed(e.to_string()));
            return Flow::Abort;
        }
        match kind {
            Some(true) => {
                metrics::histogram!(m::STREAM_APPLY_SECONDS)
                    .record(started.elapsed().as_secs_f64());
                let now = unix_us();
                let lag = metrics::histogram!(m::STREAM_LAG_SECONDS);
                let commit_lag = metrics::histogram!(m::STREAM_COMMIT_LAG_SECONDS);
                let mut newest = 0;
                for (index, proposed) in stamps {
                    if proposed != 0 {
                        lag.record(now.saturating_sub(proposed) as f64 / 1e6);
                    }
                    if let Some(committed) = self.commit_times.remove(&index) {
                        commit_lag.record(now.saturating_sub(committed) as f64 / 1e6);
                    }
                    newest = newest.max(index);
                }
                // Entries at or before the newest applied one will not be applied again here
                // (duplicates the FSM skipped, say): their times are stale.
                self.commit_times = self.commit_times.split_off(&(newest + 1));
                tracing::trace!(
                    last_index = newest,
                    elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                    "applied streamed WAL entries"
                );
            }
            Some(false) => {
                tracing::info!(
                    written = self.sync_written,
                    discarded = self.sync_discarded,
                    "merkle sync applied: keys written from the primary, local keys discarded"
                );
                self.last_sync = (self.sync_written, self.sync_discarded);
                self.sync_written = 0;
                self.sync_discarded = 0;
            }
            None => {}
        }
        Flow::Continue
    }

    fn publish(&self) {
        let fs = self.fsm.status();
        let state = self.fsm.state();
        let now = now_ms();
        let primaries = fs
            .current_addr
            .iter()
            .map(|addr| PeerInfo {
                cluster_address: addr.clone(),
                connection_status: if self.conn.is_some() {
                    "connected"
                } else {
                    "disconnected"
                },
                last_heartbeat: fs.last_heartbeat_ms.map(time_of),
                last_heartbeat_duration_ms: fs.last_heartbeat_duration_ms,
                clock_skew_ms: fs.clock_skew_ms,
                canary_age_ms: fs
                    .newest_entry_ms
                    .map(|t| now.saturating_sub(t))
                    .unwrap_or(0),
                ..PeerInfo::default()
            })
            .collect();
        let next = SecondaryStatus {
            state: state.as_str(),
            connection_state: fs.connection_state,
            last_remote_wal: self.storage.replication_status().last_remote_wal,
            primary_last_wal: fs.primary_last_wal,
            known_primary_cluster_addrs: self.fsm.addresses(),
            primaries,
            last_start: fs.last_start_ms.map(time_of),
            last_heartbeat: fs.last_heartbeat_ms.map(time_of),
            sync_progress: (state == State::MerkleSync).then_some(SyncProgress {
                sync_progress: fs.sync_keys_received,
                sync_total_keys: fs.sync_keys_estimated_total,
            }),
            last_error: fs.last_error.clone(),
            syncs_completed: fs.syncs_completed,
            last_sync_written: self.last_sync.0,
            last_sync_discarded: self.last_sync.1,
        };
        match self.status.lock() {
            Ok(mut s) => *s = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }
}

/// Most commit times held for entries not applied yet.
const MAX_PENDING_COMMIT_TIMES: usize = 100_000;

/// Remembers when the primary committed these entries, until they are applied here; a time of
/// 0 (the primary no longer knew it) forgets any older time for that index.
fn note_commit_times(times: &mut BTreeMap<u64, u64>, entries: &[WalEntry], committed_us: &[u64]) {
    if times.len() > MAX_PENDING_COMMIT_TIMES {
        // Applies are failing or far behind: the figures would be stale anyway.
        times.clear();
    }
    for (e, &t) in entries.iter().zip(committed_us) {
        if t == 0 {
            times.remove(&e.index);
        } else {
            times.insert(e.index, t);
        }
    }
}

/// Most WAL bytes merged into one apply step from messages already received.
const MAX_COALESCED_BYTES: usize = 1024 * 1024;

impl Driver {
    /// Merges WAL messages that are already queued behind `entries` into one event, so a
    /// secondary that fell behind applies its backlog in large storage steps (one fsync each)
    /// instead of one step per message.
    fn coalesce_wal(&mut self, mut entries: Vec<WalEntry>) {
        let mut bytes: usize = entries.iter().map(WalEntry::payload_bytes).sum();
        let mut next = None;
        if let Some(conn) = self.conn.as_mut() {
            while bytes < MAX_COALESCED_BYTES {
                match conn.incoming.try_recv() {
                    Ok(Ok(PrimaryMsg::Wal {
                        entries: more,
                        committed_us,
                    })) => {
                        note_commit_times(&mut self.commit_times, &more, &committed_us);
                        bytes += more.iter().map(WalEntry::payload_bytes).sum::<usize>();
                        entries.extend(more);
                    }
                    Ok(other) => {
                        next = Some(other);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        self.events.push_back(Event::Wal(entries));
        match next {
            Some(Ok(msg)) => self.events.push_back(msg.into()),
            Some(Err(e)) => {
                self.conn = None;
                self.events.push_back(Event::Disconnected(e.to_string()));
            }
            None => {}
        }
    }
}

async fn read_loop(
    mut rd: ReadHalf<Stream>,
    tx: mpsc::Sender<Result<PrimaryMsg, ReplicationError>>,
) {
    loop {
        match read_frame::<_, PrimaryMsg>(&mut rd).await {
            Ok(Some(msg)) => {
                if tx.send(Ok(msg)).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}

//! The async driver of a DR or performance secondary: sockets, timers and storage around the
//! sans-IO FSM.
//!
//! All decisions are made by [`SecondaryFsm`]; this loop only performs its outputs in order
//! (dial, send, apply, prune, sleep) and turns what happens back into events. Keeping it
//! this thin is what makes the seeded FSM tests meaningful for the real thing. A performance
//! secondary runs the same loop over a [`PerformanceStore`] instead of the raw storage.

mod config;
mod incoming;

pub use config::{Changed, SecondaryConfig, SecondaryHooks, SecondaryStatus, SyncProgress};

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use strongroom_storage::{Op, ReplCommand, Storage, StorageError};
use tokio::io::WriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;

use crate::ReplicationKind;
use crate::client::{ClientTls, connect_alpn};
use crate::error::ReplicationError;
use crate::fsm::{Event, FsmConfig, Output, SecondaryFsm, State, StorageView};
use crate::metrics as m;
use crate::peer::PeerInfo;
use crate::perf_store::PerformanceStore;
use crate::wire::read_loop;
use crate::wire::{PrimaryMsg, SecondaryMsg, write_frame};
use incoming::note_commit_times;

/// How often the FSM is ticked (heartbeats, liveness).
const TICK: Duration = Duration::from_millis(250);
/// How long one frame may take to leave.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between attempts to read a performance secondary's position at start.
const OPEN_RETRY: Duration = Duration::from_secs(1);

/// Starts secondaries.
pub struct SecondaryRunner;

/// Controls a running secondary.
pub struct SecondaryHandle {
    status: Arc<Mutex<SecondaryStatus>>,
    stop: watch::Sender<bool>,
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    applied: watch::Receiver<u64>,
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

    /// The last primary WAL index applied here (as `last_remote_wal` reports it), updated
    /// once the apply and the `after_apply` hook are done: a write forwarded to the primary is
    /// visible here once this reaches its WAL index.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.applied.clone()
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
    /// Starts replicating into `storage` in a background task. A performance secondary
    /// applies through a [`PerformanceStore`] over `storage`, opened in that task.
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
                kind: cfg.kind,
            },
            seed,
        );
        let applied_at_start = match cfg.kind {
            ReplicationKind::Dr => storage.replication_status().last_remote_wal,
            ReplicationKind::Performance => 0,
        };
        let (applied_tx, applied_rx) = watch::channel(applied_at_start);
        let status = Arc::new(Mutex::new(SecondaryStatus {
            state: State::Idle.as_str(),
            connection_state: "idle",
            ..SecondaryStatus::default()
        }));
        let (stop_tx, stop_rx) = watch::channel(false);
        let driver = Driver {
            fsm,
            kind: cfg.kind,
            storage,
            applied: applied_tx,
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
            changed: Changed::Unknown,
        };
        let task = tokio::spawn(driver.run());
        Ok(SecondaryHandle {
            status,
            stop: stop_tx,
            task: tokio::sync::Mutex::new(Some(task)),
            applied: applied_rx,
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
    kind: ReplicationKind,
    /// What the FSM applies through: the storage itself (DR), or once `run` opened it, a
    /// [`PerformanceStore`] over it.
    storage: Arc<dyn Storage>,
    /// The last remote WAL index applied, published after each event's outputs.
    applied: watch::Sender<u64>,
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
    /// What the applies since the last `AfterApply` changed.
    changed: Changed,
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
        if self.kind == ReplicationKind::Performance {
            match self.open_performance_store().await {
                Some(store) => self.storage = store,
                None => return,
            }
        }
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

    /// The performance adapter over our storage, at its recorded position; `None` when stop
    /// was requested first. A damaged record starts over from position zero (a merkle diff
    /// repairs the data and rewrites the record); other failures are retried.
    async fn open_performance_store(&mut self) -> Option<Arc<dyn Storage>> {
        loop {
            let error = match PerformanceStore::open(self.storage.clone()).await {
                Ok(store) => return Some(Arc::new(store)),
                Err(StorageError::Corrupt(e)) => {
                    tracing::warn!(error = %e, "performance replication position is damaged; resynchronizing from scratch");
                    return Some(Arc::new(PerformanceStore::starting_over(
                        self.storage.clone(),
                    )));
                }
                Err(e) => e,
            };
            tracing::warn!(error = %error, "cannot read the performance replication position; retrying");
            if let Ok(mut status) = self.status.lock() {
                status.last_error = Some(format!(
                    "reading the performance replication position: {error}"
                ));
            }
            tokio::select! {
                _ = tokio::time::sleep(OPEN_RETRY) => {}
                _ = self.stop.changed() => return None,
            }
            if *self.stop.borrow() {
                return None;
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
                    let changed = std::mem::replace(&mut self.changed, Changed::Keys(Vec::new()));
                    self.hooks.after_apply(&changed).await;
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
                Output::PathsFilter(filter) => {
                    self.hooks.paths_filter(filter).await;
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
        let dial = connect_alpn(&self.tls, &addr, self.kind.alpn());
        let label = self.kind.label();
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
                tracing::info!(%addr, "connected to the {label} primary");
                self.commit_times.clear();
                self.events.push_back(Event::Connected);
            }
            Err(e) => {
                tracing::warn!(%addr, error = %e, "cannot reach the {label} primary");
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

    /// Adds what `cmd` is about to change to [`Driver::changed`].
    fn note_changed(&mut self, cmd: &ReplCommand) {
        let keys = match cmd {
            ReplCommand::ApplyRemote(e) => e.ops.iter().map(|op| op.key().to_owned()).collect(),
            ReplCommand::ApplyRemoteBatch(es) => es
                .iter()
                .flat_map(|e| e.ops.iter().map(|op| op.key().to_owned()))
                .collect(),
            _ => {
                self.changed = Changed::Unknown;
                return;
            }
        };
        if let Changed::Keys(changed) = &mut self.changed {
            changed.extend::<Vec<String>>(keys);
        }
    }

    async fn apply(&mut self, cmd: ReplCommand) -> Flow {
        let started = Instant::now();
        self.note_changed(&cmd);
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
        let names = m::names(self.kind);
        match kind {
            Some(true) => {
                metrics::histogram!(names.stream_apply_seconds)
                    .record(started.elapsed().as_secs_f64());
                let now = unix_us();
                let lag = metrics::histogram!(names.stream_lag_seconds);
                let commit_lag = metrics::histogram!(names.stream_commit_lag_seconds);
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
        let last_remote_wal = self.storage.replication_status().last_remote_wal;
        self.applied.send_if_modified(|v| {
            let changed = *v != last_remote_wal;
            *v = last_remote_wal;
            changed
        });
        let next = SecondaryStatus {
            state: state.as_str(),
            connection_state: fs.connection_state,
            last_remote_wal,
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

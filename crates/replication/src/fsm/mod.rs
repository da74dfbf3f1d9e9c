//! The secondary's replication logic as a sans-IO state machine.
//!
//! Reconnects, duplicated or reordered messages and crashes between steps are where
//! replication bugs hide, and they are nearly impossible to provoke reliably over real
//! sockets. So every decision lives here, driven only by [`Event`]s and a caller-supplied
//! clock, and answered with [`Output`]s the driver executes in order. Seeded tests replay
//! exact schedules; the async [`crate::SecondaryRunner`] is a thin loop around it.
//!
//! States are Vault's: `idle`, `connecting`, `merkle-diff`, `merkle-sync`, `stream-wals`. One
//! machine serves both DR and performance secondaries: the protocol is the same, only the
//! check of an entry's own hash differs ([`FsmConfig::kind`]).

mod backoff;
mod connection;
mod merkle;

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use strongroom_storage::replog::bucket_of;
use strongroom_storage::{MerkleTree, Op, ReplCommand, Storage, WalEntry, WalPosition};

use crate::ReplicationKind;
use crate::metrics as m;
use crate::wire::{PROTOCOL_VERSION, PrimaryMsg, SecondaryMsg, echo_rtt_ms};

pub use backoff::Backoff;

/// Interval of secondary heartbeats.
pub const HEARTBEAT_INTERVAL_MS: u64 = 1_000;
/// A primary silent for this long is considered gone.
pub const IDLE_TIMEOUT_MS: u64 = 6_000;
/// Redirects in a row that reconnect at the shortest backoff: a standby pointing at the new
/// active node is the normal path after a primary leader change and should cost one round
/// trip, but two nodes that keep naming each other must not make us dial at full speed.
const FREE_REDIRECTS: u32 = 8;
/// Longest pause between dials while the primary reports an election in progress.
const ELECTION_RETRY_MAX: Duration = Duration::from_millis(500);
/// Buckets per `FetchBuckets` request (16 pages): each request costs the primary one scan of
/// its keyspace, so a full bootstrap takes 16 scans rather than 256.
const BUCKETS_PER_FETCH: usize = 4096;

/// The secondary FSM states, named as Vault names them in `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Idle,
    Connecting,
    MerkleDiff,
    MerkleSync,
    StreamWals,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Connecting => "connecting",
            State::MerkleDiff => "merkle-diff",
            State::MerkleSync => "merkle-sync",
            State::StreamWals => "stream-wals",
        }
    }
}

/// The secondary's own storage, as far as the FSM reads it (synchronous, in-memory reads).
pub trait LocalView {
    /// Our WAL chain position (what we ask the primary to resume from).
    fn position(&self) -> WalPosition;
    /// See [`Storage::merkle_hashes`].
    fn merkle_hashes(&self, tree: MerkleTree, page: Option<u8>) -> Vec<[u8; 32]>;
}

/// A [`LocalView`] over real storage.
pub struct StorageView<'a>(pub &'a dyn Storage);

impl LocalView for StorageView<'_> {
    fn position(&self) -> WalPosition {
        self.0.replication_status().position()
    }

    fn merkle_hashes(&self, tree: MerkleTree, page: Option<u8>) -> Vec<[u8; 32]> {
        self.0.merkle_hashes(tree, page)
    }
}

/// Something that happened: a primary message, a transport change, or time passing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Begin replicating (from `idle`).
    Start,
    /// The transport to the address of the last [`Output::Connect`] is up.
    Connected,
    HelloAck {
        resume: bool,
        primary_position: WalPosition,
        known_primary_cluster_addrs: Vec<String>,
    },
    PageHashes(Vec<[u8; 32]>),
    Pairs {
        pairs: Vec<(String, Vec<u8>)>,
        last: bool,
    },
    SyncPoint {
        position: WalPosition,
    },
    Wal(Vec<WalEntry>),
    Heartbeat {
        unix_ms: u64,
        last_wal: u64,
        known_primary_cluster_addrs: Vec<String>,
        echo_unix_ms: u64,
        echo_held_ms: u64,
    },
    /// A standby of the primary named its active node (or none, mid-election) and will close.
    Redirect {
        active_cluster_addr: Option<String>,
        known_primary_cluster_addrs: Vec<String>,
    },
    /// The primary sent an error and will close.
    Refused {
        code: String,
        message: String,
    },
    /// Applying an [`Output::ApplyStorage`] failed; our storage position is authoritative.
    ApplyFailed(String),
    /// The connection failed or closed.
    Disconnected(String),
    /// Time passed (drive heartbeats and liveness checks).
    Tick,
    /// Stop replicating and go `idle`.
    Stop,
    /// A performance primary stated the path filter our data passes through.
    PathsFilter(Option<crate::wire::PathsFilterWire>),
}

impl From<PrimaryMsg> for Event {
    fn from(msg: PrimaryMsg) -> Self {
        match msg {
            PrimaryMsg::HelloAck {
                resume,
                primary_position,
                known_primary_cluster_addrs,
            } => Event::HelloAck {
                resume,
                primary_position,
                known_primary_cluster_addrs,
            },
            PrimaryMsg::PageHashes(h) => Event::PageHashes(h),
            PrimaryMsg::Pairs { pairs, last } => Event::Pairs { pairs, last },
            PrimaryMsg::SyncPoint { position } => Event::SyncPoint { position },
            PrimaryMsg::Wal { entries, .. } => Event::Wal(entries),
            PrimaryMsg::Heartbeat {
                unix_ms,
                last_wal,
                known_primary_cluster_addrs,
                echo_unix_ms,
                echo_held_ms,
            } => Event::Heartbeat {
                unix_ms,
                last_wal,
                known_primary_cluster_addrs,
                echo_unix_ms,
                echo_held_ms,
            },
            PrimaryMsg::Error { code, message } => Event::Refused { code, message },
            PrimaryMsg::Redirect {
                active_cluster_addr,
                known_primary_cluster_addrs,
            } => Event::Redirect {
                active_cluster_addr,
                known_primary_cluster_addrs,
            },
            PrimaryMsg::PathsFilter { filter } => Event::PathsFilter(filter),
        }
    }
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Dial this primary cluster address; answer with `Connected` or `Disconnected`.
    Connect(String),
    /// Send a message on the current connection.
    Send(SecondaryMsg),
    /// Apply to our storage; on failure feed `ApplyFailed` and skip the remaining outputs.
    ApplyStorage(ReplCommand),
    /// Delete our keys of `tree` in `buckets` that are not in `keep` (the primary's keys):
    /// the "discarded" keys of a merkle sync.
    PruneBuckets {
        tree: MerkleTree,
        buckets: Vec<u16>,
        keep: BTreeSet<String>,
    },
    /// WAL entries were applied: let the core refresh its caches.
    AfterApply,
    /// Close the current connection.
    Disconnect,
    /// Wait this long before the next output.
    Sleep(Duration),
    /// The primary's node addresses changed; persist them.
    KnownAddrs(Vec<String>),
    /// Tell the core which path filter the primary applies to us (it hides those mounts).
    PathsFilter(Option<crate::wire::PathsFilterWire>),
}

/// Identity of this secondary.
#[derive(Debug, Clone)]
pub struct FsmConfig {
    pub secondary_id: String,
    pub cluster_id: String,
    pub primary_cluster_addrs: Vec<String>,
    /// Our advertised API address, told to the primary in Hello.
    pub api_address: String,
    /// Our advertised cluster address, told to the primary in Hello.
    pub cluster_address: String,
    /// DR checks every entry's own hash; a performance stream presents transformed hashes
    /// (see `primary/performance.rs`), so only their chaining is checked.
    pub kind: ReplicationKind,
}

/// What the FSM knows, for status endpoints. Times are unix milliseconds from the clock fed
/// to [`SecondaryFsm::handle`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsmStatus {
    /// `idle`, `connecting`, `ready`, `transient_failure` or `shutdown` (gRPC vocabulary).
    pub connection_state: &'static str,
    pub current_addr: Option<String>,
    pub known_primary_cluster_addrs: Vec<String>,
    pub last_start_ms: Option<u64>,
    pub last_heartbeat_ms: Option<u64>,
    pub clock_skew_ms: i64,
    /// Round trip of the last heartbeat echo (0 until the primary echoed one).
    pub last_heartbeat_duration_ms: u64,
    /// The primary's last WAL index, from its HelloAck and heartbeats.
    pub primary_last_wal: u64,
    /// `unix_ms` of the newest primary entry applied (end-to-end lag).
    pub newest_entry_ms: Option<u64>,
    /// During `merkle-sync`: keys received and the estimated total.
    pub sync_keys_received: u64,
    pub sync_keys_estimated_total: u64,
    /// Merkle syncs completed since start.
    pub syncs_completed: u64,
    /// Handshakes that resumed streaming from our position, and those that started a merkle
    /// diff instead (a leader change on either side must only add to the first).
    pub resumes: u64,
    pub diffs_started: u64,
    /// Redirects received from standbys of the primary.
    pub redirects: u64,
    pub last_error: Option<String>,
}

/// Which answer the FSM waits for during the diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    Top(MerkleTree),
    Page(MerkleTree, u8),
}

#[derive(Debug)]
enum Phase {
    /// Dialing; no connection yet.
    Dialing,
    /// Hello sent with this position.
    Hello(WalPosition),
    Diff {
        asks: VecDeque<Ask>,
        top: Vec<[u8; 32]>,
        differing: Vec<(MerkleTree, u16)>,
        started_ms: u64,
    },
    Sync {
        queue: VecDeque<(MerkleTree, Vec<u16>)>,
        current: Option<(MerkleTree, Vec<u16>, BTreeSet<String>)>,
        sync_point: Option<WalPosition>,
        buckets_total: usize,
        buckets_done: usize,
        started_ms: u64,
    },
    Stream {
        applied: WalPosition,
    },
}

/// The secondary state machine. Feed events with [`SecondaryFsm::handle`].
#[derive(Debug)]
pub struct SecondaryFsm {
    cfg: FsmConfig,
    state: State,
    phase: Option<Phase>,
    backoff: Backoff,
    dial_count: u64,
    now_ms: u64,
    last_heard_ms: u64,
    last_sent_hb_ms: u64,
    /// The newest primary heartbeat on this connection: its `unix_ms` and when it arrived
    /// on our clock (echoed back in our heartbeats).
    primary_hb: Option<(u64, u64)>,
    /// The address a standby redirected us to: dialed next, before the rotation.
    prefer: Option<String>,
    /// Redirects since the last HelloAck.
    redirect_streak: u32,
    /// Reconnects left whose pause stays short because a node of the primary answered
    /// recently (a redirect): the cluster is alive and electing, so a dead node among its
    /// addresses must not push the backoff to seconds.
    short_pauses: u32,
    status: FsmStatus,
}

/// A protocol violation: reconnect (our storage position decides what happens next).
struct Violation(String);

impl SecondaryFsm {
    /// A stopped FSM; `seed` makes the backoff jitter reproducible.
    pub fn new(cfg: FsmConfig, seed: u64) -> Self {
        SecondaryFsm {
            cfg,
            state: State::Idle,
            phase: None,
            backoff: Backoff::new(seed),
            dial_count: 0,
            now_ms: 0,
            last_heard_ms: 0,
            last_sent_hb_ms: 0,
            primary_hb: None,
            prefer: None,
            redirect_streak: 0,
            short_pauses: 0,
            status: FsmStatus {
                connection_state: "idle",
                ..FsmStatus::default()
            },
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn status(&self) -> &FsmStatus {
        &self.status
    }

    /// Every address worth dialing: the primary's advertised nodes first, then the configured.
    pub fn addresses(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for a in self
            .status
            .known_primary_cluster_addrs
            .iter()
            .chain(self.cfg.primary_cluster_addrs.iter())
        {
            if !a.is_empty() && !out.contains(a) {
                out.push(a.clone());
            }
        }
        out
    }

    /// Processes one event at time `now_ms` (unix milliseconds), reading `local` as needed.
    pub fn handle(&mut self, event: Event, now_ms: u64, local: &dyn LocalView) -> Vec<Output> {
        self.now_ms = now_ms;
        let mut out = Vec::new();
        if self.state == State::Idle && event != Event::Start {
            return out;
        }
        match self.step(event, local, &mut out) {
            Ok(()) => {}
            Err(Violation(reason)) => {
                tracing::warn!(
                    %reason,
                    "{} replication stream broken; reconnecting",
                    self.cfg.kind.label()
                );
                self.reconnect(reason, true, &mut out);
            }
        }
        out
    }

    fn connected(&self) -> bool {
        !matches!(self.phase, None | Some(Phase::Dialing))
    }

    fn step(
        &mut self,
        event: Event,
        local: &dyn LocalView,
        out: &mut Vec<Output>,
    ) -> Result<(), Violation> {
        match event {
            Event::PathsFilter(filter) => {
                out.push(Output::PathsFilter(filter));
                Ok(())
            }
            Event::Start => {
                if self.state == State::Idle {
                    self.status.last_start_ms = Some(self.now_ms);
                    self.status.last_error = None;
                    self.backoff.reset();
                    self.dial(out);
                }
                Ok(())
            }
            Event::Stop => {
                if self.connected() {
                    out.push(Output::Disconnect);
                }
                self.phase = None;
                self.state = State::Idle;
                self.status.connection_state = "shutdown";
                self.status.current_addr = None;
                Ok(())
            }
            Event::Connected => {
                if !matches!(self.phase, Some(Phase::Dialing)) {
                    return Err(Violation("unexpected connection".into()));
                }
                let position = local.position();
                self.last_heard_ms = self.now_ms;
                self.last_sent_hb_ms = self.now_ms;
                self.primary_hb = None;
                self.status.connection_state = "ready";
                self.phase = Some(Phase::Hello(position));
                out.push(Output::Send(SecondaryMsg::Hello {
                    secondary_id: self.cfg.secondary_id.clone(),
                    cluster_id: self.cfg.cluster_id.clone(),
                    position,
                    protocol: PROTOCOL_VERSION,
                    api_address: self.cfg.api_address.clone(),
                    cluster_address: self.cfg.cluster_address.clone(),
                }));
                Ok(())
            }
            Event::Disconnected(reason) => {
                if self.phase.is_some() {
                    self.reconnect(reason, false, out);
                }
                Ok(())
            }
            Event::Refused { code, message } => {
                if self.connected() {
                    self.reconnect(format!("primary refused ({code}): {message}"), true, out);
                }
                Ok(())
            }
            Event::ApplyFailed(reason) => {
                if self.connected() {
                    self.reconnect(
                        format!("applying replicated data failed: {reason}"),
                        true,
                        out,
                    );
                }
                Ok(())
            }
            Event::Tick => {
                self.tick(out);
                Ok(())
            }
            other => {
                if !self.connected() {
                    // Left over from a connection we already dropped.
                    return Ok(());
                }
                self.last_heard_ms = self.now_ms;
                self.on_message(other, local, out)
            }
        }
    }

    fn on_message(
        &mut self,
        event: Event,
        local: &dyn LocalView,
        out: &mut Vec<Output>,
    ) -> Result<(), Violation> {
        match event {
            Event::Heartbeat {
                unix_ms,
                last_wal,
                known_primary_cluster_addrs,
                echo_unix_ms,
                echo_held_ms,
            } => {
                self.status.last_heartbeat_ms = Some(self.now_ms);
                self.primary_hb = Some((unix_ms, self.now_ms));
                if let Some(rtt) = echo_rtt_ms(self.now_ms, echo_unix_ms, echo_held_ms) {
                    self.status.last_heartbeat_duration_ms = rtt;
                }
                self.status.clock_skew_ms = i64::try_from(unix_ms)
                    .unwrap_or(i64::MAX)
                    .saturating_sub(i64::try_from(self.now_ms).unwrap_or(i64::MAX));
                self.status.primary_last_wal = last_wal;
                self.learn_addrs(known_primary_cluster_addrs, out);
                Ok(())
            }
            Event::Redirect {
                active_cluster_addr,
                known_primary_cluster_addrs,
            } => {
                // Any phase: a standby answers the Hello with it, and an active node that lost
                // its leadership sends it in place of its next heartbeat.
                self.learn_addrs(known_primary_cluster_addrs, out);
                self.redirected(active_cluster_addr, out);
                Ok(())
            }
            Event::HelloAck {
                resume,
                primary_position,
                known_primary_cluster_addrs,
            } => {
                let Some(Phase::Hello(position)) = self.phase else {
                    return Err(Violation("HelloAck outside the handshake".into()));
                };
                self.backoff.reset();
                self.redirect_streak = 0;
                self.short_pauses = 0;
                self.status.primary_last_wal = primary_position.index;
                self.learn_addrs(known_primary_cluster_addrs, out);
                if resume {
                    self.status.resumes += 1;
                    metrics::counter!(m::names(self.cfg.kind).stream_resumes_total).increment(1);
                    self.enter_stream(position, out);
                } else {
                    self.status.diffs_started += 1;
                    metrics::counter!(m::names(self.cfg.kind).merkle_diffs_total).increment(1);
                    tracing::info!(
                        local_wal = position.index,
                        primary_wal = primary_position.index,
                        "{} primary no longer holds our position; starting merkle diff",
                        self.cfg.kind.label()
                    );
                    self.state = State::MerkleDiff;
                    self.phase = Some(Phase::Diff {
                        asks: VecDeque::from([Ask::Top(MerkleTree::Shared)]),
                        top: Vec::new(),
                        differing: Vec::new(),
                        started_ms: self.now_ms,
                    });
                    out.push(Output::Send(SecondaryMsg::PageHashesReq {
                        tree: MerkleTree::Shared,
                        page: None,
                    }));
                }
                Ok(())
            }
            Event::PageHashes(remote) => self.on_page_hashes(remote, local, out),
            Event::SyncPoint { position } => {
                let Some(Phase::Sync { sync_point, .. }) = &mut self.phase else {
                    return Err(Violation("SyncPoint outside merkle sync".into()));
                };
                match sync_point {
                    None => *sync_point = Some(position),
                    Some(known) if *known == position => {}
                    Some(_) => return Err(Violation("two different sync points".into())),
                }
                Ok(())
            }
            Event::Pairs { pairs, last } => self.on_pairs(pairs, last, out),
            Event::Wal(entries) => self.on_wal(entries, out),
            _ => Ok(()),
        }
    }

    fn on_wal(&mut self, entries: Vec<WalEntry>, out: &mut Vec<Output>) -> Result<(), Violation> {
        let Some(Phase::Stream { applied }) = &mut self.phase else {
            return Err(Violation("WAL entries before streaming".into()));
        };
        let mut any = false;
        let mut batch = Vec::with_capacity(entries.len());
        for entry in entries {
            if entry.index <= applied.index {
                if entry.index == applied.index && entry.hash != applied.hash {
                    return Err(Violation(format!(
                        "WAL entry {} forks from our chain",
                        entry.index
                    )));
                }
                continue; // a duplicate we already applied
            }
            if entry.index != applied.index + 1 {
                return Err(Violation(format!(
                    "WAL gap: expected entry {}, got {}",
                    applied.index + 1,
                    entry.index
                )));
            }
            let content_ok = self.cfg.kind == ReplicationKind::Performance || entry.hash_is_valid();
            if entry.prev_hash != applied.hash || !content_ok {
                return Err(Violation(format!(
                    "WAL entry {} does not chain to ours",
                    entry.index
                )));
            }
            *applied = entry.position();
            self.status.newest_entry_ms = Some(entry.unix_us / 1000);
            batch.push(entry);
            any = true;
        }
        // One storage step (one fsync on Raft) for the whole message, not one per entry.
        if !batch.is_empty() {
            out.push(Output::ApplyStorage(ReplCommand::ApplyRemoteBatch(batch)));
        }
        if any {
            out.push(Output::AfterApply);
        }
        Ok(())
    }

    fn enter_stream(&mut self, from: WalPosition, out: &mut Vec<Output>) {
        self.state = State::StreamWals;
        self.phase = Some(Phase::Stream { applied: from });
        out.push(Output::Send(SecondaryMsg::StreamFrom { position: from }));
    }
}

#[cfg(test)]
mod tests;

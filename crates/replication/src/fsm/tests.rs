//! Seeded simulations of a secondary FSM against a model primary, with duplicated and
//! reordered messages, dropped connections and crashes between output steps.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use sha2::{Digest, Sha256};
use strongroom_storage::replog::{bucket_of, leaf_hash};
use strongroom_storage::{MerkleTree, Op, ReplCommand, WalEntry, WalPosition};

use super::*;
use crate::wire::{PrimaryMsg, SecondaryMsg};

mod leader_changes;
mod performance;

/// splitmix64, for reproducible schedules.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn add256(a: &mut [u8; 32], b: &[u8; 32], subtract: bool) {
    let mut carry = 0i32;
    for i in (0..32).rev() {
        let v = if subtract {
            i32::from(a[i]) - i32::from(b[i]) + carry
        } else {
            i32::from(a[i]) + i32::from(b[i]) + carry
        };
        a[i] = v.rem_euclid(256) as u8;
        carry = v.div_euclid(256);
    }
}

/// A model storage: replicated data, a WAL with retention, merkle hashes computed on demand.
#[derive(Clone, Default)]
struct Model {
    data: BTreeMap<String, Vec<u8>>,
    wal: VecDeque<WalEntry>,
    pos: WalPosition,
    retain: usize,
}

impl Model {
    fn sums(&self, tree: MerkleTree) -> Vec<[u8; 32]> {
        let mut sums = vec![[0u8; 32]; 1 << 16];
        for (k, v) in &self.data {
            if MerkleTree::of_key(k) == Some(tree) {
                add256(
                    &mut sums[usize::from(bucket_of(k))],
                    &leaf_hash(k, v),
                    false,
                );
            }
        }
        sums
    }

    /// What a merkle sync's `PruneBuckets` leaves: our keys of `tree` in `buckets` that the
    /// primary still has, and every other key.
    fn prune(&mut self, tree: MerkleTree, buckets: &[u16], keep: &BTreeSet<String>) {
        self.data.retain(|k, _| {
            MerkleTree::of_key(k) != Some(tree)
                || !buckets.contains(&bucket_of(k))
                || keep.contains(k)
        });
    }

    /// Every pair of `tree` in `buckets` (a `FetchBuckets` answer).
    fn pairs_in(&self, tree: MerkleTree, buckets: &[u16]) -> Vec<(String, Vec<u8>)> {
        self.data
            .iter()
            .filter(|(k, _)| MerkleTree::of_key(k) == Some(tree) && buckets.contains(&bucket_of(k)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn apply_ops(&mut self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::Put { key, value } => {
                    self.data.insert(key.clone(), value.clone());
                }
                Op::Delete { key } => {
                    self.data.remove(key);
                }
            }
        }
    }

    fn write(&mut self, ops: Vec<Op>, now: u64) {
        self.apply_ops(&ops);
        let entry = WalEntry::next(&self.pos, 1, now, ops);
        self.pos = entry.position();
        self.wal.push_back(entry);
        while self.wal.len() > self.retain {
            self.wal.pop_front();
        }
    }

    fn wal_read(&self, after: WalPosition) -> Option<Vec<WalEntry>> {
        if after == self.pos {
            return Some(Vec::new());
        }
        let held = self.wal.iter().any(|e| e.position() == after)
            || (after == WalPosition::default() && self.wal.front().is_some_and(|e| e.index == 1));
        held.then(|| {
            self.wal
                .iter()
                .filter(|e| e.index > after.index)
                .cloned()
                .collect()
        })
    }

    fn apply(&mut self, cmd: ReplCommand) -> Result<(), String> {
        match cmd {
            ReplCommand::ApplyRemote(e) => {
                if e.index <= self.pos.index {
                    return Ok(());
                }
                if e.index != self.pos.index + 1 || e.prev_hash != self.pos.hash {
                    return Err(format!("diverged at {}", e.index));
                }
                self.apply_ops(&e.ops);
                self.pos = e.position();
                Ok(())
            }
            ReplCommand::ApplyRemoteBatch(entries) => {
                // All or nothing, like the storage engine: check the chain, then apply.
                let mut pos = self.pos;
                for e in &entries {
                    if e.index <= pos.index {
                        continue;
                    }
                    if e.index != pos.index + 1 || e.prev_hash != pos.hash {
                        return Err(format!("diverged at {}", e.index));
                    }
                    pos = e.position();
                }
                for e in entries {
                    if e.index > self.pos.index {
                        self.apply_ops(&e.ops);
                        self.pos = e.position();
                    }
                }
                Ok(())
            }
            ReplCommand::SyncOps(ops) => {
                self.apply_ops(&ops);
                Ok(())
            }
            ReplCommand::SetPosition(p) => {
                self.pos = p;
                self.wal.clear();
                Ok(())
            }
            other => Err(format!("unexpected command {other:?}")),
        }
    }
}

impl LocalView for Model {
    fn position(&self) -> WalPosition {
        self.pos
    }

    fn merkle_hashes(&self, tree: MerkleTree, page: Option<u8>) -> Vec<[u8; 32]> {
        let sums = self.sums(tree);
        match page {
            Some(p) => sums[usize::from(p) * 256..(usize::from(p) + 1) * 256].to_vec(),
            None => sums
                .chunks(256)
                .map(|c| {
                    let mut h = Sha256::new();
                    for s in c {
                        h.update(s);
                    }
                    h.finalize().into()
                })
                .collect(),
        }
    }
}

/// The model primary's view of one connection.
#[derive(Default)]
struct Session {
    sync_point: Option<WalPosition>,
    sync_point_sent: bool,
    cursor: Option<WalPosition>,
}

struct Sim {
    rng: Rng,
    now: u64,
    primary: Model,
    secondary: Model,
    fsm: SecondaryFsm,
    connected: bool,
    session: Session,
    to_secondary: VecDeque<PrimaryMsg>,
    to_primary: VecDeque<SecondaryMsg>,
    events: VecDeque<Event>,
    crashes: u64,
    syncs: u64,
    reconnects: u64,
    faults: bool,
}

fn cfg() -> FsmConfig {
    FsmConfig {
        secondary_id: "dr-1".into(),
        cluster_id: "c1".into(),
        primary_cluster_addrs: vec!["127.0.0.1:8201".into()],
        api_address: "https://127.0.0.1:8200".into(),
        cluster_address: "127.0.0.1:8201".into(),
        kind: crate::ReplicationKind::Dr,
    }
}

impl Sim {
    fn new(seed: u64, retain: usize) -> Sim {
        let fsm = SecondaryFsm::new(cfg(), seed);
        Sim {
            rng: Rng(seed),
            now: 1_000_000,
            primary: Model {
                retain,
                ..Model::default()
            },
            secondary: Model {
                retain: usize::MAX,
                ..Model::default()
            },
            fsm,
            connected: false,
            session: Session::default(),
            to_secondary: VecDeque::new(),
            to_primary: VecDeque::new(),
            events: VecDeque::from([Event::Start]),
            crashes: 0,
            syncs: 0,
            reconnects: 0,
            faults: true,
        }
    }

    fn random_write(&mut self) {
        let n = 1 + self.rng.below(3);
        let mut ops = Vec::new();
        for _ in 0..n {
            let k = self.rng.below(40);
            let key = if k.is_multiple_of(4) {
                format!("sys/token/id/t{k}")
            } else {
                format!("logical/m/k{k}")
            };
            if self.rng.chance(25) {
                ops.push(Op::Delete { key });
            } else {
                let value = self.rng.next().to_be_bytes().to_vec();
                ops.push(Op::Put { key, value });
            }
        }
        self.primary.write(ops, self.now);
        self.pump();
    }

    fn drop_connection(&mut self) {
        self.connected = false;
        self.session = Session::default();
        self.to_secondary.clear();
        self.to_primary.clear();
    }

    /// The model primary streams every entry after the cursor.
    fn pump(&mut self) {
        let Some(cursor) = self.session.cursor else {
            return;
        };
        if !self.connected {
            return;
        }
        match self.primary.wal_read(cursor) {
            Some(entries) if entries.is_empty() => {}
            Some(entries) => {
                self.session.cursor = entries.last().map(|e| e.position());
                self.to_secondary.push_back(PrimaryMsg::Wal {
                    entries,
                    committed_us: Vec::new(),
                });
            }
            None => {
                self.to_secondary.push_back(PrimaryMsg::Error {
                    code: "wal_gone".into(),
                    message: "gone".into(),
                });
                self.session.cursor = None;
            }
        }
    }

    fn primary_receive(&mut self, msg: SecondaryMsg) {
        match msg {
            SecondaryMsg::Hello { position, .. } => {
                let resume = self.primary.wal_read(position).is_some();
                self.session.sync_point = Some(self.primary.pos);
                self.to_secondary.push_back(PrimaryMsg::HelloAck {
                    resume,
                    primary_position: self.primary.pos,
                    known_primary_cluster_addrs: vec!["127.0.0.1:8201".into()],
                });
            }
            SecondaryMsg::PageHashesReq { tree, page } => {
                let hashes = self.primary.merkle_hashes(tree, page);
                self.to_secondary.push_back(PrimaryMsg::PageHashes(hashes));
            }
            SecondaryMsg::FetchBuckets { tree, buckets } => {
                if !self.session.sync_point_sent {
                    self.session.sync_point_sent = true;
                    let position = self.session.sync_point.unwrap_or_default();
                    self.to_secondary
                        .push_back(PrimaryMsg::SyncPoint { position });
                }
                let pairs = self.primary.pairs_in(tree, &buckets);
                // Small chunks, to exercise multi-chunk answers.
                let chunks: Vec<_> = pairs.chunks(3).map(<[_]>::to_vec).collect();
                if chunks.is_empty() {
                    self.to_secondary.push_back(PrimaryMsg::Pairs {
                        pairs: Vec::new(),
                        last: true,
                    });
                }
                let n = chunks.len();
                for (i, pairs) in chunks.into_iter().enumerate() {
                    self.to_secondary.push_back(PrimaryMsg::Pairs {
                        pairs,
                        last: i + 1 == n,
                    });
                }
            }
            SecondaryMsg::StreamFrom { position } => {
                self.session.cursor = Some(position);
                self.pump();
            }
            SecondaryMsg::Heartbeat { .. } => {}
        }
    }

    /// Feeds one event to the FSM and performs its outputs, maybe crashing halfway.
    fn feed(&mut self, event: Event) {
        let outputs = self.fsm.handle(event, self.now, &self.secondary);
        let crash_at = (self.faults && self.rng.chance(3) && !outputs.is_empty())
            .then(|| self.rng.below(outputs.len() as u64) as usize);
        for (i, out) in outputs.into_iter().enumerate() {
            if crash_at == Some(i) {
                // Crash: the process dies before this output; storage survives.
                self.crashes += 1;
                self.drop_connection();
                self.events.clear();
                self.fsm = SecondaryFsm::new(cfg(), self.rng.next());
                self.events.push_back(Event::Start);
                return;
            }
            match out {
                Output::Connect(_) => {
                    self.reconnects += 1;
                    self.drop_connection();
                    if self.faults && self.rng.chance(10) {
                        self.events.push_back(Event::Disconnected("refused".into()));
                    } else {
                        self.connected = true;
                        self.events.push_back(Event::Connected);
                    }
                }
                Output::Send(msg) => {
                    if self.connected {
                        self.to_primary.push_back(msg);
                    }
                }
                Output::ApplyStorage(cmd) => {
                    if matches!(cmd, ReplCommand::SetPosition(_)) {
                        self.syncs += 1;
                    }
                    if let Err(e) = self.secondary.apply(cmd) {
                        self.events.push_back(Event::ApplyFailed(e));
                        return;
                    }
                }
                Output::PruneBuckets {
                    tree,
                    buckets,
                    keep,
                } => self.secondary.prune(tree, &buckets, &keep),
                Output::Disconnect => self.drop_connection(),
                Output::Sleep(d) => self.now += d.as_millis() as u64,
                Output::AfterApply | Output::KnownAddrs(_) | Output::PathsFilter(_) => {}
            }
        }
    }

    fn step(&mut self) {
        self.now += 20;
        if let Some(ev) = self.events.pop_front() {
            self.feed(ev);
            return;
        }
        let roll = self.rng.below(100);
        match roll {
            0..=14 => self.random_write(),
            15..=54 if !self.to_secondary.is_empty() => {
                if self.faults && self.rng.chance(5) {
                    let dup = self.to_secondary[0].clone();
                    self.to_secondary.push_front(dup);
                }
                if self.faults && self.rng.chance(5) && self.to_secondary.len() >= 2 {
                    let reorderable = |m: &PrimaryMsg| {
                        matches!(
                            m,
                            PrimaryMsg::Wal { .. }
                                | PrimaryMsg::Heartbeat { .. }
                                | PrimaryMsg::PageHashes(_)
                        )
                    };
                    if reorderable(&self.to_secondary[0]) && reorderable(&self.to_secondary[1]) {
                        self.to_secondary.swap(0, 1);
                    }
                }
                if let Some(msg) = self.to_secondary.pop_front() {
                    self.feed(msg.into());
                }
            }
            55..=89 if !self.to_primary.is_empty() => {
                if let Some(msg) = self.to_primary.pop_front() {
                    self.primary_receive(msg);
                }
            }
            90..=91 if self.faults && self.connected => {
                self.drop_connection();
                self.feed(Event::Disconnected("link dropped".into()));
            }
            _ => {
                if self.connected && self.rng.chance(30) {
                    self.to_secondary.push_back(PrimaryMsg::Heartbeat {
                        unix_ms: self.now,
                        last_wal: self.primary.pos.index,
                        known_primary_cluster_addrs: vec!["127.0.0.1:8201".into()],
                        echo_unix_ms: 0,
                        echo_held_ms: 0,
                    });
                }
                self.feed(Event::Tick);
            }
        }
    }

    /// Stops injecting faults and writes, and delivers everything until quiet.
    fn settle(&mut self) {
        self.faults = false;
        for _ in 0..20_000 {
            if let Some(ev) = self.events.pop_front() {
                self.feed(ev);
            } else if let Some(msg) = self.to_primary.pop_front() {
                self.primary_receive(msg);
            } else if let Some(msg) = self.to_secondary.pop_front() {
                self.feed(msg.into());
            } else if self.fsm.state() == State::StreamWals {
                return;
            } else {
                self.now += 1_000;
                self.feed(Event::Tick);
            }
        }
        panic!(
            "the simulation did not settle; state {:?}",
            self.fsm.state()
        );
    }
}

fn run(seed: u64, retain: usize, steps: usize) -> Sim {
    let mut sim = Sim::new(seed, retain);
    for _ in 0..5 {
        sim.random_write();
    }
    for _ in 0..steps {
        sim.step();
    }
    sim.settle();
    sim
}

#[test]
fn seeded_schedules_converge_despite_faults() {
    // Why: whatever the interleaving of reconnects, duplicates, reorders and crashes, the
    // secondary must end with exactly the primary's data and chain position.
    for seed in 0..40u64 {
        let retain = if seed.is_multiple_of(2) { 4 } else { 1_000 };
        let sim = run(seed, retain, 1_500);
        assert_eq!(
            sim.secondary.data, sim.primary.data,
            "seed {seed}: data differs"
        );
        assert_eq!(
            sim.secondary.pos, sim.primary.pos,
            "seed {seed}: position differs"
        );
    }
}

#[test]
fn same_seed_gives_the_same_run() {
    // Why: a failing seed is only useful if it replays exactly.
    let a = run(99, 4, 800);
    let b = run(99, 4, 800);
    assert_eq!(a.secondary.data, b.secondary.data);
    assert_eq!(a.crashes, b.crashes);
    assert_eq!(a.now, b.now);
}

fn hello_ack(resume: bool, pos: WalPosition) -> Event {
    Event::HelloAck {
        resume,
        primary_position: pos,
        known_primary_cluster_addrs: vec!["10.0.0.2:8201".into()],
    }
}

#[test]
fn resume_goes_straight_to_streaming() {
    // Why: a reconnect with our WAL still held must not run a diff.
    let local = Model::default();
    let mut fsm = SecondaryFsm::new(cfg(), 1);
    assert_eq!(
        fsm.handle(Event::Start, 0, &local),
        vec![Output::Connect("127.0.0.1:8201".into())]
    );
    let out = fsm.handle(Event::Connected, 1, &local);
    assert!(matches!(
        &out[..],
        [Output::Send(SecondaryMsg::Hello {
            protocol: PROTOCOL_VERSION,
            ..
        })]
    ));

    let out = fsm.handle(hello_ack(true, WalPosition::default()), 2, &local);

    assert_eq!(fsm.state(), State::StreamWals);
    assert_eq!(
        out,
        vec![
            Output::KnownAddrs(vec!["10.0.0.2:8201".into()]),
            Output::Send(SecondaryMsg::StreamFrom {
                position: WalPosition::default()
            }),
        ]
    );
    assert_eq!(
        fsm.addresses(),
        vec!["10.0.0.2:8201".to_owned(), "127.0.0.1:8201".to_owned()]
    );
}

#[test]
fn identical_trees_still_fetch_a_sync_point() {
    // Why: with nothing to copy the secondary must still adopt the primary position.
    let mut primary = Model {
        retain: 10,
        ..Model::default()
    };
    primary.write(
        vec![Op::Put {
            key: "logical/x".into(),
            value: b"v".to_vec(),
        }],
        5,
    );
    let mut local = primary.clone();
    local.pos = WalPosition {
        index: 9,
        epoch: 0,
        hash: [7; 32],
    };
    let mut fsm = SecondaryFsm::new(cfg(), 1);
    fsm.handle(Event::Start, 0, &local);
    fsm.handle(Event::Connected, 0, &local);
    fsm.handle(hello_ack(false, primary.pos), 0, &local);
    assert_eq!(fsm.state(), State::MerkleDiff);

    let out = fsm.handle(
        Event::PageHashes(primary.merkle_hashes(MerkleTree::Shared, None)),
        0,
        &local,
    );
    assert_eq!(
        out,
        vec![Output::Send(SecondaryMsg::PageHashesReq {
            tree: MerkleTree::Local,
            page: None
        })]
    );
    let out = fsm.handle(
        Event::PageHashes(primary.merkle_hashes(MerkleTree::Local, None)),
        0,
        &local,
    );
    assert_eq!(fsm.state(), State::MerkleSync);
    assert_eq!(
        out,
        vec![Output::Send(SecondaryMsg::FetchBuckets {
            tree: MerkleTree::Shared,
            buckets: vec![]
        })]
    );
    fsm.handle(
        Event::SyncPoint {
            position: primary.pos,
        },
        0,
        &local,
    );
    let out = fsm.handle(
        Event::Pairs {
            pairs: vec![],
            last: true,
        },
        0,
        &local,
    );

    assert_eq!(
        out,
        vec![
            Output::ApplyStorage(ReplCommand::SetPosition(primary.pos)),
            Output::AfterApply,
            Output::Send(SecondaryMsg::StreamFrom {
                position: primary.pos
            }),
        ]
    );
    assert_eq!(fsm.state(), State::StreamWals);
}

#[test]
fn wal_gap_and_duplicates_are_handled() {
    // Why: a duplicate must be skipped silently, a gap must force a reconnect, never an apply.
    let local = Model::default();
    let mut fsm = SecondaryFsm::new(cfg(), 3);
    fsm.handle(Event::Start, 0, &local);
    fsm.handle(Event::Connected, 0, &local);
    fsm.handle(hello_ack(true, WalPosition::default()), 0, &local);
    let e1 = WalEntry::next(
        &WalPosition::default(),
        0,
        1,
        vec![Op::Delete {
            key: "logical/a".into(),
        }],
    );
    let e2 = WalEntry::next(
        &e1.position(),
        0,
        2,
        vec![Op::Delete {
            key: "logical/b".into(),
        }],
    );
    let e3 = WalEntry::next(
        &e2.position(),
        0,
        3,
        vec![Op::Delete {
            key: "logical/c".into(),
        }],
    );

    let out = fsm.handle(
        Event::Wal(vec![e1.clone(), e1.clone(), e2.clone()]),
        0,
        &local,
    );
    assert_eq!(
        out,
        vec![
            Output::ApplyStorage(ReplCommand::ApplyRemoteBatch(vec![e1.clone(), e2.clone()])),
            Output::AfterApply,
        ]
    );
    assert_eq!(fsm.handle(Event::Wal(vec![e2.clone()]), 0, &local), vec![]);

    let mut forged = e3.clone();
    forged.ops.clear();
    let out = fsm.handle(Event::Wal(vec![forged]), 0, &local);
    assert_eq!(
        out[0],
        Output::Disconnect,
        "a tampered entry breaks the stream"
    );
    assert_eq!(fsm.state(), State::Connecting);
    assert!(out.iter().all(|o| !matches!(o, Output::ApplyStorage(_))));
}

#[test]
fn silence_and_stop_are_handled() {
    // Why: a dead primary must be detected by the clock alone, and Stop must win over retries.
    let local = Model::default();
    let mut fsm = SecondaryFsm::new(cfg(), 4);
    fsm.handle(Event::Start, 0, &local);
    fsm.handle(Event::Connected, 0, &local);
    let out = fsm.handle(Event::Tick, HEARTBEAT_INTERVAL_MS, &local);
    assert!(matches!(
        &out[..],
        [Output::Send(SecondaryMsg::Heartbeat { .. })]
    ));

    let out = fsm.handle(Event::Tick, IDLE_TIMEOUT_MS + 10, &local);
    assert_eq!(out[0], Output::Disconnect);
    assert!(matches!(out[1], Output::Sleep(_)));
    assert!(matches!(out[2], Output::Connect(_)));

    fsm.handle(Event::Stop, IDLE_TIMEOUT_MS + 20, &local);
    assert_eq!(fsm.state(), State::Idle);
    assert_eq!(
        fsm.handle(Event::Connected, IDLE_TIMEOUT_MS + 30, &local),
        vec![]
    );
}

#[test]
fn heartbeat_echoes_measure_round_trips_and_track_the_primary_position() {
    // Why: last_heartbeat_duration_ms must be the network round trip (not the 1 s interval the
    // echo waited for), and promote's catch-up check reads primary_last_wal from heartbeats.
    let local = Model::default();
    let mut fsm = SecondaryFsm::new(cfg(), 9);
    fsm.handle(Event::Start, 0, &local);
    fsm.handle(Event::Connected, 0, &local);
    fsm.handle(hello_ack(true, WalPosition::default()), 10, &local);

    // The primary's heartbeat (its clock: 5_000) arrives at our 100; we echo it at 1_000.
    fsm.handle(
        Event::Heartbeat {
            unix_ms: 5_000,
            last_wal: 42,
            known_primary_cluster_addrs: Vec::new(),
            echo_unix_ms: 0,
            echo_held_ms: 0,
        },
        100,
        &local,
    );
    let out = fsm.handle(Event::Tick, 1_000, &local);
    // The primary echoes our 1_000 after holding it 300 ms; it arrives at our 1_340.
    fsm.handle(
        Event::Heartbeat {
            unix_ms: 6_000,
            last_wal: 43,
            known_primary_cluster_addrs: Vec::new(),
            echo_unix_ms: 1_000,
            echo_held_ms: 300,
        },
        1_340,
        &local,
    );

    assert_eq!(
        out,
        vec![Output::Send(SecondaryMsg::Heartbeat {
            unix_ms: 1_000,
            last_applied: 0,
            echo_unix_ms: 5_000,
            echo_held_ms: 900,
        })]
    );
    assert_eq!(fsm.status().last_heartbeat_duration_ms, 40);
    assert_eq!(fsm.status().primary_last_wal, 43);
}

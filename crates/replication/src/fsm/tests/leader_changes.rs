//! Seeded simulations of a DR secondary following leader changes on both clusters.
//!
//! The primary is three nodes sharing one committed log (Raft's guarantee, modelled as one
//! [`Model`]); only the active node streams, standbys answer a Hello with a redirect, and
//! the active node is killed or steps down at random, with elections of random length. The
//! secondary's active node is killed at random too: its storage (its own Raft log) survives
//! and a new FSM starts on the next active node from the persisted primary addresses. The
//! properties: the secondary ends with the primary's data; once it holds a position (the
//! bootstrap's sync finished, which a secondary leader change may interrupt and restart) it
//! never runs a merkle diff again; and once both clusters have an active node it streams again within a
//! bounded simulated time.

use super::*;

const NODES: usize = 3;
/// Simulated milliseconds within which streaming must resume once both sides have an active
/// node. A message takes 20–200 ms here (one random delivery per 20 ms step), so this is about
/// ten round trips: a redirect, a refused dial to the dead node and the handshake fit with
/// room; a backoff that grew to seconds does not (the worst of the 60 seeds is 1.44 s; with
/// the backoff uncapped after redirects it was 4.2 s). Elections add up to 0.9 s on top, under
/// the 3 s goal from a primary leader change to streaming again.
const RESUME_BOUND_MS: u64 = 2_000;

fn addr(i: usize) -> String {
    format!("https://p{i}:8201")
}

fn all_addrs() -> Vec<String> {
    (0..NODES).map(addr).collect()
}

/// One connection, to one node of the primary.
struct Conn {
    node: usize,
    session: Session,
    /// A redirect was sent; the node closes and ignores the rest.
    closing: bool,
}

struct LeaderSim {
    rng: Rng,
    now: u64,
    primary: Model,
    alive: [bool; NODES],
    dead_until: [u64; NODES],
    active: Option<usize>,
    primary_election_until: u64,
    secondary: Model,
    /// The secondary cluster's active node's FSM; `None` during its election.
    fsm: Option<SecondaryFsm>,
    secondary_election_until: u64,
    /// What the secondary persisted of the primary's addresses (its replication record).
    persisted_addrs: Vec<String>,
    conn: Option<Conn>,
    to_secondary: VecDeque<PrimaryMsg>,
    to_primary: VecDeque<SecondaryMsg>,
    events: VecDeque<Event>,
    /// Counters summed over every FSM the secondary ran.
    diffs: u64,
    /// Handshakes from a secondary that already held a position but did not resume.
    diffs_after_bootstrap: u64,
    resumes: u64,
    redirects: u64,
    primary_changes: u64,
    secondary_changes: u64,
    /// Since when both clusters have an active node while the secondary is not streaming.
    ready_since: Option<u64>,
    worst_resume_ms: u64,
}

impl LeaderSim {
    fn new(seed: u64) -> Self {
        let mut sim = LeaderSim {
            rng: Rng(seed),
            now: 1_000_000,
            primary: Model {
                retain: 100_000,
                ..Model::default()
            },
            alive: [true; NODES],
            dead_until: [0; NODES],
            // Bootstrap names node 0, a standby: the secondary must be redirected.
            active: Some(1),
            primary_election_until: 0,
            secondary: Model {
                retain: usize::MAX,
                ..Model::default()
            },
            fsm: None,
            secondary_election_until: 0,
            persisted_addrs: vec![addr(0)],
            conn: None,
            to_secondary: VecDeque::new(),
            to_primary: VecDeque::new(),
            events: VecDeque::new(),
            diffs: 0,
            diffs_after_bootstrap: 0,
            resumes: 0,
            redirects: 0,
            primary_changes: 0,
            secondary_changes: 0,
            ready_since: None,
            worst_resume_ms: 0,
        };
        sim.start_secondary();
        sim
    }

    fn start_secondary(&mut self) {
        let cfg = FsmConfig {
            primary_cluster_addrs: self.persisted_addrs.clone(),
            ..cfg()
        };
        self.fsm = Some(SecondaryFsm::new(cfg, self.rng.next()));
        self.events.push_back(Event::Start);
    }

    /// Retires the current FSM, keeping its counters.
    fn stop_secondary(&mut self) {
        if let Some(fsm) = self.fsm.take() {
            self.diffs += fsm.status().diffs_started;
            self.resumes += fsm.status().resumes;
            self.redirects += fsm.status().redirects;
        }
        self.drop_connection();
        self.events.clear();
    }

    fn drop_connection(&mut self) {
        self.conn = None;
        self.to_secondary.clear();
        self.to_primary.clear();
    }

    fn write(&mut self) {
        let k = self.rng.below(30);
        let ops = vec![Op::Put {
            key: format!("logical/m/k{k}"),
            value: self.rng.next().to_be_bytes().to_vec(),
        }];
        self.primary.write(ops, self.now);
        self.pump();
    }

    fn pump(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if conn.closing || self.active != Some(conn.node) {
            return;
        }
        let Some(cursor) = conn.session.cursor else {
            return;
        };
        if let Some(entries) = self.primary.wal_read(cursor)
            && let Some(last) = entries.last()
        {
            conn.session.cursor = Some(last.position());
            self.to_secondary.push_back(PrimaryMsg::Wal {
                entries,
                committed_us: Vec::new(),
            });
        }
    }

    fn redirect(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            conn.closing = true;
        }
        self.to_secondary.push_back(PrimaryMsg::Redirect {
            active_cluster_addr: self.active.map(addr),
            known_primary_cluster_addrs: all_addrs(),
        });
    }

    fn primary_receive(&mut self, msg: SecondaryMsg) {
        let Some(conn) = self.conn.as_ref() else {
            return;
        };
        if conn.closing {
            return;
        }
        let serving = self.active == Some(conn.node);
        match msg {
            SecondaryMsg::Hello { .. } if !serving => self.redirect(),
            SecondaryMsg::Hello { position, .. } => {
                // As the real primary: a secondary at position 0 always diffs.
                let resume = position.index != 0 && self.primary.wal_read(position).is_some();
                if position.index != 0 && !resume {
                    self.diffs_after_bootstrap += 1;
                }
                let pos = self.primary.pos;
                if let Some(conn) = self.conn.as_mut() {
                    conn.session.sync_point = Some(pos);
                }
                self.to_secondary.push_back(PrimaryMsg::HelloAck {
                    resume,
                    primary_position: pos,
                    known_primary_cluster_addrs: all_addrs(),
                });
            }
            _ if !serving => self.redirect(),
            SecondaryMsg::PageHashesReq { tree, page } => {
                let hashes = self.primary.merkle_hashes(tree, page);
                self.to_secondary.push_back(PrimaryMsg::PageHashes(hashes));
            }
            SecondaryMsg::FetchBuckets { tree, buckets } => {
                let Some(conn) = self.conn.as_mut() else {
                    return;
                };
                if !conn.session.sync_point_sent {
                    conn.session.sync_point_sent = true;
                    let position = conn.session.sync_point.unwrap_or_default();
                    self.to_secondary
                        .push_back(PrimaryMsg::SyncPoint { position });
                }
                let pairs = self.primary.pairs_in(tree, &buckets);
                self.to_secondary
                    .push_back(PrimaryMsg::Pairs { pairs, last: true });
            }
            SecondaryMsg::StreamFrom { position } => {
                if let Some(conn) = self.conn.as_mut() {
                    conn.session.cursor = Some(position);
                }
                self.pump();
            }
            SecondaryMsg::Heartbeat { .. } => {}
        }
    }

    fn feed(&mut self, event: Event) {
        let Some(fsm) = self.fsm.as_mut() else {
            return;
        };
        let outputs = fsm.handle(event, self.now, &self.secondary);
        for out in outputs {
            match out {
                Output::Connect(a) => {
                    self.drop_connection();
                    match (0..NODES).find(|&i| addr(i) == a) {
                        Some(i) if self.alive[i] => {
                            self.conn = Some(Conn {
                                node: i,
                                session: Session::default(),
                                closing: false,
                            });
                            self.events.push_back(Event::Connected);
                        }
                        _ => self
                            .events
                            .push_back(Event::Disconnected("connection refused".into())),
                    }
                }
                Output::Send(msg) => {
                    if self.conn.is_some() {
                        self.to_primary.push_back(msg);
                    }
                }
                Output::ApplyStorage(cmd) => {
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
                Output::KnownAddrs(addrs) => self.persisted_addrs = addrs,
                Output::AfterApply | Output::PathsFilter(_) => {}
            }
        }
    }

    /// The primary's active node dies or steps down; an election of random length follows.
    fn primary_leader_change(&mut self) {
        let Some(old) = self.active.take() else {
            return;
        };
        self.primary_changes += 1;
        // The clock of the measurement restarts with each change.
        self.ready_since = None;
        self.primary_election_until = self.now + 300 + self.rng.below(600);
        // A three-node cluster survives one node down: a kill only while all are up.
        if self.alive.iter().all(|a| *a) && self.rng.chance(50) {
            self.alive[old] = false;
            self.dead_until[old] = self.now + 1_000 + self.rng.below(4_000);
            if self.conn.as_ref().is_some_and(|c| c.node == old) {
                self.drop_connection();
                self.events
                    .push_back(Event::Disconnected("connection reset".into()));
            }
        }
        // A node that stepped down stays up; its next heartbeat is a redirect.
    }

    fn secondary_leader_change(&mut self) {
        if self.fsm.is_none() {
            return;
        }
        self.secondary_changes += 1;
        self.ready_since = None;
        self.stop_secondary();
        self.secondary_election_until = self.now + 300 + self.rng.below(600);
    }

    fn progress_clusters(&mut self) {
        for i in 0..NODES {
            if !self.alive[i] && self.now >= self.dead_until[i] {
                self.alive[i] = true;
            }
        }
        if self.active.is_none() && self.now >= self.primary_election_until {
            let candidates: Vec<usize> = (0..NODES).filter(|&i| self.alive[i]).collect();
            // Raft elects only with a majority up.
            if candidates.len() > NODES / 2 {
                let pick = candidates[self.rng.below(candidates.len() as u64) as usize];
                self.active = Some(pick);
            }
        }
        if self.fsm.is_none() && self.now >= self.secondary_election_until {
            self.start_secondary();
        }
    }

    /// Tracks how long the secondary takes to stream again once both sides can.
    fn measure(&mut self) {
        let streaming = self
            .fsm
            .as_ref()
            .is_some_and(|f| f.state() == State::StreamWals)
            && self.conn.as_ref().is_some_and(|c| !c.closing);
        // The bootstrap's merkle sync is not a resume: measured only once a position is held.
        let ready = self.active.is_some() && self.fsm.is_some() && self.secondary.pos.index != 0;
        match (ready && !streaming, self.ready_since) {
            (true, None) => self.ready_since = Some(self.now),
            (false, Some(since)) => {
                self.worst_resume_ms = self.worst_resume_ms.max(self.now - since);
                self.ready_since = None;
            }
            _ => {}
        }
    }

    /// One step: `writes` adds client load, `faults` leader changes.
    fn step(&mut self, writes: bool, faults: bool) {
        self.now += 20;
        self.progress_clusters();
        self.measure();
        if let Some(ev) = self.events.pop_front() {
            self.feed(ev);
            return;
        }
        match self.rng.below(200) {
            0..=29 if writes && self.active.is_some() => self.write(),
            30..=109 if !self.to_secondary.is_empty() => {
                if let Some(msg) = self.to_secondary.pop_front() {
                    self.feed(msg.into());
                }
            }
            110..=179 if !self.to_primary.is_empty() => {
                if let Some(msg) = self.to_primary.pop_front() {
                    self.primary_receive(msg);
                }
            }
            180 if faults => self.primary_leader_change(),
            181 if faults => self.secondary_leader_change(),
            _ => {
                let on_old_active = self
                    .conn
                    .as_ref()
                    .is_some_and(|c| !c.closing && self.active != Some(c.node));
                if on_old_active {
                    // What a node that stepped down sends in place of its next heartbeat.
                    self.redirect();
                } else if self.conn.as_ref().is_some_and(|c| !c.closing) && self.rng.chance(10) {
                    self.to_secondary.push_back(PrimaryMsg::Heartbeat {
                        unix_ms: self.now,
                        last_wal: self.primary.pos.index,
                        known_primary_cluster_addrs: all_addrs(),
                        echo_unix_ms: 0,
                        echo_held_ms: 0,
                    });
                }
                self.feed(Event::Tick);
            }
        }
    }

    fn run(seed: u64, steps: usize) -> Self {
        let mut sim = LeaderSim::new(seed);
        for _ in 0..5 {
            sim.write();
        }
        for _ in 0..steps {
            sim.step(true, true);
        }
        for _ in 0..20_000 {
            sim.step(false, false);
            let idle =
                sim.events.is_empty() && sim.to_primary.is_empty() && sim.to_secondary.is_empty();
            if idle && sim.secondary.pos == sim.primary.pos && sim.ready_since.is_none() {
                break;
            }
        }
        sim.stop_secondary();
        sim
    }
}

#[test]
fn leader_changes_on_both_sides_resume_the_stream_without_a_merkle_sync() {
    // Why: a DR pair of multi-node clusters sees leader changes all the time (upgrades,
    // crashes, step-downs); each must cost a reconnect to the new active node and a resume
    // from the applied position, never a merkle diff and sync.
    let mut total = (0u64, 0u64, 0u64, 0u64);
    for seed in 0..60u64 {
        let sim = LeaderSim::run(seed, 3_000);

        assert_eq!(
            sim.secondary.data, sim.primary.data,
            "seed {seed}: data differs"
        );
        assert_eq!(
            sim.secondary.pos, sim.primary.pos,
            "seed {seed}: position differs"
        );
        assert!(sim.diffs >= 1, "seed {seed}: the bootstrap diffs");
        assert_eq!(
            sim.diffs_after_bootstrap, 0,
            "seed {seed}: a secondary holding a position must resume, never diff"
        );
        assert!(
            sim.worst_resume_ms <= RESUME_BOUND_MS,
            "seed {seed}: streaming resumed only {} ms after both clusters had an active node",
            sim.worst_resume_ms
        );
        total.0 += sim.primary_changes;
        total.1 += sim.secondary_changes;
        total.2 += sim.resumes;
        total.3 += sim.redirects;
    }
    // The schedules really did exercise what the test is about.
    let (primary_changes, secondary_changes, resumes, redirects) = total;
    assert!(
        primary_changes > 100,
        "{primary_changes} primary leader changes"
    );
    assert!(
        secondary_changes > 50,
        "{secondary_changes} secondary leader changes"
    );
    assert!(resumes > primary_changes, "{resumes} resumes");
    assert!(redirects > primary_changes, "{redirects} redirects");
}

#[test]
fn a_bootstrap_naming_a_standby_is_redirected_to_the_active_node() {
    // Why: operators name whichever node they know, or a load balancer; Vault fails there.
    let mut sim = LeaderSim::new(7);
    sim.write();

    for _ in 0..500 {
        sim.step(true, false);
    }
    for _ in 0..2_000 {
        sim.step(false, false);
    }
    sim.stop_secondary();

    assert_eq!(sim.secondary.data, sim.primary.data);
    assert!(sim.redirects >= 1);
    assert_eq!(sim.persisted_addrs, all_addrs());
}

#[test]
fn a_redirect_dials_the_named_active_node_next_and_quickly() {
    // Why: the redirect is the normal path after a primary leader change; it must cost one
    // short pause, not a step of the exponential backoff, and go where the standby said.
    let local = Model::default();
    let mut fsm = SecondaryFsm::new(
        FsmConfig {
            primary_cluster_addrs: vec![addr(0)],
            ..cfg()
        },
        1,
    );
    fsm.handle(Event::Start, 0, &local);
    fsm.handle(Event::Connected, 1, &local);

    let out = fsm.handle(
        Event::Redirect {
            active_cluster_addr: Some(addr(2)),
            known_primary_cluster_addrs: all_addrs(),
        },
        2,
        &local,
    );

    let [
        Output::KnownAddrs(known),
        Output::Disconnect,
        Output::Sleep(pause),
        Output::Connect(next),
    ] = &out[..]
    else {
        panic!("unexpected outputs {out:?}");
    };
    assert_eq!(known, &all_addrs());
    assert!(*pause <= Duration::from_millis(100), "{pause:?}");
    assert_eq!(next, &addr(2));
    assert_eq!(fsm.status().redirects, 1);
}

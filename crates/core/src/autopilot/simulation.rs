//! Seeded simulations of autopilot against a model cluster: servers join (some pinned as
//! non-voters, some never answering), fall behind, go silent for hours and come back, and
//! leadership moves, while the clock advances in steps from a second to days.
//!
//! After every tick the planner's actions are checked against an oracle written separately
//! from the planner (its own health rule and its own record of continuous health), so the
//! test fails if the two ever disagree, not only if an invariant breaks: no removal without
//! cleanup, never the leader, never below `min_quorum`, never more than a minority of voters
//! and never while the living voters are a minority; only servers silent past the dead
//! threshold are removed; a pinned non-voter is never promoted; and a non-voter is promoted
//! exactly when it has been healthy for `server_stabilization_time` under this leader.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use strongroom_storage::ServerInfo;

use super::*;

/// splitmix64: reproducible, and enough for schedules.
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
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

struct Node {
    id: String,
    voter: bool,
    silent: bool,
    lagging: bool,
    joined: SystemTime,
    last_contact: Option<SystemTime>,
    last_index: u64,
    last_term: u64,
}

#[derive(Default)]
struct Tally {
    ticks: u64,
    promotions: u64,
    removals: u64,
    pinned_ready: u64,
    removals_held_back: u64,
}

struct World {
    rng: Rng,
    config: AutopilotConfig,
    now: SystemTime,
    nodes: Vec<Node>,
    pinned: BTreeSet<String>,
    leader: String,
    leader_since: SystemTime,
    term: u64,
    index: u64,
    next_id: u32,
    planner: Planner,
    /// The oracle: since when each server has been healthy at every tick of this leader.
    healthy_since: BTreeMap<String, SystemTime>,
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

impl World {
    fn new(seed: u64) -> Self {
        let mut rng = Rng(seed);
        let config = AutopilotConfig {
            cleanup_dead_servers: rng.chance(60),
            last_contact_threshold: secs(rng.pick(&[10, 20])),
            dead_server_last_contact_threshold: secs(rng.pick(&[60, 300, 3600, 86_400])),
            max_trailing_logs: rng.pick(&[100, 1000]),
            min_quorum: rng.pick(&[3, 3, 4, 5]),
            server_stabilization_time: secs(rng.pick(&[10, 30, 60])),
        };
        let now = UNIX_EPOCH + secs(1_700_000_000);
        let mut world = World {
            rng,
            config,
            now,
            nodes: Vec::new(),
            pinned: BTreeSet::new(),
            leader: "n0".into(),
            leader_since: now,
            term: 1,
            index: 1,
            next_id: 0,
            planner: Planner::new(),
            healthy_since: BTreeMap::new(),
        };
        let voters = 1 + world.rng.below(5);
        for _ in 0..voters {
            world.join(true, false);
        }
        for n in &mut world.nodes {
            (n.last_contact, n.last_term, n.last_index) = (Some(now), 1, 1);
        }
        world
    }

    fn join(&mut self, voter: bool, silent: bool) {
        let id = format!("n{}", self.next_id);
        self.next_id += 1;
        self.nodes.push(Node {
            id,
            voter,
            silent,
            lagging: false,
            joined: self.now,
            last_contact: None,
            last_index: 0,
            last_term: 0,
        });
    }

    fn advance_clock(&mut self) {
        let dead = self.config.dead_server_last_contact_threshold.as_secs();
        let step = match self.rng.below(100) {
            0..70 => 1 + self.rng.below(5),
            70..96 => 5 + self.rng.below(60),
            _ => dead / 2 + self.rng.below(dead * 2),
        };
        self.now += secs(step);
    }

    fn random_follower(&mut self) -> Option<usize> {
        let followers: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].id != self.leader)
            .collect();
        (!followers.is_empty()).then(|| self.rng.pick(&followers))
    }

    fn random_event(&mut self) {
        match self.rng.below(100) {
            0..10 if self.nodes.len() < 9 => {
                let silent = self.rng.chance(25);
                self.join(false, silent);
                if self.rng.chance(25) {
                    let id = format!("n{}", self.next_id - 1);
                    self.pinned.insert(id);
                }
            }
            10..22 => {
                if let Some(i) = self.random_follower() {
                    self.nodes[i].silent = true;
                }
            }
            22..40 => {
                if let Some(i) = self.random_follower() {
                    self.nodes[i].silent = false;
                }
            }
            40..52 => {
                if let Some(i) = self.random_follower() {
                    self.nodes[i].lagging = !self.nodes[i].lagging;
                }
            }
            52..56 => self.change_leader(),
            _ => {}
        }
    }

    /// Raft elects only a voter that answers; the old leader becomes a follower.
    fn change_leader(&mut self) {
        let candidates: Vec<usize> = (0..self.nodes.len())
            .filter(|i| {
                let n = &self.nodes[*i];
                n.voter && !n.silent && n.id != self.leader
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let next = self.rng.pick(&candidates);
        self.leader = self.nodes[next].id.clone();
        self.nodes[next].lagging = false;
        self.leader_since = self.now;
        self.term += 1;
        self.healthy_since.clear();
    }

    /// The leader appends; every answering follower reports its progress.
    fn replicate(&mut self) {
        self.index += self.rng.below(60);
        let lag = self.config.max_trailing_logs + 1;
        for i in 0..self.nodes.len() {
            let jitter = secs(self.rng.below(3));
            let behind = if self.nodes[i].lagging {
                lag + self.rng.below(500)
            } else {
                self.rng.below(20)
            };
            let n = &mut self.nodes[i];
            if n.silent || n.id == self.leader {
                continue;
            }
            let contact = (self.now - jitter).max(n.last_contact.unwrap_or(UNIX_EPOCH));
            n.last_contact = Some(contact);
            n.last_term = self.term;
            n.last_index = self.index.saturating_sub(behind);
        }
    }

    fn view_servers(&self) -> Vec<ServerInfo> {
        self.nodes
            .iter()
            .map(|n| ServerInfo {
                node_id: n.id.clone(),
                cluster_addr: format!("{}:8201", n.id),
                voter: n.voter,
                leader: n.id == self.leader,
                last_contact: n.last_contact,
                last_index: n.last_index,
                last_term: n.last_term,
            })
            .collect()
    }

    // ---- the oracle ----

    fn oracle_healthy(&self, n: &Node) -> bool {
        if n.id == self.leader {
            return true;
        }
        let Some(contact) = n.last_contact else {
            return false;
        };
        let quiet = self.now.duration_since(contact).unwrap_or_default();
        quiet <= self.config.last_contact_threshold
            && n.last_term == self.term
            && n.last_index + self.config.max_trailing_logs >= self.index
    }

    /// Silence since the last answer, or since this leader could first have seen the server.
    fn oracle_silence(&self, n: &Node) -> Duration {
        let from = n
            .last_contact
            .unwrap_or_else(|| n.joined.max(self.leader_since));
        self.now.duration_since(from).unwrap_or_default()
    }

    fn oracle_dead(&self, n: &Node) -> bool {
        n.id != self.leader
            && self.oracle_silence(n) > self.config.dead_server_last_contact_threshold
    }

    fn update_oracle(&mut self) {
        let healthy: Vec<(String, bool)> = self
            .nodes
            .iter()
            .map(|n| (n.id.clone(), self.oracle_healthy(n)))
            .collect();
        for (id, ok) in healthy {
            if ok {
                self.healthy_since.entry(id).or_insert(self.now);
            } else {
                self.healthy_since.remove(&id);
            }
        }
    }

    fn stable(&self, id: &str) -> bool {
        self.healthy_since.get(id).is_some_and(|since| {
            self.now.duration_since(*since).unwrap_or_default()
                >= self.config.server_stabilization_time
        })
    }

    fn step(&mut self, seed: u64, tally: &mut Tally) {
        self.advance_clock();
        self.random_event();
        self.replicate();
        self.update_oracle();
        let servers = self.view_servers();
        let view = ClusterView {
            servers: &servers,
            last_index: self.index,
            last_term: self.term,
            stay_non_voters: &self.pinned,
        };
        let actions = self.planner.tick(&self.config, self.now, view);
        self.check(seed, &actions, tally);
        self.apply(&actions);
        tally.ticks += 1;
    }

    fn node(&self, id: &str) -> &Node {
        match self.nodes.iter().find(|n| n.id == id) {
            Some(n) => n,
            None => panic!("action names {id}, which is not in the configuration"),
        }
    }

    fn check(&self, seed: u64, actions: &[Action], tally: &mut Tally) {
        let ctx = format!("seed {seed}, {:?}, actions {actions:?}", self.config);
        let unique: BTreeSet<&Action> = actions.iter().collect();
        assert_eq!(unique.len(), actions.len(), "duplicate actions: {ctx}");

        let promoted: BTreeSet<String> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Promote(id) => Some(id.clone()),
                Action::Remove(_) => None,
            })
            .collect();
        let eligible: BTreeSet<String> = self
            .nodes
            .iter()
            .filter(|n| !n.voter && n.id != self.leader && self.stable(&n.id))
            .filter(|n| !self.pinned.contains(&n.id))
            .map(|n| n.id.clone())
            .collect();
        for id in &promoted {
            let n = self.node(id);
            assert!(!self.pinned.contains(id), "promoted pinned {id}: {ctx}");
            assert!(!n.voter, "promoted voter {id}: {ctx}");
            assert!(self.stable(id), "promoted {id} before it was stable: {ctx}");
        }
        assert_eq!(
            promoted, eligible,
            "promotions differ from the oracle's: {ctx}"
        );
        tally.promotions += promoted.len() as u64;
        tally.pinned_ready += self
            .nodes
            .iter()
            .filter(|n| !n.voter && self.pinned.contains(&n.id) && self.stable(&n.id))
            .count() as u64;

        self.check_removals(actions, &ctx, tally);
    }

    fn check_removals(&self, actions: &[Action], ctx: &str, tally: &mut Tally) {
        let removed: Vec<&Node> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Remove(id) => Some(self.node(id)),
                Action::Promote(_) => None,
            })
            .collect();
        let dead_voters = self
            .nodes
            .iter()
            .filter(|n| n.voter && self.oracle_dead(n))
            .count();
        if !self.config.cleanup_dead_servers {
            assert!(removed.is_empty(), "removed without cleanup: {ctx}");
            return;
        }
        for n in &removed {
            assert_ne!(n.id, self.leader, "removed the leader: {ctx}");
            assert!(
                self.oracle_silence(n) > self.config.dead_server_last_contact_threshold,
                "removed {} after only {:?} of silence: {ctx}",
                n.id,
                self.oracle_silence(n)
            );
        }
        let voters = self.nodes.iter().filter(|n| n.voter).count() as u64;
        let alive_voters = self
            .nodes
            .iter()
            .filter(|n| n.voter && !self.oracle_dead(n))
            .count() as u64;
        let removed_voters = removed.iter().filter(|n| n.voter).count() as u64;
        if removed_voters > 0 {
            assert!(
                voters - removed_voters >= self.config.min_quorum,
                "{voters} voters minus {removed_voters} is below min_quorum: {ctx}"
            );
            assert!(
                removed_voters <= (voters - 1) / 2,
                "removed a majority of {voters} voters: {ctx}"
            );
            assert!(
                alive_voters > voters / 2,
                "removed voters while only {alive_voters} of {voters} live: {ctx}"
            );
        }
        let dead_non_voters = self
            .nodes
            .iter()
            .filter(|n| !n.voter && self.oracle_dead(n))
            .count();
        let removed_non_voters = removed.len() - removed_voters as usize;
        assert_eq!(
            removed_non_voters, dead_non_voters,
            "dead non-voters kept: {ctx}"
        );
        tally.removals += removed.len() as u64;
        tally.removals_held_back += (dead_voters as u64).saturating_sub(removed_voters);
    }

    fn apply(&mut self, actions: &[Action]) {
        for action in actions {
            match action {
                Action::Promote(id) => {
                    if let Some(n) = self.nodes.iter_mut().find(|n| &n.id == id) {
                        n.voter = true;
                    }
                }
                Action::Remove(id) => {
                    self.nodes.retain(|n| &n.id != id);
                    self.healthy_since.remove(id);
                }
            }
        }
    }
}

#[test]
fn autopilot_simulation_keeps_quorum_rules_over_random_histories() {
    // Why: membership changes are where a cluster loses its quorum; these rules must hold
    // in every history, not only in the ones a unit test thinks of.
    let mut tally = Tally::default();
    for seed in 0..200 {
        let mut world = World::new(seed);
        for _ in 0..400 {
            world.step(seed, &mut tally);
        }
    }
    // The histories must actually exercise every rule, or the checks above prove nothing.
    assert_eq!(tally.ticks, 80_000);
    assert!(tally.promotions > 100, "promotions: {}", tally.promotions);
    assert!(tally.removals > 100, "removals: {}", tally.removals);
    assert!(
        tally.pinned_ready > 100,
        "pinned ready: {}",
        tally.pinned_ready
    );
    assert!(
        tally.removals_held_back > 100,
        "held back: {}",
        tally.removals_held_back
    );
}

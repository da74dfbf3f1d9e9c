//! The autopilot planner: what the leader should change in the membership now.
//!
//! Each rule is a statement about quorum. A joiner votes only after it has kept up for
//! `server_stabilization_time`, so a node that joins and falls over never becomes a vote the
//! cluster waits for. A dead server is removed only when cleanup is on, never the leader,
//! never so many at once that the removed outnumber the kept, never below `min_quorum`
//! voters, and never while the servers still alive are not a majority (a membership change
//! then could not commit, and removing voters would hand the decision to a minority). These
//! are hashicorp/raft-autopilot's rules, re-derived; the one memory they need is when each
//! server's health last changed, which the planner keeps between ticks.
//!
//! Actions are derived afresh from the view on every tick, so a removal still in flight is
//! asked for again; removing a server that has already left must be harmless to the caller.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use strongroom_storage::ServerInfo;

use super::config::AutopilotConfig;
use super::state::{AutopilotState, NodeStatus};

/// A membership change the leader should make.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Action {
    /// Make this non-voter a voter (`Cluster::set_voter(id, true)`).
    Promote(String),
    /// Remove this dead server from the configuration (`Cluster::remove(id)`).
    Remove(String),
}

/// The leader's view of the cluster at one instant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClusterView<'a> {
    /// The configuration with per-server progress (`Cluster::servers` on the leader).
    pub servers: &'a [ServerInfo],
    /// The leader's last log index.
    pub last_index: u64,
    /// The term of that entry.
    pub last_term: u64,
    /// Servers that joined as non-voters on purpose (`-non-voter`): never promoted.
    pub stay_non_voters: &'a BTreeSet<String>,
}

/// What the planner remembers of one server between ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Memory {
    /// When this leader first saw the server: the start of its silence if it never answers.
    first_seen: SystemTime,
    /// Its health at the last tick.
    healthy: bool,
    /// When its health last changed (or it was first seen).
    stable_since: SystemTime,
}

/// The planner's verdict on one server at one instant.
#[derive(Debug, Clone)]
pub(super) struct Assessment<'a> {
    pub server: &'a ServerInfo,
    pub status: NodeStatus,
    pub healthy: bool,
    pub stable_since: SystemTime,
    /// Time since the leader last heard from it (zero for the leader itself).
    pub last_contact: Duration,
}

impl Assessment<'_> {
    pub(super) fn votes(&self) -> bool {
        self.server.voter || self.server.leader
    }
}

/// Autopilot's decisions and memory on one leader. Keep one per leadership: a new leader (or
/// a view naming a different leader) starts from an empty memory, so nothing it concludes
/// rests on another node's observations.
#[derive(Debug, Default)]
pub(crate) struct Planner {
    leader: Option<String>,
    memory: BTreeMap<String, Memory>,
}

impl Planner {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Records what the view shows at `now` and returns the changes to make, promotions
    /// first, each kind in node id order. A view without a leader yields nothing.
    pub(crate) fn tick(
        &mut self,
        config: &AutopilotConfig,
        now: SystemTime,
        view: ClusterView<'_>,
    ) -> Vec<Action> {
        let leader = view.servers.iter().find(|s| s.leader).map(|s| &s.node_id);
        if leader != self.leader.as_ref() {
            self.memory.clear();
            self.leader = leader.cloned();
        }
        if leader.is_none() {
            return Vec::new();
        }
        let assessed = self.assess_all(config, now, view);
        self.memory = assessed
            .iter()
            .map(|a| {
                let first_seen = self
                    .memory
                    .get(&a.server.node_id)
                    .map_or(now, |m| m.first_seen);
                let memory = Memory {
                    first_seen,
                    healthy: a.healthy,
                    stable_since: a.stable_since,
                };
                (a.server.node_id.clone(), memory)
            })
            .collect();
        let mut actions = promotions(config, now, view, &assessed);
        if config.cleanup_dead_servers {
            actions.extend(removals(config, &assessed));
        }
        actions
    }

    /// The body of `GET sys/storage/raft/autopilot/state` at `now`; `version` is this node's
    /// release, which Vault reports for every server. Reads the memory without changing it.
    pub(crate) fn state(
        &self,
        config: &AutopilotConfig,
        now: SystemTime,
        view: ClusterView<'_>,
        version: &str,
    ) -> AutopilotState {
        let assessed = self.assess_all(config, now, view);
        AutopilotState::from_assessments(view, &assessed, version)
    }

    /// Every server's assessment, in node id order. Memory kept under another leader is
    /// not used: its observations were not this leader's.
    fn assess_all<'a>(
        &self,
        config: &AutopilotConfig,
        now: SystemTime,
        view: ClusterView<'a>,
    ) -> Vec<Assessment<'a>> {
        let leader = view.servers.iter().find(|s| s.leader).map(|s| &s.node_id);
        let none = BTreeMap::new();
        let memory = if leader == self.leader.as_ref() {
            &self.memory
        } else {
            &none
        };
        let mut assessed: Vec<_> = view
            .servers
            .iter()
            .map(|s| assess(memory.get(&s.node_id), config, now, view, s))
            .collect();
        assessed.sort_by(|a, b| a.server.node_id.cmp(&b.server.node_id));
        assessed.dedup_by(|a, b| a.server.node_id == b.server.node_id);
        assessed
    }
}

/// Health as raft-autopilot defines it: alive, heard from within `last_contact_threshold`,
/// on the leader's term and at most `max_trailing_logs` behind.
fn assess<'a>(
    memory: Option<&Memory>,
    config: &AutopilotConfig,
    now: SystemTime,
    view: ClusterView<'_>,
    server: &'a ServerInfo,
) -> Assessment<'a> {
    let (status, healthy, last_contact) = if server.leader {
        (NodeStatus::Alive, true, Duration::ZERO)
    } else {
        let first_seen = memory.map_or(now, |m| m.first_seen);
        let silent_for = elapsed(now, server.last_contact.unwrap_or(first_seen));
        let status = if silent_for <= config.dead_server_last_contact_threshold {
            NodeStatus::Alive
        } else if config.cleanup_dead_servers {
            NodeStatus::Left
        } else {
            NodeStatus::Failed
        };
        let healthy = status == NodeStatus::Alive
            && server.last_contact.is_some()
            && silent_for <= config.last_contact_threshold
            && server.last_term == view.last_term
            && view.last_index.saturating_sub(server.last_index) <= config.max_trailing_logs;
        (status, healthy, silent_for)
    };
    let stable_since = match memory {
        Some(m) if m.healthy == healthy => m.stable_since,
        _ => now,
    };
    Assessment {
        server,
        status,
        healthy,
        stable_since,
        last_contact,
    }
}

/// Non-voters healthy without a break for `server_stabilization_time`, unless pinned.
fn promotions(
    config: &AutopilotConfig,
    now: SystemTime,
    view: ClusterView<'_>,
    assessed: &[Assessment<'_>],
) -> Vec<Action> {
    assessed
        .iter()
        .filter(|a| !a.votes() && a.healthy)
        .filter(|a| !view.stay_non_voters.contains(&a.server.node_id))
        .filter(|a| elapsed(now, a.stable_since) >= config.server_stabilization_time)
        .map(|a| Action::Promote(a.server.node_id.clone()))
        .collect()
}

/// Dead non-voters (they hold no vote), then as many dead voters as the quorum rules allow.
fn removals(config: &AutopilotConfig, assessed: &[Assessment<'_>]) -> Vec<Action> {
    let dead = |a: &&Assessment<'_>| a.status == NodeStatus::Left && !a.server.leader;
    let mut actions: Vec<Action> = assessed
        .iter()
        .filter(dead)
        .filter(|a| !a.votes())
        .map(|a| Action::Remove(a.server.node_id.clone()))
        .collect();

    let voters = assessed.iter().filter(|a| a.votes()).count() as u64;
    let alive_voters = assessed
        .iter()
        .filter(|a| a.votes() && a.status == NodeStatus::Alive)
        .count() as u64;
    if alive_voters < quorum(voters) {
        return actions;
    }
    // Removing more than (n-1)/2 at once would let the removed outnumber the kept.
    let mut budget = voters.saturating_sub(1) / 2;
    let mut remaining = voters;
    for a in assessed.iter().filter(dead).filter(|a| a.votes()) {
        if budget == 0 || remaining.saturating_sub(1) < config.min_quorum {
            break;
        }
        actions.push(Action::Remove(a.server.node_id.clone()));
        budget -= 1;
        remaining -= 1;
    }
    actions
}

/// The votes a configuration of `voters` needs to decide.
pub(super) fn quorum(voters: u64) -> u64 {
    voters / 2 + 1
}

/// `now - since`, zero when the clock went backwards.
fn elapsed(now: SystemTime, since: SystemTime) -> Duration {
    now.duration_since(since).unwrap_or(Duration::ZERO)
}

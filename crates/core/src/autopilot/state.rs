//! The body of `GET sys/storage/raft/autopilot/state`, in Vault's field names and types.
//!
//! Operators and monitoring read this to answer "how many servers can I lose right now?", so
//! it is computed from the same assessments the planner acts on: a server shown healthy is
//! one the planner counts as healthy. Vault's open-source build omits the Enterprise fields
//! (`non_voters`, `redundancy_zones`, `upgrade_info`, `optimistic_failure_tolerance`; they
//! are `omitempty` and never set there), and so do we.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::go_duration;
use super::plan::{Assessment, ClusterView, quorum};
use crate::CoreError;

/// Whether a server is still part of the cluster as autopilot sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum NodeStatus {
    /// Heard from within `dead_server_last_contact_threshold` (the leader always is).
    Alive,
    /// Silent past that threshold with cleanup on: autopilot treats it as gone and removes
    /// it (Vault marks such a follower `left`).
    Left,
    /// Silent past that threshold with cleanup off: dead, but kept until an operator acts.
    Failed,
}

/// A server's role in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum ServerStatus {
    Leader,
    Voter,
    NonVoter,
}

/// One entry of `servers{}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ServerState {
    pub id: String,
    pub name: String,
    /// The cluster address (host:port).
    pub address: String,
    pub node_status: NodeStatus,
    /// A Go duration string; `"0s"` for the leader.
    pub last_contact: String,
    pub last_term: u64,
    pub last_index: u64,
    pub healthy: bool,
    /// RFC 3339: when the server's health last changed.
    pub stable_since: String,
    pub status: ServerStatus,
    pub version: String,
    /// Always `"voter"`: every server may vote in the open-source build.
    pub node_type: String,
}

/// The whole state body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct AutopilotState {
    /// Every server is healthy and there is a leader.
    pub healthy: bool,
    /// Healthy voters beyond the quorum: how many may still fail.
    pub failure_tolerance: u64,
    /// The leader's node id ("" when there is none).
    pub leader: String,
    /// Voter ids (the leader included), in node id order.
    pub voters: Vec<String>,
    pub servers: BTreeMap<String, ServerState>,
}

impl AutopilotState {
    pub(super) fn from_assessments(
        view: ClusterView<'_>,
        assessed: &[Assessment<'_>],
        version: &str,
    ) -> Self {
        let leader = assessed
            .iter()
            .find(|a| a.server.leader)
            .map(|a| a.server.node_id.clone());
        let voters: Vec<String> = assessed
            .iter()
            .filter(|a| a.votes())
            .map(|a| a.server.node_id.clone())
            .collect();
        let healthy_voters = assessed.iter().filter(|a| a.votes() && a.healthy).count() as u64;
        let servers = assessed
            .iter()
            .map(|a| (a.server.node_id.clone(), server_state(view, a, version)))
            .collect();
        AutopilotState {
            healthy: leader.is_some() && assessed.iter().all(|a| a.healthy),
            failure_tolerance: healthy_voters.saturating_sub(quorum(voters.len() as u64)),
            leader: leader.unwrap_or_default(),
            voters,
            servers,
        }
    }

    /// The state as the `data` map of a response.
    pub(crate) fn to_data(&self) -> Result<Map<String, Value>, CoreError> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(CoreError::Internal(
                "autopilot state did not encode as an object".into(),
            )),
            Err(e) => Err(CoreError::Internal(format!(
                "encoding autopilot state failed: {e}"
            ))),
        }
    }
}

fn server_state(view: ClusterView<'_>, a: &Assessment<'_>, version: &str) -> ServerState {
    let s = a.server;
    let (status, last_index, last_term) = if s.leader {
        (ServerStatus::Leader, view.last_index, view.last_term)
    } else if s.voter {
        (ServerStatus::Voter, s.last_index, s.last_term)
    } else {
        (ServerStatus::NonVoter, s.last_index, s.last_term)
    };
    ServerState {
        id: s.node_id.clone(),
        name: s.node_id.clone(),
        address: s.cluster_addr.clone(),
        node_status: a.status,
        last_contact: go_duration(a.last_contact),
        last_term,
        last_index,
        healthy: a.healthy,
        stable_since: crate::util::rfc3339(a.stable_since, false),
        status,
        version: version.to_owned(),
        node_type: "voter".to_owned(),
    }
}

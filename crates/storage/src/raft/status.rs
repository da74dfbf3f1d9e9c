//! `StorageStatus` from openraft's metrics, for `sys/leader` and the raft configuration API.

use openraft::{RaftMetrics, ServerState};

use super::types::TypeConfig;
use crate::{Peer, StorageStatus};

/// Builds the status view; peers carry the operator's node ids and cluster addresses.
pub fn from_metrics(m: &RaftMetrics<TypeConfig>, node_id: &str) -> StorageStatus {
    let leader = m.current_leader;
    let membership = m.membership_config.membership();
    let voters: Vec<u64> = membership.voter_ids().collect();
    let peers = membership
        .nodes()
        .map(|(id, node)| Peer {
            node_id: node.node_id.clone(),
            address: node.cluster_addr.clone(),
            leader: leader == Some(*id),
            voter: voters.contains(id),
        })
        .collect();
    let committed = m.cluster_committed.as_ref().or(m.local_committed.as_ref());
    StorageStatus {
        storage_type: "raft",
        ha_enabled: true,
        node_id: node_id.to_owned(),
        // A node that still thinks it is Leader but whose metrics name another leader (or none)
        // is not the leader of the current term.
        is_leader: m.state == ServerState::Leader && leader == Some(m.id),
        committed_index: committed.map_or(0, |l| l.index),
        applied_index: m.last_applied.as_ref().map_or(0, |l| l.index),
        config_index: m.membership_config.log_id().as_ref().map_or(0, |l| l.index),
        peers,
    }
}

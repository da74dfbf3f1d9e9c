//! The primary's view of its secondaries, as the replication protocol layer asks for it.
//!
//! The cluster-port server runs outside core's request pipeline and must decide on every
//! handshake and heartbeat whether a secondary may still stream. It gets those answers from
//! this small, lock-protected copy of the replication configuration, which core refreshes on
//! every mode change, token issue and revocation, so revocation and demotion take effect at
//! the next heartbeat without the network code touching the barrier.
//!
//! In a multi-node cluster every node keeps this view, the standbys included: a secondary
//! may dial any node of the primary, and a standby must check its Hello before telling it
//! where the active node is (`role`), with the addresses of every node (`live_addrs`, from
//! Raft's membership) so the secondary can follow the next leader change on its own.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use strongroom_replication::{NodeRole, PeerInfo, SecondaryRegistry};

use super::config::{ReplConfig, ReplicationMode};
use crate::util::lock;

struct View {
    primary: bool,
    cluster_id: Option<String>,
    allowed: BTreeSet<String>,
    cluster_addrs: Vec<String>,
    peers: BTreeMap<String, PeerInfo>,
    role: NodeRole,
    /// Every node's cluster address, the active node's first (empty: single node).
    live_addrs: Vec<String>,
}

impl Default for View {
    fn default() -> Self {
        View {
            primary: false,
            cluster_id: None,
            allowed: BTreeSet::new(),
            cluster_addrs: Vec::new(),
            peers: BTreeMap::new(),
            role: NodeRole::Active,
            live_addrs: Vec::new(),
        }
    }
}

/// Implements [`SecondaryRegistry`] over core's replication configuration.
#[derive(Default)]
pub(crate) struct Registry {
    view: Mutex<View>,
}

impl Registry {
    /// Adopts `config` (or nothing: replication disabled or sealed).
    pub(crate) fn refresh(&self, config: Option<&ReplConfig>) {
        let mut v = lock(&self.view);
        match config {
            // A primary, or a demoted primary that follows nobody yet (draining its final
            // WAL entries to the secondaries that were streaming from it).
            Some(c)
                if c.mode == ReplicationMode::Primary
                    || (c.mode == ReplicationMode::Secondary
                        && c.secondary.is_none()
                        && c.primary.is_some()) =>
            {
                v.primary = true;
                v.cluster_id = Some(c.cluster_id.clone());
                v.allowed = c.known_secondaries().into_iter().collect();
                v.cluster_addrs = c
                    .primary
                    .as_ref()
                    .map(|p| p.cluster_addrs.clone())
                    .unwrap_or_default();
                let allowed = v.allowed.clone();
                v.peers.retain(|id, _| allowed.contains(id));
            }
            _ => {
                let (role, live_addrs) = (v.role.clone(), std::mem::take(&mut v.live_addrs));
                *v = View {
                    role,
                    live_addrs,
                    ..View::default()
                };
            }
        }
    }

    /// Records this node's role in its cluster and every node's cluster address.
    pub(crate) fn set_topology(&self, role: NodeRole, live_addrs: Vec<String>) {
        let mut v = lock(&self.view);
        v.role = role;
        v.live_addrs = live_addrs;
    }

    /// The addresses a secondary should know: every node's, else the configured ones.
    pub(crate) fn cluster_addrs(&self) -> Vec<String> {
        let v = lock(&self.view);
        if v.live_addrs.is_empty() {
            v.cluster_addrs.clone()
        } else {
            v.live_addrs.clone()
        }
    }

    /// The secondaries that heartbeated at least once, by id.
    pub(crate) fn peers(&self) -> Vec<PeerInfo> {
        lock(&self.view).peers.values().cloned().collect()
    }
}

impl SecondaryRegistry for Registry {
    fn cluster_id(&self) -> Option<String> {
        let v = lock(&self.view);
        if v.primary {
            v.cluster_id.clone()
        } else {
            None
        }
    }

    fn is_allowed(&self, secondary_id: &str) -> bool {
        let v = lock(&self.view);
        v.primary && v.allowed.contains(secondary_id)
    }

    fn known_primary_cluster_addrs(&self) -> Vec<String> {
        self.cluster_addrs()
    }

    fn node_role(&self) -> NodeRole {
        lock(&self.view).role.clone()
    }

    fn record_heartbeat(&self, secondary_id: &str, info: PeerInfo) {
        let mut v = lock(&self.view);
        if v.allowed.contains(secondary_id) {
            v.peers.insert(secondary_id.to_owned(), info);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::config::SecondaryRecord;

    #[test]
    fn only_unrevoked_ids_of_a_primary_are_allowed() {
        // Why: revocation and demotion must cut secondaries off at their next heartbeat.
        let registry = Registry::default();
        let mut config = ReplConfig {
            mode: ReplicationMode::Primary,
            cluster_id: "c1".into(),
            ..ReplConfig::default()
        };
        config.secondaries.insert(
            "east".into(),
            SecondaryRecord {
                revoked: false,
                issued_at: 1,
            },
        );
        config.secondaries.insert(
            "west".into(),
            SecondaryRecord {
                revoked: true,
                issued_at: 1,
            },
        );

        registry.refresh(Some(&config));
        let primary_answers = (
            registry.is_allowed("east"),
            registry.is_allowed("west"),
            registry.cluster_id(),
        );
        config.mode = ReplicationMode::Secondary;
        registry.refresh(Some(&config));

        assert_eq!(primary_answers, (true, false, Some("c1".into())));
        assert!(!registry.is_allowed("east"));
        assert_eq!(registry.cluster_id(), None);
    }
}

//! The primary's view of its secondaries, as the replication protocol layer asks for it.
//!
//! The cluster-port server runs outside core's request pipeline and must decide on every
//! handshake and heartbeat whether a secondary may still stream. It gets those answers from
//! this small, lock-protected copy of the replication configuration, which core refreshes on
//! every mode change, token issue and revocation, so revocation and demotion take effect at
//! the next heartbeat without the network code touching the barrier.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use strongroom_replication::{PeerInfo, SecondaryRegistry};

use super::config::{DrConfig, ReplicationMode};
use crate::util::lock;

#[derive(Default)]
struct View {
    primary: bool,
    cluster_id: Option<String>,
    allowed: BTreeSet<String>,
    cluster_addrs: Vec<String>,
    peers: BTreeMap<String, PeerInfo>,
}

/// Implements [`SecondaryRegistry`] over core's replication configuration.
#[derive(Default)]
pub(crate) struct Registry {
    view: Mutex<View>,
}

impl Registry {
    /// Adopts `config` (or nothing: replication disabled or sealed).
    pub(crate) fn refresh(&self, config: Option<&DrConfig>) {
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
            _ => *v = View::default(),
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
        lock(&self.view).cluster_addrs.clone()
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
        let mut config = DrConfig {
            mode: ReplicationMode::Primary,
            cluster_id: "c1".into(),
            ..DrConfig::default()
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

//! Replication on every node of a multi-node cluster, not only the active one.
//!
//! Only the active node streams (a primary) or runs the stream (a secondary), but a
//! secondary may dial any node of the primary, and every node must know what its cluster is
//! in the replication set: a standby of a DR secondary must refuse clients as its active
//! node does. So each node re-reads the replication record the active node keeps in Raft on
//! every lifecycle tick and holds a *standby view* of it: the mode for the request gate, the
//! registry and a server certificate of its own for the cluster port, so it can check a
//! secondary's Hello and tell it where the active node is. Nothing here starts a stream or a
//! canary; those belong to the active node ([`Core::apply_repl_config`]). Both kinds, DR and
//! performance, are followed alike.
//!
//! The same tick catches the one change a standby cannot follow with the keys it holds: a
//! DR secondary enabled on the active node replaces the root key with the primary's. The
//! standby then seals itself (Vault's "poison pill"), and the operator unseals it with the
//! primary's keys.

use strongroom_replication::{NodeRole, ReplicationCa, ReplicationKind};

use super::config::ReplConfig;
use crate::util::lock;
use crate::{Core, CoreError};

/// A server identity this node issued itself from the replication CA, and for what.
#[derive(Clone)]
pub(crate) struct NodeIdentity {
    ca_cert_pem: String,
    hosts: Vec<String>,
    cert_pem: String,
    key_pem: zeroize::Zeroizing<String>,
}

/// `https://host:port` for a cluster address given with or without a scheme.
fn with_scheme(addr: &str) -> String {
    if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("https://{addr}")
    }
}

/// Both replication kinds, in the order their records are applied.
const KINDS: [ReplicationKind; 2] = [ReplicationKind::Dr, ReplicationKind::Performance];

impl Core {
    /// Every node's cluster address, the active node's first, for secondaries to fail over
    /// with (empty when this node is not clustered).
    pub(crate) fn cluster_node_addrs(&self) -> Vec<String> {
        let Some(cluster) = self.cluster() else {
            return Vec::new();
        };
        let mut servers = cluster.servers();
        servers.sort_by_key(|s| !s.leader);
        let mut out: Vec<String> = Vec::new();
        for s in servers {
            let addr = with_scheme(&s.cluster_addr);
            // A configured `cluster_address` with port 0 names no reachable port.
            let unbound = s.cluster_addr.ends_with(":0");
            if !s.cluster_addr.is_empty() && !unbound && !out.contains(&addr) {
                out.push(addr);
            }
        }
        out
    }

    /// One lifecycle tick of replication on this node (under the transition lock). On the
    /// active node it refreshes the addresses handed to secondaries; on a standby it adopts
    /// the stored record as a standby view. Returns true when the standby must seal because
    /// the cluster's keys changed underneath it.
    pub(crate) async fn follow_replication_topology(&self) -> bool {
        if self.cluster().is_none() || self.barrier.sealed() {
            return false;
        }
        let addrs = self.cluster_node_addrs();
        if self.serving() {
            for kind in KINDS {
                self.repl(kind)
                    .registry
                    .set_topology(NodeRole::Active, addrs.clone());
            }
            return false;
        }
        if !self.keyring_still_opens().await {
            tracing::warn!(
                "the cluster's root key changed (this cluster became a DR or performance secondary); sealing this standby: unseal it with the primary's unseal keys"
            );
            return true;
        }
        let active_cluster_addr = self
            .active_node()
            .await
            .map(|a| with_scheme(&a.cluster_addr));
        for kind in KINDS {
            self.repl(kind).registry.set_topology(
                NodeRole::Standby {
                    active_cluster_addr: active_cluster_addr.clone(),
                },
                addrs.clone(),
            );
        }
        let dr = match self.read_dr_config().await {
            Ok(config) => config,
            Err(e) => {
                tracing::warn!(error = %e, "reading the replication configuration on a standby failed");
                return false;
            }
        };
        // A DR secondary's performance record is its primary's: not ours until promotion.
        let dr_secondary = dr
            .as_ref()
            .is_some_and(|c| c.mode == super::config::ReplicationMode::Secondary);
        self.apply_standby_view(ReplicationKind::Dr, dr);
        let perf = if dr_secondary {
            Ok(None)
        } else {
            self.read_repl_config(ReplicationKind::Performance).await
        };
        match perf {
            Ok(config) => self.apply_standby_view(ReplicationKind::Performance, config),
            Err(e) => {
                tracing::warn!(error = %e, "reading the performance replication configuration on a standby failed")
            }
        }
        false
    }

    /// Whether the stored keyring still opens with the root key this node holds.
    async fn keyring_still_opens(&self) -> bool {
        match self.storage.get(strongroom_barrier::KEYRING_PATH).await {
            Ok(Some(raw)) => self.barrier.keyring_opens(&raw),
            // Unreadable or gone: nothing to conclude; the next tick looks again.
            Ok(None) | Err(_) => true,
        }
    }

    /// Adopts `config` on a standby: mode, registry, listener identity; never a runner or a
    /// canary, which only the active node runs.
    fn apply_standby_view(&self, kind: ReplicationKind, config: Option<ReplConfig>) {
        let set = self.repl(kind);
        let mode = config.as_ref().map(|c| c.mode).unwrap_or_default();
        // Compared by encoding (the record holds key material and derives no equality):
        // most ticks change nothing, and rebuilding the listener's TLS config each second
        // would be waste.
        let fingerprint = |c: Option<&ReplConfig>| {
            c.and_then(|c| serde_json::to_vec(c).ok())
                .map(zeroize::Zeroizing::new)
        };
        let unchanged = {
            let current = lock(&set.config);
            fingerprint(current.as_ref()) == fingerprint(config.as_ref())
        };
        if unchanged && set.mode() == mode {
            return;
        }
        set.registry.refresh(config.as_ref());
        set.filters.refresh(config.as_ref());
        self.push_listener_identity(kind, config.as_ref());
        set.set_mode(mode);
        *lock(&set.config) = config;
        tracing::debug!(
            kind = set.label(),
            mode = mode.as_str(),
            "standby adopted the replication configuration"
        );
    }

    /// The replication server identity this node presents: a certificate for its own cluster
    /// address (and the addresses given at enable, e.g. an L4 load balancer), issued here
    /// from the replication CA, so a secondary can verify whichever node it dials.
    pub(super) fn node_replication_identity(
        &self,
        kind: ReplicationKind,
        ca_cert_pem: &str,
        ca_key_pem: &str,
        configured: &[String],
    ) -> Result<(String, zeroize::Zeroizing<String>), CoreError> {
        let own = lock(&self.node.advertised).1.clone();
        let mut hosts: Vec<String> = Vec::new();
        for h in std::iter::once(&own).chain(configured.iter()) {
            if !h.is_empty() && !hosts.contains(h) {
                hosts.push(h.clone());
            }
        }
        if hosts.is_empty() {
            hosts.push("localhost".to_owned());
        }
        let mut slot = lock(&self.repl(kind).node_identity);
        if let Some(id) = slot.as_ref()
            && id.ca_cert_pem == ca_cert_pem
            && id.hosts == hosts
        {
            return Ok((id.cert_pem.clone(), id.key_pem.clone()));
        }
        let ca = ReplicationCa::from_pem(ca_cert_pem, ca_key_pem)
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        let (cert_pem, key_pem) = ca
            .issue_server_cert(&hosts)
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        let key_pem = zeroize::Zeroizing::new(key_pem.to_string());
        *slot = Some(NodeIdentity {
            ca_cert_pem: ca_cert_pem.to_owned(),
            hosts,
            cert_pem: cert_pem.clone(),
            key_pem: key_pem.clone(),
        });
        Ok((cert_pem, key_pem))
    }

    /// The addresses an activation bundle hands a new secondary: every node's, else the
    /// configured ones.
    pub(super) fn bundle_cluster_addrs(&self, configured: &[String]) -> Vec<String> {
        let mut addrs = self.cluster_node_addrs();
        for a in configured {
            if !addrs.contains(a) {
                addrs.push(a.clone());
            }
        }
        addrs
    }
}

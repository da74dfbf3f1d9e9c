//! The cluster port's identity: a cluster-internal CA kept in the barrier, and a certificate
//! per node.
//!
//! Raft and request forwarding trust nothing but this CA, which is separate from the
//! replication CA a DR primary issues to its secondaries: holding a secondary's certificate
//! must not let anyone speak Raft to the cluster. The CA lives in the barrier (cluster-local,
//! so replication never ships it), so a node can present a certificate only while unsealed; a
//! joiner receives its first certificate from the active node after answering the join
//! challenge, and afterwards every unseal issues it a fresh one from its own copy of the CA.

use crate::{Core, CoreError};

/// A node's cluster-port certificate, its key and the CA both ends trust.
pub use strongroom_replication::NodeCert as NodeCredentials;

/// Where the identity goes: the cluster listener and the Raft/forwarding dialer.
pub trait ClusterIdentity: Send + Sync + 'static {
    /// Presents `creds` from the next handshake on, and trusts only its CA.
    fn install(&self, creds: &NodeCredentials) -> Result<(), String>;
    /// Refuses every peer again (sealed).
    fn clear(&self);
}

use strongroom_replication::ClusterCa as StoredCa;

impl Core {
    /// Reads the cluster CA, creating it when this node is active and none exists yet (a
    /// cluster initialized before multi-node support, or a fresh one).
    pub(crate) async fn cluster_ca(&self, may_create: bool) -> Result<Option<StoredCa>, CoreError> {
        if let Some(raw) = self.barrier.get(crate::keys::CLUSTER_CA).await? {
            let ca = serde_json::from_slice(&raw).map_err(|e| {
                CoreError::Internal(format!("the cluster CA record is corrupt: {e}"))
            })?;
            return Ok(Some(ca));
        }
        if !may_create {
            return Ok(None);
        }
        let cluster_id = crate::util::lock(&self.node.cluster)
            .as_ref()
            .map(|c| c.id.clone())
            .unwrap_or_default();
        let ca = pki::new_ca(&cluster_id)?;
        let raw = serde_json::to_vec(&ca)
            .map_err(|e| CoreError::Internal(format!("encoding the cluster CA: {e}")))?;
        self.barrier.put(crate::keys::CLUSTER_CA, &raw).await?;
        Ok(Some(ca))
    }

    /// Issues a certificate for `node_id` from the cluster CA.
    pub(crate) async fn issue_node_credentials(
        &self,
        node_id: &str,
    ) -> Result<NodeCredentials, CoreError> {
        let ca = self.cluster_ca(false).await?.ok_or_else(|| {
            CoreError::Internal(
                "this cluster has no cluster CA yet; retry once its active node is up".into(),
            )
        })?;
        pki::issue(&ca, node_id)
    }

    /// Installs `creds` on the cluster port (no-op without a sink, e.g. in-process tests).
    pub(crate) fn install_identity(&self, creds: &NodeCredentials) -> Result<(), CoreError> {
        match self.ha.identity.get() {
            Some(sink) => {
                sink.install(creds).map_err(|e| {
                    CoreError::Internal(format!("installing the cluster identity: {e}"))
                })?;
                self.ha
                    .identity_installed
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Issues and installs this node's own certificate (on unseal, from its copy of the CA).
    ///
    /// A restarted member may not hold the CA record yet: after a crash its state machine
    /// re-applies its log in the background, and `open` does not wait for that on a node
    /// with other voters. Then nothing is installed, and the lifecycle tick tries again
    /// ([`Core::retry_own_identity`]) until the record is there.
    pub(crate) async fn install_own_identity(&self, may_create: bool) -> Result<(), CoreError> {
        if self.cluster().is_none() {
            return Ok(());
        }
        if self.cluster_ca(may_create).await?.is_none() {
            tracing::info!(
                "this node holds no cluster CA record yet (still re-applying its log?); it presents no cluster certificate until it does"
            );
            return Ok(());
        }
        let node_id = self.storage.status().node_id;
        let creds = self.issue_node_credentials(&node_id).await?;
        self.install_identity(&creds)
    }

    /// On a lifecycle tick: installs this node's certificate if it still has none.
    pub(crate) async fn retry_own_identity(&self) {
        if self.ha.identity.get().is_none()
            || self
                .ha
                .identity_installed
                .load(std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        if let Err(e) = self.install_own_identity(false).await {
            tracing::warn!(error = %e, "cannot present a cluster-port certificate yet; retrying");
        }
    }

    pub(crate) fn clear_identity(&self) {
        if let Some(sink) = self.ha.identity.get() {
            sink.clear();
            self.ha
                .identity_installed
                .store(false, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

mod pki {
    use super::{NodeCredentials, StoredCa};
    use crate::CoreError;

    pub fn new_ca(cluster_id: &str) -> Result<StoredCa, CoreError> {
        StoredCa::generate(cluster_id)
            .map_err(|e| CoreError::Internal(format!("creating the cluster CA: {e}")))
    }

    pub fn issue(ca: &StoredCa, node_id: &str) -> Result<NodeCredentials, CoreError> {
        ca.issue_node(node_id).map_err(|e| {
            CoreError::Internal(format!("issuing a cluster certificate for {node_id}: {e}"))
        })
    }
}

//! The active node's advertisement: where standbys send their clients.
//!
//! Raft tells a standby which node id leads, not where that node's API listens. The active
//! node therefore writes its addresses through the log when it takes over (as Vault writes
//! `core/leader`), and a standby reads them back from its own copy of the state machine. The
//! record carries the writer's node id, so a stale one from an earlier leader is recognised
//! and ignored rather than followed.

use serde::{Deserialize, Serialize};

use crate::{Core, CoreError};

/// The active node of a cluster as clients and peers reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveNode {
    /// Its Raft node id.
    pub node_id: String,
    /// Its `api_addr` (where a 307 sends clients).
    pub api_addr: String,
    /// Its `cluster_addr` (where standbys forward requests).
    pub cluster_addr: String,
}

impl Core {
    /// Writes this node's advertisement (the active node, on taking over).
    pub(crate) async fn write_advert(&self, node_id: &str) -> Result<(), CoreError> {
        let (api_addr, cluster_addr) = crate::util::lock(&self.node.advertised).clone();
        let advert = ActiveNode {
            node_id: node_id.to_owned(),
            api_addr,
            cluster_addr,
        };
        let raw = serde_json::to_vec(&advert)
            .map_err(|e| CoreError::Internal(format!("encoding the leader advertisement: {e}")))?;
        self.barrier.put(crate::keys::LEADER_ADVERT, &raw).await?;
        Ok(())
    }

    /// Reads the current advertisement (None before any active node wrote one).
    pub(crate) async fn read_advert(&self) -> Result<Option<ActiveNode>, CoreError> {
        let Some(raw) = self.barrier.get(crate::keys::LEADER_ADVERT).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| CoreError::Internal(format!("the leader advertisement is corrupt: {e}")))
    }
}

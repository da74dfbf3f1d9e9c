//! The state `Core` keeps about the node itself, grouped by the concern that owns it.
//!
//! `Core` used to carry each of these as a loose field, so any module could reach any lock.
//! Grouping them says who owns what: seal transitions and the attempts that lead to them,
//! the gates every request holds, and the node's identity as other nodes and clients see it.

use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::generate_root::GenerateRootAttempt;
use crate::seal::UnsealProgress;

/// Seal-state transitions and the multi-step attempts (unseal, root generation) that lead to
/// them.
#[derive(Default)]
pub(crate) struct SealState {
    /// Key shares submitted towards the next unseal.
    pub progress: Mutex<UnsealProgress>,
    /// The root-token generation in progress, if any.
    pub generate_root: Mutex<Option<GenerateRootAttempt>>,
    /// The rekey in progress, if any.
    pub rekey: Mutex<Option<crate::rekey::RekeyAttempt>>,
    /// When this node last became active (unsealed); `None` while sealed.
    pub active_since: Mutex<Option<SystemTime>>,
    /// Serializes seal-state transitions (unseal, seal, restore) against each other.
    pub transition: tokio::sync::Mutex<()>,
}

/// The gates a request holds for its whole handling (see `pipeline.rs`).
#[derive(Default)]
pub(crate) struct Gates {
    /// Held shared by every request and exclusively by snapshot restore, so no request reads
    /// or writes while the whole keyspace is being replaced.
    pub request: tokio::sync::RwLock<()>,
    /// Held shared by client (non-replication) requests; a DR demote takes it exclusively to
    /// wait out the writes it admitted before the mode changed.
    pub client: tokio::sync::RwLock<()>,
}

/// Who this node is, as clients and other nodes see it.
pub(crate) struct NodeIdentity {
    /// This cluster's name and id, loaded at unseal.
    pub cluster: Mutex<Option<ClusterInfo>>,
    /// Advertised (api_addr, cluster_addr), known once the listeners are bound.
    pub advertised: Mutex<(String, String)>,
}

impl NodeIdentity {
    pub fn new(api_addr: String, cluster_addr: String) -> Self {
        NodeIdentity {
            cluster: Mutex::new(None),
            advertised: Mutex::new((api_addr, cluster_addr)),
        }
    }
}

/// This cluster's name and id (stored cluster-local, encrypted).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClusterInfo {
    pub name: String,
    pub id: String,
}

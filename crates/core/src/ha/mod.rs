//! High availability: one active node per Raft cluster, standbys that follow it, and the
//! join that adds a node.
//!
//! The active node is always the Raft leader of the current term: it alone runs leases and
//! replication and serves requests that write, because only the leader can commit the writes a
//! request makes. A standby keeps its barrier unsealed (so it can take over at once); `http`
//! forwards its clients' writes to the active node. The
//! lifecycle task (`lifecycle.rs`) moves a node between the two roles as Raft's leadership
//! changes; nothing else does, so a role can never disagree with Raft for longer than one
//! transition. The join (`join_node.rs` on the joiner, `join_leader.rs` on the active node)
//! is two-phase: no data reaches a joiner until it proves it holds the unseal key.
//!
//! Unless `disable_standby_reads` is set, a standby also serves reads itself (`reads.rs`), from
//! its follower's copy of the data and of the in-memory state reads pass through; anything
//! that would write is still the active node's (`tracking.rs` hands it on).

mod advert;
mod autopilot;
mod echo;
mod join_leader;
mod join_node;
mod lifecycle;
mod reads;
pub(crate) mod routes;
mod tls;
pub(crate) mod tracking;

use std::sync::{Arc, Mutex, OnceLock, Weak};

use strongroom_storage::Cluster;

pub use advert::ActiveNode;
pub(crate) use echo::StandbyRegistry;
pub(crate) use join_leader::Challenges;
pub(crate) use join_node::PendingJoin;
pub use join_node::{JoinOutcome, LeaderTls};
pub use reads::{IndexState, ReadRole, served_on_standby};
pub(crate) use reads::{Stale, StandbyReads};
pub use tls::{ClusterIdentity, NodeCredentials};
pub use tracking::{Tracked, track};

use crate::Core;
use crate::util::lock;

/// Where a request that reached this node should be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardTarget {
    /// Here: this node is active, or not clustered, or sealed (the door answers).
    Local,
    /// On the active node at these addresses.
    Active(ActiveNode),
    /// A standby that knows no active node (an election is under way).
    Unknown,
}

/// The HA part of `Core`.
pub(crate) struct HaState {
    /// The Raft control surface; unset on memory storage (a single, always-active node).
    pub cluster: OnceLock<Arc<dyn Cluster>>,
    /// Where the cluster port's TLS identity is installed (the listener and the dialer).
    pub identity: OnceLock<Arc<dyn ClusterIdentity>>,
    /// Whether an identity is installed there now (the lifecycle retries until it is).
    pub identity_installed: std::sync::atomic::AtomicBool,
    /// The active node as last read from its advertisement, with the term it was read for.
    pub active: Mutex<Option<(u64, ActiveNode)>>,
    /// The join this node is part way through (phase one done, waiting for unseal keys).
    pub pending_join: Mutex<Option<PendingJoin>>,
    /// On the active node: challenges handed to joiners and not yet answered.
    pub challenges: Challenges,
    /// On the active node: the standbys that echoed recently.
    pub standbys: StandbyRegistry,
    /// Whether the lifecycle task runs (started on first unseal).
    pub lifecycle_started: std::sync::atomic::AtomicBool,
    /// Set once the cluster removed this node; it then stays sealed.
    pub removed: std::sync::atomic::AtomicBool,
    /// On the active node: autopilot's memory (when each server became healthy).
    pub planner: Mutex<crate::autopilot::Planner>,
    /// On a standby: what serving reads loaded, and the follower that keeps it current.
    pub reads: StandbyReads,
    pub core: Weak<Core>,
}

impl HaState {
    pub fn new(core: Weak<Core>) -> Self {
        HaState {
            cluster: OnceLock::new(),
            identity: OnceLock::new(),
            identity_installed: std::sync::atomic::AtomicBool::new(false),
            active: Mutex::new(None),
            pending_join: Mutex::new(None),
            challenges: Challenges::default(),
            standbys: StandbyRegistry::default(),
            lifecycle_started: std::sync::atomic::AtomicBool::new(false),
            removed: std::sync::atomic::AtomicBool::new(false),
            planner: Mutex::new(crate::autopilot::Planner::new()),
            reads: StandbyReads::default(),
            core,
        }
    }
}

impl Core {
    /// Gives core the Raft control surface (Raft storage only; set once at start-up).
    pub fn set_cluster(&self, cluster: Arc<dyn Cluster>) {
        if self.ha.cluster.set(cluster).is_err() {
            tracing::warn!("the raft cluster handle was set twice; keeping the first");
        }
    }

    /// Gives core the place to install the cluster port's identity (set once at start-up).
    pub fn set_cluster_identity_sink(&self, sink: Arc<dyn ClusterIdentity>) {
        if self.ha.identity.set(sink).is_err() {
            tracing::warn!("the cluster identity sink was set twice; keeping the first");
        }
    }

    pub(crate) fn cluster(&self) -> Option<&Arc<dyn Cluster>> {
        self.ha.cluster.get()
    }

    /// Raft leadership as it changes (None without a cluster).
    pub fn leadership(
        &self,
    ) -> Option<tokio::sync::watch::Receiver<strongroom_storage::Leadership>> {
        self.cluster().map(|c| c.leadership())
    }

    /// Whether this node is a standby: unsealed, clustered and not the active node.
    pub fn is_standby(&self) -> bool {
        self.cluster().is_some() && !self.barrier.sealed() && !self.serving()
    }

    /// Seals this standby alone (`sys/seal` sent to a standby, authorized by the active node).
    pub async fn seal_standby(&self) {
        let _guard = self.seal_state.transition.lock().await;
        if self.is_standby() {
            self.seal_internal().await;
            tracing::info!("standby sealed by an operator");
        }
    }

    /// Whether the cluster removed this node.
    pub fn removed_from_cluster(&self) -> bool {
        self.ha.removed.load(std::sync::atomic::Ordering::SeqCst)
            || self
                .cluster()
                .is_some_and(|c| c.leadership().borrow().removed)
    }

    /// Where a client request that reached this node should go (see [`ForwardTarget`]).
    pub async fn forward_target(&self) -> ForwardTarget {
        if !self.is_standby() {
            return ForwardTarget::Local;
        }
        match self.active_node().await {
            Some(active) => ForwardTarget::Active(active),
            None => ForwardTarget::Unknown,
        }
    }

    /// The active node as this standby knows it: the advertisement the current leader wrote,
    /// re-read whenever the term changes.
    pub async fn active_node(&self) -> Option<ActiveNode> {
        let cluster = self.cluster()?;
        let leadership = cluster.leadership().borrow().clone();
        let leader = leadership.leader.clone()?;
        // A leader that lost its lease still names itself: never forward to ourselves.
        if leader == self.storage.status().node_id {
            return None;
        }
        if let Some((term, node)) = lock(&self.ha.active).clone()
            && term == leadership.term
            && node.node_id == leader
        {
            return Some(node);
        }
        let node = self.read_advert().await.ok().flatten()?;
        if node.node_id != leader {
            return None;
        }
        *lock(&self.ha.active) = Some((leadership.term, node.clone()));
        Some(node)
    }
}

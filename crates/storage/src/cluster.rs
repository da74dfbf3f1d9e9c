//! The HA control surface of a clustered backend, kept apart from [`crate::Storage`].
//!
//! `Storage` is what every layer reads and writes through; membership, leadership and the
//! peer transport are what only core's HA code and the cluster port touch. Keeping them in
//! their own trait means the memory backend simply has none (`-dev` is one node), and core
//! can be tested against a fake cluster without Raft.
//!
//! The transport is inverted: storage never opens sockets or knows TLS. The server gives it a
//! [`Dialer`] (which the cluster port implements with mutual TLS and the `raft_v1` ALPN) and
//! hands it every inbound `raft_v1` stream through [`Cluster::serve_stream`].

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::StorageError;

/// A bidirectional byte stream to or from a peer (a TLS stream in production, an in-memory
/// duplex in tests).
pub trait PeerStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> PeerStream for T {}

/// A boxed [`PeerStream`].
pub type BoxStream = Box<dyn PeerStream>;

/// Opens streams to peers' cluster ports. Fails while this node holds no cluster identity
/// (sealed, or not yet joined), which Raft treats as an unreachable peer and retries.
#[async_trait]
pub trait Dialer: Send + Sync + 'static {
    /// Connects to `cluster_addr` (host:port) for Raft traffic.
    async fn dial(&self, cluster_addr: &str) -> std::io::Result<BoxStream>;
}

/// Who leads, as this node sees it. Published through [`Cluster::leadership`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leadership {
    /// The current Raft term.
    pub term: u64,
    /// The node id of the leader this node knows of, if any.
    pub leader: Option<String>,
    /// Whether this node is the leader of `term` (and may therefore propose writes).
    pub is_self: bool,
    /// Whether the cluster removed this node (it must then seal and stop serving).
    pub removed: bool,
}

/// One server of the Raft configuration, as the leader (or this node) sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// The operator's node id.
    pub node_id: String,
    /// host:port of its cluster listener.
    pub cluster_addr: String,
    /// Whether it votes (false: a non-voter, Raft's learner).
    pub voter: bool,
    /// Whether it is the current leader.
    pub leader: bool,
    /// On the leader: when it last acknowledged this leader (None: never, or not known here).
    pub last_contact: Option<SystemTime>,
    /// On the leader: the last log index known replicated to it.
    pub last_index: u64,
    /// On the leader: the term of that entry.
    pub last_term: u64,
}

/// Membership and leadership control of a clustered backend.
#[async_trait]
pub trait Cluster: Send + Sync + 'static {
    /// Whether this node belongs to a cluster (bootstrapped, or joined and sent a membership).
    async fn is_member(&self) -> Result<bool, StorageError>;

    /// Makes a pristine node a one-node cluster with itself as the only voter, and waits
    /// until it leads (`operator init` on the first node).
    async fn bootstrap(&self) -> Result<(), StorageError>;

    /// Leader only: adds a node as a non-voter, so it receives the log (and a snapshot)
    /// without counting toward quorum; returns once the change is committed.
    async fn add_non_voter(&self, node_id: &str, cluster_addr: &str) -> Result<(), StorageError>;

    /// Leader only: makes a member a voter or a non-voter.
    async fn set_voter(&self, node_id: &str, voter: bool) -> Result<(), StorageError>;

    /// Leader only: removes a member and tells it so (best effort; see [`Leadership::removed`]).
    async fn remove(&self, node_id: &str) -> Result<(), StorageError>;

    /// Leader only: hands leadership to the most up-to-date voter (`sys/step-down`).
    async fn step_down(&self) -> Result<(), StorageError>;

    /// The configuration in force, with per-server progress when this node leads.
    fn servers(&self) -> Vec<ServerInfo>;

    /// Leadership as it changes.
    fn leadership(&self) -> tokio::sync::watch::Receiver<Leadership>;

    /// Waits until this node has applied at least `index` (bounded by `timeout`).
    async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<(), StorageError>;

    /// Serves one inbound `raft_v1` stream from a peer until it closes. `peer` is the node
    /// id the transport authenticated (the certificate's name): requests that only a
    /// particular member may make, such as "you were removed", are checked against it.
    async fn serve_stream(&self, stream: BoxStream, peer: String);
}

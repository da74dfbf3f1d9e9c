//! The Raft transport: openraft's RPCs as frames over streams the server's cluster port opens.
//!
//! Storage never opens sockets or knows TLS (see [`crate::cluster`]): the client side asks the
//! [`Dialer`] for a stream to a peer's cluster address and keeps one per peer, and the server
//! side is handed each inbound stream through `Cluster::serve_stream`. Each stream carries
//! one request at a time and its answer, so a reply always belongs to the request before it;
//! openraft already runs one replication task per peer, so this costs no parallelism.
//!
//! Failures are reported the way openraft's backoff expects: a peer we cannot dial, that does
//! not answer in time, or whose Raft is stopped is `Unreachable` (retried with backoff); a
//! connection that broke mid-request is a `NetworkError` (retried on a fresh connection).

mod client;
mod frame;
mod server;

use std::sync::Arc;

use openraft::network::RaftNetworkFactory;

pub use self::client::PeerClient;
pub(super) use self::server::serve;
use super::types::{RaftNode, TypeConfig};
use crate::Dialer;

/// Hands out one [`PeerClient`] per replication target.
pub struct NetworkFactory {
    dialer: Option<Arc<dyn Dialer>>,
}

impl NetworkFactory {
    /// `None`: no peer is ever reachable (a node that can only be a one-node cluster).
    pub fn new(dialer: Option<Arc<dyn Dialer>>) -> Self {
        Self { dialer }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &RaftNode) -> PeerClient {
        PeerClient::new(target, node.clone(), self.dialer.clone())
    }
}

/// Tells a removed node so (best effort; it also learns from a membership without itself).
pub async fn send_removed(
    dialer: Option<Arc<dyn Dialer>>,
    node: RaftNode,
    term: u64,
    timeout: std::time::Duration,
) -> std::io::Result<()> {
    let mut client = PeerClient::new(super::types::raft_id_for(&node.node_id), node, dialer);
    client.notify_removed(term, timeout).await
}

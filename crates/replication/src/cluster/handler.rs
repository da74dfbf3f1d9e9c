//! The seam between the cluster port and the services it carries.
//!
//! The listener authenticates a peer and picks the service by ALPN; the service gets a plain
//! stream and the verified peer, so Raft (storage) and forwarding (http) never see TLS types
//! and need not depend on rustls.

use std::net::SocketAddr;

use async_trait::async_trait;
use strongroom_storage::BoxStream;

/// A verified cluster peer, as the listener knows it after the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterPeer {
    /// The node id named by the peer's client certificate (its common name), which chains to
    /// the cluster CA.
    pub node_id: String,
    /// The TCP address the connection came from.
    pub remote_addr: SocketAddr,
}

/// Serves the streams of one ALPN on the cluster port.
#[async_trait]
pub trait StreamHandler: Send + Sync + 'static {
    /// Serves one authenticated stream until it closes. Runs in its own task; the listener
    /// drops it when the port shuts down.
    async fn handle(&self, stream: BoxStream, peer: ClusterPeer);
}

/// Serves inbound `raft_v1` streams with a clustered storage backend: register it under
/// [`crate::wire::ALPN_RAFT`].
pub struct RaftHandler(pub std::sync::Arc<dyn strongroom_storage::Cluster>);

#[async_trait]
impl StreamHandler for RaftHandler {
    async fn handle(&self, stream: BoxStream, peer: ClusterPeer) {
        tracing::trace!(node_id = %peer.node_id, remote = %peer.remote_addr, "raft stream opened");
        self.0.serve_stream(stream, peer.node_id).await;
    }
}

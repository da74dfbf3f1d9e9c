//! The active node's end of forwarding: HTTP/2 on an authenticated `req_fw_v1` stream, served
//! by the same router as the API listener.
//!
//! The router reads the client address from `ConnectInfo`; here that is the address the
//! standby put in [`FORWARDED_FOR_HEADER`], so audit and bound CIDRs see the real client.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use strongroom_replication::{ClusterPeer, StreamHandler};
use strongroom_storage::BoxStream;
use tower::ServiceExt;

use super::FORWARDED_FOR_HEADER;

/// Concurrent forwarded requests per standby connection.
const MAX_CONCURRENT_STREAMS: u32 = 256;

/// Serves forwarded requests from `peer` on `stream` with `router` until the standby closes
/// the connection.
pub async fn serve_forwarded(stream: BoxStream, peer: ClusterPeer, router: Router) {
    let node_id = peer.node_id.clone();
    let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
        let mut req = req.map(axum::body::Body::new);
        let client = take_forwarded_for(req.headers_mut(), &node_id);
        if let Some(addr) = client {
            req.extensions_mut().insert(ConnectInfo(addr));
        }
        req.extensions_mut()
            .insert(super::ForwardedBy(node_id.clone()));
        router.clone().oneshot(req)
    });
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(20));
    if let Err(e) = builder
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(node_id = %peer.node_id, remote = %peer.remote_addr, error = %e,
            "forwarding connection ended with an error");
    }
}

/// Removes the forwarded-for header and returns the address it names, if well formed.
fn take_forwarded_for(headers: &mut http::HeaderMap, node_id: &str) -> Option<SocketAddr> {
    let value = headers.remove(FORWARDED_FOR_HEADER)?;
    let parsed = value
        .to_str()
        .ok()
        .and_then(|v| v.parse::<SocketAddr>().ok());
    if parsed.is_none() {
        tracing::warn!(%node_id, "forwarded request with a malformed client address; serving it without one");
    }
    parsed
}

/// The `req_fw_v1` service: register it on the cluster listener under
/// `strongroom_replication::wire::ALPN_FORWARD`.
#[derive(Clone)]
pub struct ForwardHandler {
    router: Router,
}

impl ForwardHandler {
    /// Serves forwarded requests with `router` (build it with [`crate::router`] and the API
    /// listener's options).
    pub fn new(router: Router) -> Self {
        ForwardHandler { router }
    }
}

#[async_trait]
impl StreamHandler for ForwardHandler {
    async fn handle(&self, stream: BoxStream, peer: ClusterPeer) {
        serve_forwarded(stream, peer, self.router.clone()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forwarded_for_header_is_consumed_and_only_a_socket_address_is_believed() {
        // Why: the router must not see the header (nothing downstream may re-read it), and a
        // garbled value must not become a client address.
        let mut headers = http::HeaderMap::new();
        headers.insert(FORWARDED_FOR_HEADER, "192.0.2.1:80".parse().unwrap());
        let good = take_forwarded_for(&mut headers, "n1");
        headers.insert(FORWARDED_FOR_HEADER, "192.0.2.1, 10.0.0.1".parse().unwrap());
        let bad = take_forwarded_for(&mut headers, "n1");

        assert_eq!(good, Some("192.0.2.1:80".parse().unwrap()));
        assert_eq!(bad, None);
        assert!(!headers.contains_key(FORWARDED_FOR_HEADER));
    }
}

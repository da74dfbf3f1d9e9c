//! The cluster port's services over real mutual TLS on 127.0.0.1: the DR identity and the
//! cluster identity side by side on one listener, chosen by ALPN.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use strongroom_replication::cluster::NO_IDENTITY;
use strongroom_replication::wire::{ALPN_DR, ALPN_FORWARD, ALPN_RAFT};
use strongroom_replication::{
    ClientTls, ClusterCa, ClusterDialer, ClusterListener, ClusterPeer, NodeCert, PrimaryServer,
    ReplicationCa, StreamHandler,
};
use strongroom_storage::{BoxStream, Dialer, InmemStorage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

/// Echoes every byte back and reports who connected.
struct Echo {
    peers: mpsc::UnboundedSender<ClusterPeer>,
    calls: AtomicUsize,
}

#[async_trait]
impl StreamHandler for Echo {
    async fn handle(&self, mut stream: BoxStream, peer: ClusterPeer) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let _ = self.peers.send(peer);
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if stream.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

struct Port {
    addr: String,
    listener: Arc<ClusterListener>,
    cluster_ca: ClusterCa,
    repl_ca: ReplicationCa,
    raft: Arc<Echo>,
    forward: Arc<Echo>,
    raft_peers: mpsc::UnboundedReceiver<ClusterPeer>,
    _shutdown: watch::Sender<bool>,
}

/// A listener with both identities set and echo handlers on the raft and forwarding ALPNs.
async fn start_port(with_cluster_identity: bool) -> Port {
    let cluster_ca = ClusterCa::generate("cluster-a").unwrap();
    let repl_ca = ReplicationCa::generate(common::CLUSTER_ID).unwrap();
    let listener = Arc::new(ClusterListener::new().unwrap());
    let (dr_cert, dr_key) = repl_ca
        .issue_server_cert(&["127.0.0.1".to_owned()])
        .unwrap();
    listener
        .set_identity(&dr_cert, &dr_key, &repl_ca.ca_cert_pem)
        .unwrap();
    if with_cluster_identity {
        let me = cluster_ca.issue_node("node-1").unwrap();
        listener.set_cluster_identity(&me).unwrap();
    }
    let (raft_tx, raft_peers) = mpsc::unbounded_channel();
    let raft = Arc::new(Echo {
        peers: raft_tx,
        calls: AtomicUsize::new(0),
    });
    let (fw_tx, _fw_rx) = mpsc::unbounded_channel();
    let forward = Arc::new(Echo {
        peers: fw_tx,
        calls: AtomicUsize::new(0),
    });
    listener.register(ALPN_RAFT, raft.clone()).unwrap();
    listener.register(ALPN_FORWARD, forward.clone()).unwrap();
    let registry = Arc::new(common::Registry::default());
    *registry.cluster_id.lock().unwrap() = Some(common::CLUSTER_ID.to_owned());
    let primary = Arc::new(PrimaryServer::new(Arc::new(InmemStorage::new()), registry));
    let (tx, rx) = watch::channel(false);
    let (bound, _task) = listener
        .clone()
        .serve("127.0.0.1:0", primary, rx)
        .await
        .unwrap();
    Port {
        addr: bound.to_string(),
        listener,
        cluster_ca,
        repl_ca,
        raft,
        forward,
        raft_peers,
        _shutdown: tx,
    }
}

fn dialer_for(node: &NodeCert) -> ClusterDialer {
    let dialer = ClusterDialer::new();
    dialer.set_identity(node).unwrap();
    dialer
}

/// Whether `stream` carries bytes both ways (a refused client certificate shows up here in
/// TLS 1.3: the client's handshake completes before the server's verdict arrives).
async fn echoes(mut stream: BoxStream) -> bool {
    if stream.write_all(b"ping").await.is_err() || stream.flush().await.is_err() {
        return false;
    }
    let mut buf = [0u8; 4];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf)).await,
        Ok(Ok(_)) if &buf == b"ping"
    )
}

#[tokio::test]
async fn raft_stream_reaches_its_handler_with_the_verified_node_id() {
    // Why: storage's Raft transport only sees a Dialer and the handler's stream; the bytes
    // must flow both ways and the handler must learn which node dialled.
    let mut port = start_port(true).await;
    let dialer = dialer_for(&port.cluster_ca.issue_node("node-2").unwrap());

    let stream = dialer
        .dial(&format!("https://{}", port.addr))
        .await
        .unwrap();
    let echoed = echoes(stream).await;

    assert!(echoed);
    let peer = port.raft_peers.recv().await.unwrap();
    assert_eq!(peer.node_id, "node-2");
    assert!(peer.remote_addr.ip().is_loopback());
    assert_eq!(port.forward.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn forwarding_alpn_reaches_its_own_handler() {
    // Why: one port, several services: the ALPN alone decides which handler serves.
    let port = start_port(true).await;
    let dialer = dialer_for(&port.cluster_ca.issue_node("node-3").unwrap());

    let stream = dialer.dial_alpn(&port.addr, ALPN_FORWARD).await.unwrap();

    assert!(echoes(stream).await);
    assert_eq!(port.forward.calls.load(Ordering::SeqCst), 1);
    assert_eq!(port.raft.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn dialer_without_identity_fails_clearly() {
    // Why: a sealed or unjoined node must fail fast with a reason, not hang or panic.
    let port = start_port(true).await;
    let dialer = ClusterDialer::new();

    let before = dialer.dial(&port.addr).await.err().unwrap();
    dialer
        .set_identity(&port.cluster_ca.issue_node("node-2").unwrap())
        .unwrap();
    dialer.clear_identity();
    let after = dialer.dial(&port.addr).await.err().unwrap();

    for err in [before, after] {
        assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
        assert_eq!(err.to_string(), NO_IDENTITY);
    }
    assert_eq!(port.raft.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn client_certificates_from_another_ca_are_refused_on_cluster_alpns() {
    // Why: a node of another cluster, or a DR secondary holding a replication-CA certificate,
    // must never reach Raft or forwarding, even when it trusts this node's server certificate.
    let port = start_port(true).await;
    let stranger = ClusterCa::generate("cluster-b")
        .unwrap()
        .issue_node("node-2")
        .unwrap();
    let (dr_cert, dr_key) = port.repl_ca.issue_client_cert("node-2").unwrap();
    let impostors = [
        NodeCert {
            ca_cert_pem: port.cluster_ca.ca_cert_pem.clone(),
            ..stranger
        },
        NodeCert {
            cert_pem: dr_cert,
            key_pem: dr_key,
            ca_cert_pem: port.cluster_ca.ca_cert_pem.clone(),
        },
    ];

    for impostor in &impostors {
        let dialer = dialer_for(impostor);
        for alpn in [ALPN_RAFT, ALPN_FORWARD] {
            if let Ok(stream) = dialer.dial_alpn(&port.addr, alpn).await {
                assert!(!echoes(stream).await, "refused certificate was served");
            }
        }
    }

    assert_eq!(port.raft.calls.load(Ordering::SeqCst), 0);
    assert_eq!(port.forward.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_dialer_refuses_a_server_of_another_cluster() {
    // Why: the dialer trusts only its own cluster CA, so it never sends Raft traffic to a
    // node of another cluster listening at a stale address.
    let port = start_port(true).await;
    let other = ClusterCa::generate("cluster-b").unwrap();
    let dialer = dialer_for(&other.issue_node("node-2").unwrap());

    let result = dialer.dial(&port.addr).await;

    assert!(result.is_err());
}

#[tokio::test]
async fn unknown_alpn_is_refused() {
    // Why: the port multiplexes by ALPN; a protocol nobody registered must get nothing.
    let port = start_port(true).await;
    let dialer = dialer_for(&port.cluster_ca.issue_node("node-2").unwrap());

    let result = dialer.dial_alpn(&port.addr, b"h2").await;

    assert!(result.is_err());
    assert_eq!(port.raft.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn cluster_services_follow_the_cluster_identity() {
    // Why: until a node is unsealed and joined it has no cluster identity and must serve no
    // Raft; sealing clears it again, without rebinding the port.
    let port = start_port(false).await;
    let dialer = dialer_for(&port.cluster_ca.issue_node("node-2").unwrap());

    let unset = dialer.dial(&port.addr).await;
    port.listener
        .set_cluster_identity(&port.cluster_ca.issue_node("node-1").unwrap())
        .unwrap();
    let set = dialer.dial(&port.addr).await;
    port.listener.clear_cluster_identity();
    let cleared = dialer.dial(&port.addr).await;

    assert!(unset.is_err());
    assert!(echoes(set.unwrap()).await);
    assert!(cleared.is_err());
}

#[tokio::test]
async fn dr_alpn_keeps_the_replication_identity() {
    // Why: adding cluster services must not change DR: a replication-CA secondary is still
    // served, and a cluster-CA certificate is refused on the DR ALPN.
    let port = start_port(true).await;
    let (cert, key) = port.repl_ca.issue_client_cert("dr-1").unwrap();
    let node = port.cluster_ca.issue_node("dr-1").unwrap();
    let secondary = ClientTls::new(&port.repl_ca.ca_cert_pem, &cert, &key).unwrap();
    let intruder =
        ClientTls::new(&port.repl_ca.ca_cert_pem, &node.cert_pem, &node.key_pem).unwrap();

    let served = common::hello_acked(&secondary, &port.addr, "dr-1", ALPN_DR).await;
    let intruded = common::hello_acked(&intruder, &port.addr, "dr-1", ALPN_DR).await;

    assert!(served);
    assert!(!intruded);
    assert_eq!(port.raft.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_dr_alpn_cannot_be_registered_as_a_cluster_service() {
    // Why: DR must keep the replication CA; a cluster handler there would swap its trust.
    let port = start_port(true).await;

    let result = port
        .listener
        .register(strongroom_replication::wire::ALPN_DR, port.raft.clone());

    assert!(result.is_err());
}

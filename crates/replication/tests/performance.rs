//! End-to-end performance replication between two in-memory storages over real mTLS on
//! 127.0.0.1: what travels, what never does, path filters and their changes, resumes, and
//! the cluster port's performance identity.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::*;
use sha2::{Digest, Sha256};
use strongroom_replication::wire::{ALPN_PERFORMANCE, ALPN_PERFORMANCE_FORWARD, ALPN_RAFT};
use strongroom_replication::{
    ClientTls, ClusterListener, ClusterPeer, PerformanceFilter, PerformanceStore, PrimaryServer,
    ReplicationCa, ReplicationKind, SecondaryConfig, SecondaryHandle, SecondaryRunner,
    StreamHandler, connect_alpn,
};
use strongroom_storage::keyspace::PERF_POSITION_KEY;
use strongroom_storage::{BoxStream, InmemStorage, MerkleTree, Op, Storage};
use tokio::sync::{mpsc, watch};

/// Denies the shared keys under its prefixes; the digest names the prefix list.
#[derive(Default)]
struct DenyPrefixes(Mutex<Vec<String>>);

impl DenyPrefixes {
    fn set(&self, prefixes: &[&str]) {
        *self.0.lock().unwrap() = prefixes.iter().map(|p| (*p).to_owned()).collect();
    }
}

impl PerformanceFilter for DenyPrefixes {
    fn digest(&self, secondary_id: &str) -> [u8; 32] {
        let list = self.0.lock().unwrap().join("\n");
        Sha256::digest(format!("{secondary_id}\n{list}")).into()
    }
    fn allows(&self, _: &str, key: &str) -> bool {
        !self.0.lock().unwrap().iter().any(|p| key.starts_with(p))
    }
    fn filters_anything(&self, _: &str) -> bool {
        !self.0.lock().unwrap().is_empty()
    }
}

/// A performance primary: its own replication CA, the performance identity on the port.
struct PerfPrimary {
    storage: Arc<InmemStorage>,
    ca: ReplicationCa,
    addr: String,
    filter: Arc<DenyPrefixes>,
    listener: Arc<ClusterListener>,
    _shutdown: watch::Sender<bool>,
}

impl PerfPrimary {
    async fn start(deny: &[&str]) -> PerfPrimary {
        let storage = Arc::new(InmemStorage::new());
        let ca = ReplicationCa::generate(CLUSTER_ID).unwrap();
        let registry = Arc::new(Registry::default());
        *registry.cluster_id.lock().unwrap() = Some(CLUSTER_ID.to_owned());
        let filter = Arc::new(DenyPrefixes::default());
        filter.set(deny);
        let listener = Arc::new(ClusterListener::new().unwrap());
        let (cert, key) = ca.issue_server_cert(&["127.0.0.1".to_owned()]).unwrap();
        listener
            .set_performance_identity(&cert, &key, &ca.ca_cert_pem)
            .unwrap();
        let primary = Arc::new(PrimaryServer::new_performance(
            storage.clone(),
            registry.clone(),
            filter.clone(),
        ));
        listener.set_performance_primary(primary);
        // The DR side of the port serves nothing here: a DR server without the DR identity.
        let dr = Arc::new(PrimaryServer::new(storage.clone(), registry.clone()));
        let (tx, rx) = watch::channel(false);
        let (bound, _task) = listener.clone().serve("127.0.0.1:0", dr, rx).await.unwrap();
        let addr = bound.to_string();
        *registry.addrs.lock().unwrap() = vec![addr.clone()];
        PerfPrimary {
            storage,
            ca,
            addr,
            filter,
            listener,
            _shutdown: tx,
        }
    }

    fn secondary_config(&self, id: &str) -> SecondaryConfig {
        secondary_config(&self.ca, &self.addr, id, ReplicationKind::Performance)
    }

    fn client_tls(&self, id: &str) -> ClientTls {
        let (cert, key) = self.ca.issue_client_cert(id).unwrap();
        ClientTls::new(&self.ca.ca_cert_pem, &cert, &key).unwrap()
    }

    async fn put(&self, keys: &[&str]) {
        let ops = keys
            .iter()
            .map(|k| Op::Put {
                key: (*k).to_owned(),
                value: format!("ct:{k}").into_bytes(),
            })
            .collect();
        self.storage.write(ops).await.unwrap();
    }
}

/// A secondary cluster holding some keys of its own.
async fn secondary_with_own_keys() -> Arc<InmemStorage> {
    let s = Arc::new(InmemStorage::new());
    s.write(vec![
        Op::Put {
            key: "local/own-mount/k".into(),
            value: b"own-local".to_vec(),
        },
        Op::Put {
            key: "sys/token/id/own".into(),
            value: b"own-token".to_vec(),
        },
    ])
    .await
    .unwrap();
    s
}

fn start(cfg: SecondaryConfig, storage: &Arc<InmemStorage>) -> SecondaryHandle {
    SecondaryRunner::start(cfg, storage.clone(), Arc::new(Hooks::default())).unwrap()
}

async fn has(s: &InmemStorage, key: &str) -> bool {
    s.get(key).await.unwrap().is_some()
}

/// Waits until the secondary streams and has applied everything the primary wrote.
async fn caught_up(primary: &PerfPrimary, handle: &SecondaryHandle) {
    let want = primary.storage.replication_status().last_wal;
    eventually("the performance secondary catches up", || async {
        handle.status().state == "stream-wals" && *handle.applied().borrow() == want
    })
    .await;
}

async fn own_keys_survive(s: &InmemStorage) {
    assert_eq!(
        s.get("local/own-mount/k").await.unwrap(),
        Some(b"own-local".to_vec())
    );
    assert_eq!(
        s.get("sys/token/id/own").await.unwrap(),
        Some(b"own-token".to_vec())
    );
}

#[tokio::test]
async fn a_performance_secondary_receives_only_the_shared_keys_its_filter_allows() {
    // Why: tokens, leases and local mounts never leave a cluster by performance replication,
    // and a path filter keeps a mount's data off a secondary; the secondary's own local data
    // must survive its bootstrap sync and the stream.
    let primary = PerfPrimary::start(&["logical/u2/"]).await;
    primary
        .put(&[
            "logical/u1/a",
            "logical/u2/b",
            "sys/token/id/p1",
            "local/pm/x",
            "core/mounts",
        ])
        .await;
    let secondary = secondary_with_own_keys().await;

    let handle = start(primary.secondary_config("pr-1"), &secondary);
    caught_up(&primary, &handle).await;
    primary.put(&["logical/u1/c", "sys/token/id/p2"]).await;
    primary.put(&["logical/u2/d"]).await; // an entry whose ops are all filtered
    primary.put(&["logical/u1/e"]).await;
    caught_up(&primary, &handle).await;

    for key in [
        "logical/u1/a",
        "logical/u1/c",
        "logical/u1/e",
        "core/mounts",
    ] {
        assert_eq!(
            secondary.get(key).await.unwrap(),
            Some(format!("ct:{key}").into_bytes()),
            "{key}"
        );
    }
    for key in [
        "logical/u2/b",
        "logical/u2/d",
        "sys/token/id/p1",
        "sys/token/id/p2",
        "local/pm/x",
    ] {
        assert!(!has(&secondary, key).await, "{key} must not travel");
    }
    own_keys_survive(&secondary).await;
    let last_wal = primary.storage.replication_status().last_wal;
    let raw = secondary.get(PERF_POSITION_KEY).await.unwrap().unwrap();
    let recorded = PerformanceStore::decode_position(&raw).unwrap();
    assert_eq!(recorded.index, last_wal);
    assert_ne!(
        recorded.hash,
        primary.storage.replication_status().last_hash,
        "the stream presents transformed hashes"
    );
    assert_eq!(handle.status().last_remote_wal, last_wal);
    assert_eq!(handle.status().syncs_completed, 1, "one bootstrap sync");
    let expected = InmemStorage::new();
    for key in [
        "logical/u1/a",
        "logical/u1/c",
        "logical/u1/e",
        "core/mounts",
    ] {
        expected
            .put(key, format!("ct:{key}").into_bytes())
            .await
            .unwrap();
    }
    assert_eq!(
        secondary.merkle_hashes(MerkleTree::Shared, None),
        expected.merkle_hashes(MerkleTree::Shared, None)
    );
    handle.stop().await;
}

#[tokio::test]
async fn a_restarted_performance_secondary_resumes_without_a_diff() {
    // Why: the secondary resumes from a position in the transformed stream; if the primary
    // could not map it back to its own retained entry, every restart would cost a full diff.
    let primary = PerfPrimary::start(&["logical/u2/"]).await;
    primary.put(&["logical/u1/a", "logical/u2/a"]).await;
    let secondary = secondary_with_own_keys().await;
    let cfg = primary.secondary_config("pr-1");
    let handle = start(cfg.clone(), &secondary);
    caught_up(&primary, &handle).await;
    handle.stop().await;

    primary.put(&["logical/u1/b"]).await;
    primary.put(&["logical/u2/b"]).await;
    primary.put(&["logical/u1/c"]).await;
    let handle = start(cfg, &secondary);
    caught_up(&primary, &handle).await;

    assert_eq!(
        handle.status().syncs_completed,
        0,
        "resumed from the stream"
    );
    for key in ["logical/u1/a", "logical/u1/b", "logical/u1/c"] {
        assert!(has(&secondary, key).await, "{key}");
    }
    assert!(!has(&secondary, "logical/u2/b").await);
    own_keys_survive(&secondary).await;
    handle.stop().await;
}

#[tokio::test]
async fn changing_the_filter_removes_the_newly_denied_keys_after_a_reconnect() {
    // Why: a mount newly excluded from a secondary must disappear from it; the primary keeps
    // no state about what a secondary received, so the changed digest must end the stream
    // and make the secondary's position unusable, forcing a diff that deletes those keys.
    let primary = PerfPrimary::start(&[]).await;
    primary
        .put(&["logical/u1/a", "logical/u2/b", "sys/token/id/p"])
        .await;
    let secondary = secondary_with_own_keys().await;
    let handle = start(primary.secondary_config("pr-1"), &secondary);
    caught_up(&primary, &handle).await;
    assert!(has(&secondary, "logical/u2/b").await);

    primary.filter.set(&["logical/u2/"]);
    eventually("the newly denied keys disappear", || async {
        !has(&secondary, "logical/u2/b").await
    })
    .await;
    primary.put(&["logical/u2/c"]).await;
    primary.put(&["logical/u1/d"]).await;
    caught_up(&primary, &handle).await;

    let status = handle.status();
    assert_eq!(
        status.syncs_completed, 2,
        "bootstrap, then the filter change"
    );
    assert_eq!(status.last_sync_discarded, 1);
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("filter_changed")),
        "{:?}",
        status.last_error
    );
    assert!(has(&secondary, "logical/u1/a").await);
    assert!(has(&secondary, "logical/u1/d").await);
    assert!(!has(&secondary, "logical/u2/c").await);
    assert!(!has(&secondary, "sys/token/id/p").await);
    own_keys_survive(&secondary).await;
    handle.stop().await;
}

/// Reports who connected to a performance service.
struct Who(mpsc::UnboundedSender<ClusterPeer>);

#[async_trait]
impl StreamHandler for Who {
    async fn handle(&self, _stream: BoxStream, peer: ClusterPeer) {
        let _ = self.0.send(peer);
    }
}

/// Whether the port answers a performance Hello from `tls` with a HelloAck.
async fn hello_answered(tls: &ClientTls, addr: &str, id: &str) -> bool {
    hello_acked(tls, addr, id, ALPN_PERFORMANCE).await
}

#[tokio::test]
async fn the_performance_alpns_are_served_only_under_the_performance_identity() {
    // Why: the performance stream and forwarding admit performance secondaries only; without
    // the identity they must get no handshake, and a certificate of another CA (a DR
    // secondary's) must be useless there.
    let primary = PerfPrimary::start(&[]).await;
    let (peers_tx, mut peers) = mpsc::unbounded_channel();
    primary
        .listener
        .register_performance_service(ALPN_PERFORMANCE_FORWARD, Arc::new(Who(peers_tx)))
        .unwrap();
    let tls = primary.client_tls("pr-1");
    let other_ca = ReplicationCa::generate(CLUSTER_ID).unwrap();
    let (dr_cert, dr_key) = other_ca.issue_client_cert("pr-1").unwrap();
    let foreign = ClientTls::new(&primary.ca.ca_cert_pem, &dr_cert, &dr_key).unwrap();

    let served = hello_answered(&tls, &primary.addr, "pr-1").await;
    let foreign_served = hello_answered(&foreign, &primary.addr, "pr-1").await;
    let forwarded = connect_alpn(&tls, &primary.addr, ALPN_PERFORMANCE_FORWARD).await;
    let forward_peer = peers.recv().await.unwrap();
    primary.listener.clear_performance_identity();
    let served_after_clear = hello_answered(&tls, &primary.addr, "pr-1").await;
    let forwarded_after_clear = connect_alpn(&tls, &primary.addr, ALPN_PERFORMANCE_FORWARD).await;

    assert!(served);
    assert!(!foreign_served, "a certificate of another CA is refused");
    assert!(forwarded.is_ok());
    assert_eq!(forward_peer.node_id, "pr-1", "the secondary id of the cert");
    assert!(!served_after_clear);
    assert!(forwarded_after_clear.is_err());
    let echo = Arc::new(Who(mpsc::unbounded_channel().0));
    assert!(
        primary
            .listener
            .register(ALPN_PERFORMANCE_FORWARD, echo.clone())
            .is_err()
    );
    assert!(
        primary
            .listener
            .register_performance_service(ALPN_RAFT, echo.clone())
            .is_err()
    );
    assert!(
        primary
            .listener
            .register_performance_service(ALPN_PERFORMANCE, echo)
            .is_err()
    );
}

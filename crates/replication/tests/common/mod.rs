//! Shared fixtures: a primary (InmemStorage + listener + registry) and secondaries over real
//! mTLS on 127.0.0.1.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use strongroom_replication::{
    ClusterListener, NodeRole, PeerInfo, PrimaryServer, ReplicationCa, ReplicationKind,
    SecondaryConfig, SecondaryHandle, SecondaryHooks, SecondaryRegistry, SecondaryRunner,
};
use strongroom_storage::keyspace::{KeyClass, classify};
use strongroom_storage::{InmemStorage, Op, Storage};
use tokio::sync::watch;

pub const CLUSTER_ID: &str = "8f3c2a10-0000-4000-8000-000000000001";

#[derive(Default)]
pub struct Registry {
    pub cluster_id: Mutex<Option<String>>,
    pub revoked: Mutex<HashSet<String>>,
    pub heartbeats: Mutex<HashMap<String, PeerInfo>>,
    pub addrs: Mutex<Vec<String>>,
    /// `None`: the active node.
    pub role: Mutex<Option<NodeRole>>,
}

impl SecondaryRegistry for Registry {
    fn node_role(&self) -> NodeRole {
        self.role
            .lock()
            .unwrap()
            .clone()
            .unwrap_or(NodeRole::Active)
    }
    fn cluster_id(&self) -> Option<String> {
        self.cluster_id.lock().unwrap().clone()
    }
    fn is_allowed(&self, secondary_id: &str) -> bool {
        !self.revoked.lock().unwrap().contains(secondary_id)
    }
    fn known_primary_cluster_addrs(&self) -> Vec<String> {
        self.addrs.lock().unwrap().clone()
    }
    fn record_heartbeat(&self, secondary_id: &str, info: PeerInfo) {
        self.heartbeats
            .lock()
            .unwrap()
            .insert(secondary_id.to_owned(), info);
    }
}

#[derive(Default)]
pub struct Hooks {
    pub applied: AtomicU64,
    pub addrs: Mutex<Vec<String>>,
}

#[async_trait]
impl SecondaryHooks for Hooks {
    async fn after_apply(&self, _changed: &strongroom_replication::Changed) {
        self.applied.fetch_add(1, Ordering::SeqCst);
    }
    async fn known_addrs_changed(&self, addrs: Vec<String>) {
        *self.addrs.lock().unwrap() = addrs;
    }
}

pub struct Primary {
    pub storage: Arc<InmemStorage>,
    pub ca: ReplicationCa,
    pub addr: String,
    pub registry: Arc<Registry>,
    pub listener: Arc<ClusterListener>,
    _shutdown: watch::Sender<bool>,
}

impl Primary {
    pub async fn start() -> Primary {
        let storage = Arc::new(InmemStorage::new());
        let ca = ReplicationCa::generate(CLUSTER_ID).unwrap();
        Primary::node(storage, ca).await
    }

    /// Another node of the same primary cluster: the same storage (as Raft would give it),
    /// its own listener and registry.
    pub async fn peer(&self) -> Primary {
        let ca = ReplicationCa::from_pem(&self.ca.ca_cert_pem, &self.ca.ca_key_pem).unwrap();
        Primary::node(self.storage.clone(), ca).await
    }

    async fn node(storage: Arc<InmemStorage>, ca: ReplicationCa) -> Primary {
        let registry = Arc::new(Registry::default());
        *registry.cluster_id.lock().unwrap() = Some(CLUSTER_ID.to_owned());
        let listener = Arc::new(ClusterListener::new().unwrap());
        let (server_cert, server_key) = ca.issue_server_cert(&["127.0.0.1".to_owned()]).unwrap();
        listener
            .set_identity(&server_cert, &server_key, &ca.ca_cert_pem)
            .unwrap();
        let primary = Arc::new(PrimaryServer::new(storage.clone(), registry.clone()));
        let (tx, rx) = watch::channel(false);
        let (bound, _task) = listener
            .clone()
            .serve("127.0.0.1:0", primary, rx)
            .await
            .unwrap();
        let addr = bound.to_string();
        *registry.addrs.lock().unwrap() = vec![addr.clone()];
        Primary {
            storage,
            ca,
            addr,
            registry,
            listener,
            _shutdown: tx,
        }
    }

    pub fn secondary_config(&self, id: &str) -> SecondaryConfig {
        secondary_config(&self.ca, &self.addr, id, ReplicationKind::Dr)
    }

    /// Writes `n` single-key batches `logical/<prefix>/<i>` (and a token under sys/token).
    pub async fn write_batches(&self, prefix: &str, n: usize) {
        for i in 0..n {
            self.storage
                .write(vec![
                    Op::Put {
                        key: format!("logical/{prefix}/{i}"),
                        value: format!("ct-{prefix}-{i}").into_bytes(),
                    },
                    Op::Put {
                        key: format!("sys/token/id/{prefix}-{i}"),
                        value: vec![i as u8; 8],
                    },
                ])
                .await
                .unwrap();
        }
    }
}

pub fn start_secondary(
    cfg: SecondaryConfig,
    storage: Arc<InmemStorage>,
    hooks: Arc<Hooks>,
) -> SecondaryHandle {
    SecondaryRunner::start(cfg, storage, hooks).unwrap()
}

/// Every replicated pair (cluster-local bookkeeping such as the WAL excluded).
pub async fn replicated(storage: &InmemStorage) -> Vec<(String, Vec<u8>)> {
    storage
        .export(usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .filter(|(k, _)| classify(k) != KeyClass::ClusterLocal)
        .collect()
}

/// Waits up to 15 s for `cond`.
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Waits until the secondary streams and holds exactly the primary's replicated data.
pub async fn converged(primary: &InmemStorage, secondary: &InmemStorage, handle: &SecondaryHandle) {
    eventually("secondary converges on the primary", || async {
        handle.status().state == "stream-wals"
            && replicated(primary).await == replicated(secondary).await
            && primary.replication_status().last_wal == secondary.replication_status().last_wal
    })
    .await;
    assert_eq!(
        primary.replication_status().merkle_root,
        secondary.replication_status().merkle_root
    );
}

/// A secondary `id` of `kind` with a client certificate from `ca`, dialing `addr`.
pub fn secondary_config(
    ca: &ReplicationCa,
    addr: &str,
    id: &str,
    kind: ReplicationKind,
) -> SecondaryConfig {
    let (cert, key) = ca.issue_client_cert(id).unwrap();
    SecondaryConfig {
        secondary_id: id.to_owned(),
        cluster_id: CLUSTER_ID.to_owned(),
        primary_cluster_addrs: vec![addr.to_owned()],
        ca_pem: ca.ca_cert_pem.clone(),
        client_cert_pem: cert,
        client_key_pem: key,
        api_address: format!("https://{id}.example:8200"),
        cluster_address: format!("{id}.example:8201"),
        kind,
    }
}

/// Whether the port at `addr` answers a Hello from `tls` (as secondary `id`, over `alpn`)
/// with a HelloAck.
pub async fn hello_acked(
    tls: &strongroom_replication::ClientTls,
    addr: &str,
    id: &str,
    alpn: &[u8],
) -> bool {
    use strongroom_replication::wire::{
        PROTOCOL_VERSION, PrimaryMsg, SecondaryMsg, read_frame, write_frame,
    };
    let Ok(mut stream) = strongroom_replication::connect_alpn(tls, addr, alpn).await else {
        return false;
    };
    let hello = SecondaryMsg::Hello {
        secondary_id: id.into(),
        cluster_id: CLUSTER_ID.into(),
        position: strongroom_storage::WalPosition::default(),
        protocol: PROTOCOL_VERSION,
        api_address: String::new(),
        cluster_address: String::new(),
    };
    if write_frame(&mut stream, &hello).await.is_err() {
        return false;
    }
    matches!(
        read_frame::<_, PrimaryMsg>(&mut stream).await,
        Ok(Some(PrimaryMsg::HelloAck { .. }))
    )
}

//! The cluster port: one mTLS listener, several services chosen by ALPN, three trust roots.
//!
//! The port is bound at startup, long before this cluster is a DR or performance primary or a
//! member of a multi-node cluster, and its trust must change at runtime (enable primary,
//! promote, demote; unseal, join, seal) without rebinding. So every identity is swappable and
//! every handshake reads the current ones. The ClientHello's ALPN is read before the server
//! certificate is chosen: DR replication answers with the DR replication identity and
//! verifies clients against the DR replication CA; performance replication and the
//! performance secondaries' forwarding answer with the performance identity and verify
//! against the performance replication CA; Raft and request forwarding answer with the node's
//! cluster identity and verify against the cluster-internal CA. A certificate from one CA is
//! therefore useless for the others' services, and an unknown ALPN, or a service whose
//! identity is not set, gets no handshake at all.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_rustls::LazyConfigAcceptor;

use crate::cluster::{ClusterPeer, NodeCert, StreamHandler};
use crate::error::ReplicationError;
use crate::primary::PrimaryServer;
use crate::tls;
use crate::wire::{ALPN_DR, ALPN_FORWARD, ALPN_PERFORMANCE, ALPN_PERFORMANCE_FORWARD, ALPN_RAFT};

/// Connections served at once (handshaking or streaming).
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// First and largest pause after a failed `accept` (e.g. file descriptors exhausted).
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The cluster-port listener with runtime-swappable identities and per-ALPN services.
pub struct ClusterListener {
    /// The DR replication identity (refuse-all until set).
    config: RwLock<Arc<ServerConfig>>,
    /// The node's cluster identity, for every registered service; `None` refuses them.
    cluster: RwLock<Option<Arc<ServerConfig>>>,
    handlers: RwLock<HashMap<Vec<u8>, Arc<dyn StreamHandler>>>,
    /// The performance replication identity (ALPNs set per connection); `None` refuses the
    /// performance stream and the performance services.
    performance: RwLock<Option<Arc<ServerConfig>>>,
    /// Serves connections negotiating [`ALPN_PERFORMANCE`]; `None` refuses them.
    performance_primary: RwLock<Option<Arc<PrimaryServer>>>,
    /// Services under the performance identity ([`ALPN_PERFORMANCE_FORWARD`]).
    performance_handlers: RwLock<HashMap<Vec<u8>, Arc<dyn StreamHandler>>>,
    max_connections: usize,
}

impl std::fmt::Debug for ClusterListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterListener")
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// What one connection will be served as, decided from its ClientHello.
enum Route {
    Dr(Arc<ServerConfig>),
    Performance(Arc<ServerConfig>, Arc<PrimaryServer>),
    Service {
        alpn: Vec<u8>,
        config: Arc<ServerConfig>,
        handler: Arc<dyn StreamHandler>,
        /// Under the performance identity: the peer is a performance secondary, named by its
        /// replication certificate; else a node of this cluster.
        performance: bool,
    },
}

impl Route {
    fn config(&self) -> Arc<ServerConfig> {
        match self {
            Route::Dr(config) | Route::Performance(config, _) => config.clone(),
            Route::Service { config, .. } => config.clone(),
        }
    }
}

/// `base` offering exactly `alpn`.
fn with_alpn(base: &ServerConfig, alpn: &[u8]) -> Arc<ServerConfig> {
    let mut config = base.clone();
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

fn insert(
    lock: &RwLock<HashMap<Vec<u8>, Arc<dyn StreamHandler>>>,
    alpn: &[u8],
    handler: Arc<dyn StreamHandler>,
) {
    let mut handlers = match lock.write() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    handlers.insert(alpn.to_vec(), handler);
}

fn not_registrable(alpn: &[u8], what: &str) -> ReplicationError {
    ReplicationError::Tls(format!(
        "ALPN {:?} cannot be registered as a {what}",
        String::from_utf8_lossy(alpn)
    ))
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    match lock.read() {
        Ok(guard) => guard.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

fn write<T>(lock: &RwLock<T>, value: T) {
    match lock.write() {
        Ok(mut guard) => *guard = value,
        Err(poisoned) => *poisoned.into_inner() = value,
    }
}

impl ClusterListener {
    /// A listener that refuses every client until an identity is set.
    pub fn new() -> Result<Self, ReplicationError> {
        Self::with_max_connections(DEFAULT_MAX_CONNECTIONS)
    }

    /// Like [`ClusterListener::new`] with a custom connection bound.
    pub fn with_max_connections(max_connections: usize) -> Result<Self, ReplicationError> {
        Ok(ClusterListener {
            config: RwLock::new(Arc::new(tls::refuse_all_config()?)),
            cluster: RwLock::new(None),
            handlers: RwLock::new(HashMap::new()),
            performance: RwLock::new(None),
            performance_primary: RwLock::new(None),
            performance_handlers: RwLock::new(HashMap::new()),
            max_connections: max_connections.max(1),
        })
    }

    /// Serves DR replication as `server_cert_pem`, accepting only client certificates issued
    /// by `client_ca_pem`. Takes effect for the next handshake; established streams continue
    /// until the registry drops them.
    pub fn set_identity(
        &self,
        server_cert_pem: &str,
        server_key_pem: &str,
        client_ca_pem: &str,
    ) -> Result<(), ReplicationError> {
        let config = tls::server_config(server_cert_pem, server_key_pem, client_ca_pem)?;
        write(&self.config, Arc::new(config));
        Ok(())
    }

    /// Goes back to refusing every DR client (demotion, replication disabled).
    pub fn clear_identity(&self) -> Result<(), ReplicationError> {
        let config = tls::refuse_all_config()?;
        write(&self.config, Arc::new(config));
        Ok(())
    }

    /// Serves the registered cluster services (Raft, forwarding) as `node`, accepting only
    /// client certificates from its cluster CA. Takes effect for the next handshake.
    pub fn set_cluster_identity(&self, node: &NodeCert) -> Result<(), ReplicationError> {
        let config = tls::server_config_for(
            &node.cert_pem,
            &node.key_pem,
            &node.ca_cert_pem,
            "cluster CA",
            &[],
        )?;
        write(&self.cluster, Some(Arc::new(config)));
        Ok(())
    }

    /// Refuses every cluster service again (seal, removal from the cluster). Established
    /// streams are left to their handlers.
    pub fn clear_cluster_identity(&self) {
        write(&self.cluster, None);
    }

    /// Serves performance replication (and the performance services) as `server_cert_pem`,
    /// accepting only client certificates issued by `client_ca_pem` (the performance
    /// replication CA). Takes effect for the next handshake; established streams continue
    /// until the registry drops them.
    pub fn set_performance_identity(
        &self,
        server_cert_pem: &str,
        server_key_pem: &str,
        client_ca_pem: &str,
    ) -> Result<(), ReplicationError> {
        let config = tls::server_config_for(
            server_cert_pem,
            server_key_pem,
            client_ca_pem,
            "performance replication CA",
            &[],
        )?;
        write(&self.performance, Some(Arc::new(config)));
        Ok(())
    }

    /// Refuses performance replication and the performance services again (demotion,
    /// performance replication disabled).
    pub fn clear_performance_identity(&self) {
        write(&self.performance, None);
    }

    /// Serves connections negotiating [`ALPN_PERFORMANCE`] with `primary` (built with
    /// [`PrimaryServer::new_performance`]), once the performance identity is set.
    pub fn set_performance_primary(&self, primary: Arc<PrimaryServer>) {
        write(&self.performance_primary, Some(primary));
    }

    /// Serves streams negotiating `alpn` with `handler`, under the cluster identity. Replaces
    /// an earlier handler of the same ALPN. The replication ALPNs (and services of the
    /// performance identity) are not cluster services and are refused here.
    pub fn register(
        &self,
        alpn: &[u8],
        handler: Arc<dyn StreamHandler>,
    ) -> Result<(), ReplicationError> {
        if alpn.is_empty()
            || [ALPN_DR, ALPN_PERFORMANCE, ALPN_PERFORMANCE_FORWARD].contains(&alpn)
            || read(&self.performance_handlers).contains_key(alpn)
        {
            return Err(not_registrable(alpn, "cluster service"));
        }
        insert(&self.handlers, alpn, handler);
        Ok(())
    }

    /// Serves streams negotiating `alpn` (the performance forwarding, [`ALPN_PERFORMANCE_FORWARD`])
    /// with `handler`, under the performance identity: clients are verified against the
    /// performance replication CA and the handler's [`ClusterPeer::node_id`] is the secondary
    /// id of their certificate. Replaces an earlier handler of the same ALPN; the replication
    /// streams' and the cluster services' ALPNs are refused.
    pub fn register_performance_service(
        &self,
        alpn: &[u8],
        handler: Arc<dyn StreamHandler>,
    ) -> Result<(), ReplicationError> {
        if alpn.is_empty()
            || [ALPN_DR, ALPN_PERFORMANCE, ALPN_RAFT, ALPN_FORWARD].contains(&alpn)
            || read(&self.handlers).contains_key(alpn)
        {
            return Err(not_registrable(alpn, "performance service"));
        }
        insert(&self.performance_handlers, alpn, handler);
        Ok(())
    }

    /// The first ALPN the client offers that this port serves right now.
    fn route<'a>(&self, offered: impl Iterator<Item = &'a [u8]>) -> Option<Route> {
        let cluster = read(&self.cluster);
        let handlers = read(&self.handlers);
        let performance = read(&self.performance);
        let performance_handlers = read(&self.performance_handlers);
        for alpn in offered {
            if alpn == ALPN_DR {
                return Some(Route::Dr(read(&self.config)));
            }
            if let Some(base) = &performance {
                if alpn == ALPN_PERFORMANCE
                    && let Some(primary) = read(&self.performance_primary)
                {
                    return Some(Route::Performance(with_alpn(base, alpn), primary));
                }
                if let Some(handler) = performance_handlers.get(alpn) {
                    return Some(Route::Service {
                        alpn: alpn.to_vec(),
                        config: with_alpn(base, alpn),
                        handler: handler.clone(),
                        performance: true,
                    });
                }
            }
            if let (Some(base), Some(handler)) = (&cluster, handlers.get(alpn)) {
                return Some(Route::Service {
                    alpn: alpn.to_vec(),
                    config: with_alpn(base, alpn),
                    handler: handler.clone(),
                    performance: false,
                });
            }
        }
        None
    }

    /// Binds `addr` and serves DR replication to `primary`, and the registered cluster
    /// services, until `shutdown` turns true (or its sender is dropped). Returns the bound
    /// address (useful with port 0) and the task.
    pub async fn serve(
        self: Arc<Self>,
        addr: &str,
        primary: Arc<PrimaryServer>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(SocketAddr, JoinHandle<()>), ReplicationError> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            ReplicationError::io(
                format!(
                    "binding the cluster port {addr} (set cluster_address in the listener stanza)"
                ),
                e,
            )
        })?;
        let local = listener
            .local_addr()
            .map_err(|e| ReplicationError::io("reading the cluster port address", e))?;
        let task = tokio::spawn(self.accept_loop(listener, primary, shutdown));
        Ok((local, task))
    }

    async fn accept_loop(
        self: Arc<Self>,
        listener: TcpListener,
        primary: Arc<PrimaryServer>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let slots = Arc::new(Semaphore::new(self.max_connections));
        let mut backoff = ACCEPT_BACKOFF_MIN;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let accepted = tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() { break; }
                    continue;
                }
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(a) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    a
                }
                Err(e) => {
                    tracing::warn!(error = %e, ?backoff, "cluster port accept failed; backing off");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    continue;
                }
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "cluster port connection limit reached; refusing");
                continue;
            };
            let this = self.clone();
            let primary = primary.clone();
            let conn_shutdown = shutdown.clone();
            tokio::spawn(async move {
                let _permit = permit;
                this.serve_connection(stream, peer, primary, conn_shutdown)
                    .await;
            });
        }
    }

    /// Handshakes one connection with the identity its ALPN calls for, then serves it.
    async fn serve_connection(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        primary: Arc<PrimaryServer>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let _ = stream.set_nodelay(true);
        let handshake = async {
            let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream)
                .await
                .map_err(|e| format!("reading the ClientHello: {e}"))?;
            let offered: Vec<Vec<u8>> = start
                .client_hello()
                .alpn()
                .map(|alpns| alpns.map(<[u8]>::to_vec).collect())
                .unwrap_or_default();
            let Some(route) = self.route(offered.iter().map(Vec::as_slice)) else {
                return Err("no served ALPN offered (or its identity is not set)".to_owned());
            };
            let config = route.config();
            let tls = start
                .into_stream(config)
                .await
                .map_err(|e| format!("TLS handshake: {e}"))?;
            Ok((route, tls))
        };
        let (route, tls) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Ok(Ok(done)) => done,
            Ok(Err(reason)) => {
                tracing::debug!(%peer, %reason, "cluster connection refused");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "cluster TLS handshake timed out");
                return;
            }
        };
        let conn = tls.get_ref().1;
        let first_cert = conn.peer_certificates().and_then(|certs| certs.first());
        match route {
            Route::Dr(_) => {
                if conn.alpn_protocol() != Some(ALPN_DR) {
                    tracing::debug!(%peer, "DR connection without the DR ALPN; closing");
                    return;
                }
                let Some(peer_id) = first_cert.and_then(tls::peer_id) else {
                    tracing::warn!(%peer, "verified client certificate names no secondary id; closing");
                    return;
                };
                primary.serve_connection(tls, peer_id, shutdown).await;
            }
            Route::Performance(_, performance_primary) => {
                if conn.alpn_protocol() != Some(ALPN_PERFORMANCE) {
                    tracing::debug!(%peer, "performance connection without its ALPN; closing");
                    return;
                }
                let Some(peer_id) = first_cert.and_then(tls::peer_id) else {
                    tracing::warn!(%peer, "verified client certificate names no performance secondary id; closing");
                    return;
                };
                performance_primary
                    .serve_connection(tls, peer_id, shutdown)
                    .await;
            }
            Route::Service {
                alpn,
                handler,
                performance,
                ..
            } => {
                if conn.alpn_protocol() != Some(alpn.as_slice()) {
                    tracing::debug!(%peer, "cluster connection without its ALPN; closing");
                    return;
                }
                let named = if performance {
                    first_cert.and_then(tls::peer_id)
                } else {
                    first_cert.and_then(tls::common_name)
                };
                let Some(node_id) = named else {
                    tracing::warn!(%peer, performance, "verified certificate names no peer id; closing");
                    return;
                };
                let info = ClusterPeer {
                    node_id,
                    remote_addr: peer,
                };
                tokio::select! {
                    () = handler.handle(Box::new(tls), info) => {}
                    _ = shutdown.wait_for(|stop| *stop) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::ReplicationCa;
    use crate::primary::SecondaryRegistry;
    use crate::wire::{PROTOCOL_VERSION, PrimaryMsg, SecondaryMsg, read_frame, write_frame};
    use rustls::pki_types::ServerName;
    use strongroom_storage::{InmemStorage, WalPosition};

    struct Open;
    impl SecondaryRegistry for Open {
        fn cluster_id(&self) -> Option<String> {
            Some("c1".into())
        }
        fn is_allowed(&self, _: &str) -> bool {
            true
        }
        fn known_primary_cluster_addrs(&self) -> Vec<String> {
            Vec::new()
        }
        fn record_heartbeat(&self, _: &str, _: crate::PeerInfo) {}
    }

    #[tokio::test]
    async fn only_the_dr_alpn_is_served() {
        // Why: the cluster port multiplexes by ALPN; an unknown protocol must get nothing.
        let ca = ReplicationCa::generate("c1").unwrap();
        let (cert, key) = ca.issue_server_cert(&["127.0.0.1".into()]).unwrap();
        let (ccert, ckey) = ca.issue_client_cert("dr-1").unwrap();
        let listener = Arc::new(ClusterListener::with_max_connections(4).unwrap());
        listener.set_identity(&cert, &key, &ca.ca_cert_pem).unwrap();
        let primary = Arc::new(PrimaryServer::new(
            Arc::new(InmemStorage::new()),
            Arc::new(Open),
        ));
        let (_tx, rx) = watch::channel(false);
        let (addr, _task) = listener.serve("127.0.0.1:0", primary, rx).await.unwrap();

        for (alpn, served) in [(b"h2".to_vec(), false), (ALPN_DR.to_vec(), true)] {
            let mut config = tls::client_config(&ca.ca_cert_pem, &ccert, &ckey).unwrap();
            config.alpn_protocols = vec![alpn];
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = ServerName::try_from("127.0.0.1").unwrap();
            let result = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await;
            let answered = match result {
                Err(_) => false,
                Ok(mut stream) => {
                    let hello = SecondaryMsg::Hello {
                        secondary_id: "dr-1".into(),
                        cluster_id: "c1".into(),
                        position: WalPosition::default(),
                        protocol: PROTOCOL_VERSION,
                        api_address: String::new(),
                        cluster_address: String::new(),
                    };
                    let _ = write_frame(&mut stream, &hello).await;
                    matches!(
                        read_frame::<_, PrimaryMsg>(&mut stream).await,
                        Ok(Some(PrimaryMsg::HelloAck { .. }))
                    )
                }
            };
            assert_eq!(answered, served);
        }
    }
}

//! The cluster port: one mTLS listener whose identity follows the replication role.
//!
//! The port is bound at startup, long before this cluster is a DR primary, and its trust must
//! change at runtime (enable primary, promote, demote) without rebinding. So the TLS config is
//! swappable and every handshake reads the current one. Until an identity is set, every
//! client is refused; after the handshake only the DR ALPN is served.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::error::ReplicationError;
use crate::primary::PrimaryServer;
use crate::tls;
use crate::wire::ALPN_DR;

/// Connections served at once (handshaking or streaming).
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// First and largest pause after a failed `accept` (e.g. file descriptors exhausted).
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The cluster-port listener with a runtime-swappable identity.
pub struct ClusterListener {
    config: RwLock<Arc<ServerConfig>>,
    max_connections: usize,
}

impl std::fmt::Debug for ClusterListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterListener")
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl ClusterListener {
    /// A listener that refuses every client until [`ClusterListener::set_identity`].
    pub fn new() -> Result<Self, ReplicationError> {
        Self::with_max_connections(DEFAULT_MAX_CONNECTIONS)
    }

    /// Like [`ClusterListener::new`] with a custom connection bound.
    pub fn with_max_connections(max_connections: usize) -> Result<Self, ReplicationError> {
        Ok(ClusterListener {
            config: RwLock::new(Arc::new(tls::refuse_all_config()?)),
            max_connections: max_connections.max(1),
        })
    }

    /// Serves as `server_cert_pem`, accepting only client certificates issued by
    /// `client_ca_pem`. Takes effect for the next handshake; established streams continue
    /// until the registry drops them.
    pub fn set_identity(
        &self,
        server_cert_pem: &str,
        server_key_pem: &str,
        client_ca_pem: &str,
    ) -> Result<(), ReplicationError> {
        let config = tls::server_config(server_cert_pem, server_key_pem, client_ca_pem)?;
        self.swap(Arc::new(config));
        Ok(())
    }

    /// Goes back to refusing every client (demotion, replication disabled).
    pub fn clear_identity(&self) -> Result<(), ReplicationError> {
        let config = tls::refuse_all_config()?;
        self.swap(Arc::new(config));
        Ok(())
    }

    fn swap(&self, config: Arc<ServerConfig>) {
        match self.config.write() {
            Ok(mut guard) => *guard = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
    }

    fn current(&self) -> Arc<ServerConfig> {
        match self.config.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Binds `addr` and serves DR replication to `primary` until `shutdown` turns true (or
    /// its sender is dropped). Returns the bound address (useful with port 0) and the task.
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
            let acceptor = TlsAcceptor::from(self.current());
            let primary = primary.clone();
            let conn_shutdown = shutdown.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let _ = stream.set_nodelay(true);
                let tls =
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "cluster TLS handshake refused");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "cluster TLS handshake timed out");
                            return;
                        }
                    };
                let conn = tls.get_ref().1;
                if conn.alpn_protocol() != Some(ALPN_DR) {
                    tracing::debug!(%peer, "cluster connection without a supported ALPN; closing");
                    return;
                }
                let Some(peer_id) = conn
                    .peer_certificates()
                    .and_then(|certs| certs.first())
                    .and_then(tls::peer_id)
                else {
                    tracing::warn!(%peer, "verified client certificate names no secondary id; closing");
                    return;
                };
                primary.serve_connection(tls, peer_id, conn_shutdown).await;
            });
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

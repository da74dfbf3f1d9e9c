//! Dialing another node of this cluster: the client end of Raft and forwarding streams.
//!
//! A node learns its cluster identity only when it is unsealed (bootstrapped or joined), and
//! loses it when sealed, so the identity is swappable and dialing without one fails at once
//! with an error that says why: Raft treats that as an unreachable peer and retries, and the
//! forwarder falls back to a redirect. The server name verified is the fixed
//! [`CLUSTER_SERVER_NAME`], not the dialled address, because membership holds addresses that
//! need not match any name in a certificate.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use strongroom_storage::{BoxStream, Dialer};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::pki::{CLUSTER_SERVER_NAME, NodeCert};
use crate::error::ReplicationError;
use crate::tls;
use crate::wire::ALPN_RAFT;

/// How long one dial (TCP connect plus TLS handshake) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The error text of a dial made before this node holds a cluster identity.
pub const NO_IDENTITY: &str = "this node holds no cluster identity yet (sealed or not joined)";

/// Opens mutually authenticated streams to other nodes' cluster ports.
pub struct ClusterDialer {
    /// The client config without ALPN; `None` until [`ClusterDialer::set_identity`].
    config: RwLock<Option<Arc<ClientConfig>>>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for ClusterDialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterDialer")
            .field("has_identity", &self.current().is_some())
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl Default for ClusterDialer {
    fn default() -> Self {
        Self::new()
    }
}

impl ClusterDialer {
    /// A dialer with no identity: every dial fails until [`ClusterDialer::set_identity`].
    pub fn new() -> Self {
        Self::with_connect_timeout(CONNECT_TIMEOUT)
    }

    /// Like [`ClusterDialer::new`] with a custom bound on connect plus handshake.
    pub fn with_connect_timeout(connect_timeout: Duration) -> Self {
        ClusterDialer {
            config: RwLock::new(None),
            connect_timeout,
        }
    }

    /// Presents `node` from the next dial on, trusting only its CA. Established streams keep
    /// the identity they were opened with.
    pub fn set_identity(&self, node: &NodeCert) -> Result<(), ReplicationError> {
        let config = tls::client_config_for(
            &node.ca_cert_pem,
            "cluster CA",
            &node.cert_pem,
            &node.key_pem,
            ALPN_RAFT,
        )?;
        self.swap(Some(Arc::new(config)));
        Ok(())
    }

    /// Forgets the identity (seal, removal from the cluster): dials fail again.
    pub fn clear_identity(&self) {
        self.swap(None);
    }

    /// Whether an identity is set.
    pub fn has_identity(&self) -> bool {
        self.current().is_some()
    }

    fn swap(&self, config: Option<Arc<ClientConfig>>) {
        match self.config.write() {
            Ok(mut guard) => *guard = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
    }

    fn current(&self) -> Option<Arc<ClientConfig>> {
        match self.config.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Opens a stream to `cluster_addr` (`host:port` or `https://host:port`) for the service
    /// `alpn`; fails unless the peer negotiates exactly that ALPN.
    pub async fn dial_alpn(&self, cluster_addr: &str, alpn: &[u8]) -> std::io::Result<BoxStream> {
        let base = self
            .current()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotConnected, NO_IDENTITY))?;
        let mut config = (*base).clone();
        config.alpn_protocols = vec![alpn.to_vec()];
        let target = socket_target(cluster_addr)?;
        let name = ServerName::try_from(CLUSTER_SERVER_NAME)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let connector = TlsConnector::from(Arc::new(config));
        let dial = async {
            let tcp = TcpStream::connect(&target).await?;
            tcp.set_nodelay(true)?;
            connector.connect(name, tcp).await
        };
        let stream = tokio::time::timeout(self.connect_timeout, dial)
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "connecting to cluster peer {target} took longer than {:?}",
                        self.connect_timeout
                    ),
                )
            })?
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("connecting to cluster peer {target}: {e}"),
                )
            })?;
        if stream.get_ref().1.alpn_protocol() != Some(alpn) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                format!(
                    "cluster peer {target} did not accept the {} protocol; is it a strongroom \
                     cluster port of this cluster?",
                    String::from_utf8_lossy(alpn)
                ),
            ));
        }
        Ok(Box::new(stream))
    }
}

#[async_trait]
impl Dialer for ClusterDialer {
    async fn dial(&self, cluster_addr: &str) -> std::io::Result<BoxStream> {
        self.dial_alpn(cluster_addr, ALPN_RAFT).await
    }
}

/// `host:port` from `host:port` or `https://host:port`.
fn socket_target(addr: &str) -> std::io::Result<String> {
    crate::client::socket_target(addr).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("invalid cluster address {addr:?}: expected host:port or https://host:port"),
        )
    })
}

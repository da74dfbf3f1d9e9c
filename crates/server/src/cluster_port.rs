//! The cluster port (8201 by default): mutual TLS between nodes and clusters.
//!
//! Binding it from day one keeps the address plan of a single node identical to that of a
//! cluster, so growing into multi-node Raft or adding replication changes no configuration.
//! The port already enforces mutual TLS against this node's cluster CA; it carries no RPC
//! service yet (Raft transport and replication streams arrive with those milestones), so
//! authenticated connections are closed after the handshake.

use std::net::SocketAddr;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;

/// Connections handled at once on the cluster port.
const MAX_CONNECTIONS: usize = 256;

/// Binds the cluster listener and serves it until `shutdown` resolves.
pub async fn start(
    addr: &str,
    node_name: &str,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let config = Arc::new(tls_config(node_name)?);
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot bind the cluster port {addr}: {e} (set cluster_address in the listener stanza)"
        )
    })?;
    let local = listener.local_addr()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    // Bounded: at most this many handshakes in flight; an accept error backs off instead of
    // spinning (e.g. when file descriptors run out).
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!(error = %e, "cluster port accept failed; backing off");
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, "cluster port connection limit reached; refusing");
                        continue;
                    };
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        let handshake = tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(stream)).await;
                        match handshake {
                            Ok(Ok(_tls)) => tracing::debug!(%peer, "cluster connection authenticated; no cluster service is enabled yet, closing"),
                            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "cluster TLS handshake refused"),
                            Err(_) => tracing::debug!(%peer, "cluster TLS handshake timed out"),
                        }
                    });
                }
            }
        }
    });
    Ok((local, task))
}

/// A server config requiring client certificates from this node's cluster CA.
fn tls_config(node_name: &str) -> anyhow::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("strongroom cluster CA {node_name}"),
    );
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let node_key = KeyPair::generate()?;
    let node_params = CertificateParams::new(vec![node_name.to_owned()])?;
    let node_cert = node_params.signed_by(&node_key, &ca)?;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone())?;
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(node_key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![CertificateDer::from(node_cert.der().to_vec())], key)?;
    config.alpn_protocols = vec![b"strongroom-cluster".to_vec()];
    Ok(config)
}

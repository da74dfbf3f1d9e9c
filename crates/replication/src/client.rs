//! Dialing a primary's cluster port as a secondary: the replication streams, and (with the
//! same identity) the performance secondary's forwarding of writes.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::ReplicationError;
use crate::pki::host_of;
use crate::wire::ALPN_DR;

/// How long one dial (TCP plus TLS handshake) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A secondary's TLS client identity, built once from its activation bundle.
#[derive(Clone)]
pub struct ClientTls(Arc<rustls::ClientConfig>);

impl ClientTls {
    /// Trust `ca_pem` only; present the given client certificate.
    pub fn new(
        ca_pem: &str,
        client_cert_pem: &str,
        client_key_pem: &str,
    ) -> Result<Self, ReplicationError> {
        Ok(ClientTls(Arc::new(crate::tls::client_config(
            ca_pem,
            client_cert_pem,
            client_key_pem,
        )?)))
    }
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientTls(<client identity>)")
    }
}

/// `host:port` from `host:port` or `https://host:port`.
pub(crate) fn socket_target(addr: &str) -> Result<String, ReplicationError> {
    let rest = addr
        .strip_prefix("https://")
        .or_else(|| addr.strip_prefix("http://"))
        .unwrap_or(addr);
    let rest = rest.trim_end_matches('/');
    let has_port = match rest.rsplit_once(':') {
        Some((host, port)) => {
            !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    };
    if rest.is_empty() || !has_port {
        return Err(ReplicationError::Address(addr.to_owned()));
    }
    Ok(rest.to_owned())
}

/// Opens an mTLS connection to a primary cluster address, negotiating the DR ALPN.
pub async fn connect(
    tls: &ClientTls,
    addr: &str,
) -> Result<TlsStream<TcpStream>, ReplicationError> {
    connect_alpn(tls, addr, ALPN_DR).await
}

/// Opens an mTLS connection to a primary cluster address with `tls`'s identity, negotiating
/// `alpn` (a replication stream, or the performance forwarding of writes); fails unless the
/// server selected exactly that ALPN.
pub async fn connect_alpn(
    tls: &ClientTls,
    addr: &str,
    alpn: &[u8],
) -> Result<TlsStream<TcpStream>, ReplicationError> {
    let target = socket_target(addr)?;
    let host = host_of(addr).to_owned();
    let name =
        ServerName::try_from(host).map_err(|_| ReplicationError::Address(addr.to_owned()))?;
    let config = if matches!(tls.0.alpn_protocols.as_slice(), [only] if only.as_slice() == alpn) {
        tls.0.clone()
    } else {
        let mut config = (*tls.0).clone();
        config.alpn_protocols = vec![alpn.to_vec()];
        Arc::new(config)
    };
    let dial = async {
        let tcp = TcpStream::connect(&target)
            .await
            .map_err(|e| ReplicationError::io(format!("connecting to {target}"), e))?;
        let _ = tcp.set_nodelay(true);
        TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| ReplicationError::io(format!("TLS handshake with {target}"), e))
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, dial)
        .await
        .map_err(|_| ReplicationError::Timeout(format!("connecting to {target}")))??;
    if stream.get_ref().1.alpn_protocol() != Some(alpn) {
        return Err(ReplicationError::Protocol(format!(
            "{target} did not accept the {} protocol; is it a strongroom cluster port?",
            String::from_utf8_lossy(alpn)
        )));
    }
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_need_a_port() {
        // Why: a cluster address without a port would silently dial the wrong service.
        assert_eq!(
            socket_target("https://10.0.0.1:8201").unwrap(),
            "10.0.0.1:8201"
        );
        assert_eq!(socket_target("[::1]:8201").unwrap(), "[::1]:8201");
        assert!(socket_target("10.0.0.1").is_err());
        assert!(socket_target("https://").is_err());
    }
}

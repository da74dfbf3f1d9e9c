//! rustls configurations of both ends of the replication link (ring provider, TLS 1.3 only).
//!
//! Kept apart from the listener and the runner so the trust rules live in one place: the
//! server trusts only the replication CA for client certificates, the client trusts only the
//! same CA for the server certificate, and both insist on the DR ALPN.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::error::ReplicationError;
use crate::wire::ALPN_DR;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(what: &str, e: impl std::fmt::Display) -> ReplicationError {
    ReplicationError::Tls(format!("{what}: {e}"))
}

fn certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, ReplicationError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(&format!("cannot parse the {what} PEM"), e))?;
    if certs.is_empty() {
        return Err(ReplicationError::Tls(format!(
            "the {what} PEM holds no certificate"
        )));
    }
    Ok(certs)
}

fn key(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>, ReplicationError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| tls_err(&format!("cannot parse the {what} private key PEM"), e))
}

pub(crate) fn roots(ca_pem: &str, what: &str) -> Result<RootCertStore, ReplicationError> {
    let mut roots = RootCertStore::empty();
    for cert in certs(ca_pem, what)? {
        roots
            .add(cert)
            .map_err(|e| tls_err(&format!("the {what} certificate is not usable"), e))?;
    }
    Ok(roots)
}

/// The DR server config for a given identity: client certificates required and verified
/// against `client_ca_pem` (the replication CA), only the DR ALPN offered.
pub(crate) fn server_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: &str,
) -> Result<ServerConfig, ReplicationError> {
    server_config_for(
        cert_pem,
        key_pem,
        client_ca_pem,
        "replication CA",
        &[ALPN_DR],
    )
}

/// A cluster-port server config: TLS 1.3, client certificates required and verified against
/// `client_ca_pem`, exactly the ALPNs in `alpns` offered.
pub(crate) fn server_config_for(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: &str,
    ca_label: &str,
    alpns: &[&[u8]],
) -> Result<ServerConfig, ReplicationError> {
    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots(client_ca_pem, ca_label)?),
        provider.clone(),
    )
    .build()
    .map_err(|e| tls_err("cannot build the client certificate verifier", e))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err("TLS 1.3 is unavailable", e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certs(cert_pem, "server certificate")?,
            key(key_pem, "server")?,
        )
        .map_err(|e| tls_err("the server certificate does not match its key", e))?;
    config.alpn_protocols = alpns.iter().map(|a| a.to_vec()).collect();
    Ok(config)
}

/// A config that completes no client handshake: a throwaway server identity, and a client CA
/// whose private key was discarded at birth, so no client certificate can ever verify.
pub(crate) fn refuse_all_config() -> Result<ServerConfig, ReplicationError> {
    let throwaway = |cn: &str, ca: bool| -> Result<(String, String), ReplicationError> {
        let mut params = CertificateParams::new(vec!["strongroom-unconfigured".to_owned()])
            .map_err(|e| ReplicationError::pki("preparing a throwaway certificate", e))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        if ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        }
        let key = KeyPair::generate()
            .map_err(|e| ReplicationError::pki("generating a throwaway key", e))?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| ReplicationError::pki("signing a throwaway certificate", e))?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    let (server_cert, server_key) = throwaway("strongroom unconfigured cluster port", false)?;
    let (dead_ca, _discarded_key) = throwaway("strongroom refuse-all CA", true)?;
    server_config(&server_cert, &server_key, &dead_ca)
}

/// The secondary's client config: trusts only the replication CA, presents its client
/// certificate, offers only the DR ALPN.
pub(crate) fn client_config(
    ca_pem: &str,
    client_cert_pem: &str,
    client_key_pem: &str,
) -> Result<ClientConfig, ReplicationError> {
    client_config_for(
        ca_pem,
        "replication CA",
        client_cert_pem,
        client_key_pem,
        ALPN_DR,
    )
}

/// A TLS 1.3 client config trusting only `ca_pem`, presenting the given certificate and
/// offering exactly `alpn`.
pub(crate) fn client_config_for(
    ca_pem: &str,
    ca_label: &str,
    client_cert_pem: &str,
    client_key_pem: &str,
    alpn: &[u8],
) -> Result<ClientConfig, ReplicationError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err("TLS 1.3 is unavailable", e))?
        .with_root_certificates(roots(ca_pem, ca_label)?)
        .with_client_auth_cert(
            certs(client_cert_pem, "client certificate")?,
            key(client_key_pem, "client")?,
        )
        .map_err(|e| tls_err("the client certificate does not match its key", e))?;
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

/// The common name of a certificate, if it has one in a readable form.
pub(crate) fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
}

/// The secondary id named by a verified client certificate: its first DNS SAN, else its CN.
pub(crate) fn peer_id(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                return Some((*dns).to_owned());
            }
        }
    }
    parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
}

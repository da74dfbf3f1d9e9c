//! The rustls client configuration behind every HTTPS request.
//!
//! Built by hand (rather than by reqwest) so the ring provider is used explicitly, CA bundles and
//! client certificates come from Vault's variables, and the two escape hatches Vault offers —
//! `VAULT_SKIP_VERIFY` and `VAULT_TLS_SERVER_NAME` — behave the same way here.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::client::ClientError;
use crate::config::Config;

/// System CA bundles tried, in order, when no CA is configured.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Builds the TLS configuration for `config`.
pub fn client_config(config: &Config) -> Result<ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| ClientError::Config(format!("TLS setup failed: {err}")))?;

    let verifier: Arc<dyn ServerCertVerifier> = if config.skip_verify {
        Arc::new(AcceptAnyServerCert {
            algorithms: provider.signature_verification_algorithms,
        })
    } else {
        let roots = Arc::new(load_roots(config)?);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|err| ClientError::Config(format!("TLS setup failed: {err}")))?;
        match &config.tls_server_name {
            Some(name) => {
                let name = ServerName::try_from(name.clone()).map_err(|err| {
                    ClientError::Config(format!("Invalid TLS server name {name:?}: {err}"))
                })?;
                Arc::new(OverrideServerName {
                    inner: webpki,
                    name,
                })
            }
            None => webpki,
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);

    let mut tls = match (&config.client_cert, &config.client_key) {
        (Some(cert), Some(key)) => {
            let chain = load_certs(cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|err| {
                ClientError::Config(format!("Error loading client key {}: {err}", key.display()))
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|err| {
                ClientError::Config(format!("Error using the client certificate: {err}"))
            })?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(ClientError::Config(
                "Both a client certificate and a client key are needed (VAULT_CLIENT_CERT and VAULT_CLIENT_KEY)"
                    .to_string(),
            ));
        }
    };
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}

/// A configuration that fails every handshake: for plain-HTTP clients that must never speak TLS
/// without verification.
pub fn refuse_all_config() -> Result<ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(RefuseAllServerCerts {
        algorithms: provider.signature_verification_algorithms,
    });
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| ClientError::Config(format!("TLS setup failed: {err}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// Trust anchors: `VAULT_CACERT` beats `VAULT_CAPATH`; otherwise the system bundle.
fn load_roots(config: &Config) -> Result<RootCertStore, ClientError> {
    let mut roots = RootCertStore::empty();
    if let Some(file) = &config.ca_cert {
        add_all(&mut roots, load_certs(file)?, file)?;
    } else if let Some(dir) = &config.ca_path {
        let entries = fs::read_dir(dir).map_err(|err| {
            ClientError::Config(format!(
                "Error reading CA directory {}: {err}",
                dir.display()
            ))
        })?;
        for entry in entries {
            let path = entry
                .map_err(|err| {
                    ClientError::Config(format!(
                        "Error reading CA directory {}: {err}",
                        dir.display()
                    ))
                })?
                .path();
            if path.is_file() {
                // Non-PEM files in a CA directory are skipped, as openssl's c_rehash layout has them.
                if let Ok(certs) = load_certs(&path) {
                    add_all(&mut roots, certs, &path)?;
                }
            }
        }
    } else if let Some(certs) = SYSTEM_BUNDLES
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .and_then(|bundle| load_certs(bundle).ok())
    {
        // System bundles may hold certificates webpki rejects; keep the usable ones.
        let _ = roots.add_parsable_certificates(certs);
    }
    if roots.is_empty() {
        return Err(ClientError::Config(
            "No CA certificates found to verify the server: set VAULT_CACERT or -ca-cert \
             (or VAULT_SKIP_VERIFY for testing only)"
                .to_string(),
        ));
    }
    Ok(roots)
}

fn add_all(
    roots: &mut RootCertStore,
    certs: Vec<CertificateDer<'static>>,
    source: &Path,
) -> Result<(), ClientError> {
    for cert in certs {
        roots.add(cert).map_err(|err| {
            ClientError::Config(format!(
                "Invalid CA certificate in {}: {err}",
                source.display()
            ))
        })?;
    }
    Ok(())
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let fail = |err: rustls_pki_types::pem::Error| {
        ClientError::Config(format!(
            "Error loading certificates from {}: {err}",
            path.display()
        ))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(fail)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?;
    if certs.is_empty() {
        return Err(ClientError::Config(format!(
            "No PEM certificates found in {}",
            path.display()
        )));
    }
    Ok(certs)
}

/// `-tls-skip-verify`: trusts any certificate chain and name, but still checks that the server
/// holds the key of the certificate it presented.
#[derive(Debug)]
struct AcceptAnyServerCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `VAULT_TLS_SERVER_NAME`: full verification, but against the configured name instead of the
/// host in the address (for connecting by IP to a server whose certificate names a host).
#[derive(Debug)]
struct OverrideServerName {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for OverrideServerName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Rejects every certificate (see [`refuse_all_config`]).
#[derive(Debug)]
struct RefuseAllServerCerts {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for RefuseAllServerCerts {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Err(rustls::Error::General(
            "no CA certificates are configured: set VAULT_CACERT".to_string(),
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

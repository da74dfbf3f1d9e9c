//! Shared set-up of the listener tests: CAs and leaves, HTTPS clients, a running listener.

#![allow(dead_code)] // each test binary uses its own subset

pub mod v1_cert;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::RootCertStore;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use strongroom_core::{Core, CoreConfig};
use strongroom_http::{ListenerOptions, ServerHandle, TlsOptions, serve};
use strongroom_storage::InmemStorage;
use tokio::sync::oneshot;

/// A certificate and its private key, both PEM.
pub type Pair = (String, String);

pub struct Ca {
    pub issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA's key again, PEM, to sign certificates rcgen cannot build (X.509 v1).
    pub key_pem: String,
}

impl Ca {
    pub fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let key_pem = key.serialize_pem();
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).unwrap(),
            key_pem,
        }
    }

    /// A v3 leaf for 127.0.0.1.
    pub fn leaf(&self) -> Pair {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// An X.509 v1 leaf (no extensions) signed by this CA, valid over `validity` (UTCTime).
    pub fn v1_leaf(&self, validity: (&str, &str)) -> Pair {
        let key = KeyPair::generate().unwrap();
        let ca_key = KeyPair::from_pem(&self.key_pem).unwrap();
        let der = v1_cert::build(
            "v1 client",
            &key,
            Some((v1_cert::subject_of(self.issuer.der()), &ca_key)),
            validity,
        );
        (v1_cert::pem(&der), key.serialize_pem())
    }

    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        roots
    }
}

/// A self-signed X.509 v1 certificate nobody knows, valid now.
pub fn unknown_v1_pair() -> Pair {
    let key = KeyPair::generate().unwrap();
    let der = v1_cert::build("stranger", &key, None, v1_cert::VALID_NOW);
    (v1_cert::pem(&der), key.serialize_pem())
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client TLS config trusting `ca`, offering h2 and HTTP/1.1, presenting `client_cert`.
///
/// The certificate is handed to rustls as is (no key/certificate match check, which would
/// parse it with webpki and refuse X.509 v1), as a Go or OpenSSL client would send it.
pub fn client_config(ca: &Ca, client_cert: Option<Pair>) -> rustls::ClientConfig {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(ca.roots());
    let mut config = match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            let key = provider().key_provider.load_private_key(key).unwrap();
            let certified = CertifiedKey::new(chain, key);
            builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified)))
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// An HTTPS client trusting `ca`, optionally presenting a client certificate.
pub fn client(ca: &Ca, client_cert: Option<Pair>) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(client_config(ca, client_cert))
        .build()
        .unwrap()
}

pub fn write_pair(dir: &Path, (cert, key): &Pair) -> (PathBuf, PathBuf) {
    let cert_file = dir.join("tls.crt");
    let key_file = dir.join("tls.key");
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    (cert_file, key_file)
}

pub async fn start(tls: TlsOptions) -> (ServerHandle, oneshot::Sender<()>) {
    let core = Core::new(CoreConfig::default(), Arc::new(InmemStorage::new()));
    let mut opts = ListenerOptions::new("127.0.0.1:0");
    opts.tls = Some(tls);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let handle = serve(opts, core, async move {
        let _ = stop_rx.await;
    })
    .await
    .unwrap();
    (handle, stop_tx)
}

pub fn health_url(addr: SocketAddr) -> String {
    format!("https://{addr}/v1/sys/health")
}

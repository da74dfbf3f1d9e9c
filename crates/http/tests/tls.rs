//! A real listener over TLS: handshake, ALPN, client-certificate policy, reload, shutdown.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use strongroom_core::{Core, CoreConfig};
use strongroom_http::{HttpError, ListenerOptions, ServerHandle, TlsOptions, serve};
use strongroom_storage::InmemStorage;
use tokio::sync::oneshot;

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Ca {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    /// A leaf for 127.0.0.1: (cert PEM, key PEM).
    fn leaf(&self) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        roots
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// An HTTPS client trusting `ca`, optionally presenting a client certificate.
fn client(ca: &Ca, client_cert: Option<(String, String)>) -> reqwest::Client {
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
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .build()
        .unwrap()
}

fn write_pair(dir: &Path, (cert, key): &(String, String)) -> (PathBuf, PathBuf) {
    let cert_file = dir.join("tls.crt");
    let key_file = dir.join("tls.key");
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    (cert_file, key_file)
}

async fn start(tls: TlsOptions) -> (ServerHandle, oneshot::Sender<()>) {
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

fn health_url(addr: SocketAddr) -> String {
    format!("https://{addr}/v1/sys/health")
}

#[tokio::test]
async fn https_round_trip_over_h2_with_unrelated_client_cert() {
    // hvac presents a client cert from an unrelated CA; Vault's default must still serve it.
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let (cert_file, key_file) = write_pair(dir.path(), &ca.leaf());
    let (handle, stop) = start(TlsOptions::new(cert_file, key_file)).await;
    let stranger = Ca::new();

    let plain = client(&ca, None)
        .get(health_url(handle.bound_addr()))
        .send()
        .await
        .unwrap();
    let with_cert = client(&ca, Some(stranger.leaf()))
        .get(health_url(handle.bound_addr()))
        .send()
        .await
        .unwrap();

    assert_eq!(plain.status(), 501);
    assert_eq!(plain.version(), reqwest::Version::HTTP_2);
    assert_eq!(plain.headers()["content-type"], "application/json");
    let body: serde_json::Value = plain.json().await.unwrap();
    assert_eq!(body["initialized"], false);
    assert_eq!(with_cert.status(), 501);
    stop.send(()).unwrap();
    handle.wait().await;
}

#[tokio::test]
async fn reload_swaps_the_certificate_and_survives_bad_files() {
    // Certificates rotate on SIGHUP without a restart; a broken file must not take TLS down.
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (Ca::new(), Ca::new());
    let (cert_file, key_file) = write_pair(dir.path(), &old_ca.leaf());
    let (handle, stop) = start(TlsOptions::new(cert_file.clone(), key_file.clone())).await;
    let url = health_url(handle.bound_addr());
    assert!(client(&old_ca, None).get(&url).send().await.is_ok());

    write_pair(dir.path(), &new_ca.leaf());
    handle.reload().unwrap();

    assert!(client(&new_ca, None).get(&url).send().await.is_ok());
    assert!(client(&old_ca, None).get(&url).send().await.is_err());

    std::fs::write(&key_file, "not a key").unwrap();
    let err = handle.reload().unwrap_err();
    assert!(
        err.to_string().contains(&key_file.display().to_string()),
        "{err}"
    );
    assert!(client(&new_ca, None).get(&url).send().await.is_ok());
    stop.send(()).unwrap();
    handle.wait().await;
}

#[tokio::test]
async fn required_client_certs_are_verified() {
    // tls_require_and_verify_client_cert must refuse anonymous and foreign clients.
    let dir = tempfile::tempdir().unwrap();
    let (server_ca, client_ca, stranger) = (Ca::new(), Ca::new(), Ca::new());
    let (cert_file, key_file) = write_pair(dir.path(), &server_ca.leaf());
    let ca_file = dir.path().join("client-ca.pem");
    std::fs::write(&ca_file, client_ca.issuer.pem()).unwrap();
    let mut tls = TlsOptions::new(cert_file, key_file);
    tls.client_ca_file = Some(ca_file);
    tls.require_and_verify_client_cert = true;
    let (handle, stop) = start(tls).await;
    let url = health_url(handle.bound_addr());

    let anonymous = client(&server_ca, None).get(&url).send().await;
    let foreign = client(&server_ca, Some(stranger.leaf()))
        .get(&url)
        .send()
        .await;
    let trusted = client(&server_ca, Some(client_ca.leaf()))
        .get(&url)
        .send()
        .await;

    assert!(anonymous.is_err());
    assert!(foreign.is_err());
    assert_eq!(trusted.unwrap().status(), 501);
    stop.send(()).unwrap();
    handle.wait().await;
}

#[tokio::test]
async fn startup_errors_name_the_file_or_address() {
    // An operator must see which file or address to fix, not a bare I/O error.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.crt");
    let core = Core::new(CoreConfig::default(), Arc::new(InmemStorage::new()));
    let mut opts = ListenerOptions::new("127.0.0.1:0");
    opts.tls = Some(TlsOptions::new(
        missing.clone(),
        dir.path().join("missing.key"),
    ));

    let err = serve(opts, core.clone(), std::future::pending())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, HttpError::ReadFile { .. }));
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let err = serve(
        ListenerOptions::new(address.clone()),
        core,
        std::future::pending(),
    )
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains(&address), "{err}");
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    // After shutdown the port must close so a restarted server can bind it.
    let core = Core::new(CoreConfig::default(), Arc::new(InmemStorage::new()));
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let handle = serve(ListenerOptions::new("127.0.0.1:0"), core, async move {
        let _ = stop_rx.await;
    })
    .await
    .unwrap();
    let addr = handle.bound_addr();
    let url = format!("http://{addr}/v1/sys/init");
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(RootCertStore::empty())
                .with_no_client_auth(),
        )
        .build()
        .unwrap();
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);

    stop_tx.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), handle.wait())
        .await
        .unwrap();

    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

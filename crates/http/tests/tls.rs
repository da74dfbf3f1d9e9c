//! A real listener over TLS: handshake, ALPN, client-certificate policy, reload, shutdown.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Ca, client, health_url, provider, start, write_pair};
use rustls::RootCertStore;
use strongroom_core::{Core, CoreConfig};
use strongroom_http::{HttpError, ListenerOptions, TlsOptions, serve};
use strongroom_storage::InmemStorage;
use tokio::sync::oneshot;

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

/// A body of `chunks` 64 KiB chunks that counts how many the HTTP client has taken.
fn counted_body(chunks: usize) -> (reqwest::Body, Arc<AtomicUsize>) {
    let taken = Arc::new(AtomicUsize::new(0));
    let counter = taken.clone();
    let stream = futures::stream::iter((0..chunks).map(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok::<_, std::io::Error>(vec![b'x'; 64 * 1024])
    }));
    (reqwest::Body::wrap_stream(stream), taken)
}

#[tokio::test]
async fn oversize_body_over_h2_is_413_with_the_message() {
    // An h2 client over the limit must hear why, as an HTTP/1.1 client does: the server reads
    // the rest of the upload instead of resetting the stream under the client's feet.
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let (cert_file, key_file) = write_pair(dir.path(), &ca.leaf());
    let (handle, stop) = start(TlsOptions::new(cert_file, key_file)).await;
    let url = format!("https://{}/v1/secret/big", handle.bound_addr());
    let chunks = (strongroom_http::DEFAULT_MAX_REQUEST_SIZE as usize) / (64 * 1024) + 16;
    let http = client(&ca, None);

    let (declared_body, declared_taken) = counted_body(chunks);
    let declared = http
        .put(&url)
        .header("content-length", (chunks * 64 * 1024).to_string())
        .body(declared_body)
        .send()
        .await
        .unwrap();
    let (streamed_body, streamed_taken) = counted_body(chunks);
    let streamed = http.put(&url).body(streamed_body).send().await.unwrap();

    for resp in [declared, streamed] {
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        assert_eq!(resp.status(), 413);
        let json: serde_json::Value = resp.json().await.unwrap();
        let message = json["errors"][0].as_str().unwrap();
        assert!(message.contains("request body too large"), "{json}");
    }
    for taken in [declared_taken, streamed_taken] {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        while taken.load(Ordering::SeqCst) < chunks && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(
            taken.load(Ordering::SeqCst),
            chunks,
            "upload cut off by a reset"
        );
    }
    stop.send(()).unwrap();
    handle.wait().await;
}

//! The API listener's client-certificate policy over real TLS handshakes, TLS 1.2 and 1.3:
//! any certificate of any X.509 version accepted by default (as Vault does), the handshake
//! signature still checked against the certificate's key, and chains verified against
//! `tls_client_ca_file` when `tls_require_and_verify_client_cert` is set.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Ca, Pair, client, health_url, start, unknown_v1_pair, v1_cert, write_pair};
use rustls_pki_types::pem::PemObject;
use strongroom_http::{ServerHandle, TlsOptions, TlsVersion};
use tokio::sync::oneshot;

const BOTH_VERSIONS: [TlsVersion; 2] = [TlsVersion::Tls12, TlsVersion::Tls13];

/// A listener for `server_ca`'s leaf speaking only `version`, adjusted by `configure`.
async fn listener(
    dir: &std::path::Path,
    server_ca: &Ca,
    version: TlsVersion,
    configure: impl FnOnce(&mut TlsOptions),
) -> (ServerHandle, oneshot::Sender<()>) {
    let (cert_file, key_file) = write_pair(dir, &server_ca.leaf());
    let mut tls = TlsOptions::new(cert_file, key_file);
    tls.min_version = version;
    tls.max_version = version;
    configure(&mut tls);
    start(tls).await
}

/// The status of `sys/health` fetched presenting `cert`, or `None` if the handshake failed.
async fn health_status(server_ca: &Ca, handle: &ServerHandle, cert: Option<Pair>) -> Option<u16> {
    client(server_ca, cert)
        .get(health_url(handle.bound_addr()))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

#[tokio::test]
async fn unknown_client_certificates_of_any_version_are_accepted() {
    // Vault serves clients whatever certificate they present, X.509 v1 (no extensions) too.
    for version in BOTH_VERSIONS {
        let dir = tempfile::tempdir().unwrap();
        let server_ca = Ca::new();
        let (handle, stop) = listener(dir.path(), &server_ca, version, |_| {}).await;

        let v1 = health_status(&server_ca, &handle, Some(unknown_v1_pair())).await;
        let v3 = health_status(&server_ca, &handle, Some(Ca::new().leaf())).await;
        let none = health_status(&server_ca, &handle, None).await;

        assert_eq!(v1, Some(501), "unknown v1 over {version:?}");
        assert_eq!(v3, Some(501), "unknown v3 over {version:?}");
        assert_eq!(none, Some(501), "no certificate over {version:?}");
        stop.send(()).unwrap();
        handle.wait().await;
    }
}

#[tokio::test]
async fn a_client_without_the_certificates_key_is_refused() {
    // Accepting any certificate must not mean accepting one whose key the client lacks.
    for version in BOTH_VERSIONS {
        let dir = tempfile::tempdir().unwrap();
        let server_ca = Ca::new();
        let (handle, stop) = listener(dir.path(), &server_ca, version, |_| {}).await;
        let (v1_cert, _) = unknown_v1_pair();
        let (v3_cert, _) = Ca::new().leaf();
        let (_, other_key) = unknown_v1_pair();

        let v1 = health_status(&server_ca, &handle, Some((v1_cert, other_key.clone()))).await;
        let v3 = health_status(&server_ca, &handle, Some((v3_cert, other_key))).await;

        assert_eq!(v1, None, "v1 with a foreign key over {version:?}");
        assert_eq!(v3, None, "v3 with a foreign key over {version:?}");
        stop.send(()).unwrap();
        handle.wait().await;
    }
}

#[tokio::test]
async fn a_malformed_client_certificate_fails_the_handshake_only() {
    // Garbage where a certificate should be is a handshake error, and the listener serves on.
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new();
    let (handle, stop) = listener(dir.path(), &server_ca, TlsVersion::Tls13, |_| {}).await;
    let (good, key) = unknown_v1_pair();
    let der = rustls_pki_types::CertificateDer::from_pem_slice(good.as_bytes()).unwrap();
    let truncated = v1_cert::pem(&der[..der.len() - 10]);
    let trailing = v1_cert::pem(&[der.as_ref(), &[0u8; 4][..]].concat());
    let garbage = v1_cert::pem(b"not a certificate at all");

    let mut results = Vec::new();
    for cert in [truncated, trailing, garbage] {
        results.push(health_status(&server_ca, &handle, Some((cert, key.clone()))).await);
    }
    let after = health_status(&server_ca, &handle, None).await;

    assert_eq!(results, [None, None, None]);
    assert_eq!(after, Some(501));
    stop.send(()).unwrap();
    handle.wait().await;
}

#[tokio::test]
async fn required_client_certs_chain_to_the_client_ca_v1_included() {
    // tls_require_and_verify_client_cert: the CA's v3 and v1 leaves in, everything else out.
    for version in BOTH_VERSIONS {
        let dir = tempfile::tempdir().unwrap();
        let (server_ca, client_ca) = (Ca::new(), Ca::new());
        let ca_file = dir.path().join("client-ca.pem");
        std::fs::write(&ca_file, client_ca.issuer.pem()).unwrap();
        let (handle, stop) = listener(dir.path(), &server_ca, version, |tls| {
            tls.client_ca_file = Some(ca_file);
            tls.require_and_verify_client_cert = true;
        })
        .await;

        let signed_v3 = health_status(&server_ca, &handle, Some(client_ca.leaf())).await;
        let signed_v1 = health_status(
            &server_ca,
            &handle,
            Some(client_ca.v1_leaf(v1_cert::VALID_NOW)),
        )
        .await;
        let expired_v1 = health_status(
            &server_ca,
            &handle,
            Some(client_ca.v1_leaf(v1_cert::EXPIRED)),
        )
        .await;
        let unknown_v1 = health_status(&server_ca, &handle, Some(unknown_v1_pair())).await;
        let unknown_v3 = health_status(&server_ca, &handle, Some(Ca::new().leaf())).await;
        let none = health_status(&server_ca, &handle, None).await;

        assert_eq!(signed_v3, Some(501), "CA-signed v3 over {version:?}");
        assert_eq!(signed_v1, Some(501), "CA-signed v1 over {version:?}");
        assert_eq!(expired_v1, None, "expired CA-signed v1 over {version:?}");
        assert_eq!(unknown_v1, None, "unknown v1 over {version:?}");
        assert_eq!(unknown_v3, None, "unknown v3 over {version:?}");
        assert_eq!(none, None, "no certificate over {version:?}");
        stop.send(()).unwrap();
        handle.wait().await;
    }
}

#[tokio::test]
async fn a_client_ca_file_alone_does_not_verify() {
    // As in Vault, tls_client_ca_file without tls_require_and_verify_client_cert only names the
    // CA: hvac's unrelated certificate must still be served.
    let dir = tempfile::tempdir().unwrap();
    let (server_ca, client_ca) = (Ca::new(), Ca::new());
    let ca_file = dir.path().join("client-ca.pem");
    std::fs::write(&ca_file, client_ca.issuer.pem()).unwrap();
    let (handle, stop) = listener(dir.path(), &server_ca, TlsVersion::Tls13, |tls| {
        tls.client_ca_file = Some(ca_file);
    })
    .await;

    let signed = health_status(&server_ca, &handle, Some(client_ca.leaf())).await;
    let unknown_v1 = health_status(&server_ca, &handle, Some(unknown_v1_pair())).await;

    assert_eq!(signed, Some(501));
    assert_eq!(unknown_v1, Some(501));
    stop.send(()).unwrap();
    handle.wait().await;
}

#[tokio::test]
async fn an_openssl_v1_rsa_client_certificate_is_accepted() {
    // The v1 certificates met in practice come from `openssl x509 -req` (no extensions), and
    // are often RSA. The fixture was made once with OpenSSL 3.0:
    //   openssl genrsa -out v1-rsa-client.key 2048
    //   openssl req -new -subj "/CN=v1 rsa client" -key v1-rsa-client.key -out c.csr
    //   openssl x509 -req -in c.csr -signkey v1-rsa-client.key -days 36500 -out v1-rsa-client.crt
    let fixture = |name: &str| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        std::fs::read_to_string(path.join(name)).unwrap()
    };
    let pair = (fixture("v1-rsa-client.crt"), fixture("v1-rsa-client.key"));
    for version in BOTH_VERSIONS {
        let dir = tempfile::tempdir().unwrap();
        let server_ca = Ca::new();
        let (handle, stop) = listener(dir.path(), &server_ca, version, |_| {}).await;

        let status = health_status(&server_ca, &handle, Some(pair.clone())).await;

        assert_eq!(status, Some(501), "OpenSSL v1 RSA over {version:?}");
        stop.send(()).unwrap();
        handle.wait().await;
    }
}

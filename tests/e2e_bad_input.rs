//! Bad input gets a clear error and loses nothing.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{BIN, Node};
use reqwest::Method;
use serde_json::{Value, json};

fn errors(r: reqwest::blocking::Response) -> (u16, Vec<String>, String) {
    let code = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body: Value = r.json().unwrap_or(Value::Null);
    let errs = body["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    (code, errs, ct)
}

#[test]
fn malformed_oversized_and_mistyped_requests_are_refused_cleanly() {
    // Set up: a node with one secret.
    let mut node = Node::new();
    node.start();
    let (_, root) = node.init_and_unseal(1, 1);
    node.req(Method::POST, "sys/mounts/kv", &root)
        .json(&json!({"type": "kv"}))
        .send()
        .unwrap();
    node.req(Method::PUT, "kv/keep", &root)
        .json(&json!({"v": "safe"}))
        .send()
        .unwrap();

    // Malformed JSON → 400 with a message, exactly application/json.
    let r = node
        .req(Method::PUT, "kv/keep", &root)
        .body("{not json")
        .send()
        .unwrap();
    let (code, errs, ct) = errors(r);
    assert_eq!(code, 400);
    assert_eq!(ct, "application/json");
    assert!(!errs.is_empty() && !errs[0].is_empty());

    // A body declared over 32 MiB → 413 before any of it is read, and the stored value is
    // untouched. (Sent by hand: an HTTP client that keeps writing 33 MiB after the server has
    // answered sees a broken pipe instead of the answer.)
    let head = raw_https(
        &node,
        &format!(
            "PUT /v1/kv/keep HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Vault-Token: {root}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"v\":",
            33 * 1024 * 1024
        ),
    );
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    let kept: Value = node
        .req(Method::GET, "kv/keep", &root)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(kept["data"]["v"], "safe", "a refused body changes nothing");

    // Wrong types → 400, never 500.
    let c = node.client();
    let r = c
        .put(format!("{}/v1/sys/init", node.addr))
        .json(&json!({"secret_shares": "abc"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = node
        .req(Method::POST, "sys/mounts/x", &root)
        .json(&json!({"type": 12}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);

    // Unknown path → 404; no token → 403; bad token → 403.
    assert_eq!(
        node.req(Method::GET, "nosuchmount/x", &root)
            .send()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        c.get(format!("{}/v1/kv/keep", node.addr))
            .send()
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        node.req(Method::GET, "kv/keep", "hvs.bogus")
            .send()
            .unwrap()
            .status(),
        403
    );

    // Wrong unseal key on a sealed server → 400, still sealed.
    node.req(Method::PUT, "sys/seal", &root).send().unwrap();
    let r = c
        .put(format!("{}/v1/sys/unseal", node.addr))
        .json(&json!({"key": "00".repeat(33)}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let st: Value = c
        .get(format!("{}/v1/sys/seal-status", node.addr))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(st["sealed"], true);
    assert_eq!(st["progress"], 0);
}

#[test]
fn invalid_config_file_names_file_line_and_setting() {
    // Set up: a config with a misspelled listener setting on line 5.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.hcl");
    std::fs::write(&cfg, "storage \"inmem\" {}\n\nlistener \"tcp\" {\n  address = \"127.0.0.1:0\"\n  tls_cert_fil = \"x.pem\"\n}\n").unwrap();

    // Act
    let out = std::process::Command::new(BIN)
        .arg("server")
        .arg(format!("-config={}", cfg.display()))
        .output()
        .unwrap();

    // Assert: exit 1, and the message names the file, the line and the setting.
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.hcl") && err.contains(":5") && err.contains("tls_cert_fil"),
        "{err}"
    );
}

/// Sends raw bytes over TLS to the node and returns the start of the answer.
fn raw_https(node: &Node, request: &str) -> String {
    use std::io::{Read, Write};
    use std::sync::Arc;
    let pem = std::fs::read(&node.certs.ca).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let addr = node.addr.trim_start_matches("https://").to_string();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(request.as_bytes()).unwrap();
    tls.flush().unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tls.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

//! End-to-end: the real binary, raft storage on disk, HTTPS with a test CA.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Node, dir_contains};
use reqwest::Method;
use serde_json::{Value, json};

#[test]
fn init_unseal_write_seal_restart_unseal_read_over_tls() {
    // Set up: a fresh raft node behind TLS.
    let mut node = Node::new();
    node.start();
    let c = node.client();
    let status: Value = c
        .get(format!("{}/v1/sys/seal-status", node.addr))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(status["initialized"], false);
    assert_eq!(status["storage_type"], "raft");

    // Why: the Vault CLI's init body carries nulls for unused fields; it must be accepted.
    let r = c
        .put(format!("{}/v1/sys/init", node.addr))
        .json(&json!({"secret_shares": 5, "secret_threshold": 3, "stored_shares": 0, "pgp_keys": null, "recovery_shares": 0, "recovery_threshold": 0, "recovery_pgp_keys": null, "root_token_pgp_key": ""}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let init: Value = r.json().unwrap();
    let keys: Vec<String> = init["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let root = init["root_token"].as_str().unwrap().to_string();
    assert_eq!(keys.len(), 5);
    node.unseal(&keys[..3]);

    // Act: mount kv, write a secret, seal.
    let r = node
        .req(Method::POST, "sys/mounts/secret", &root)
        .json(&json!({"type": "kv"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = node
        .req(Method::PUT, "secret/db", &root)
        .json(&json!({"password": "s3cr3t-value-42"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = node.req(Method::PUT, "sys/seal", &root).send().unwrap();
    assert_eq!(r.status(), 204);
    // Why: a sealed server answers 503 on logical paths.
    let r = node.req(Method::GET, "secret/db", &root).send().unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "application/json");

    // Restart the process: data must come back from disk.
    assert_eq!(node.stop(), Some(0), "SIGTERM shuts down cleanly");
    node.start();
    let st = node.unseal(&[keys[1].clone(), keys[3].clone(), keys[4].clone()]);
    assert_eq!(st["sealed"], false);

    // Assert: the secret survived, with the Vault envelope.
    let body: Value = node
        .req(Method::GET, "secret/db", &root)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(body["data"]["password"], "s3cr3t-value-42");
    assert_eq!(body["lease_id"], "");
    assert!(body["request_id"].as_str().is_some_and(|s| !s.is_empty()));

    // Why: leader and health report an active raft node.
    let leader: Value = c
        .get(format!("{}/v1/sys/leader", node.addr))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(leader["ha_enabled"], true);
    assert_eq!(leader["is_self"], true);
    assert!(leader["raft_applied_index"].as_u64().unwrap() > 0);
    let h = c
        .get(format!("{}/v1/sys/health", node.addr))
        .send()
        .unwrap();
    assert_eq!(h.status(), 200);
    let cfg: Value = node
        .req(Method::GET, "sys/storage/raft/configuration", &root)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(cfg["data"]["config"]["servers"][0]["node_id"], "node1");
    assert_eq!(cfg["data"]["config"]["servers"][0]["leader"], true);
}

#[test]
fn no_plaintext_on_disk_or_in_snapshots() {
    // Set up: write a distinctive secret.
    let mut node = Node::new();
    node.start();
    let (_, root) = node.init_and_unseal(1, 1);
    node.req(Method::POST, "sys/mounts/kv", &root)
        .json(&json!({"type": "kv"}))
        .send()
        .unwrap();
    let needle = "PLAINTEXT-NEEDLE-7f3a9c";
    let r = node
        .req(Method::PUT, "kv/x", &root)
        .json(&json!({"v": needle}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);

    // Act: take a snapshot through the API; stop the server so everything is on disk.
    let snap = node
        .req(Method::GET, "sys/storage/raft/snapshot", &root)
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert!(snap.len() > 100);
    node.stop();

    // Assert: neither the data directory nor the snapshot (decompressed) holds the value.
    assert!(
        !dir_contains(&node.raft_dir(), needle.as_bytes()),
        "plaintext found in the data directory"
    );
    let mut tar_bytes = Vec::new();
    use std::io::Read;
    flate2::read::GzDecoder::new(&snap[..])
        .read_to_end(&mut tar_bytes)
        .unwrap();
    assert!(
        !tar_bytes
            .windows(needle.len())
            .any(|w| w == needle.as_bytes()),
        "plaintext found in the snapshot"
    );
    // Why: the Vault CLI refuses a snapshot without a non-empty SHA256SUMS.sealed member.
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let names: Vec<(String, u64)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.path().unwrap().to_string_lossy().into_owned(), e.size())
        })
        .collect();
    assert!(
        names
            .iter()
            .any(|(n, s)| n == "SHA256SUMS.sealed" && *s > 0),
        "{names:?}"
    );
}

#[test]
fn snapshot_restore_brings_back_exact_state_and_refuses_corruption() {
    // Set up
    let mut node = Node::new();
    node.start();
    let (keys, root) = node.init_and_unseal(1, 1);
    node.req(Method::POST, "sys/mounts/kv", &root)
        .json(&json!({"type": "kv"}))
        .send()
        .unwrap();
    node.req(Method::PUT, "kv/a", &root)
        .json(&json!({"v": "1"}))
        .send()
        .unwrap();
    let snap = node
        .req(Method::GET, "sys/storage/raft/snapshot", &root)
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    node.req(Method::PUT, "kv/a", &root)
        .json(&json!({"v": "2"}))
        .send()
        .unwrap();
    node.req(Method::PUT, "kv/b", &root)
        .json(&json!({"v": "3"}))
        .send()
        .unwrap();

    // Act: a corrupt snapshot first, then the real one.
    let mut bad = snap.to_vec();
    let n = bad.len();
    bad[n / 2] ^= 0x55;
    let r = node
        .req(Method::POST, "sys/storage/raft/snapshot", &root)
        .body(bad)
        .send()
        .unwrap();
    assert_eq!(r.status(), 400, "a corrupt snapshot is refused with 400");
    let v: Value = node
        .req(Method::GET, "kv/a", &root)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        v["data"]["v"], "2",
        "a refused snapshot leaves data untouched"
    );
    let r = node
        .req(Method::POST, "sys/storage/raft/snapshot", &root)
        .body(snap.to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);

    // Assert: exactly the state at snapshot time, also after a restart.
    let check = |node: &Node| {
        let v: Value = node
            .req(Method::GET, "kv/a", &root)
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(v["data"]["v"], "1");
        assert_eq!(
            node.req(Method::GET, "kv/b", &root)
                .send()
                .unwrap()
                .status(),
            404
        );
    };
    check(&node);
    node.stop();
    node.start();
    let (code, _, _) = node.cli(Some(&root), &["status"]);
    assert_eq!(code, 2, "sealed after restart");
    node.unseal(&keys);
    check(&node);
}

#[test]
fn metrics_need_a_token_and_speak_prometheus() {
    // Set up
    let mut node = Node::new();
    node.start();
    let (_, root) = node.init_and_unseal(1, 1);
    node.req(Method::POST, "sys/mounts/kv", &root)
        .json(&json!({"type": "kv"}))
        .send()
        .unwrap();
    for i in 0..5 {
        node.req(Method::PUT, &format!("kv/{i}"), &root)
            .json(&json!({"v": i.to_string()}))
            .send()
            .unwrap();
    }

    // Act + assert: no token → 403; with token → Prometheus text with our series.
    let c = node.client();
    let r = c
        .get(format!("{}/v1/sys/metrics?format=prometheus", node.addr))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let text = node
        .req(Method::GET, "sys/metrics?format=prometheus", &root)
        .send()
        .unwrap()
        .text()
        .unwrap();
    for series in [
        "vault_core_unsealed 1",
        "vault_core_handle_request",
        "vault_raft_storage_fsync_batch_size",
        "vault_raft_apply_seconds",
    ] {
        assert!(text.contains(series), "missing {series} in:\n{text}");
    }
    let json: Value = node
        .req(Method::GET, "sys/metrics", &root)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(json["Gauges"].as_array().is_some_and(|g| !g.is_empty()));
}

#[test]
fn sighup_reloads_the_tls_certificate() {
    // Set up: a running node; then new certificate files from a different CA on disk.
    let mut node = Node::new();
    node.start();
    let fresh = tempfile::tempdir().unwrap();
    let new = common::make_certs(fresh.path());
    std::fs::copy(&new.cert, &node.certs.cert).unwrap();
    std::fs::copy(&new.key, &node.certs.key).unwrap();
    let old_ca_client = node.client();
    let new_ca_client = common::client_for(&new.ca);
    // Why: until SIGHUP the server keeps serving the certificate it loaded.
    assert!(
        old_ca_client
            .get(format!("{}/v1/sys/health", node.addr))
            .send()
            .is_ok()
    );

    // Act: SIGHUP.
    common::signal(node.child.as_ref().unwrap(), libc::SIGHUP);

    // Assert: within a few seconds the new CA verifies the server and the old one does not.
    let mut switched = false;
    for _ in 0..100 {
        if new_ca_client
            .get(format!("{}/v1/sys/health", node.addr))
            .send()
            .is_ok()
        {
            switched = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        switched,
        "the server never presented the reloaded certificate"
    );
    // A fresh connection (not the pooled one from before) must fail verification with the old CA.
    let fresh_old = common::client_for(&node.certs.ca);
    assert!(
        fresh_old
            .get(format!("{}/v1/sys/health", node.addr))
            .send()
            .is_err()
    );
}

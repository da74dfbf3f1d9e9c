//! The operator runbook from the README, run with our CLI exactly as written.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::Node;
use serde_json::Value;

fn dr_status(node: &Node) -> Value {
    let (code, out, err) = node.cli(None, &["read", "-format=json", "sys/replication/dr/status"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<Value>(&out).unwrap()["data"].clone()
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn dr_runbook_with_the_cli() {
    // Set up: two initialized, unsealed clusters; A holds a secret.
    let mut a = Node::new();
    let mut b = Node::new();
    a.start();
    b.start();
    let (_, root) = a.init_and_unseal(1, 1);
    let (_, b_root) = b.init_and_unseal(1, 1);
    let t = Some(root.as_str());
    assert_eq!(
        a.cli(
            t,
            &["secrets", "enable", "-path=secret", "-version=2", "kv"]
        )
        .0,
        0
    );
    assert_eq!(
        a.cli(t, &["kv", "put", "secret/app", "password=hunter2"]).0,
        0
    );

    // Runbook: enable the primary, mint a token, enable the secondary.
    let (code, _, err) = a.cli(t, &["write", "-f", "sys/replication/dr/primary/enable"]);
    assert_eq!(code, 0, "{err}");
    let (code, token, err) = a.cli(
        t,
        &[
            "write",
            "-field=token",
            "-f",
            "sys/replication/dr/primary/secondary-token",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let token = token.trim().to_string();
    assert!(
        token.starts_with("eyJ"),
        "the activation token is a JWT: {token}"
    );
    let primary_api = format!("primary_api_addr={}", a.addr);
    let ca = format!("ca_file={}", a.certs.ca.display());
    let (code, out, err) = b.cli(
        Some(&b_root),
        &[
            "write",
            "sys/replication/dr/secondary/enable",
            &format!("token={token}"),
            &primary_api,
            &ca,
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("WARNING! The following warnings were returned from Vault:") && out.is_empty(),
        "mode changes print Vault's warning block: {out} {err}"
    );

    // `read sys/replication/dr/status` in table form, and JSON until caught up.
    let (code, out, _) = b.cli(None, &["read", "sys/replication/dr/status"]);
    assert_eq!(code, 0);
    assert!(out.contains("mode") && out.contains("secondary"), "{out}");
    wait_until("stream-wals and equal roots", || {
        let (p, s) = (dr_status(&a), dr_status(&b));
        s["state"] == "stream-wals"
            && s["last_remote_wal"] == p["last_wal"]
            && s["merkle_root"] == p["merkle_root"]
    });

    // Planned failover: demote A, promote B (the primary's root token authorizes it).
    assert_eq!(
        a.cli(t, &["write", "-f", "sys/replication/dr/primary/demote"])
            .0,
        0
    );
    let (code, _, err) = b.cli(t, &["write", "-f", "sys/replication/dr/secondary/promote"]);
    assert_eq!(code, 0, "{err}");
    wait_until("B to serve", || {
        b.cli(t, &["kv", "get", "-field=password", "secret/app"])
            .1
            .trim()
            == "hunter2"
    });

    // Failback preparation: A follows B with a token from B.
    let (code, token_b, err) = b.cli(
        t,
        &[
            "write",
            "-field=token",
            "-f",
            "sys/replication/dr/primary/secondary-token",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = a.cli(
        t,
        &[
            "write",
            "sys/replication/dr/secondary/update-primary",
            &format!("token={}", token_b.trim()),
            &format!("primary_api_addr={}", b.addr),
            &format!("ca_file={}", b.certs.ca.display()),
        ],
    );
    assert_eq!(code, 0, "{err}");
    wait_until("A to follow B", || {
        let (p, s) = (dr_status(&b), dr_status(&a));
        s["state"] == "stream-wals" && s["merkle_root"] == p["merkle_root"]
    });

    // `status`, a raft snapshot and Prometheus metrics on the new primary.
    assert_eq!(b.cli(None, &["status"]).0, 0);
    let snap = b.dir.path().join("b.snap");
    assert_eq!(
        b.cli(
            t,
            &[
                "operator",
                "raft",
                "snapshot",
                "save",
                snap.to_str().unwrap()
            ]
        )
        .0,
        0
    );
    let metrics = b
        .client()
        .get(format!("{}/v1/sys/metrics?format=prometheus", b.addr))
        .header("X-Vault-Token", &root)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("vault_replication_wal_last_wal"),
        "{metrics}"
    );
}

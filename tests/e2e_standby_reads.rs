//! End-to-end standby reads on a real three-node raft cluster over TLS: writes carry
//! `X-Vault-Index`, a standby serves reads itself (proved by its own metrics), a read with an
//! index this node lacks answers 412, is forwarded with `X-Vault-Inconsistent:
//! forward-active-node` or waits with `await-state`, a policy change on the active node holds
//! on a standby at its index, and a standby with `disable_standby_reads = true` forwards.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine as _;
use common::cluster::{Cluster, Join};
use common::{ok, wait_for};
use reqwest::Method;
use reqwest::blocking::RequestBuilder;
use serde_json::{Value, json};

const INDEX: &str = "X-Vault-Index";
const INCONSISTENT: &str = "X-Vault-Inconsistent";
/// The node whose configuration turns standby reads off.
const NO_READS: usize = 2;

/// A three-node cluster whose third node has `disable_standby_reads = true`, node-local
/// unauthenticated metrics on every node (so a scrape is neither a read nor forwarded), and
/// KV v2 at `secret/`. Formed as `Cluster::form` does, with the configs edited first.
fn cluster() -> Cluster {
    let mut c = Cluster::configure(3, Join::RetryJoin);
    for (i, node) in c.nodes.iter().enumerate() {
        let mut config = std::fs::read_to_string(&node.config).unwrap();
        config = config.replacen(
            "  tls_cert_file",
            "  telemetry {\n    unauthenticated_metrics_access = true\n  }\n  tls_cert_file",
            1,
        );
        if i == NO_READS {
            config.push_str("disable_standby_reads = true\n");
        }
        std::fs::write(&node.config, config).unwrap();
    }
    c.nodes[0].start();
    let (keys, root) = c.nodes[0].init_and_unseal(1, 1);
    c.keys = keys;
    c.root = root;
    c.wait_health(0, 200, 30);
    for i in 1..3 {
        c.nodes[i].start();
        c.join(i, Join::RetryJoin);
    }
    ok(c.nodes[0]
        .req(Method::POST, "sys/mounts/secret", &c.root)
        .json(&json!({"type": "kv", "options": {"version": "2"}}))
        .send()
        .unwrap());
    c
}

/// Writes `secret/data/{key}` through node `via`; returns the response's `X-Vault-Index`.
fn write(c: &Cluster, via: usize, key: &str, value: &str) -> String {
    let r = c.put(via, key, value);
    assert_eq!(r.status(), 200, "write {key} through node {via}");
    r.headers()
        .get(INDEX)
        .unwrap_or_else(|| panic!("the write of {key} carries no {INDEX}"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// `GET secret/data/{key}` through node `via` with `token`, as a builder to add headers to.
fn read(c: &Cluster, via: usize, key: &str, token: &str) -> RequestBuilder {
    c.nodes[via].req(Method::GET, &format!("secret/data/{key}"), token)
}

/// Status and `data.data.v` of a response.
fn answer(r: reqwest::blocking::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let body: Value = r.json().unwrap_or(Value::Null);
    (status, body)
}

/// An index of the same cluster `n` Raft entries past `index`: state no node holds. The test
/// knows the layout (version 1: version, id length, cluster id, raft and WAL index, base64).
fn beyond(index: &str, n: u64) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut raw = b64.decode(index).unwrap();
    let raft_at = 2 + usize::from(raw[1]);
    let raft = u64::from_be_bytes(raw[raft_at..raft_at + 8].try_into().unwrap());
    raw[raft_at..raft_at + 8].copy_from_slice(&(raft + n).to_be_bytes());
    b64.encode(raw)
}

/// The sum of the samples of `metric` whose labels include every one of `labels`, as node
/// `i` reports them itself.
fn metric(c: &Cluster, i: usize, metric: &str, labels: &[&str]) -> f64 {
    let text = c.nodes[i]
        .client()
        .get(format!(
            "{}/v1/sys/metrics?format=prometheus",
            c.nodes[i].addr
        ))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

fn local_reads(c: &Cluster, i: usize) -> f64 {
    metric(
        c,
        i,
        "strongroom_standby_reads_total",
        &["outcome=\"local\"", "class=\"logical\""],
    )
}

fn forwarded(c: &Cluster, i: usize) -> f64 {
    metric(c, i, "vault_ha_rpc_client_forward_total", &[])
}

#[test]
fn standbys_serve_reads_at_the_index_a_client_hands_back() {
    // Set up: node 1 active, node 2 a read-serving standby, node 3 a standby without reads;
    // node 2 has loaded its read state once it answers a read itself.
    let c = cluster();
    assert_eq!(c.wait_active(30), 0);
    let reader = 1;
    let first = write(&c, 0, "a", "1");
    wait_for(30, "node 2 to serve reads itself", || {
        let before = local_reads(&c, reader);
        let r = read(&c, reader, "a", &c.root)
            .header(INDEX, &first)
            .header(INCONSISTENT, "await-state")
            .send()
            .unwrap();
        r.status() == 200 && local_reads(&c, reader) > before
    });

    // Act: a write through the read-less standby (forwarded; the active node's index must
    // come back unchanged), read back through node 2 in each mode.
    let index = write(&c, NO_READS, "b", "2");
    let awaited = read(&c, reader, "b", &c.root)
        .header(INDEX, &index)
        .header(INCONSISTENT, "await-state")
        .send()
        .unwrap();
    let mut retried = None;
    wait_for(10, "a plain indexed read to stop answering 412", || {
        let r = read(&c, reader, "b", &c.root)
            .header(INDEX, &index)
            .send()
            .unwrap();
        let (status, body) = answer(r);
        assert!(status == 200 || status == 412, "{status} {body}");
        retried = Some(body);
        status == 200
    });
    let future = beyond(&index, 1_000_000);
    let refused = read(&c, reader, "b", &c.root)
        .header(INDEX, &future)
        .send()
        .unwrap();
    let await_refused = read(&c, reader, "b", &c.root)
        .header(INDEX, &future)
        .header(INCONSISTENT, "await-state")
        .send()
        .unwrap();
    let forwards_before = forwarded(&c, reader);
    let sent_on = read(&c, reader, "b", &c.root)
        .header(INDEX, &future)
        .header(INCONSISTENT, "forward-active-node")
        .send()
        .unwrap();
    let forwards_after = forwarded(&c, reader);
    let malformed = read(&c, reader, "b", &c.root)
        .header(INDEX, "not-an-index")
        .send()
        .unwrap();

    // Assert: await-state and the retried plain read see the write; an index beyond
    // anything applied is 412 with Vault's error (also after await-state's bounded wait);
    // forward-active-node has the active node serve it; a malformed index is a 400.
    let (status, body) = answer(awaited);
    assert_eq!(
        (status, &body["data"]["data"]["v"]),
        (200, &json!("2")),
        "{body}"
    );
    assert_eq!(retried.unwrap()["data"]["data"]["v"], "2");
    let (status, body) = answer(refused);
    assert_eq!(
        (status, body),
        (412, json!({"errors": ["required index state not present"]}))
    );
    assert_eq!(answer(await_refused).0, 412);
    let (status, body) = answer(sent_on);
    assert_eq!(
        (status, &body["data"]["data"]["v"]),
        (200, &json!("2")),
        "{body}"
    );
    assert_eq!(forwards_after - forwards_before, 1.0);
    let (status, body) = answer(malformed);
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("X-Vault-Index"),
        "{body}"
    );

    // Act: three plain reads through node 2, counted by node 2 itself.
    let (local_before, forwards_before) = (local_reads(&c, reader), forwarded(&c, reader));
    for _ in 0..3 {
        assert_eq!(c.get(reader, "a").as_deref(), Some("1"));
    }
    let (local_after, forwards_after) = (local_reads(&c, reader), forwarded(&c, reader));

    // Assert: node 2 served them itself and forwarded nothing.
    assert_eq!(local_after - local_before, 3.0);
    assert_eq!(forwards_after, forwards_before);

    // Set up: a token whose policy does not grant secret/, used once on node 2 (so node 2
    // has that policy cached).
    let policy = |paths: &str| json!({"policy": format!("path \"{paths}\" {{ capabilities = [\"read\"] }}")});
    ok(c.nodes[0]
        .req(Method::PUT, "sys/policies/acl/reader", &c.root)
        .json(&policy("other/*"))
        .send()
        .unwrap());
    let created = c.nodes[0]
        .req(Method::POST, "auth/token/create", &c.root)
        .json(&json!({"policies": ["reader"]}))
        .send()
        .unwrap();
    let at = created.headers()[INDEX].to_str().unwrap().to_owned();
    let token = ok(created)["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let denied = read(&c, reader, "a", &token)
        .header(INDEX, &at)
        .header(INCONSISTENT, "await-state")
        .send()
        .unwrap();
    assert_eq!(denied.status(), 403);

    // Act: the active node widens the policy; the client reads at the change's index.
    let widened = c.nodes[0]
        .req(Method::PUT, "sys/policies/acl/reader", &c.root)
        .json(&policy("secret/*"))
        .send()
        .unwrap();
    assert_eq!(widened.status(), 204);
    let at = widened.headers()[INDEX].to_str().unwrap().to_owned();
    let local_before = local_reads(&c, reader);
    let allowed = read(&c, reader, "a", &token)
        .header(INDEX, &at)
        .header(INCONSISTENT, "await-state")
        .send()
        .unwrap();

    // Assert: node 2 applied the new policy before answering, and answered itself.
    let (status, body) = answer(allowed);
    assert_eq!(
        (status, &body["data"]["data"]["v"]),
        (200, &json!("1")),
        "{body}"
    );
    assert_eq!(local_reads(&c, reader) - local_before, 1.0);

    // Act: three plain reads through the standby configured without reads.
    let forwards_before = forwarded(&c, NO_READS);
    for _ in 0..3 {
        assert_eq!(c.get(NO_READS, "a").as_deref(), Some("1"));
    }

    // Assert: it forwarded every one and served none itself.
    assert_eq!(forwarded(&c, NO_READS) - forwards_before, 3.0);
    assert_eq!(local_reads(&c, NO_READS), 0.0);
}

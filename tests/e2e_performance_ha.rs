//! End-to-end performance replication between two three-node raft clusters: real processes
//! over TLS. The activation goes through standbys of the primary; the secondary's standbys
//! seal and are unsealed with the primary's keys, then serve reads and hand writes on; the
//! primary's leader is killed and the stream resumes without a merkle diff; and
//! `update-primary update_primary_addrs=...`, sent to a standby of the secondary, points it at
//! the surviving primary nodes.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::cluster::{Cluster, Join, counter, get, put, quick_client, seal_status};
use common::{Node, ok};
use reqwest::Method;
use serde_json::{Value, json};

/// `data` of `sys/replication/performance/status`, or `None` when the node does not answer.
fn status(node: &Node) -> Option<Value> {
    common::cluster::replication_status(node, "performance")
}

/// Waits until node `s` of the secondary streams and applied a primary WAL index past `beyond`.
fn wait_streaming_past(secondary: &Cluster, s: usize, beyond: u64, what: &str) {
    common::cluster::wait_for_node(secondary, 60, what, || {
        status(&secondary.nodes[s]).is_some_and(|st| {
            st["state"] == "stream-wals" && st["last_remote_wal"].as_u64() > Some(beyond)
        })
    });
}

fn last_wal(node: &Node) -> u64 {
    status(node).unwrap()["last_performance_wal"]
        .as_u64()
        .unwrap()
}

#[test]
fn performance_replication_between_three_node_clusters_follows_leader_changes() {
    // Set up: two three-node clusters; on the primary KV v2 and userpass user bob.
    let mut p = Cluster::form(3, Join::RetryJoin);
    let s = Cluster::form(3, Join::RetryJoin);
    let ids: Vec<String> = (0..3).map(common::cluster::node_id).collect();
    let pa = p.wait_active(30);
    p.wait_voters(pa, &ids, 30);
    let sa = s.wait_active(30);
    s.wait_voters(sa, &ids, 30);
    let root = p.root.clone();
    let admin =
        r#"path "*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }"#;
    for (path, body) in [
        (
            "sys/mounts/secret",
            json!({"type": "kv", "options": {"version": "2"}}),
        ),
        ("sys/policies/acl/admin", json!({"policy": admin})),
        ("sys/auth/userpass", json!({"type": "userpass"})),
        (
            "auth/userpass/users/bob",
            json!({"password": "pw", "policies": "admin"}),
        ),
    ] {
        ok(p.nodes[pa]
            .req(Method::PUT, path, &root)
            .json(&body)
            .send()
            .unwrap());
    }

    // Act 1: enable through a standby of the primary; the bootstrap names the other standby.
    let p_standbys = p.standbys(pa);
    ok(p.nodes[p_standbys[0]]
        .req(
            Method::PUT,
            "sys/replication/performance/primary/enable",
            &root,
        )
        .send()
        .unwrap());
    let token = ok(p.nodes[p_standbys[0]]
        .req(
            Method::PUT,
            "sys/replication/performance/primary/secondary-token",
            &root,
        )
        .json(&json!({"id": "pr-west"}))
        .send()
        .unwrap())["wrap_info"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(s.nodes[sa]
        .req(
            Method::PUT,
            "sys/replication/performance/secondary/enable",
            &s.root,
        )
        .json(&json!({
            "token": token,
            "primary_api_addr": p.nodes[p_standbys[1]].addr,
            "ca_file": p.nodes[0].certs.ca.to_str().unwrap(),
        }))
        .send()
        .unwrap());
    let s_standbys = s.standbys(sa);
    for &i in &s_standbys {
        common::cluster::wait_for_node(&s, 30, "a secondary standby to seal itself", || {
            seal_status(&s.nodes[i])["sealed"] == true
        });
        let r = s.nodes[i].unseal(&p.keys);
        assert_eq!(r["sealed"], false, "unsealing with the primary's key: {r}");
        s.wait_health(i, 429, 30);
    }
    assert_eq!(put(&p.nodes[pa], &root, "before", "from-p").status(), 200);
    wait_streaming_past(
        &s,
        sa,
        last_wal(&p.nodes[pa]) - 1,
        "the secondary to stream",
    );
    let bob = ok(s.nodes[sa]
        .req(Method::PUT, "auth/userpass/login/bob", "")
        .json(&json!({"password": "pw"}))
        .send()
        .unwrap())["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Assert 1: a standby of the secondary reads locally and hands a write on (to its active
    // node, which forwards it to the primary); both clusters then hold it.
    let via = &s.nodes[s_standbys[0]];
    assert_eq!(get(via, &bob, "before").as_deref(), Some("from-p"));
    let write = put(via, &bob, "from-s", "via-standby");
    assert_eq!(write.status(), 200);
    let index = write.headers()["x-vault-index"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        get(&p.nodes[pa], &root, "from-s").as_deref(),
        Some("via-standby")
    );
    // The index the write returned is the primary's: a read presenting it through the
    // standby is answered at that state (the active node compares it with the stream).
    let read = via
        .req(Method::GET, "secret/data/from-s", &bob)
        .header("x-vault-index", &index)
        .send()
        .unwrap();
    assert_eq!(read.status(), 200, "a read at the primary's index");
    common::cluster::wait_for_node(&s, 30, "the write to stream back to the standby", || {
        get(via, &bob, "from-s").as_deref() == Some("via-standby")
    });
    let health: Value = quick_client(&via.certs.ca)
        .get(format!("{}/v1/sys/health", via.addr))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(health["replication_performance_mode"], "secondary");
    let diffs = counter(
        &s.nodes[sa],
        "vault_replication_performance_merkle_diffs_total",
    );
    assert_eq!(diffs, 1.0, "the bootstrap is the one merkle diff");

    // Act 2: kill the primary's active node; write on the new one.
    p.nodes[pa].kill9();
    let pa2 = p.wait_active(30);
    common::wait_for(30, "a write on the new primary leader", || {
        put(&p.nodes[pa2], &root, "after-kill", "x").status() == 200
    });
    let wal = last_wal(&p.nodes[pa2]);

    // Assert 2: the secondary follows the new leader without a merkle diff.
    wait_streaming_past(
        &s,
        sa,
        wal - 1,
        "the secondary to follow the new primary leader",
    );
    assert_eq!(get(&s.nodes[sa], &bob, "after-kill").as_deref(), Some("x"));
    assert_eq!(
        counter(
            &s.nodes[sa],
            "vault_replication_performance_merkle_diffs_total"
        ),
        diffs,
        "a primary leader change must not cost a merkle diff"
    );

    // Act 3: point the secondary at the surviving primary nodes, through a standby.
    let survivors: Vec<String> = (0..3)
        .filter(|&i| i != pa)
        .map(|i| format!("https://{}", p.ports[i].cluster_addr()))
        .collect();
    ok(via
        .req(
            Method::PUT,
            "sys/replication/performance/secondary/update-primary",
            &bob,
        )
        .json(&json!({"update_primary_addrs": survivors}))
        .send()
        .unwrap());
    assert_eq!(put(&p.nodes[pa2], &root, "after-update", "y").status(), 200);

    // Assert 3: it streams again and writes through it still land on the primary.
    let wal = last_wal(&p.nodes[pa2]);
    wait_streaming_past(
        &s,
        sa,
        wal - 1,
        "the secondary to stream after update-primary",
    );
    assert_eq!(
        get(&s.nodes[sa], &bob, "after-update").as_deref(),
        Some("y")
    );
    common::wait_for(
        30,
        "a write through the secondary after update-primary",
        || put(&s.nodes[sa], &bob, "last", "z").status() == 200,
    );
    assert_eq!(get(&p.nodes[pa2], &root, "last").as_deref(), Some("z"));
    let st = status(&s.nodes[sa]).unwrap();
    let known: Vec<String> =
        serde_json::from_value(st["known_primary_cluster_addrs"].clone()).unwrap();
    assert!(!known.is_empty() && st["primaries"][0]["connection_status"] == "connected");
}

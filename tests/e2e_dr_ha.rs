//! End-to-end DR replication between two three-node raft clusters: real processes over TLS.
//! The bootstrap names a standby of the primary; the secondary's standbys seal and are
//! unsealed with the primary's keys; the primary's leader and then the secondary's leader are
//! killed under a writer and the stream resumes each time without a merkle diff; a planned
//! failover (promote sent to a standby of the secondary) loses nothing; and update-primary,
//! sent to a standby of the demoted primary, makes it follow the new primary.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::cluster::{Cluster, Join, counter, get, leader, put, seal_status};
use common::{Node, ok};
use reqwest::Method;
use serde_json::{Value, json};

/// `data` of `sys/replication/dr/status`, or `None` when the node does not answer.
fn status(node: &Node) -> Option<Value> {
    common::cluster::replication_status(node, "dr")
}

/// The running node that says it leads (`sys/leader` answers on DR secondaries too).
fn wait_leader(c: &Cluster, secs: u64) -> usize {
    let mut found = 0;
    common::cluster::wait_for_node(c, secs, "a node that leads", || {
        match (0..c.nodes.len())
            .find(|i| leader(&c.nodes[*i]).is_some_and(|l| l["is_self"] == true))
        {
            Some(i) => {
                found = i;
                true
            }
            None => false,
        }
    });
    found
}

fn secondary_token(c: &Cluster, via: usize, token: &str, id: &str) -> String {
    let r = ok(c.nodes[via]
        .req(
            Method::PUT,
            "sys/replication/dr/primary/secondary-token",
            token,
        )
        .json(&json!({"id": id}))
        .send()
        .unwrap());
    r["wrap_info"]["token"].as_str().unwrap().to_owned()
}

/// Writes keys `w0, w1, ...` through the primary's nodes in turn until stopped; the keys
/// whose write was acknowledged.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    handle: thread::JoinHandle<()>,
}

impl Writer {
    fn start(c: &Cluster, token: &str) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let targets: Vec<(String, std::path::PathBuf)> = c
            .nodes
            .iter()
            .map(|n| (n.addr.clone(), n.certs.ca.clone()))
            .collect();
        let (stop2, acked2, token) = (stop.clone(), acked.clone(), token.to_owned());
        let handle = thread::spawn(move || {
            let clients: Vec<_> = targets
                .iter()
                .map(|(_, ca)| common::cluster::client_with(ca, Duration::from_secs(5), true))
                .collect();
            let mut i = 0usize;
            while !stop2.load(Ordering::SeqCst) {
                let key = format!("w{i}");
                let n = i % targets.len();
                let r = clients[n]
                    .put(format!("{}/v1/secret/data/{key}", targets[n].0))
                    .header("X-Vault-Token", &token)
                    .json(&json!({"data": {"v": key}}))
                    .send();
                if r.is_ok_and(|r| r.status() == 200) {
                    acked2.lock().unwrap().push(key);
                } else {
                    thread::sleep(Duration::from_millis(50));
                }
                i += 1;
            }
        });
        Writer {
            stop,
            acked,
            handle,
        }
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap();
        Arc::try_unwrap(self.acked).unwrap().into_inner().unwrap()
    }
}

/// Waits until the secondary's node `s` streams and has applied WAL index `beyond` or later.
fn wait_streaming_past(secondary: &Cluster, s: usize, beyond: u64, what: &str) {
    common::cluster::wait_for_node(secondary, 60, what, || {
        status(&secondary.nodes[s]).is_some_and(|st| {
            st["state"] == "stream-wals" && st["last_remote_wal"].as_u64() > Some(beyond)
        })
    });
}

#[test]
fn dr_between_three_node_clusters_survives_leader_changes_and_fails_over() {
    // Set up: two three-node clusters; KV v2 and a DR-operation batch token on the primary.
    let mut p = Cluster::form(3, Join::RetryJoin);
    let mut s = Cluster::form(3, Join::RetryJoin);
    let ids: Vec<String> = (0..3).map(common::cluster::node_id).collect();
    let pa = p.wait_active(30);
    p.wait_voters(pa, &ids, 30);
    let sa = s.wait_active(30);
    s.wait_voters(sa, &ids, 30);
    let root = p.root.clone();
    ok(p.nodes[pa]
        .req(Method::POST, "sys/mounts/secret", &root)
        .json(&json!({"type": "kv", "options": {"version": "2"}}))
        .send()
        .unwrap());
    ok(p.nodes[pa]
        .req(Method::PUT, "sys/policies/acl/dr-ops", &root)
        .json(&json!({"policy": "path \"sys/replication/dr/secondary/*\" { capabilities = [\"update\"] }"}))
        .send()
        .unwrap());
    let batch = ok(p.nodes[pa]
        .req(Method::POST, "auth/token/create", &root)
        .json(&json!({"policies": ["dr-ops"], "type": "batch", "no_parent": true, "ttl": "1h"}))
        .send()
        .unwrap())["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Act 1: enable DR, with the token minted through a standby and the bootstrap naming
    // another standby of the primary.
    let p_standbys = p.standbys(pa);
    ok(p.nodes[p_standbys[0]]
        .req(Method::PUT, "sys/replication/dr/primary/enable", &root)
        .send()
        .unwrap());
    let token = secondary_token(&p, p_standbys[0], &root, "dr-east");
    ok(s.nodes[sa]
        .req(Method::PUT, "sys/replication/dr/secondary/enable", &s.root)
        .json(&json!({
            "token": token,
            "primary_api_addr": p.nodes[p_standbys[1]].addr,
            "ca_file": p.nodes[0].certs.ca.to_str().unwrap(),
        }))
        .send()
        .unwrap());

    // Assert 1: the secondary's standbys seal themselves and open with the primary's keys;
    // the secondary streams and knows every node of the primary.
    for i in s.standbys(sa) {
        common::cluster::wait_for_node(&s, 30, "a secondary standby to seal itself", || {
            seal_status(&s.nodes[i])["sealed"] == true
        });
        let r = s.nodes[i].unseal(&p.keys);
        assert_eq!(
            r["sealed"], false,
            "unsealing a secondary standby with the primary's key: {r}"
        );
    }
    for i in 0..3 {
        s.wait_health(i, 472, 30);
    }
    assert_eq!(put(&p.nodes[pa], &root, "before", "x").status(), 200);
    let wal = status(&p.nodes[pa]).unwrap()["last_wal"].as_u64().unwrap();
    wait_streaming_past(&s, sa, wal - 1, "the secondary to stream the first write");
    let st = status(&s.nodes[sa]).unwrap();
    let mut known: Vec<String> =
        serde_json::from_value(st["known_primary_cluster_addrs"].clone()).unwrap();
    known.sort();
    let mut expected: Vec<String> = p
        .ports
        .iter()
        .map(|x| format!("https://{}", x.cluster_addr()))
        .collect();
    expected.sort();
    assert_eq!(known, expected, "every primary node is known: {st}");
    let diffs_before = counter(&s.nodes[sa], "vault_replication_merkle_diffs_total");
    let resumes_before = counter(&s.nodes[sa], "vault_replication_stream_resumes_total");
    assert_eq!(diffs_before, 1.0, "the bootstrap is the one merkle diff");

    // Act 2: under a writer, kill the primary's active node.
    let writer = Writer::start(&p, &root);
    common::wait_for(30, "writes before the kill", || writer.acked() >= 20);
    let wal = status(&s.nodes[sa]).unwrap()["last_remote_wal"]
        .as_u64()
        .unwrap();
    p.nodes[pa].kill9();
    let pa2 = wait_leader(&p, 30);
    let acked_at_election = writer.acked();
    common::wait_for(30, "writes on the new primary leader", || {
        writer.acked() > acked_at_election + 20
    });
    let wal_after = status(&p.nodes[pa2]).unwrap()["last_wal"].as_u64().unwrap();

    // Assert 2: the secondary streams from the new leader, resumed without a merkle diff.
    wait_streaming_past(
        &s,
        sa,
        wal_after.max(wal),
        "the secondary to stream from the new primary leader",
    );
    assert_eq!(
        counter(&s.nodes[sa], "vault_replication_merkle_diffs_total"),
        diffs_before,
        "a primary leader change must not cost a merkle diff"
    );
    assert!(counter(&s.nodes[sa], "vault_replication_stream_resumes_total") > resumes_before);

    // Act 3: kill the secondary's active node.
    let wal = status(&s.nodes[sa]).unwrap()["last_remote_wal"]
        .as_u64()
        .unwrap();
    s.nodes[sa].kill9();
    let sa2 = wait_leader(&s, 30);

    // Assert 3: its successor resumes from the applied position, again without a diff.
    wait_streaming_past(&s, sa2, wal + 10, "the new secondary leader to stream");
    assert_eq!(
        counter(&s.nodes[sa2], "vault_replication_merkle_diffs_total"),
        0.0
    );
    assert!(counter(&s.nodes[sa2], "vault_replication_stream_resumes_total") >= 1.0);

    // Act 4: planned failover: demote through a standby of the primary, wait for the final
    // WAL, promote through a standby of the secondary.
    let acked = writer.finish();
    let p_standby = p.standbys(pa2).into_iter().find(|i| *i != pa).unwrap();
    let final_wal = status(&p.nodes[pa2]).unwrap()["last_wal"].as_u64().unwrap();
    ok(p.nodes[p_standby]
        .req(Method::PUT, "sys/replication/dr/primary/demote", &root)
        .send()
        .unwrap());
    wait_streaming_past(
        &s,
        sa2,
        final_wal - 1,
        "the secondary to receive the final WAL",
    );
    let s_standby = s.standbys(sa2).into_iter().find(|i| *i != sa).unwrap();
    ok(s.nodes[s_standby]
        .client()
        .put(format!(
            "{}/v1/sys/replication/dr/secondary/promote",
            s.nodes[s_standby].addr
        ))
        .json(&json!({"dr_operation_token": batch}))
        .send()
        .unwrap());

    // Assert 4: every acknowledged write is on the promoted cluster, read through any node.
    common::wait_for(30, "the promoted cluster to serve", || {
        get(&s.nodes[s_standby], &root, "before").is_some()
    });
    assert!(
        acked.len() > 40,
        "the writer made progress: {} acked",
        acked.len()
    );
    for (n, key) in acked.iter().enumerate() {
        let via = &s.nodes[[sa2, s_standby][n % 2]];
        assert_eq!(
            get(via, &root, key).as_deref(),
            Some(key.as_str()),
            "acknowledged write {key} lost"
        );
    }

    // Act 5: the old primary follows the new one: update-primary sent to one of its standbys.
    let token = secondary_token(&s, s_standby, &root, "dr-back");
    ok(p.nodes[p_standby]
        .client()
        .put(format!(
            "{}/v1/sys/replication/dr/secondary/update-primary",
            p.nodes[p_standby].addr
        ))
        .json(&json!({
            "dr_operation_token": batch,
            "token": token,
            "primary_api_addr": s.nodes[s_standby].addr,
            "ca_file": s.nodes[0].certs.ca.to_str().unwrap(),
        }))
        .send()
        .unwrap());

    // Assert 5: it streams the new primary's writes.
    assert_eq!(
        put(&s.nodes[sa2], &root, "after-failover", "y").status(),
        200
    );
    let wal = status(&s.nodes[sa2]).unwrap()["last_wal"].as_u64().unwrap();
    wait_streaming_past(&p, pa2, wal - 1, "the old primary to follow the new one");
}

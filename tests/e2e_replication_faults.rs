//! End-to-end DR replication under faults: a secondary restart, an emergency failover with
//! `kill -9`, outages shorter and longer than the primary's WAL retention, plus the metrics
//! and the on-disk secrecy that operators rely on while all that happens.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Node, client_for, dir_contains, dr_status as status, ok, wait_for};
use reqwest::Method;
use serde_json::{Value, json};

/// Lets a DR secondary (which refuses authenticated metrics) be scraped.
const UNAUTHENTICATED_METRICS: &str =
    "  telemetry {\n    unauthenticated_metrics_access = true\n  }";

/// Starts A (primary, KV v2 at `secret/`) and B (its DR secondary `dr-east`, scrapeable
/// without a token); returns A's unseal keys and root token.
fn pair(a: &mut Node, b: &mut Node) -> (Vec<String>, String) {
    a.start();
    b.start();
    let (a_keys, a_root) = a.init_and_unseal(1, 1);
    let (_, b_root) = b.init_and_unseal(1, 1);
    ok(a.req(Method::POST, "sys/mounts/secret", &a_root)
        .json(&json!({"type": "kv", "options": {"version": "2"}}))
        .send()
        .unwrap());
    ok(
        a.req(Method::PUT, "sys/replication/dr/primary/enable", &a_root)
            .send()
            .unwrap(),
    );
    let token = ok(a
        .req(
            Method::PUT,
            "sys/replication/dr/primary/secondary-token",
            &a_root,
        )
        .json(&json!({"id": "dr-east"}))
        .send()
        .unwrap())["wrap_info"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    ok(b
        .req(Method::PUT, "sys/replication/dr/secondary/enable", &b_root)
        .json(&json!({"token": token, "primary_api_addr": a.addr, "ca_file": a.certs.ca.to_str().unwrap()}))
        .send()
        .unwrap());
    (a_keys, a_root)
}

fn put(node: &Node, token: &str, key: &str, value: &str) {
    ok(node
        .req(Method::PUT, &format!("secret/data/{key}"), token)
        .json(&json!({"data": {"v": value}}))
        .send()
        .unwrap());
}

fn get(node: &Node, token: &str, key: &str) -> Option<String> {
    let r = node
        .req(Method::GET, &format!("secret/data/{key}"), token)
        .send()
        .unwrap();
    if r.status() != 200 {
        return None;
    }
    let v: Value = r.json().unwrap();
    v["data"]["data"]["v"].as_str().map(str::to_string)
}

/// Prometheus text of a node: with `token` through the authenticated path, else anonymously.
fn scrape(node: &Node, token: Option<&str>) -> String {
    let mut req = node
        .client()
        .get(format!("{}/v1/sys/metrics?format=prometheus", node.addr));
    if let Some(t) = token {
        req = req.header("X-Vault-Token", t);
    }
    let r = req.send().unwrap();
    let status = r.status();
    let body = r.text().unwrap();
    assert!(status.is_success(), "metrics: {status}: {body}");
    body
}

/// Sum of the samples of series `name` (any labels); `None` when the series is absent.
fn metric(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value: f64 = rest.rsplit(' ').next().unwrap().parse().unwrap();
        found = Some(found.unwrap_or(0.0) + value);
    }
    found
}

/// Restarts a stopped secondary and unseals it with the primary's key shares.
fn restart_secondary(b: &mut Node, primary_keys: &[String]) {
    b.start();
    let seal: Value = ok(b
        .client()
        .get(format!("{}/v1/sys/seal-status", b.addr))
        .send()
        .unwrap());
    assert_eq!(
        seal["sealed"], true,
        "a restarted secondary comes up sealed"
    );
    let r = b.unseal(&primary_keys[..1]);
    assert_eq!(r["sealed"], false, "the primary's unseal key opens it: {r}");
}

#[test]
fn restarted_secondary_resumes_streaming_without_a_merkle_sync() {
    // Why: a routine restart of the DR site must neither lose its place nor pay a full
    // resync, and its disk must never hold a replicated secret in plaintext.
    let mut a = Node::new();
    let mut b = Node::with_config(UNAUTHENTICATED_METRICS, "");
    let (a_keys, root) = pair(&mut a, &mut b);
    let needle = "NEEDLE-replicated-3c9e1f";
    for i in 0..10 {
        put(&a, &root, &format!("before{i}"), &format!("{needle}-{i}"));
    }
    common::wait_caught_up(&a, &b, 90);

    // Act: stop the secondary, write while it is down, start it and unseal it.
    assert_eq!(
        b.stop(),
        Some(0),
        "SIGTERM shuts the secondary down cleanly"
    );
    for i in 0..20 {
        put(
            &a,
            &root,
            &format!("down{i}"),
            &format!("{needle}-down-{i}"),
        );
    }
    restart_secondary(&mut b, &a_keys);
    common::wait_caught_up(&a, &b, 90);

    // Assert: it resumed from its WAL position (no merkle diff ran in this process), status
    // names both sides' addresses, health carries the WAL index and the canary age.
    let metrics = scrape(&b, None);
    assert_eq!(
        metric(&metrics, "vault_replication_merkle_diff_seconds_count").unwrap_or(0.0),
        0.0,
        "a resume must not run a merkle diff"
    );
    assert_eq!(
        metric(&metrics, "vault_replication_merkle_sync_keys_total").unwrap_or(0.0),
        0.0
    );
    let s = status(&b);
    assert_eq!(s["primaries"][0]["api_address"], json!(a.addr));
    assert_eq!(s["primaries"][0]["connection_status"], "connected");
    wait_for(10, "the primary to list the secondary's addresses", || {
        let p = status(&a);
        p["secondaries"][0]["api_address"] == json!(b.addr)
            && p["secondaries"][0]["cluster_address"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
            && p["secondaries"][0]["connection_status"] == "connected"
    });
    let health: Value = b
        .client()
        .get(format!("{}/v1/sys/health", b.addr))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        health["last_wal"].as_u64().is_some_and(|w| w > 0),
        "{health}"
    );
    wait_for(10, "a canary to reach the secondary", || {
        let health: Value = b
            .client()
            .get(format!("{}/v1/sys/health", b.addr))
            .send()
            .unwrap()
            .json()
            .unwrap();
        health["replication_primary_canary_age_ms"].is_i64()
    });

    // Assert: nothing the primary replicated sits in plaintext in the secondary's data.
    b.stop();
    assert!(
        !dir_contains(&b.raft_dir(), needle.as_bytes()),
        "plaintext found in the secondary's data directory"
    );
}

/// One acknowledged write: its key and when the acknowledgement arrived.
struct Acked {
    key: String,
    at: Instant,
}

#[test]
fn emergency_failover_loses_at_most_the_writes_in_flight() {
    // Why: after `kill -9` of the primary the runbook promotes with force; what is lost must
    // be bounded by the replication lag at the moment of the kill, never more.
    let mut a = Node::new();
    let mut b = Node::new();
    let (_, root) = pair(&mut a, &mut b);
    put(&a, &root, "warmup", "w");
    common::wait_caught_up(&a, &b, 90);

    // Act: a writer hammers the primary while an observer samples the primary's last WAL
    // index; the primary is killed mid-stream.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let samples: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::default();
    let writer = {
        let (client, addr, root) = (client_for(&a.certs.ca), a.addr.clone(), root.clone());
        let (stop, acked) = (stop.clone(), acked.clone());
        std::thread::spawn(move || {
            for i in 0.. {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let key = format!("e{i}");
                let r = client
                    .put(format!("{addr}/v1/secret/data/{key}"))
                    .header("X-Vault-Token", &root)
                    .json(&json!({"data": {"v": key}}))
                    .send();
                match r {
                    Ok(r) if r.status().is_success() => acked.lock().unwrap().push(Acked {
                        key,
                        at: Instant::now(),
                    }),
                    _ => return,
                }
            }
        })
    };
    let observer = {
        let (client, addr) = (client_for(&a.certs.ca), a.addr.clone());
        let (stop, samples) = (stop.clone(), samples.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                // Taken before the request: every write acknowledged earlier is included.
                let at = Instant::now();
                let r = client
                    .get(format!("{addr}/v1/sys/replication/dr/status"))
                    .send()
                    .and_then(|r| r.json::<Value>());
                match r.ok().and_then(|v| v["data"]["last_wal"].as_u64()) {
                    Some(wal) => samples.lock().unwrap().push((at, wal)),
                    None => return,
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(3));
    a.kill9();
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    observer.join().unwrap();

    // The secondary notices the loss; an unforced promote is refused as not caught up.
    wait_for(20, "the secondary to lose the primary", || {
        status(&b)["state"] != "stream-wals"
    });
    let final_wal = status(&b)["last_remote_wal"].as_u64().unwrap();
    let r = b
        .req(Method::PUT, "sys/replication/dr/secondary/promote", &root)
        .json(&json!({}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().unwrap().contains(
        "replication is still catching up, try again later or provide the force argument"
    ));
    ok(
        b.req(Method::PUT, "sys/replication/dr/secondary/promote", &root)
            .json(&json!({"force": true}))
            .send()
            .unwrap(),
    );
    wait_for(30, "the promoted cluster to serve", || {
        get(&b, &root, "warmup").is_some()
    });

    // Assert: count the acknowledged writes missing on the new primary; the bound is every
    // write acknowledged after the last moment the primary's WAL was within what B holds.
    let acked = acked.lock().unwrap();
    let samples = samples.lock().unwrap();
    let missing = acked
        .iter()
        .filter(|w| get(&b, &root, &w.key).as_deref() != Some(w.key.as_str()))
        .count();
    let covered_until = samples
        .iter()
        .filter(|(_, wal)| *wal <= final_wal)
        .map(|(at, _)| *at)
        .max();
    let bound = acked
        .iter()
        .filter(|w| covered_until.is_none_or(|t| w.at > t))
        .count();
    let last_primary_wal = samples.last().map(|(_, w)| *w).unwrap_or(0);
    println!(
        "emergency failover: acknowledged={} missing={} bound={} secondary_last_remote_wal={} last_sampled_primary_wal={}",
        acked.len(),
        missing,
        bound,
        final_wal,
        last_primary_wal
    );
    assert!(acked.len() > 10, "the writer made progress before the kill");
    assert!(
        missing <= bound,
        "lost {missing} acknowledged writes, more than the {bound} in flight at the kill"
    );
    assert_eq!(status(&b)["mode"], "primary");
}

#[test]
fn outages_within_retention_resume_and_beyond_retention_merkle_sync() {
    // Why: a short outage must resume from the WAL, a long one (its position trimmed away)
    // must repair itself by merkle sync and converge; the metrics must show which happened.
    let mut a = Node::with_extra_config("replication {\n  wal_retention_entries = 40\n}");
    let mut b = Node::with_config(UNAUTHENTICATED_METRICS, "");
    let (a_keys, root) = pair(&mut a, &mut b);
    for i in 0..5 {
        put(&a, &root, &format!("start{i}"), "s");
    }
    common::wait_caught_up(&a, &b, 90);

    // Act 1: a short outage (5 writes, well inside 40 retained entries).
    b.stop();
    for i in 0..5 {
        put(&a, &root, &format!("short{i}"), "s");
    }
    restart_secondary(&mut b, &a_keys);
    common::wait_caught_up(&a, &b, 90);

    // Assert 1: resumed by streaming.
    let metrics = scrape(&b, None);
    assert_eq!(
        metric(&metrics, "vault_replication_merkle_diff_seconds_count").unwrap_or(0.0),
        0.0,
        "a short outage must not run a merkle diff"
    );

    // Act 2: a long outage (100 writes: the secondary's position leaves retention).
    b.stop();
    for i in 0..100 {
        put(&a, &root, &format!("long{i}"), &format!("v{i}"));
    }
    let p_metrics = scrape(&a, Some(&root));
    restart_secondary(&mut b, &a_keys);
    common::wait_caught_up(&a, &b, 90);

    // Assert 2: a merkle diff and sync ran, and the primary's retention stayed bounded.
    let retained = metric(&p_metrics, "vault_replication_wal_retained_entries").unwrap();
    assert!(retained > 0.0 && retained <= 40.0, "retained {retained}");
    assert!(metric(&p_metrics, "vault_replication_wal_retained_bytes").unwrap() > 0.0);
    assert!(metric(&p_metrics, "vault_replication_wal_last_wal").unwrap() >= 110.0);
    let s_metrics = scrape(&b, None);
    assert!(metric(&s_metrics, "vault_replication_merkle_diff_seconds_count").unwrap() >= 1.0);
    assert!(metric(&s_metrics, "vault_replication_merkle_sync_seconds_count").unwrap() >= 1.0);
    assert!(metric(&s_metrics, "vault_replication_merkle_sync_keys_total").unwrap() >= 100.0);

    // Assert 3 (metrics): streaming, lag and per-secondary series exist on the right side.
    wait_for(15, "streamed entries and a canary on the secondary", || {
        let m = scrape(&b, None);
        metric(&m, "vault_replication_stream_apply_seconds_count").is_some_and(|n| n > 0.0)
            && metric(&m, "vault_replication_stream_lag_seconds_count").is_some_and(|n| n > 0.0)
            && metric(&m, "vault_replication_stream_commit_lag_seconds_count")
                .is_some_and(|n| n > 0.0)
            && metric(
                &m,
                "vault_replication_stream_lag_seconds_bucket{le=\"0.002\"}",
            )
            .is_some()
            && metric(&m, "vault_replication_lag_ms").is_some()
            && metric(&m, "vault_replication_fsm_last_remote_wal").is_some_and(|w| w > 0.0)
    });
    let p_metrics = scrape(&a, Some(&root));
    assert_eq!(
        metric(
            &p_metrics,
            "vault_replication_secondary_connected{secondary_id=\"dr-east\"}"
        ),
        Some(1.0)
    );
    assert!(
        metric(&p_metrics, "vault_raft_storage_apply_lag_seconds_count").is_some_and(|n| n > 0.0),
        "the primary records proposal-to-apply per write"
    );
    assert!(
        metric(
            &p_metrics,
            "vault_replication_secondary_last_heartbeat_age_seconds"
        )
        .is_some()
    );
    assert!(metric(&p_metrics, "vault_replication_rpc_server_stream_wals_total").unwrap() > 0.0);

    // Assert 4: every key is there: promote the secondary and read them all.
    ok(
        b.req(Method::PUT, "sys/replication/dr/secondary/promote", &root)
            .json(&json!({"force": true}))
            .send()
            .unwrap(),
    );
    wait_for(30, "the promoted cluster to serve", || {
        get(&b, &root, "start0").is_some()
    });
    for i in 0..5 {
        assert_eq!(get(&b, &root, &format!("short{i}")).as_deref(), Some("s"));
    }
    for i in 0..100 {
        assert_eq!(
            get(&b, &root, &format!("long{i}")),
            Some(format!("v{i}")),
            "long{i} missing after the merkle sync"
        );
    }
}

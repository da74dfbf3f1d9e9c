//! `strongroom-bench ha`: a three-node Raft cluster, its durable write rate and its failover.
//!
//! The cluster is formed exactly as an operator would form it (HCL with fixed `api_addr` /
//! `cluster_addr`, `retry_join` with `leader_ca_cert_file`, init + unseal on the first node,
//! unseal with the same key on the others, autopilot promoting them to voters). Two figures:
//!
//! 1. Durable writes/s and p50/p99 at 1/16/64 closed-loop clients against the active node,
//!    beside a one-node server measured in the same run with the same harness
//!    ([`crate::kv::phase`]) and payload.
//! 2. Leader failover: a writer hits the active node; it is `kill -9`ed; from the kill, every
//!    surviving node's API is sent a new write attempt every [`PROBE_EVERY`] (attempts overlap,
//!    so one hung request never hides an earlier acceptance elsewhere) until one is accepted,
//!    by the new leader or by a standby forwarding to it. The killed node is restarted and
//!    unsealed between rounds so every round starts from three healthy voters. At the end every
//!    acknowledged key is read back through the active node.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::cluster::{Env, Node};
use crate::dr::MOUNT;
use crate::kv::FSYNC_BATCH;
use crate::raft::RaftCluster;
use crate::stats::{ms, pct_ms};

/// How often each survivor is sent a new write attempt after the kill.
const PROBE_EVERY: Duration = Duration::from_millis(5);
/// Attempts in flight per survivor at most (a hung forward must not pile up without bound).
const PROBE_IN_FLIGHT: usize = 64;
/// A single attempt's client timeout.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest accepted failover before the round is declared failed.
const FAILOVER_LIMIT: Duration = Duration::from_secs(30);

pub async fn run(env: &Env, seconds: u64, rounds: usize, multiplier: Option<u64>) -> Result<()> {
    let mult = multiplier.map_or("default (0 -> 5)".to_string(), |m| m.to_string());
    // One node, same harness, same payload, same run.
    let mut single_rows = Vec::new();
    {
        let single = crate::dr::standalone(env, "ha-single").await?;
        for clients in [1usize, 16, 64] {
            single_rows.push(write_row(&single, clients, seconds).await?);
        }
    }

    let t = Instant::now();
    let mut c = form(env, multiplier).await?;
    let formed = t.elapsed();
    let active = c.active().await?;
    let mut cluster_rows = Vec::new();
    for clients in [1usize, 16, 64] {
        cluster_rows.push(write_row(&c.nodes[active], clients, seconds).await?);
    }

    println!(
        "## ha: 3-node raft cluster (performance_multiplier {mult}), formed in {:.1} s; \
         durable KV writes, {seconds}s per phase, all on one machine",
        formed.as_secs_f64()
    );
    println!(
        "{:<22} {:>7} {:>10} {:>9} {:>9} {:>14}",
        "setup", "clients", "writes/s", "p50 ms", "p99 ms", "entries/fsync"
    );
    for (label, rows) in [
        ("1 node", &single_rows),
        ("3 nodes, active node", &cluster_rows),
    ] {
        for r in rows.iter() {
            println!(
                "{:<22} {:>7} {:>10.0} {:>9.2} {:>9.2} {:>14.2}",
                label, r.clients, r.rate, r.p50, r.p99, r.per_fsync
            );
        }
    }
    let ratio = cluster_rows[2].rate / single_rows[2].rate.max(1.0);
    println!(
        "  3-node / 1-node at 64 clients: {ratio:.2} (goal >= 0.50: {})",
        if ratio >= 0.5 { "met" } else { "MISSED" }
    );

    // Failover rounds.
    println!(
        "## ha failover: writer on the active node, kill -9 it, first write accepted by any survivor; \
         {rounds} rounds"
    );
    println!(
        "{:<6} {:<8} {:>11} {:>12} {:<10} {:<10} {:>13} {:>10} {:>12}",
        "round",
        "killed",
        "elected ms",
        "failover ms",
        "accepted",
        "new active",
        "rejected/err",
        "acked",
        "rejoin ms"
    );
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let mut times = Vec::new();
    for round in 1..=rounds {
        let r = failover_round(&mut c, round, &acked).await?;
        let new_active = c.active().await?;
        let t = Instant::now();
        c.nodes[r.killed].restart().await?;
        c.wait_healthy(Duration::from_secs(60)).await?;
        let rejoin = t.elapsed();
        println!(
            "{:<6} {:<8} {:>11} {:>12.1} {:<10} {:<10} {:>13} {:>10} {:>12.0}",
            round,
            c.nodes[r.killed].name,
            r.elected
                .map_or("-".to_string(), |e| format!("{:.1}", ms(e))),
            ms(r.failover),
            format!(
                "{}{}",
                c.nodes[r.accepted_by].name,
                if r.accepted_by == new_active { "" } else { "*" }
            ),
            c.nodes[new_active].name,
            r.errors,
            acked.lock().await.len(),
            ms(rejoin)
        );
        times.push(r.failover);
    }
    times.sort();
    let (p50, max) = (
        pct_ms(&times, 0.5),
        ms(*times.last().unwrap_or(&Duration::ZERO)),
    );
    println!(
        "  failover p50 {p50:.0} ms (goal < 1500: {}), max {max:.0} ms (goal < 3000: {})",
        if p50 < 1500.0 { "met" } else { "MISSED" },
        if max < 3000.0 { "met" } else { "MISSED" }
    );
    println!(
        "  elected = kill -> a survivor's sys/leader says is_self; failover = kill -> first \
         accepted write; accepted = node whose API accepted the first write (* = a standby forwarding to the \
         new active); rejected/err = attempts answered non-2xx or failed before it; rejoin = \
         restart + unseal of the killed node until autopilot reports all 3 healthy"
    );

    // Nothing acknowledged may be lost.
    let acked = acked.lock().await.clone();
    let active = c.active().await?;
    let lost = read_back(&c.nodes[active], &acked).await?;
    println!(
        "  read back {} acknowledged writes through {}: {} missing or wrong",
        acked.len(),
        c.nodes[active].name,
        lost.len()
    );
    for (k, why) in lost.iter().take(10) {
        println!("    {k}: {why}");
    }
    if !lost.is_empty() {
        bail!("{} acknowledged writes were lost", lost.len());
    }
    Ok(())
}

struct Row {
    clients: usize,
    rate: f64,
    p50: f64,
    p99: f64,
    per_fsync: f64,
}

async fn write_row(node: &Node, clients: usize, seconds: u64) -> Result<Row> {
    let before = node.histogram(FSYNC_BATCH).await?;
    let (rate, lat) = crate::kv::phase(node, &node.root, clients, seconds, true).await?;
    let after = node.histogram(FSYNC_BATCH).await?;
    let batches = after.1 - before.1;
    Ok(Row {
        clients,
        rate,
        p50: pct_ms(&lat, 0.5),
        p99: pct_ms(&lat, 0.99),
        per_fsync: if batches > 0.0 {
            (after.0 - before.0) / batches
        } else {
            0.0
        },
    })
}

struct Round {
    killed: usize,
    accepted_by: usize,
    elected: Option<Duration>,
    failover: Duration,
    errors: u64,
}

/// The benchmark's cluster: three voters with a KV mount, autopilot healthy.
async fn form(env: &Env, multiplier: Option<u64>) -> Result<RaftCluster> {
    let c = RaftCluster::form(env, "node", 3, multiplier).await?;
    c.nodes[0]
        .call(
            Method::POST,
            &format!("sys/mounts/{MOUNT}"),
            Some(json!({"type": "kv"})),
        )
        .await?;
    c.wait_healthy(Duration::from_secs(60)).await?;
    Ok(c)
}

async fn failover_round(
    c: &mut RaftCluster,
    round: usize,
    acked: &Arc<Mutex<Vec<(String, String)>>>,
) -> Result<Round> {
    let a = c.active().await?;
    let stop = Arc::new(AtomicBool::new(false));
    // The steady writer on the active node.
    let writer = {
        let n = &c.nodes[a];
        let (client, addr, token) = (n.client.clone(), n.addr.clone(), n.root.clone());
        let (stop, acked) = (stop.clone(), acked.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let k = format!("ha/r{round}/w{i}");
                let v = format!("{k}@{addr}");
                let r = client
                    .put(format!("{addr}/v1/{MOUNT}/{k}"))
                    .header("X-Vault-Token", &token)
                    .timeout(ATTEMPT_TIMEOUT)
                    .json(&json!({ "v": v }))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => acked.lock().await.push((k, v)),
                    _ => break, // the node is gone
                }
                i += 1;
            }
            i
        })
    };
    // Let it run long enough to be mid-stream when the kill lands.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = acked.lock().await.len();
    if before == 0 {
        bail!("round {round}: the writer got no write accepted before the kill");
    }

    let t0 = Instant::now();
    c.nodes[a].kill();
    let first: Arc<Mutex<Option<(Duration, usize)>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // When a survivor first reports itself leader in `sys/leader` (the election alone).
    let elected = {
        let survivors: Vec<(reqwest::Client, String)> = c
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != a)
            .map(|(_, n)| (n.client.clone(), n.url("sys/leader")))
            .collect();
        tokio::spawn(async move {
            while t0.elapsed() < FAILOVER_LIMIT {
                for (client, url) in &survivors {
                    if let Ok(r) = client.get(url).timeout(ATTEMPT_TIMEOUT).send().await
                        && let Ok(v) = r.json::<Value>().await
                        && v["is_self"] == json!(true)
                    {
                        return Some(t0.elapsed());
                    }
                }
                tokio::time::sleep(PROBE_EVERY).await;
            }
            None
        })
    };
    let kinds: Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>> = Arc::default();
    let mut probes = Vec::new();
    for (s, n) in c.nodes.iter().enumerate() {
        if s == a {
            continue;
        }
        let (client, addr, token) = (n.client.clone(), n.addr.clone(), n.root.clone());
        let (first, done, errors, acked, kinds) = (
            first.clone(),
            done.clone(),
            errors.clone(),
            acked.clone(),
            kinds.clone(),
        );
        probes.push(tokio::spawn(async move {
            let sem = Arc::new(tokio::sync::Semaphore::new(PROBE_IN_FLIGHT));
            let mut attempts = Vec::new();
            let mut i = 0u64;
            while !done.load(Ordering::Relaxed) && t0.elapsed() < FAILOVER_LIMIT {
                if let Ok(permit) = sem.clone().try_acquire_owned() {
                    let k = format!("ha/r{round}/p{s}-{i}");
                    let v = format!("{k}@{addr}");
                    let req = client
                        .put(format!("{addr}/v1/{MOUNT}/{k}"))
                        .header("X-Vault-Token", &token)
                        .timeout(ATTEMPT_TIMEOUT)
                        .json(&json!({ "v": v }));
                    let (first, done, errors, acked, kinds) = (
                        first.clone(),
                        done.clone(),
                        errors.clone(),
                        acked.clone(),
                        kinds.clone(),
                    );
                    attempts.push(tokio::spawn(async move {
                        let _permit = permit;
                        match req.send().await {
                            Ok(r) if r.status().is_success() => {
                                let at = t0.elapsed();
                                acked.lock().await.push((k, v));
                                let mut f = first.lock().await;
                                if f.is_none_or(|(t, _)| at < t) {
                                    *f = Some((at, s));
                                }
                                done.store(true, Ordering::Relaxed);
                            }
                            other => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                let kind = match other {
                                    Ok(r) => {
                                        let st = r.status().as_u16();
                                        let body = r.text().await.unwrap_or_default();
                                        format!(
                                            "{st} {}",
                                            body.chars().take(90).collect::<String>()
                                        )
                                    }
                                    Err(e) if e.is_timeout() => "timeout".to_string(),
                                    Err(e) if e.is_connect() => "connect".to_string(),
                                    Err(_) => "other transport error".to_string(),
                                };
                                if let Ok(mut k) = kinds.lock() {
                                    *k.entry(format!("{}: {kind}", s + 1)).or_default() += 1;
                                }
                            }
                        }
                    }));
                    i += 1;
                }
                tokio::time::sleep(PROBE_EVERY).await;
            }
            // Every attempt still in flight must finish (or time out) before the
            // acknowledged list is complete.
            for at in attempts {
                let _ = at.await;
            }
        }));
    }
    for p in probes {
        p.await?;
    }
    stop.store(true, Ordering::Relaxed);
    writer.await?;
    let (failover, accepted_by) = first.lock().await.with_context(|| {
        format!("round {round}: no survivor accepted a write within {FAILOVER_LIMIT:?}")
    })?;
    let elected = elected.await?;
    if std::env::var_os("STRONGROOM_BENCH_VERBOSE").is_some()
        && let Ok(k) = kinds.lock()
    {
        for (kind, n) in k.iter() {
            eprintln!("  round {round} node{kind} x{n}");
        }
    }
    Ok(Round {
        killed: a,
        accepted_by,
        elected,
        failover,
        errors: errors.load(Ordering::Relaxed),
    })
}

/// Reads every acknowledged key back; returns those missing or holding another value.
async fn read_back(node: &Node, acked: &[(String, String)]) -> Result<Vec<(String, String)>> {
    let chunks: Vec<Vec<(String, String)>> = acked
        .chunks(acked.len().div_ceil(16).max(1))
        .map(<[_]>::to_vec)
        .collect();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let (client, addr, token) = (node.client.clone(), node.addr.clone(), node.root.clone());
        tasks.push(tokio::spawn(async move {
            let mut bad = Vec::new();
            for (k, v) in chunk {
                let r = client
                    .get(format!("{addr}/v1/{MOUNT}/{k}"))
                    .header("X-Vault-Token", &token)
                    .send()
                    .await?;
                let status = r.status();
                if !status.is_success() {
                    bad.push((k, format!("answered {status}")));
                    continue;
                }
                let body: Value = r.json().await?;
                if body["data"]["v"].as_str() != Some(v.as_str()) {
                    bad.push((k, format!("holds {} instead of {v}", body["data"]["v"])));
                }
            }
            anyhow::Ok(bad)
        }));
    }
    let mut bad = Vec::new();
    for t in tasks {
        bad.extend(t.await??);
    }
    Ok(bad)
}

/// Keys the read benchmark reads (written once, before the phases).
pub const READ_KEYS: usize = 256;

/// `strongroom-bench ha-reads`: KV read throughput of one node alone, and of a three-node
/// cluster whose standbys serve reads themselves, with each client pinned to one node in
/// turn (client `c` reads through node `c % 3`), at 1, 16 and 64 closed-loop clients.
pub async fn reads(env: &Env, seconds: u64) -> Result<()> {
    let single = crate::dr::standalone(env, "reads-single").await?;
    seed(&single).await?;
    let mut single_rows = Vec::new();
    for clients in [1usize, 16, 64] {
        single_rows.push(read_phase(&[(&single, &single.root)], clients, seconds).await?);
    }
    drop(single);

    let c = form(env, None).await?;
    let active = c.active().await?;
    seed(&c.nodes[active]).await?;
    // Every standby must hold the seeded keys and serve reads itself before the clock runs.
    for (i, n) in c.nodes.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(30);
        while i != active && local_reads(n).await? == 0.0 {
            let _ = n
                .client
                .get(n.url(&format!("{MOUNT}/read-0")))
                .header("X-Vault-Token", &n.root)
                .send()
                .await?;
            if Instant::now() > deadline {
                bail!("{} never served a read itself", n.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let nodes: Vec<&Node> = c.nodes.iter().collect();
    let readers: Vec<(&Node, &str)> = c.nodes.iter().map(|n| (n, n.root.as_str())).collect();
    let local_before: Vec<f64> = local_counts(&nodes).await?;
    let mut cluster_rows = Vec::new();
    for clients in [1usize, 16, 64] {
        cluster_rows.push(read_phase(&readers, clients, seconds).await?);
    }
    let local_after: Vec<f64> = local_counts(&nodes).await?;

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "## ha reads: KV v1 reads of {READ_KEYS} keys, {seconds}s per phase; every server and the \
         client share this machine's {cores} cores (no pinning, no taskset)"
    );
    println!(
        "{:<28} {:>7} {:>10} {:>9} {:>9}",
        "setup", "clients", "reads/s", "p50 ms", "p99 ms"
    );
    for (label, rows) in [
        ("1 node", &single_rows),
        ("3 nodes, reads on all three", &cluster_rows),
    ] {
        for r in rows.iter() {
            println!(
                "{:<28} {:>7} {:>10.0} {:>9.2} {:>9.2}",
                label, r.clients, r.rate, r.p50, r.p99
            );
        }
    }
    let served: Vec<String> = c
        .nodes
        .iter()
        .zip(local_after.iter().zip(&local_before))
        .map(|(n, (a, b))| format!("{} {:.0}", n.name, a - b))
        .collect();
    println!(
        "  reads each node served itself as a standby (its strongroom_standby_reads_total, \
         outcome local): {}; the active node serves its share directly",
        served.join(", ")
    );
    Ok(())
}

/// [`local_reads`] of each node.
async fn local_counts(nodes: &[&Node]) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(nodes.len());
    for n in nodes {
        out.push(local_reads(n).await?);
    }
    Ok(out)
}

/// Reads `n` served itself as a standby, by its own metrics.
async fn local_reads(n: &Node) -> Result<f64> {
    let text = n
        .client
        .get(n.url("sys/metrics?format=prometheus"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("strongroom_standby_reads_total{"))
        .filter(|l| l.contains("outcome=\"local\"") && l.contains("class=\"logical\""))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum())
}

/// Writes the [`READ_KEYS`] keys [`read_phase`] reads, with `node`'s root token.
pub async fn seed(node: &Node) -> Result<()> {
    for k in 0..READ_KEYS {
        node.call(
            Method::PUT,
            &format!("{MOUNT}/read-{k}"),
            Some(json!({"v": k.to_string()})),
        )
        .await?;
    }
    Ok(())
}

/// Closed-loop readers for `seconds`; client `c` reads through `nodes[c % nodes.len()]`, with
/// the token paired with that node.
pub async fn read_phase(nodes: &[(&Node, &str)], clients: usize, seconds: u64) -> Result<ReadRow> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (n, token) = nodes[c % nodes.len()];
        let (client, addr, token) = (n.client.clone(), n.addr.clone(), token.to_string());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = c;
            while Instant::now() < deadline {
                let url = format!("{addr}/v1/{MOUNT}/read-{}", i % READ_KEYS);
                let t = Instant::now();
                let r = client
                    .get(url)
                    .header("X-Vault-Token", &token)
                    .send()
                    .await?;
                if !r.status().is_success() {
                    bail!("read failed during the benchmark: {}", r.status());
                }
                lat.push(t.elapsed());
                i += 7;
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    Ok(ReadRow {
        clients,
        rate: all.len() as f64 / elapsed,
        p50: pct_ms(&all, 0.5),
        p99: pct_ms(&all, 0.99),
    })
}

pub struct ReadRow {
    pub clients: usize,
    pub rate: f64,
    pub p50: f64,
    pub p99: f64,
}

//! `strongroom-bench kv`: durable KV write and read throughput and latency through HTTPS.
//!
//! Issue 2 promises that every acknowledged write is fsync'd and that group commit makes
//! throughput grow with concurrency; this measures both claims: requests per second, p50/p99
//! latency at 1, 16 and 64 closed-loop clients, and the mean number of Raft entries per fsync
//! taken from the server's own `vault_raft_storage_fsync_batch_size` histogram.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::json;

use crate::cluster::{Env, Node};
use crate::stats::pct_ms;

/// Raft entries written per fsync, as the server records them.
pub const FSYNC_BATCH: &str = "vault_raft_storage_fsync_batch_size";

pub async fn run(env: &Env, seconds: u64) -> Result<()> {
    let node = crate::dr::standalone(env, "kv").await?;
    println!("## kv: raft storage on disk, HTTPS on loopback, {seconds}s per phase");
    println!(
        "{:<6} {:>7} {:>10} {:>9} {:>9} {:>14}",
        "op", "clients", "ops/s", "p50 ms", "p99 ms", "entries/fsync"
    );
    for clients in [1usize, 16, 64] {
        let before = node.histogram(FSYNC_BATCH).await?;
        let (rate, lat) = phase(&node, &node.root, clients, seconds, true).await?;
        let after = node.histogram(FSYNC_BATCH).await?;
        let batches = after.1 - before.1;
        let per_fsync = if batches > 0.0 {
            (after.0 - before.0) / batches
        } else {
            0.0
        };
        println!(
            "{:<6} {:>7} {:>10.0} {:>9.2} {:>9.2} {:>14.2}",
            "write",
            clients,
            rate,
            pct_ms(&lat, 0.5),
            pct_ms(&lat, 0.99),
            per_fsync
        );
        let (rate, lat) = phase(&node, &node.root, clients, seconds, false).await?;
        println!(
            "{:<6} {:>7} {:>10.0} {:>9.2} {:>9.2} {:>14}",
            "read",
            clients,
            rate,
            pct_ms(&lat, 0.5),
            pct_ms(&lat, 0.99),
            "-"
        );
    }
    Ok(())
}

/// One timed closed-loop phase on `node` with `token`: (ops/s, sorted latencies).
pub async fn phase(
    node: &Node,
    token: &str,
    clients: usize,
    seconds: u64,
    write: bool,
) -> Result<(f64, Vec<Duration>)> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, addr, token) = (node.client.clone(), node.addr.clone(), token.to_string());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let url = format!("{addr}/v1/{}/bench-{c}-{}", crate::dr::MOUNT, i % 1000);
                let t = Instant::now();
                let r = if write {
                    client
                        .put(url)
                        .header("X-Vault-Token", &token)
                        .json(&json!({"v": i.to_string()}))
                        .send()
                        .await?
                } else {
                    client
                        .get(url)
                        .header("X-Vault-Token", &token)
                        .send()
                        .await?
                };
                if !(r.status().is_success() || (!write && r.status() == 404)) {
                    bail!("request failed during the benchmark: {}", r.status());
                }
                lat.push(t.elapsed());
                i += 1;
            }
            Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    Ok((all.len() as f64 / elapsed, all))
}

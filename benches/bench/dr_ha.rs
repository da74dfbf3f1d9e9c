//! `strongroom-bench dr-ha`: DR replication between two 3-node Raft clusters.
//!
//! Both clusters are formed as an operator forms them ([`RaftCluster`]); the secondary is
//! bootstrapped naming a *standby* of the primary as `primary_api_addr` (it forwards the
//! unwrap; the stream is redirected to the active node), and the secondary's standbys, sealed
//! by the enable, are unsealed with the primary's key. Two figures:
//!
//! 1. Lag at fixed open-loop write rates on the primary's active node, measured exactly as
//!    `replication` measures it on single nodes ([`crate::lag::phase`]): the secondary
//!    active node's per-entry commit-to-apply histogram and the sampled ack-to-apply bounds.
//! 2. Leader changes of the primary: `kill -9` of its active node, and `sys/step-down`.
//!    Writes are started every [`WRITE_EVERY`] through the primary's other nodes (standbys
//!    forward; attempts overlap so a hung forward never delays the next one). From the fault,
//!    the secondary's active node is polled until it reports `stream-wals` with an applied
//!    WAL index beyond the one it held at the fault: an entry only the new active node can
//!    have sent. The secondary's resume, redirect and merkle-diff counters are read around
//!    each round. A killed node is restarted and unsealed between rounds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use reqwest::Method;
use serde_json::json;
use tokio::task::JoinSet;

use crate::cluster::{Env, Node};
use crate::dr;
use crate::lag::{self, Load};
use crate::raft::{RaftCluster, is_self, wait_seal_status};
use crate::stats::{ms, pct_ms};

const NODES: usize = 3;
/// How often a new write attempt is started on the primary during a leader change.
const WRITE_EVERY: Duration = Duration::from_millis(5);
/// Write attempts in flight at most during a leader change.
const WRITES_IN_FLIGHT: usize = 64;
/// How often the secondary's status is read after the fault.
const POLL_EVERY: Duration = Duration::from_millis(2);
/// Longest wait for the secondary to stream again before the round fails.
const RESUME_LIMIT: Duration = Duration::from_secs(30);

const RESUMES: &str = "vault_replication_stream_resumes_total";
const REDIRECTS: &str = "vault_replication_redirects_total";
const DIFFS: &str = "vault_replication_merkle_diffs_total";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    Kill,
    StepDown,
}

impl Change {
    fn label(self) -> &'static str {
        match self {
            Change::Kill => "kill -9",
            Change::StepDown => "step-down",
        }
    }
}

/// The secondary's counters (resumes, redirects, merkle diffs) on one node.
async fn counters(n: &Node) -> Result<[f64; 3]> {
    Ok([
        n.metric(RESUMES).await?,
        n.metric(REDIRECTS).await?,
        n.metric(DIFFS).await?,
    ])
}

pub async fn run(
    env: &Env,
    seconds: u64,
    rates: &[u32],
    poll: Duration,
    rounds: usize,
) -> Result<()> {
    let t = Instant::now();
    let (pri, sec, named) = pair(env).await?;
    let formed = t.elapsed();
    let (pa, sa) = (pri.active().await?, sec.active().await?);

    println!(
        "## dr-ha: DR between two 3-node raft clusters (6 servers on one machine), set up in {:.1} s, \
         bootstrapped naming the primary standby {}; lag {seconds}s per rate, status polled every {} ms",
        formed.as_secs_f64(),
        pri.nodes[named].name,
        poll.as_secs_f64() * 1000.0
    );
    lag::short_header("load");
    for &rate in rates {
        let r = lag::phase(
            env,
            &pri.nodes[pa],
            &[(&sec.nodes[sa], dr::Kind::Dr)],
            Load::Rate(rate),
            seconds,
            poll,
        )
        .await?;
        lag::short_row(&format!("{rate}/s"), &r, &r.secondaries[0]);
    }
    println!(
        "  ack = client write latency on the primary's active node; cm = the secondary active node's per-entry \
         histogram from commit on the primary to apply on the secondary (cm<=2ms = share within 2 ms); lag/lo = \
         sampled upper/lower bounds of ack-to-apply (as in `replication`); drain = load end to the last write \
         applied on the secondary; apply ms = mean time of one apply call there"
    );

    leader_changes(pri, sec, rounds).await
}

/// Forms both clusters and bootstraps the secondary naming a standby of the primary; returns
/// the clusters and the standby named.
async fn pair(env: &Env) -> Result<(RaftCluster, RaftCluster, usize)> {
    let pri = RaftCluster::form(env, "pri", NODES, None).await?;
    let a = &pri.nodes[0];
    a.call(
        Method::POST,
        &format!("sys/mounts/{}", dr::MOUNT),
        Some(json!({"type": "kv"})),
    )
    .await?;
    dr::enable_primary(a, dr::Kind::Dr).await?;
    let mut sec = RaftCluster::form(env, "sec", NODES, None).await?;
    let (pa, sa) = (pri.active().await?, sec.active().await?);
    let named = (pa + 1) % NODES;
    let standby_addr = pri.nodes[named].addr.clone();
    dr::enable_secondary_via(
        env,
        dr::Kind::Dr,
        &pri.nodes[pa],
        &standby_addr,
        &mut sec.nodes[sa],
        "dr-ha",
    )
    .await?;
    // The enable replaced the secondary's keys with the primary's: its standbys seal.
    for i in (0..NODES).filter(|&i| i != sa) {
        let n = &mut sec.nodes[i];
        n.root = pri.nodes[pa].root.clone();
        n.unseal_key = pri.nodes[pa].unseal_key.clone();
        wait_seal_status(n, "sealed", true, Duration::from_secs(60)).await?;
        let key = n.unseal_key.clone();
        n.call(Method::PUT, "sys/unseal", Some(json!({ "key": key })))
            .await?;
    }
    caught_up(&pri, &sec).await?;
    Ok((pri, sec, named))
}

/// Until the secondary's active node has applied the primary active node's last WAL entry
/// with equal merkle roots.
async fn caught_up(pri: &RaftCluster, sec: &RaftCluster) -> Result<()> {
    let (pa, sa) = (pri.active().await?, sec.active().await?);
    dr::wait_caught_up(
        dr::Kind::Dr,
        &pri.nodes[pa],
        &sec.nodes[sa],
        Duration::from_millis(10),
        Duration::from_secs(120),
    )
    .await?;
    Ok(())
}

struct Round {
    change: Change,
    old: String,
    new: String,
    elected: Option<Duration>,
    /// Fault to the first entry beyond the secondary's position at the election.
    first_entry: Duration,
    /// Fault to the stream resumed over a new connection, in `stream-wals`.
    streaming: Duration,
    /// Counter deltas on the secondary's active node: resumes, redirects, merkle diffs.
    counts: [f64; 3],
}

async fn leader_changes(mut pri: RaftCluster, sec: RaftCluster, rounds: usize) -> Result<()> {
    println!(
        "## dr-ha leader change: primary active node killed (kill -9) or stepped down (sys/step-down) \
         under writes through its standbys; {rounds} rounds each"
    );
    println!(
        "{:<6} {:<10} {:<8} {:<8} {:>11} {:>9} {:>11} {:>8} {:>10} {:>6}",
        "round",
        "change",
        "old",
        "new",
        "elected ms",
        "entry ms",
        "resumed ms",
        "resumes",
        "redirects",
        "diffs"
    );
    let mut times: Vec<(Change, Duration)> = Vec::new();
    let mut diffs = 0.0;
    for round in 1..=rounds {
        for change in [Change::Kill, Change::StepDown] {
            let r = leader_change(&mut pri, &sec, change, round).await?;
            println!(
                "{:<6} {:<10} {:<8} {:<8} {:>11} {:>9.0} {:>11.0} {:>8} {:>10} {:>6}",
                round,
                r.change.label(),
                r.old,
                r.new,
                r.elected
                    .map_or("-".to_string(), |e| format!("{:.0}", ms(e))),
                ms(r.first_entry),
                ms(r.streaming),
                r.counts[0],
                r.counts[1],
                r.counts[2]
            );
            diffs += r.counts[2];
            times.push((change, r.streaming));
        }
    }
    for change in [Change::Kill, Change::StepDown] {
        let mut t: Vec<Duration> = times
            .iter()
            .filter(|(c, _)| *c == change)
            .map(|(_, d)| *d)
            .collect();
        t.sort();
        let max = ms(t.last().copied().unwrap_or_default());
        println!(
            "  {}: fault -> secondary resumed streaming over a new connection p50 {:.0} ms, max {max:.0} ms (goal < 3000: {})",
            change.label(),
            pct_ms(&t, 0.5),
            if max < 3000.0 { "met" } else { "MISSED" }
        );
    }
    caught_up(&pri, &sec).await?;
    println!(
        "  merkle diffs on the secondary over all rounds: {diffs}; the secondary then caught up with equal merkle roots"
    );
    println!(
        "  elected = fault -> another primary node's sys/leader says is_self; entry = fault -> the secondary's \
         active node has applied an entry beyond what it held at the election (from whichever primary node sent it); \
         resumed = fault -> its resume counter moved (a new connection resumed from its WAL position) and it reports \
         stream-wals; resumes/redirects/diffs = \
         the secondary's counters over the round"
    );
    Ok(())
}

/// One leader change of the primary under writes; the killed node is restarted afterwards.
async fn leader_change(
    pri: &mut RaftCluster,
    sec: &RaftCluster,
    change: Change,
    round: usize,
) -> Result<Round> {
    let (pa, sa) = (pri.active().await?, sec.active().await?);
    let s = &sec.nodes[sa];
    let before = counters(s).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_through(
        pri.nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != pa)
            .map(|(_, n)| (n.client.clone(), n.addr.clone(), n.root.clone()))
            .collect(),
        format!("dr-ha/r{round}-{}", change.label().replace(' ', "")),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let t0 = Instant::now();
    match change {
        Change::Kill => pri.nodes[pa].kill(),
        Change::StepDown => {
            pri.nodes[pa]
                .call(Method::PUT, "sys/step-down", None)
                .await?;
        }
    }
    let elected = {
        let others: Vec<(reqwest::Client, String)> = pri
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != pa)
            .map(|(_, n)| (n.client.clone(), n.url("sys/leader")))
            .collect();
        tokio::spawn(async move {
            while t0.elapsed() < RESUME_LIMIT {
                for (client, url) in &others {
                    if is_self(client, url, Duration::from_secs(1)).await {
                        return Some(t0.elapsed());
                    }
                }
                tokio::time::sleep(POLL_EVERY).await;
            }
            None
        })
    };
    // Entries beyond the secondary's position once the successor is elected can only come
    // from it: whatever the old active node had sent is applied by then.
    let elected = elected.await?;
    let baseline = s.dr_status().await?["last_remote_wal"]
        .as_u64()
        .context("the secondary reports no last_remote_wal")?;
    // Two moments: the first new entry applied (from whichever node sent it), and the stream
    // resumed over a new connection (the resume counter moved), which is when the secondary
    // follows the new active node.
    let mut first_entry = None;
    let streaming = loop {
        if first_entry.is_none()
            && let Ok(st) = s.dr_status().await
            && st["state"] == "stream-wals"
            && st["last_remote_wal"].as_u64().is_some_and(|w| w > baseline)
        {
            first_entry = Some(t0.elapsed());
        }
        if first_entry.is_some()
            && s.metric(RESUMES).await.is_ok_and(|r| r > before[0])
            && let Ok(st) = s.dr_status().await
            && st["state"] == "stream-wals"
        {
            break t0.elapsed();
        }
        if t0.elapsed() > RESUME_LIMIT {
            bail!(
                "round {round} ({}): the secondary did not stream again within {RESUME_LIMIT:?}",
                change.label()
            );
        }
        tokio::time::sleep(POLL_EVERY).await;
    };
    stop.store(true, Ordering::Relaxed);
    writer.await?;
    // Let the new connection settle before reading the counters.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = counters(s).await?;
    if change == Change::Kill {
        pri.nodes[pa].restart().await?;
    }
    pri.wait_healthy(Duration::from_secs(60)).await?;
    let new = pri.active().await?;
    Ok(Round {
        change,
        old: pri.nodes[pa].name.clone(),
        new: pri.nodes[new].name.clone(),
        elected,
        first_entry: first_entry.unwrap_or(streaming),
        streaming,
        counts: [0, 1, 2].map(|i| after[i] - before[i]),
    })
}

/// Starts a write every [`WRITE_EVERY`] through `targets` in turn until `stop`; answers are
/// ignored (only the entries they create matter).
async fn write_through(
    targets: Vec<(reqwest::Client, String, String)>,
    prefix: String,
    stop: Arc<AtomicBool>,
) {
    let mut set = JoinSet::new();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        while set.len() >= WRITES_IN_FLIGHT {
            let _ = set.join_next().await;
        }
        let (client, addr, token) = targets[i % targets.len()].clone();
        let url = format!("{addr}/v1/{}/{prefix}/{i}", dr::MOUNT);
        set.spawn(async move {
            let _ = client
                .put(url)
                .header("X-Vault-Token", token)
                .timeout(Duration::from_secs(2))
                .json(&json!({"v": "x"}))
                .send()
                .await;
        });
        i += 1;
        tokio::time::sleep(WRITE_EVERY).await;
    }
    while set.join_next().await.is_some() {}
}

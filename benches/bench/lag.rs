//! `strongroom-bench replication`: DR replication lag under a steady write load.
//!
//! Issue 5 sets a lag goal at fixed write rates, so the load here is open-loop at a fixed
//! offered rate (a write is started on schedule whether or not earlier ones finished), plus
//! closed-loop with 64 clients for the maximum sustained rate. How lag is measured without
//! knowing each write's WAL index is in [`crate::sampling`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::task::JoinSet;

use crate::cluster::{Env, Node};
use crate::dr::{self, Kind};
use crate::sampling::{Write, bracket, leader_wal, per_index, sample};
use crate::stats::{Buckets, bucket_delta, bucket_quantile_ms, bucket_share_within, ms, pct_ms};

/// How often the sampler polls both clusters by default.
pub const DEFAULT_POLL: Duration = Duration::from_millis(1);
/// Most writes in flight at once under an open-loop schedule.
const MAX_IN_FLIGHT: usize = 512;

#[derive(Clone, Copy)]
pub enum Load {
    /// Open loop: this many writes started per second.
    Rate(u32),
    /// Closed loop: this many clients writing back to back (the maximum sustained rate).
    Clients(usize),
}

/// Lag figures of one phase: the load on the primary, and one [`SecondaryLag`] per secondary
/// measured, in the order given to [`phase`] (all from the same writes).
pub struct LagReport {
    pub writes_per_s: f64,
    pub ack: Vec<Duration>,
    /// The primary's histogram of the phase's entries from proposal to its own apply (the
    /// commit a client's write waits for).
    pub primary_stamped: Buckets,
    pub secondaries: Vec<SecondaryLag>,
}

/// What one secondary saw of a phase's writes.
pub struct SecondaryLag {
    pub kind: Kind,
    pub hi: Vec<Duration>,
    pub lo: Vec<Duration>,
    pub unresolved: usize,
    pub poll_ms: f64,
    pub drain: Duration,
    /// Per-index commit-to-apply upper bounds (see [`per_index`]).
    pub idx: Vec<Duration>,
    /// Median round trip of the secondary's status request, ms (part of the upper bound's slack).
    pub status_rtt_ms: f64,
    /// Raft entries per fsync on the secondary during the phase.
    pub sec_per_fsync: f64,
    /// Mean time the secondary's runner spent in one apply call (one batch of streamed WAL
    /// entries), ms.
    pub apply_ms: f64,
    /// Mean WAL entries per apply call on the secondary.
    pub wal_per_apply: f64,
    /// The secondary's own per-entry lag histogram over the phase: from the primary's proposal
    /// of each entry to its apply here (one clock, as both run on this machine).
    pub stamped: Buckets,
    /// The secondary's histogram from each entry's commit on the primary (just before the
    /// client's ack) to its apply: the lag as a client sees it.
    pub committed: Buckets,
}

const PRIMARY_STAMPED: &str = "vault_raft_storage_apply_lag_seconds";

/// A secondary's histograms read before and after a phase.
struct Readings {
    fsync: (f64, f64),
    apply: (f64, f64),
    stamped: Buckets,
    committed: Buckets,
}

impl Readings {
    async fn take(s: &Node, kind: Kind) -> Result<Readings> {
        Ok(Readings {
            fsync: s.histogram(crate::kv::FSYNC_BATCH).await?,
            apply: s.histogram(kind.apply_metric()).await?,
            stamped: s.buckets(kind.stamped_metric()).await?,
            committed: s.buckets(kind.committed_metric()).await?,
        })
    }
}

fn delta(before: (f64, f64), after: (f64, f64)) -> f64 {
    let n = after.1 - before.1;
    if n > 0.0 {
        (after.0 - before.0) / n
    } else {
        0.0
    }
}

/// Runs every load in turn on one pair; `poll` is the sampling interval (zero: back to back).
pub async fn run(env: &Env, seconds: u64, loads: &[Load], poll: Duration) -> Result<()> {
    let p = dr::primary(env, "lag-primary").await?;
    let mut s = dr::spare(env, "lag-secondary").await?;
    dr::enable_secondary(env, &p, &mut s, "lag-dr").await?;
    dr::wait_caught_up(
        dr::Kind::Dr,
        &p,
        &s,
        Duration::from_millis(10),
        Duration::from_secs(60),
    )
    .await?;
    println!(
        "## replication: lag from primary ack to secondary apply, {seconds}s per load, status polled every {}ms (0 = back to back)",
        poll.as_secs_f64() * 1000.0
    );
    println!(
        "{:<12} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10} {:>9} {:>9}",
        "load",
        "writes/s",
        "cm p50",
        "cm p99",
        "cm<=2ms",
        "st p50",
        "st p99",
        "st<=2ms",
        "pc p50",
        "pc p99",
        "ack p50",
        "lag p50",
        "lag p99",
        "lag max",
        "lo p50",
        "lo p99",
        "idx p50",
        "idx p99",
        "poll ms",
        "rtt ms",
        "drain ms",
        "sec e/fsync",
        "apply ms",
        "wal/apply"
    );
    for &load in loads {
        let r = phase(env, &p, &[(&s, Kind::Dr)], load, seconds, poll).await?;
        let x = &r.secondaries[0];
        let label = match load {
            Load::Rate(n) => format!("{n}/s"),
            Load::Clients(c) => format!("max ({c} cl)"),
        };
        println!(
            "{:<12} {:>9.0} {:>8.2} {:>8.2} {:>7.1}% {:>8.2} {:>8.2} {:>7.1}% {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.0} {:>10.2} {:>9.3} {:>9.1}",
            label,
            r.writes_per_s,
            bucket_quantile_ms(&x.committed, 0.5),
            bucket_quantile_ms(&x.committed, 0.99),
            bucket_share_within(&x.committed, 0.002).unwrap_or(0.0) * 100.0,
            bucket_quantile_ms(&x.stamped, 0.5),
            bucket_quantile_ms(&x.stamped, 0.99),
            bucket_share_within(&x.stamped, 0.002).unwrap_or(0.0) * 100.0,
            bucket_quantile_ms(&r.primary_stamped, 0.5),
            bucket_quantile_ms(&r.primary_stamped, 0.99),
            pct_ms(&r.ack, 0.5),
            pct_ms(&x.hi, 0.5),
            pct_ms(&x.hi, 0.99),
            pct_ms(&x.hi, 1.0),
            pct_ms(&x.lo, 0.5),
            pct_ms(&x.lo, 0.99),
            pct_ms(&x.idx, 0.5),
            pct_ms(&x.idx, 0.99),
            x.poll_ms,
            x.status_rtt_ms,
            ms(x.drain),
            x.sec_per_fsync,
            x.apply_ms,
            x.wal_per_apply
        );
        unresolved_note(x);
    }
    println!(
        "  cm = the secondary's per-entry histogram from the entry's commit on the primary (its apply there, just before the client's ack) to its apply on the secondary (ms): the lag as a client sees it; cm<=2ms = share within 2 ms"
    );
    println!(
        "  st = the secondary's per-entry histogram, from the primary's proposal of an entry to its apply on the secondary (ms; includes the primary's own commit, so it bounds ack-to-apply from above); st<=2ms = share of entries applied within 2 ms of their proposal; pc = the primary's own histogram of the same entries, proposal to its apply (what a write waits for before its ack)"
    );
    println!(
        "  lag = upper bound (ms); lo = lower bound; idx = upper bound per WAL index (commit to apply, no write-to-index mapping); poll = mean sampling interval; rtt = median dr/status round trip on the secondary; drain = time for the secondary to apply the last write after the load stopped"
    );
    println!(
        "  sec e/fsync = raft entries per fsync on the secondary; apply ms = mean time of one apply call on the secondary; wal/apply = WAL entries per apply call"
    );
    Ok(())
}

/// One load phase on primary `p`, measured on every secondary in `secondaries` (each follows
/// `p` by the stream of its kind) from the same writes, each with its own sampler.
pub async fn phase(
    env: &Env,
    p: &Node,
    secondaries: &[(&Node, Kind)],
    load: Load,
    seconds: u64,
    poll: Duration,
) -> Result<LagReport> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut samplers = Vec::with_capacity(secondaries.len());
    let mut before = Vec::with_capacity(secondaries.len());
    for &(s, kind) in secondaries {
        let latest_remote = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(sample(
            env.fresh_client()?,
            p.url("sys/leader"),
            env.fresh_client()?,
            s.url(&kind.status_path()),
            stop.clone(),
            latest_remote.clone(),
            poll,
        ));
        samplers.push((task, latest_remote));
        before.push(Readings::take(s, kind).await?);
    }
    let primary_stamped0 = p.buckets(PRIMARY_STAMPED).await?;
    // Let the samplers take a few readings before the first write.
    tokio::time::sleep(Duration::from_millis(50)).await;

    let started = Instant::now();
    let writes = match load {
        Load::Rate(r) => open_loop(p, r, seconds).await?,
        Load::Clients(c) => closed_loop(p, c, seconds).await?,
    };
    let elapsed = started.elapsed();
    let load_end = Instant::now();
    let final_wal = leader_wal(&p.client, &p.url("sys/leader")).await?;
    let drain_deadline = Instant::now() + Duration::from_secs(30);
    let mut drains: Vec<Option<Duration>> = vec![None; samplers.len()];
    while drains.iter().any(Option::is_none) && Instant::now() <= drain_deadline {
        for ((task, latest), d) in samplers.iter().zip(drains.iter_mut()) {
            if d.is_none() && (latest.load(Ordering::Relaxed) >= final_wal || task.is_finished()) {
                *d = Some(load_end.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let primary_stamped = bucket_delta(&primary_stamped0, &p.buckets(PRIMARY_STAMPED).await?);

    let mut ack: Vec<Duration> = writes.iter().map(|w| w.acked - w.sent).collect();
    ack.sort();
    let mut out = Vec::with_capacity(secondaries.len());
    for ((&(s, kind), (task, _)), (b, drain)) in secondaries
        .iter()
        .zip(samplers)
        .zip(before.iter().zip(drains))
    {
        let (ps, ss) = task.await.context("a sampler task failed")??;
        let a = Readings::take(s, kind).await?;
        let applies = a.apply.1 - b.apply.1;
        let wal_per_apply = match (ss.first(), ss.last()) {
            (Some(x), Some(y)) if applies > 0.0 => (y.wal - x.wal) as f64 / applies,
            _ => 0.0,
        };
        let (mut hi, mut lo, unresolved) = bracket(&writes, &ps, &ss);
        hi.sort();
        lo.sort();
        let poll_ms = match (ss.first(), ss.last()) {
            (Some(x), Some(y)) if ss.len() > 1 => ms(y.sent - x.sent) / (ss.len() - 1) as f64,
            _ => 0.0,
        };
        let mut idx = per_index(&ps, &ss);
        idx.sort();
        let mut rtts: Vec<Duration> = ss.iter().map(|x| x.recv - x.sent).collect();
        rtts.sort();
        out.push(SecondaryLag {
            kind,
            status_rtt_ms: pct_ms(&rtts, 0.5),
            idx,
            hi,
            lo,
            unresolved,
            poll_ms,
            drain: drain.unwrap_or_else(|| load_end.elapsed()),
            sec_per_fsync: delta(b.fsync, a.fsync),
            apply_ms: delta(b.apply, a.apply) * 1000.0,
            wal_per_apply,
            stamped: bucket_delta(&b.stamped, &a.stamped),
            committed: bucket_delta(&b.committed, &a.committed),
        });
    }
    Ok(LagReport {
        writes_per_s: writes.len() as f64 / elapsed.as_secs_f64(),
        ack,
        primary_stamped,
        secondaries: out,
    })
}

/// Header of the short lag table shared by `dr-ha` and `pr`, its first column titled `first`.
pub fn short_header(first: &str) {
    println!(
        "{:<12} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
        first,
        "writes/s",
        "ack p50",
        "cm p50",
        "cm p99",
        "cm<=2ms",
        "lag p50",
        "lag p99",
        "lag max",
        "lo p50",
        "lo p99",
        "drain ms",
        "apply ms"
    );
}

/// One row of [`short_header`]'s table: the phase `r` as secondary `x` saw it.
pub fn short_row(label: &str, r: &LagReport, x: &SecondaryLag) {
    println!(
        "{:<12} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>7.1}% {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9.0} {:>9.3}",
        label,
        r.writes_per_s,
        pct_ms(&r.ack, 0.5),
        bucket_quantile_ms(&x.committed, 0.5),
        bucket_quantile_ms(&x.committed, 0.99),
        bucket_share_within(&x.committed, 0.002).unwrap_or(0.0) * 100.0,
        pct_ms(&x.hi, 0.5),
        pct_ms(&x.hi, 0.99),
        pct_ms(&x.hi, 1.0),
        pct_ms(&x.lo, 0.5),
        pct_ms(&x.lo, 0.99),
        ms(x.drain),
        x.apply_ms
    );
    unresolved_note(x);
}

fn unresolved_note(x: &SecondaryLag) {
    if x.unresolved > 0 {
        println!(
            "  ({} writes could not be matched to a {} secondary apply)",
            x.unresolved,
            x.kind.label()
        );
    }
}

async fn put(client: &reqwest::Client, url: &str, token: &str, i: u64) -> Result<Write> {
    let sent = Instant::now();
    let r = client
        .put(url)
        .header("X-Vault-Token", token)
        .json(&dr::secret_value(i))
        .send()
        .await?;
    let acked = Instant::now();
    if !r.status().is_success() {
        bail!("a benchmark write answered {}", r.status());
    }
    Ok(Write { sent, acked })
}

/// Starts `rate` writes per second on schedule for `seconds`.
async fn open_loop(p: &Node, rate: u32, seconds: u64) -> Result<Vec<Write>> {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = u64::from(rate) * seconds;
    let mut set = JoinSet::new();
    let mut writes = Vec::with_capacity(total as usize);
    for i in 0..total {
        tick.tick().await;
        while set.len() >= MAX_IN_FLIGHT {
            if let Some(w) = set.join_next().await {
                writes.push(w??);
            }
        }
        let (client, url, token) = (
            p.client.clone(),
            p.url(&format!("{}/lag/{:04}", dr::MOUNT, i % 1000)),
            p.root.clone(),
        );
        set.spawn(async move { put(&client, &url, &token, i).await });
    }
    while let Some(w) = set.join_next().await {
        writes.push(w??);
    }
    Ok(writes)
}

/// `clients` writers back to back for `seconds`.
async fn closed_loop(p: &Node, clients: usize, seconds: u64) -> Result<Vec<Write>> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut set = JoinSet::new();
    for c in 0..clients {
        let (client, addr, token) = (p.client.clone(), p.addr.clone(), p.root.clone());
        set.spawn(async move {
            let mut out = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let url = format!("{addr}/v1/{}/lag-max/{c:02}-{:03}", dr::MOUNT, i % 100);
                out.push(put(&client, &url, &token, i).await?);
                i += 1;
            }
            Ok::<_, anyhow::Error>(out)
        });
    }
    let mut writes = Vec::new();
    while let Some(w) = set.join_next().await {
        writes.extend(w??);
    }
    Ok(writes)
}

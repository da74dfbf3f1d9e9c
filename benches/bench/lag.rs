//! `strongroom-bench replication`: DR replication lag under a steady write load.
//!
//! Lag of a write = time from the primary's acknowledgement to the secondary having applied
//! it. The API does not tell a client the WAL index of its write, so a dedicated sampler task
//! polls, every millisecond and over its own connections, the primary's `sys/leader`
//! `last_wal` and the secondary's `sys/replication/dr/status` `last_remote_wal`, timestamping
//! each request's send and receive. Each write is then bracketed from both sides:
//!
//! * upper bound: the first primary sample *sent after* the ack reads a `last_wal` that
//!   includes the write (WAL index and data commit in one transaction, before the ack); the
//!   first secondary sample showing that index, taken at its *receive* time, is no earlier than
//!   the apply. Overestimates by up to one poll interval, one status round trip, and any later
//!   writes folded into that `last_wal`.
//! * lower bound: the last primary sample *received before the write was sent* bounds the
//!   write's index from below (+1); the apply of that index happened after the *send* of the
//!   last secondary sample that did not show it yet.
//!
//! The true lag of every write lies between the two; the table leads with the upper bound.
//! Writers are open-loop at a fixed offered rate (a write is started on schedule whether or
//! not earlier ones finished), and closed-loop with 64 clients for the maximum sustained rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tokio::task::JoinSet;

use crate::cluster::{Env, Node};
use crate::dr;
use crate::stats::{ms, pct_ms};

/// How often the sampler polls both clusters.
const POLL: Duration = Duration::from_millis(1);
/// Most writes in flight at once under an open-loop schedule.
const MAX_IN_FLIGHT: usize = 512;

#[derive(Clone, Copy)]
pub enum Load {
    /// Open loop: this many writes started per second.
    Rate(u32),
    /// Closed loop: this many clients writing back to back (the maximum sustained rate).
    Clients(usize),
}

/// One status reading: when its request was sent and its answer received, and the WAL index.
#[derive(Clone, Copy)]
struct Sample {
    sent: Instant,
    recv: Instant,
    wal: u64,
}

/// One acknowledged write.
#[derive(Clone, Copy)]
struct Write {
    sent: Instant,
    acked: Instant,
}

/// Lag figures of one phase.
pub struct LagReport {
    pub writes_per_s: f64,
    pub ack: Vec<Duration>,
    pub hi: Vec<Duration>,
    pub lo: Vec<Duration>,
    pub unresolved: usize,
    pub poll_ms: f64,
    pub drain: Duration,
    /// Raft entries per fsync on the secondary during the phase.
    pub sec_per_fsync: f64,
    /// Mean time the secondary's runner spent applying one streamed WAL entry, ms.
    pub apply_ms: f64,
}

const APPLY: &str = "vault_replication_stream_apply_seconds";

fn delta(before: (f64, f64), after: (f64, f64)) -> f64 {
    let n = after.1 - before.1;
    if n > 0.0 {
        (after.0 - before.0) / n
    } else {
        0.0
    }
}

pub async fn run(env: &Env, seconds: u64, loads: &[Load]) -> Result<()> {
    let p = dr::primary(env, "lag-primary").await?;
    let mut s = dr::spare(env, "lag-secondary").await?;
    dr::enable_secondary(env, &p, &mut s, "lag-dr").await?;
    dr::wait_caught_up(&p, &s, Duration::from_millis(10), Duration::from_secs(60)).await?;
    println!(
        "## replication: lag from primary ack to secondary apply, {seconds}s per load, status polled every {}ms",
        POLL.as_millis()
    );
    println!(
        "{:<12} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10} {:>9}",
        "load",
        "writes/s",
        "ack p50",
        "lag p50",
        "lag p99",
        "lag max",
        "lo p50",
        "lo p99",
        "poll ms",
        "drain ms",
        "sec e/fsync",
        "apply ms"
    );
    for &load in loads {
        let r = phase(env, &p, &s, load, seconds).await?;
        let label = match load {
            Load::Rate(n) => format!("{n}/s"),
            Load::Clients(c) => format!("max ({c} cl)"),
        };
        println!(
            "{:<12} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.0} {:>10.2} {:>9.3}",
            label,
            r.writes_per_s,
            pct_ms(&r.ack, 0.5),
            pct_ms(&r.hi, 0.5),
            pct_ms(&r.hi, 0.99),
            pct_ms(&r.hi, 1.0),
            pct_ms(&r.lo, 0.5),
            pct_ms(&r.lo, 0.99),
            r.poll_ms,
            ms(r.drain),
            r.sec_per_fsync,
            r.apply_ms
        );
        if r.unresolved > 0 {
            println!(
                "  ({} writes could not be matched to a secondary apply)",
                r.unresolved
            );
        }
    }
    println!(
        "  lag = upper bound (ms); lo = lower bound; drain = time for the secondary to apply the last write after the load stopped"
    );
    println!(
        "  sec e/fsync = raft entries per fsync on the secondary; apply ms = mean time the secondary spends applying one streamed WAL entry"
    );
    Ok(())
}

/// One load phase with its own sampler.
pub async fn phase(env: &Env, p: &Node, s: &Node, load: Load, seconds: u64) -> Result<LagReport> {
    let stop = Arc::new(AtomicBool::new(false));
    let latest_remote = Arc::new(AtomicU64::new(0));
    let sampler = tokio::spawn(sample(
        env.fresh_client()?,
        p.url("sys/leader"),
        env.fresh_client()?,
        s.url("sys/replication/dr/status"),
        stop.clone(),
        latest_remote.clone(),
    ));
    let fsync0 = s.histogram(crate::kv::FSYNC_BATCH).await?;
    let apply0 = s.histogram(APPLY).await?;
    // Let the sampler take a few readings before the first write.
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
    while latest_remote.load(Ordering::Relaxed) < final_wal {
        if Instant::now() > drain_deadline || sampler.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let drain = load_end.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (ps, ss) = sampler.await.context("the sampler task failed")??;
    let sec_per_fsync = delta(fsync0, s.histogram(crate::kv::FSYNC_BATCH).await?);
    let apply_ms = delta(apply0, s.histogram(APPLY).await?) * 1000.0;

    let mut ack: Vec<Duration> = writes.iter().map(|w| w.acked - w.sent).collect();
    ack.sort();
    let (mut hi, mut lo, unresolved) = bracket(&writes, &ps, &ss);
    hi.sort();
    lo.sort();
    let poll_ms = match (ss.first(), ss.last()) {
        (Some(a), Some(b)) if ss.len() > 1 => ms(b.sent - a.sent) / (ss.len() - 1) as f64,
        _ => 0.0,
    };
    Ok(LagReport {
        writes_per_s: writes.len() as f64 / elapsed.as_secs_f64(),
        ack,
        hi,
        lo,
        unresolved,
        poll_ms,
        drain,
        sec_per_fsync,
        apply_ms,
    })
}

/// Upper and lower lag bounds of every write (see the module docs), and how many writes could
/// not be matched (no sample after the ack, or the secondary never showed the index).
fn bracket(
    writes: &[Write],
    ps: &[Sample],
    ss: &[Sample],
) -> (Vec<Duration>, Vec<Duration>, usize) {
    let (mut hi, mut lo, mut unresolved) = (Vec::new(), Vec::new(), 0);
    for w in writes {
        let j = ps.partition_point(|x| x.sent < w.acked);
        let Some(upper_wal) = ps.get(j).map(|x| x.wal) else {
            unresolved += 1;
            continue;
        };
        let k = ss.partition_point(|x| x.wal < upper_wal);
        let Some(seen) = ss.get(k) else {
            unresolved += 1;
            continue;
        };
        hi.push(seen.recv.saturating_duration_since(w.acked));
        let before = ps.partition_point(|x| x.recv <= w.sent);
        let lower_wal = match before {
            0 => 1,
            n => ps[n - 1].wal + 1,
        };
        let k = ss.partition_point(|x| x.wal < lower_wal);
        lo.push(match k {
            0 => Duration::ZERO,
            k => ss[k - 1].sent.saturating_duration_since(w.acked),
        });
    }
    (hi, lo, unresolved)
}

async fn leader_wal(client: &reqwest::Client, url: &str) -> Result<u64> {
    let v: Value = client
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    v["last_wal"].as_u64().context("sys/leader has no last_wal")
}

async fn remote_wal(client: &reqwest::Client, url: &str) -> Result<u64> {
    let v: Value = client
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    v["data"]["last_remote_wal"]
        .as_u64()
        .context("dr/status has no last_remote_wal")
}

/// Polls both clusters every [`POLL`] until `stop`; publishes the newest secondary reading.
async fn sample(
    pc: reqwest::Client,
    purl: String,
    sc: reqwest::Client,
    surl: String,
    stop: Arc<AtomicBool>,
    latest_remote: Arc<AtomicU64>,
) -> Result<(Vec<Sample>, Vec<Sample>)> {
    let (mut ps, mut ss) = (Vec::new(), Vec::new());
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let sent = Instant::now();
        let (pw, sw) = tokio::join!(
            async { leader_wal(&pc, &purl).await.map(|w| (w, Instant::now())) },
            async { remote_wal(&sc, &surl).await.map(|w| (w, Instant::now())) }
        );
        let (pw, precv) = pw?;
        let (sw, srecv) = sw?;
        ps.push(Sample {
            sent,
            recv: precv,
            wal: pw,
        });
        ss.push(Sample {
            sent,
            recv: srecv,
            wal: sw,
        });
        latest_remote.store(sw, Ordering::Relaxed);
    }
    Ok((ps, ss))
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

#[cfg(test)]
mod tests {
    use super::*;

    // Why: the bracketing is the whole measurement; a bound on the wrong side would make the
    // published lag optimistic.
    #[test]
    fn bracket_bounds_the_true_lag() {
        // Set up: one write sent at t0+0, acked at t0+2ms, with index 5. The primary read 4
        // before the send and 6 (a later write folded in) after the ack; the secondary shows 4
        // until a sample sent at +4ms and received at +5ms shows 6.
        let t0 = Instant::now();
        let at = |m: u64| t0 + Duration::from_millis(m);
        let s = |sent: u64, recv: u64, wal: u64| Sample {
            sent: at(sent),
            recv: at(recv),
            wal,
        };
        let ps = vec![s(0, 0, 4), s(3, 3, 6)];
        let ss = vec![s(0, 1, 4), s(3, 3, 4), s(4, 5, 6)];
        let w = Write {
            sent: at(0),
            acked: at(2),
        };

        // Act.
        let (hi, lo, unresolved) = bracket(&[w], &ps, &ss);

        // Assert: upper bound = +5ms - +2ms; lower bound = last "not yet" send (+3ms) - ack.
        assert_eq!(unresolved, 0);
        assert_eq!(hi, vec![Duration::from_millis(3)]);
        assert_eq!(lo, vec![Duration::from_millis(1)]);
    }

    // Why: a write the secondary never applied must be reported, not silently dropped as 0.
    #[test]
    fn unapplied_writes_are_counted() {
        let t0 = Instant::now();
        let at = |m: u64| t0 + Duration::from_millis(m);
        let ps = vec![Sample {
            sent: at(3),
            recv: at(3),
            wal: 9,
        }];
        let ss = vec![Sample {
            sent: at(3),
            recv: at(4),
            wal: 8,
        }];
        let w = Write {
            sent: at(0),
            acked: at(1),
        };
        let (hi, _, unresolved) = bracket(&[w], &ps, &ss);
        assert!(hi.is_empty());
        assert_eq!(unresolved, 1);
    }
}

//! `strongroom-bench pr`: performance replication (PR) beside DR, on one primary.
//!
//! One primary is both a DR and a performance primary, with one secondary of each kind, set
//! up with the operator's runbook calls ([`dr::enable_secondary_via`]). A userpass user with an
//! allow-all policy is made on the primary; its mount, user and policy are shared state, so
//! the same login works on the PR secondary, which issues tokens of its own. Three figures:
//!
//! 1. Lag at fixed open-loop write rates on the primary, measured on both secondaries from
//!    the same writes exactly as `replication` measures DR lag ([`lag::phase`]): each
//!    secondary's per-entry commit-to-apply histogram (DR:
//!    `vault_replication_stream_commit_lag_seconds`, PR:
//!    `vault_replication_performance_stream_commit_lag_seconds`) and the sampled ack-to-apply
//!    bounds, each secondary polled by its own sampler.
//! 2. KV read throughput of the primary alone, and of the primary and the PR secondary
//!    together (client `c` reads through node `c % 2`, as `ha-reads` does,
//!    [`ha::read_phase`]), each node read with a token of its own cluster. Every process
//!    shares the machine's cores (no pinning); the CPU each used over a phase is printed.
//! 3. Forwarded write latency: the same closed-loop KV PUT ([`kv::phase`]) sent to the PR
//!    secondary (forwarded to the primary over the cluster port and answered once the write's
//!    WAL index has streamed back) and to the primary directly, beside one round trip.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::cluster::{Env, Node, machine_cpu_seconds, proc_cpu_seconds};
use crate::dr::{self, Kind};
use crate::ha::{self, READ_KEYS, ReadRow};
use crate::kv;
use crate::lag::{self, Load};
use crate::stats::{bucket_quantile_ms, ms, pct_ms};

const USER: &str = "bench";
const PASSWORD: &str = "bench-password";
/// The PR secondary's id on the primary.
const PR_ID: &str = "pr-perf";
/// Closed-loop clients of the forwarded-write phases.
const WRITE_CLIENTS: [usize; 2] = [1, 16];
/// Sequential pings of the primary's API for the round-trip reference.
const PINGS: usize = 200;

const FORWARD_SECONDS: &str = "vault_replication_performance_forward_seconds";
const FORWARD_ERRORS: &str = "vault_replication_performance_forward_errors_total";
const FORWARDS: &str = "vault_replication_performance_forward_total";
const WAL_WAIT_TIMEOUTS: &str = "vault_replication_performance_wal_wait_timeouts_total";
const REQUESTS: &str = "vault_core_handle_request_total";

/// The three servers and a userpass token valid on each cluster.
struct Set {
    primary: Node,
    dr: Node,
    /// Its `root` is the userpass login token issued there (see [`dr::enable_secondary_via`]).
    pr: Node,
    /// A userpass login token issued by the primary (same policy as the PR secondary's).
    primary_user: String,
}

pub async fn run(
    env: &Env,
    seconds: u64,
    rates: &[u32],
    poll: Duration,
    read_clients: &[usize],
) -> Result<()> {
    let t = Instant::now();
    let set = form(env).await?;
    let formed = t.elapsed();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());

    // 1. Lag, both secondaries from the same writes.
    println!(
        "## pr: performance replication beside DR: one primary with a DR secondary and a PR secondary \
         (3 servers on one machine, {cores} cores shared, no pinning), set up in {:.1} s; lag {seconds}s \
         per rate, each secondary polled every {} ms by its own sampler",
        formed.as_secs_f64(),
        poll.as_secs_f64() * 1000.0
    );
    lag::short_header("load stream");
    let mut lags = Vec::new();
    for &rate in rates {
        let r = lag::phase(
            env,
            &set.primary,
            &[(&set.dr, Kind::Dr), (&set.pr, Kind::Performance)],
            Load::Rate(rate),
            seconds,
            poll,
        )
        .await?;
        for x in &r.secondaries {
            lag::short_row(&format!("{rate}/s {}", x.kind.label()), &r, x);
        }
        lags.push((rate, r));
    }
    for (rate, r) in &lags {
        let q = |kind: Kind, p: f64| {
            r.secondaries
                .iter()
                .find(|x| x.kind == kind)
                .map_or(0.0, |x| bucket_quantile_ms(&x.committed, p))
        };
        let (pr50, pr99, dr50, dr99) = (
            q(Kind::Performance, 0.5),
            q(Kind::Performance, 0.99),
            q(Kind::Dr, 0.5),
            q(Kind::Dr, 0.99),
        );
        println!(
            "  {rate}/s: PR cm p50 {pr50:.2} / p99 {pr99:.2} ms vs DR {dr50:.2} / {dr99:.2} ms: \
             p99 {:+.2} ms (goal PR <= DR: {})",
            pr99 - dr99,
            if pr99 <= dr99 { "met" } else { "MISSED" }
        );
    }
    println!(
        "  cm = each secondary's per-entry histogram from the entry's commit on the primary to its apply there \
         (buckets every 0.25 ms below 2 ms, interpolated); cm<=2ms = share within 2 ms; ack = the primary's write \
         latency; lag/lo = sampled upper/lower bounds of ack-to-apply (as in `replication`); drain = load end to \
         the last write applied on that secondary; apply ms = mean time of one apply call there"
    );

    // 2. Reads.
    reads(&set, seconds, read_clients, cores).await?;

    // 3. Forwarded writes.
    let pr_lag_p50 = lags.first().and_then(|(rate, r)| {
        r.secondaries
            .iter()
            .find(|x| x.kind == Kind::Performance)
            .map(|x| (*rate, bucket_quantile_ms(&x.committed, 0.5)))
    });
    writes(env, &set, seconds, pr_lag_p50).await?;
    println!("  (pr run: {:.0} s in all)", t.elapsed().as_secs_f64());
    Ok(())
}

/// The primary (DR and PR primary, KV mount, userpass user, the read keys) and both
/// secondaries, caught up; the user logged in on the primary and on the PR secondary.
async fn form(env: &Env) -> Result<Set> {
    let primary = dr::standalone(env, "pr-primary").await?;
    dr::add_user(&primary, USER, PASSWORD).await?;
    dr::enable_primary(&primary, Kind::Dr).await?;
    dr::enable_primary(&primary, Kind::Performance).await?;
    ha::seed(&primary).await?;
    let mut d = dr::spare(env, "pr-dr").await?;
    dr::enable_secondary(env, &primary, &mut d, "pr-dr").await?;
    let mut pr = dr::spare(env, "pr-secondary").await?;
    dr::enable_secondary_via(
        env,
        Kind::Performance,
        &primary,
        &primary.addr,
        &mut pr,
        PR_ID,
    )
    .await?;
    let (every, limit) = (Duration::from_millis(10), Duration::from_secs(60));
    dr::wait_caught_up(Kind::Dr, &primary, &d, every, limit).await?;
    dr::wait_caught_up(Kind::Performance, &primary, &pr, every, limit).await?;
    pr.root = dr::login(&pr, USER, PASSWORD).await?;
    let primary_user = dr::login(&primary, USER, PASSWORD).await?;
    Ok(Set {
        primary,
        dr: d,
        pr,
        primary_user,
    })
}

/// CPU seconds used so far by the primary, the PR secondary, the DR secondary and this
/// process, then the whole machine's busy and total CPU seconds.
fn cpu(set: &Set) -> Result<[f64; 6]> {
    let (busy, total) = machine_cpu_seconds()?;
    Ok([
        set.primary.cpu_seconds()?,
        set.pr.cpu_seconds()?,
        set.dr.cpu_seconds()?,
        proc_cpu_seconds("self")?,
        busy,
        total,
    ])
}

/// Cores used over `wall` seconds between two [`cpu`] readings: primary, PR secondary, DR
/// secondary, this bench, every other process, and idle.
fn cores_used(before: [f64; 6], after: [f64; 6], wall: f64) -> [f64; 6] {
    let d = [0, 1, 2, 3, 4, 5].map(|i| (after[i] - before[i]) / wall);
    let ours = d[0] + d[1] + d[2] + d[3];
    [d[0], d[1], d[2], d[3], (d[4] - ours).max(0.0), d[5] - d[4]]
}

/// One read phase with the cores each process used over it ([`cores_used`]) and the
/// requests each server's door handled (its `vault_core_handle_request_total`).
async fn read_row(
    set: &Set,
    readers: &[(&Node, &str)],
    clients: usize,
    seconds: u64,
) -> Result<(ReadRow, [f64; 6], [f64; 2])> {
    let req0 = [
        set.primary.metric(REQUESTS).await?,
        set.pr.metric(REQUESTS).await?,
    ];
    let (cpu0, t) = (cpu(set)?, Instant::now());
    let row = ha::read_phase(readers, clients, seconds).await?;
    let (cpu1, wall) = (cpu(set)?, t.elapsed().as_secs_f64());
    let req1 = [
        set.primary.metric(REQUESTS).await?,
        set.pr.metric(REQUESTS).await?,
    ];
    Ok((
        row,
        cores_used(cpu0, cpu1, wall),
        [0, 1].map(|i| req1[i] - req0[i]),
    ))
}

async fn reads(set: &Set, seconds: u64, read_clients: &[usize], cores: usize) -> Result<()> {
    let forwards0 = set.pr.metric(FORWARDS).await?;
    let alone: Vec<(&Node, &str)> = vec![(&set.primary, &set.primary_user)];
    let both: Vec<(&Node, &str)> = vec![(&set.primary, &set.primary_user), (&set.pr, &set.pr.root)];
    let mut rows = Vec::new();
    for &clients in read_clients {
        for (label, readers) in [("primary alone", &alone), ("primary + PR secondary", &both)] {
            rows.push((label, read_row(set, readers, clients, seconds).await?));
        }
    }
    let forwarded = set.pr.metric(FORWARDS).await? - forwards0;
    println!(
        "## pr reads: KV v1 reads of {READ_KEYS} keys, {seconds}s per phase, closed loop; with both, client c \
         reads through node c % 2 (primary, PR secondary), each with a userpass token of that cluster. \
         How the CPU was split: no pinning, no taskset; the primary, the PR secondary, the DR secondary \
         (idle: reads write nothing) and this client share the machine's {cores} cores; cpu columns = \
         cores each used over the phase (user + system time / wall time, /proc/<pid>/stat), other = every \
         other process on the machine (/proc/stat busy time minus ours), idle = the rest"
    );
    println!(
        "{:<24} {:>7} {:>9} {:>8} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>9}",
        "setup",
        "clients",
        "reads/s",
        "p50 ms",
        "p99 ms",
        "cpu pri",
        "PR",
        "DR",
        "bench",
        "other",
        "idle",
        "req pri",
        "req PR"
    );
    for (label, (r, cpu, req)) in &rows {
        println!(
            "{:<24} {:>7} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>9.0} {:>9.0}",
            label,
            r.clients,
            r.rate,
            r.p50,
            r.p99,
            cpu[0],
            cpu[1],
            cpu[2],
            cpu[3],
            cpu[4],
            cpu[5],
            req[0],
            req[1]
        );
    }
    for pair in rows.chunks(2) {
        if let [(_, (a, _, _)), (_, (b, _, _))] = pair {
            println!(
                "  {} clients: primary + PR secondary / primary alone = {:.2} (same {cores} cores)",
                a.clients,
                b.rate / a.rate.max(1.0)
            );
        }
    }
    println!(
        "  req = requests each server's door handled over the phase (vault_core_handle_request_total; \
         reads plus this bench's metric scrapes); writes the PR secondary forwarded to the primary during \
         the read phases: {forwarded:.0} (vault_replication_performance_forward_total)"
    );
    Ok(())
}

/// One closed-loop write phase on `node` with `token`: writes/s, sorted latencies, and the PR
/// secondary's forwarding figures over it: [mean forward ms, forwards, forward errors,
/// WAL waits that timed out].
async fn write_row(
    set: &Set,
    node: &Node,
    token: &str,
    clients: usize,
    seconds: u64,
) -> Result<(f64, Vec<Duration>, [f64; 4])> {
    let s = &set.pr;
    let f0 = s.histogram(FORWARD_SECONDS).await?;
    let (e0, w0) = (
        s.metric(FORWARD_ERRORS).await?,
        s.metric(WAL_WAIT_TIMEOUTS).await?,
    );
    let (rate, lat) = kv::phase(node, token, clients, seconds, true).await?;
    let f1 = s.histogram(FORWARD_SECONDS).await?;
    let (e1, w1) = (
        s.metric(FORWARD_ERRORS).await?,
        s.metric(WAL_WAIT_TIMEOUTS).await?,
    );
    let n = f1.1 - f0.1;
    let fwd_ms = if n > 0.0 {
        (f1.0 - f0.0) / n * 1000.0
    } else {
        0.0
    };
    Ok((rate, lat, [fwd_ms, n, e1 - e0, w1 - w0]))
}

fn mean_ms(lat: &[Duration]) -> f64 {
    if lat.is_empty() {
        return 0.0;
    }
    lat.iter().map(|d| ms(*d)).sum::<f64>() / lat.len() as f64
}

/// `last_heartbeat_duration_ms` of the PR secondary in the `data` of the primary's
/// performance status (whole milliseconds, as Vault reports it).
fn heartbeat_ms(status: &Value) -> Option<u64> {
    status["secondaries"]
        .as_array()?
        .iter()
        .find(|s| s["node_id"] == PR_ID)?["last_heartbeat_duration_ms"]
        .as_str()?
        .parse()
        .ok()
}

/// Sorted round trips of [`PINGS`] sequential unauthenticated `GET sys/seal-status` on
/// `node` over one warm connection: a light unauthenticated API request.
async fn ping(env: &Env, node: &Node) -> Result<Vec<Duration>> {
    let client = env.fresh_client()?;
    let url = node.url("sys/seal-status");
    client.get(&url).send().await?.error_for_status()?;
    let mut out = Vec::with_capacity(PINGS);
    for _ in 0..PINGS {
        let t = Instant::now();
        let r = client.get(&url).send().await?.error_for_status()?;
        let _: Value = r.json().await?;
        out.push(t.elapsed());
    }
    out.sort();
    Ok(out)
}

async fn writes(env: &Env, set: &Set, seconds: u64, pr_lag_p50: Option<(u32, f64)>) -> Result<()> {
    // The heartbeat RTT is sampled over the write phases, where the forwarding runs.
    let heartbeats = {
        let (client, url) = (
            env.fresh_client()?,
            set.primary.url(&Kind::Performance.status_path()),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Ok(r) = client.get(&url).send().await
                    && let Ok(v) = r.json::<Value>().await
                    && let Some(h) = heartbeat_ms(&v["data"])
                {
                    seen.push(h);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            seen
        });
        (stop, task)
    };
    let mut rows = Vec::new();
    for clients in WRITE_CLIENTS {
        for (label, node, token) in [
            ("primary (direct)", &set.primary, set.primary_user.as_str()),
            ("PR secondary (fwd)", &set.pr, set.pr.root.as_str()),
        ] {
            rows.push((
                label,
                clients,
                write_row(set, node, token, clients, seconds).await?,
            ));
        }
    }
    heartbeats.0.store(true, Ordering::Relaxed);
    let mut hb = heartbeats.1.await.context("the heartbeat sampler failed")?;
    hb.sort_unstable();
    let pings = ping(env, &set.primary).await?;

    println!(
        "## pr forwarded writes: the same KV v1 PUT (closed loop, {seconds}s per phase, userpass token of the \
         node's cluster) sent to the primary directly, and to the PR secondary, which forwards it to the \
         primary over the cluster port (repl_fw_v1) and answers once the write's WAL index streamed back"
    );
    println!(
        "{:<20} {:>7} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>8}",
        "target",
        "clients",
        "writes/s",
        "p50 ms",
        "p99 ms",
        "mean ms",
        "fwd ms",
        "rest ms",
        "forwards",
        "errors"
    );
    for (label, clients, (rate, lat, f)) in &rows {
        let forwarded = f[1] > 0.0;
        let dash = |v: String| if forwarded { v } else { "-".to_string() };
        println!(
            "{:<20} {:>7} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>9} {:>9} {:>9.0} {:>8.0}",
            label,
            clients,
            rate,
            pct_ms(lat, 0.5),
            pct_ms(lat, 0.99),
            mean_ms(lat),
            dash(format!("{:.2}", f[0])),
            dash(format!("{:.2}", mean_ms(lat) - f[0])),
            f[1],
            f[2] + f[3]
        );
    }
    let ping50 = pct_ms(&pings, 0.5);
    let hb50 = hb.get(hb.len() / 2).copied();
    let hb_text = match (hb50, hb.first(), hb.last()) {
        (Some(m), Some(lo), Some(hi)) => format!(
            "{m} ms median of {} readings (min {lo}, max {hi}; whole ms)",
            hb.len()
        ),
        _ => "not reported".to_string(),
    };
    let pr_lag = pr_lag_p50.map_or(0.0, |(_, l)| l);
    for pair in rows.chunks(2) {
        if let [(_, clients, (_, direct, _)), (_, _, (_, fwd, _))] = pair {
            let (d50, d99) = (
                pct_ms(fwd, 0.5) - pct_ms(direct, 0.5),
                pct_ms(fwd, 0.99) - pct_ms(direct, 0.99),
            );
            println!(
                "  {clients} client(s): forwarded - direct = p50 {d50:+.2} ms, p99 {d99:+.2} ms; the p50 \
                 difference is {:.1}x one API round trip ({ping50:.2} ms) and {:.2}x one round trip + the PR lag \
                 p50 ({:.2} ms: about the most the forward and its WAL wait should add)",
                d50 / ping50.max(1e-6),
                d50 / (ping50 + pr_lag).max(1e-6),
                ping50 + pr_lag
            );
        }
    }
    println!(
        "  one round trip: API ping of the primary (GET sys/seal-status, warm connection, {PINGS} in a row) \
         p50 {ping50:.2} ms, p99 {:.2} ms; replication heartbeat RTT (primary's performance status, \
         secondaries[].last_heartbeat_duration_ms) {hb_text}{}",
        pct_ms(&pings, 0.99),
        pr_lag_p50.map_or(String::new(), |(rate, l)| format!(
            "; PR lag (cm p50 at {rate}/s, table above) {l:.2} ms"
        ))
    );
    println!(
        "  fwd ms = mean of the PR secondary's vault_replication_performance_forward_seconds (the request to the \
         primary and its answer); rest ms = mean latency - fwd: the secondary's own door and the wait for the \
         WAL index; forwards = that histogram's count over the phase; errors = forward errors + WAL waits \
         that timed out"
    );
    Ok(())
}

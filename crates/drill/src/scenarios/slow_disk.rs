//! Scenario 8: a slow disk on the DR secondary.
//!
//! DR replication is asynchronous by design: a secondary whose storage is slow must fall
//! behind, visibly, without dragging the primary's write latency down with it. A coupling bug
//! (the primary waiting on a secondary's commit, or a stalled stream back-pressuring writes)
//! would only show under exactly this fault, so the drill injects it with the server's
//! fsync-delay knob and compares the primary's latency against a run of the same load with
//! an undelayed secondary.
//!
//! The comparison is made within one rig so both phases share the machine's noise: first
//! the baseline (secondary healthy), then the secondary is restarted with every Raft log
//! fsync delayed and the same offered load runs again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use reqwest::blocking::Client;
use serde_json::{Value, json};

use super::{Env, Monitor, Rig, Sample, Verdict, metric_value, ms, num};
use crate::cluster::ClusterOptions;
use crate::workload::{Attempt, Outcome, make_tokens};

const A: usize = 0;
const B: usize = 1;
/// The server's fault knob (`strongroom_storage::raft::fault::FSYNC_DELAY_ENV`).
const FSYNC_DELAY_ENV: &str = "STRONGROOM_FAULT_FSYNC_DELAY_MS";
/// Added to every Raft log fsync of the secondary.
const DELAY_MS: u64 = 50;
/// Offered load, the same in both phases.
const RATE: f64 = 200.0;
const WRITERS: usize = 16;
/// Long enough for a thousand latency samples per phase; the backlog it builds on the slow
/// disk drains at roughly one streamed message per delayed commit, so longer costs minutes.
const PHASE: Duration = Duration::from_secs(5);
/// The secondary's lag must reach at least this many WAL entries under the fault.
const LAG_MIN_ENTRIES: f64 = 5.0;
/// The secondary must drain its lag this soon after the writes stop. Still on the slow disk,
/// it pays the delay per streamed message (about one entry each), so a backlog of a thousand
/// entries takes about a minute; the bound only proves it converges.
const CATCHUP_LIMIT: Duration = Duration::from_secs(180);
/// The Prometheus name of the secondary's lag gauge.
const LAG_GAUGE: &str = "vault_replication_lag_ms";

/// One acknowledged-or-not write and how long the primary took to answer it.
struct Timed {
    attempt: Attempt,
    latency_ms: f64,
}

/// What one load phase measured; every distribution is sorted ascending.
struct Phase {
    attempts: Vec<Attempt>,
    /// Latencies of acknowledged writes.
    latency_ms: Vec<f64>,
    /// Writes not acknowledged.
    errors: usize,
    writes_per_s: f64,
    /// Primary `last_wal` minus secondary `last_remote_wal`.
    lag_entries: Vec<f64>,
    /// The secondary's `primaries[].replication_primary_canary_age_ms`.
    canary_age_ms: Vec<f64>,
    /// The secondary's `vault_replication_lag_ms` gauge.
    gauge_ms: Vec<f64>,
}

pub fn run(env: &Env) -> Result<Verdict> {
    // Set up: a streaming pair on loopback, writer tokens, the secondary caught up.
    let mut rig = Rig::new(env, &ClusterOptions::default(), false)?;
    rig.pair()?;
    let tokens = make_tokens(&rig.client, &rig.clusters[A].url(), &rig.root, WRITERS)?;
    rig.wait_caught_up(A, B, Duration::from_secs(30))?;

    // Act 1: the baseline, with a healthy secondary.
    let base = phase(&rig, &tokens, 0)?;
    rig.wait_caught_up(A, B, Duration::from_secs(60))?;

    // Act 2: restart the secondary on a slow disk, let it resume, run the same load.
    rig.clusters[B].stop();
    rig.clusters[B]
        .env
        .push((FSYNC_DELAY_ENV.into(), DELAY_MS.to_string()));
    rig.restart(B)?;
    rig.wait_caught_up(A, B, Duration::from_secs(60))?;
    let slow = phase(&rig, &tokens, WRITERS)?;
    let t_stop = Instant::now();
    let caught = rig.wait_caught_up(A, B, CATCHUP_LIMIT);
    let catchup_ms = ms(t_stop, Instant::now());
    // The knob announces itself at the first delayed commit, which the load guarantees.
    let fault_active = std::fs::read_to_string(rig.clusters[B].log_file())
        .map(|log| log.contains("fsync is delayed"))
        .unwrap_or(false);

    // Assert: every write of both phases there and the trees equal; the primary not slowed;
    // the lag grew and showed in status and metrics; it drained once the writes stopped.
    let attempts: HashMap<String, Attempt> = base
        .attempts
        .iter()
        .chain(&slow.attempts)
        .map(|a| (a.key.clone(), a.clone()))
        .collect();
    let report = rig.check_nothing_lost(A, B, &attempts, &tokens)?;
    let (b50, b99) = (q(&base.latency_ms, 0.5), q(&base.latency_ms, 0.99));
    let (s50, s99) = (q(&slow.latency_ms, 0.5), q(&slow.latency_ms, 0.99));
    let line = format!(
        "{} delay_ms={DELAY_MS} writes_per_s={:.0}/{:.0} errors={}/{} \
         primary_p50_ms={b50:.1}/{s50:.1} primary_p99_ms={b99:.1}/{s99:.1} \
         lag_entries_p50={:.0}/{:.0} lag_entries_max={:.0}/{:.0} \
         canary_age_ms_p50={:.0}/{:.0} canary_age_ms_max={:.0}/{:.0} \
         lag_gauge_ms_min={:.0}/{:.0} lag_gauge_samples={}/{} catchup_ms={catchup_ms} \
         (baseline/slow-disk)",
        report.figures(),
        base.writes_per_s,
        slow.writes_per_s,
        base.errors,
        slow.errors,
        q(&base.lag_entries, 0.5),
        q(&slow.lag_entries, 0.5),
        q(&base.lag_entries, 1.0),
        q(&slow.lag_entries, 1.0),
        q(&base.canary_age_ms, 0.5),
        q(&slow.canary_age_ms, 0.5),
        q(&base.canary_age_ms, 1.0),
        q(&slow.canary_age_ms, 1.0),
        q(&base.gauge_ms, 0.0),
        q(&slow.gauge_ms, 0.0),
        base.gauge_ms.len(),
        slow.gauge_ms.len(),
    );
    let delay = DELAY_MS as f64;
    let mut why = Vec::new();
    if !fault_active {
        why.push("the secondary's log does not show the fsync delay in force");
    }
    if base.errors + slow.errors > 0 || base.latency_ms.is_empty() || slow.latency_ms.is_empty() {
        why.push("the primary failed writes");
    }
    if base.writes_per_s < RATE * 0.9 || slow.writes_per_s < RATE * 0.9 {
        why.push("the primary did not sustain the offered rate");
    }
    // A primary coupled to its secondary's commits would wait at least the delay on every
    // write, moving the median by the whole delay; half of it is the tolerance. The tail on a
    // shared machine is noisier, so it may double, or grow by one delay when it is tiny.
    if s50 >= b50 + delay / 2.0 || s99 > (2.0 * b99).max(b99 + delay) {
        why.push("the primary's write latency grew with the secondary's fsync delay");
    }
    if q(&slow.lag_entries, 1.0) < LAG_MIN_ENTRIES.max(q(&base.lag_entries, 1.0) + 1.0) {
        why.push("the secondary's WAL lag did not grow under the fault");
    }
    if q(&slow.canary_age_ms, 0.5) <= q(&base.canary_age_ms, 0.5) {
        why.push("the status canary age did not grow under the fault");
    }
    // Each gauge reading is taken after an apply that paid the delay, after the canary was
    // written: under the fault none can be below the delay.
    if slow.gauge_ms.is_empty() || q(&slow.gauge_ms, 0.0) < delay {
        why.push("the secondary's lag gauge did not show the delay");
    }
    if caught.is_err() {
        why.push("the secondary did not catch up after the load");
    }
    Ok(if report.clean() && why.is_empty() {
        Verdict::Pass(line)
    } else {
        Verdict::Fail(format!(
            "{line} reason=\"{}\" {} logs: {}",
            why.join("; "),
            report.examples(),
            rig.logs()
        ))
    })
}

/// Runs the offered load against the primary for [`PHASE`] while watching both clusters.
fn phase(rig: &Rig, tokens: &[String], first_client: usize) -> Result<Phase> {
    let (a, b) = (&rig.clusters[A], &rig.clusters[B]);
    let mut monitor = Monitor::start(
        &rig.client,
        vec![a.url(), b.url()],
        Duration::from_millis(100),
    );
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let (writes, mut gauge_ms) = std::thread::scope(|s| {
        let poller = s.spawn(|| {
            let mut out = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                out.extend(lag_gauge(&rig.client, &b.url()));
                std::thread::sleep(Duration::from_millis(100));
            }
            out
        });
        let writes = timed_load(&rig.client, &a.url(), tokens, first_client, &rig.tag);
        stop.store(true, Ordering::SeqCst);
        (writes, poller.join().unwrap_or_default())
    });
    let elapsed = started.elapsed().as_secs_f64();
    let samples = monitor.stop();
    let mut latency_ms: Vec<f64> = writes
        .iter()
        .filter(|w| w.attempt.outcome == Outcome::Acked)
        .map(|w| w.latency_ms)
        .collect();
    let errors = writes.len() - latency_ms.len();
    let (mut lag_entries, mut canary_age_ms) = secondary_readings(&samples);
    for v in [
        &mut latency_ms,
        &mut lag_entries,
        &mut canary_age_ms,
        &mut gauge_ms,
    ] {
        v.sort_by(f64::total_cmp);
    }
    Ok(Phase {
        writes_per_s: latency_ms.len() as f64 / elapsed,
        attempts: writes.into_iter().map(|w| w.attempt).collect(),
        latency_ms,
        errors,
        lag_entries,
        canary_age_ms,
        gauge_ms,
    })
}

/// [`WRITERS`] paced writers offering [`RATE`] writes/s in total for [`PHASE`], each write
/// timed from send to answer. Keys and values follow the workload's scheme, never reused.
fn timed_load(
    client: &Client,
    url: &str,
    tokens: &[String],
    first_client: usize,
    tag: &str,
) -> Vec<Timed> {
    let gap = Duration::from_secs_f64(tokens.len() as f64 / RATE);
    let start = Instant::now();
    let end = start + PHASE;
    std::thread::scope(|s| {
        let handles: Vec<_> = tokens
            .iter()
            .enumerate()
            .map(|(i, token)| {
                s.spawn(move || {
                    let id = first_client + i;
                    let mut out = Vec::new();
                    // Stagger the writers so the offered load is smooth, not bursts of 16.
                    let mut next = start + gap.mul_f64(i as f64 / tokens.len() as f64);
                    for n in 0u64.. {
                        let now = Instant::now();
                        if next >= end {
                            break;
                        }
                        if next > now {
                            std::thread::sleep(next - now);
                        }
                        next += gap;
                        let key = format!("w{id}-{n}");
                        let value = format!("{tag}-{id}-{n}");
                        let sent = Instant::now();
                        let outcome = match client
                            .put(format!("{url}/v1/secret/data/{key}"))
                            .header("X-Vault-Token", token)
                            .json(&json!({"data": {"v": value}}))
                            .send()
                        {
                            Ok(r) if r.status().is_success() => Outcome::Acked,
                            Ok(r) if r.status().is_client_error() => Outcome::Rejected,
                            _ => Outcome::InDoubt,
                        };
                        let done = Instant::now();
                        out.push(Timed {
                            attempt: Attempt {
                                key,
                                value,
                                outcome,
                                done,
                                target: url.to_string(),
                            },
                            latency_ms: done.duration_since(sent).as_secs_f64() * 1000.0,
                        });
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// From status readings of (primary, secondary): the lag in WAL entries at each secondary
/// reading (against the primary's reading just before it) and the secondary's canary ages.
fn secondary_readings(samples: &[Sample]) -> (Vec<f64>, Vec<f64>) {
    let (mut lag, mut canary) = (Vec::new(), Vec::new());
    let mut primary_wal = None;
    for s in samples {
        if s.who == A {
            primary_wal = Some(num(&s.status["last_wal"]));
            continue;
        }
        if let Some(p) = primary_wal {
            lag.push(p.saturating_sub(num(&s.status["last_remote_wal"])) as f64);
        }
        if let Some(age) = canary_age(&s.status) {
            canary.push(age);
        }
    }
    (lag, canary)
}

/// `primaries[0].replication_primary_canary_age_ms` (a string, as Vault sends it).
fn canary_age(status: &Value) -> Option<f64> {
    status["primaries"][0]["replication_primary_canary_age_ms"]
        .as_str()?
        .parse()
        .ok()
}

/// The secondary's lag gauge from its unauthenticated Prometheus metrics.
fn lag_gauge(client: &Client, url: &str) -> Option<f64> {
    let r = client
        .get(format!("{url}/v1/sys/metrics?format=prometheus"))
        .timeout(Duration::from_secs(2))
        .send()
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    metric_value(&r.text().ok()?, LAG_GAUGE)
}

/// The `p` quantile (0 to 1) of an ascending slice; NaN when empty.
fn q(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::{canary_age, metric_value, q, secondary_readings};
    use crate::scenarios::Sample;
    use serde_json::json;
    use std::time::Instant;

    // Why: the metrics evidence must come from the lag gauge itself, not from a histogram or
    // another series whose name merely starts the same way.
    #[test]
    fn metric_value_reads_only_the_exact_series() {
        // Set up: a longer name first, then the gauge with and without labels.
        let text = "# TYPE vault_replication_lag_ms gauge\n\
                    vault_replication_lag_ms_total 9\n\
                    vault_replication_lag_ms 123.5\n";
        let labelled = "vault_replication_lag_ms{cluster=\"b\"} 77\n";

        // Act + assert
        assert_eq!(metric_value(text, "vault_replication_lag_ms"), Some(123.5));
        assert_eq!(
            metric_value(labelled, "vault_replication_lag_ms"),
            Some(77.0)
        );
        assert_eq!(metric_value("other 1\n", "vault_replication_lag_ms"), None);
    }

    // Why: the lag figure pairs each secondary reading with the primary's preceding one;
    // pairing with a later primary reading (or none) would invent or hide lag.
    #[test]
    fn secondary_readings_pair_with_the_preceding_primary_reading() {
        // Set up: a secondary reading before any primary one, then two pairs.
        let at = Instant::now();
        let sample = |who, status| Sample {
            sent: at,
            who,
            status,
        };
        let samples = vec![
            sample(1, json!({"last_remote_wal": 1})),
            sample(0, json!({"last_wal": 10})),
            sample(
                1,
                json!({"last_remote_wal": 4, "primaries": [
                {"replication_primary_canary_age_ms": "60"}]}),
            ),
            sample(0, json!({"last_wal": 20})),
            sample(1, json!({"last_remote_wal": 20})),
        ];

        // Act
        let (lag, canary) = secondary_readings(&samples);

        // Assert
        assert_eq!(lag, vec![6.0, 0.0]);
        assert_eq!(canary, vec![60.0]);
        assert_eq!(canary_age(&json!({"primaries": []})), None);
    }

    // Why: the verdict's p50/p99 and min/max come from this; an off-by-one would misreport.
    #[test]
    fn quantiles_pick_the_nearest_rank() {
        let v: Vec<f64> = (1..=101).map(f64::from).collect();
        assert_eq!(q(&v, 0.0), 1.0);
        assert_eq!(q(&v, 0.5), 51.0);
        assert_eq!(q(&v, 0.99), 100.0);
        assert_eq!(q(&v, 1.0), 101.0);
        assert!(q(&[], 0.5).is_nan());
    }
}

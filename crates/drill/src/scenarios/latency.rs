//! Scenario 5: 100 ms of delay, 1% loss and some reordering on the link between clusters.
//! Streaming is pipelined, so replication must keep up with 500 writes/s despite the round
//! trip: the lag stays bounded and drains within seconds when the writes stop.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{Env, Monitor, Rig, Verdict, ms, num};
use crate::checker::{self, Expect};
use crate::cluster::ClusterOptions;
use crate::workload::{LoadSpec, Target, Workload, make_tokens};

const A: usize = 0;
const B: usize = 1;
const RATE: f64 = 500.0;
const WRITERS: usize = 24;
const SECONDS: u64 = 10;
/// The secondary must have drained the lag this soon after the writes stop.
const CATCHUP_LIMIT_MS: u128 = 5_000;

pub fn run(env: &Env) -> Result<Verdict> {
    // Set up: a pair in two namespaces with a degraded link.
    let mut rig = Rig::new(env, &ClusterOptions::default(), true)?;
    if let Err(e) = rig
        .topology()?
        .netem(&["delay", "100ms", "loss", "1%", "reorder", "5%", "50%"])
    {
        if format!("{e:#}").contains("kind is unknown") {
            return Ok(Verdict::Skip(
                "tc netem is unavailable: this kernel has no sch_netem qdisc".into(),
            ));
        }
        return Err(e);
    }
    rig.pair()?;
    let tokens = make_tokens(&rig.client, &rig.clusters[A].url(), &rig.root, WRITERS)?;

    // Act: 500 writes/s for ten seconds, sampling the lag in WAL entries.
    let mut monitor = Monitor::start(
        &rig.client,
        vec![rig.clusters[A].url(), rig.clusters[B].url()],
        Duration::from_millis(200),
    );
    let spec = LoadSpec {
        first_client: 0,
        rate: Some(RATE),
        run_tag: rig.tag.clone(),
    };
    let t0 = Instant::now();
    let mut w = Workload::start(
        &rig.client,
        Target::new(rig.clusters[A].url()),
        &tokens,
        &spec,
    );
    std::thread::sleep(Duration::from_secs(SECONDS));
    w.stop();
    let t_stop = Instant::now();
    let acked = w.ledger.acked();
    let achieved = acked as f64 / t_stop.duration_since(t0).as_secs_f64();
    let caught = rig.wait_caught_up(A, B, Duration::from_secs(60));
    let catchup_ms = ms(t_stop, Instant::now());
    let samples = monitor.stop();
    rig.topology()?.clear_netem()?;
    let mut lags: Vec<u64> = Vec::new();
    let mut last_primary = None;
    for s in &samples {
        if s.who == 0 {
            last_primary = Some(num(&s.status["last_wal"]));
        } else if let Some(p) = last_primary {
            lags.push(p.saturating_sub(num(&s.status["last_remote_wal"])));
        }
    }
    lags.sort_unstable();
    let pct = |q: f64| {
        lags.get(((lags.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0)
    };

    // Assert: every write there, trees equal, the rate held and the lag drained quickly.
    let attempts = w.ledger.snapshot();
    let report = checker::check(
        &rig.clusters[A],
        &rig.root,
        &[&rig.clusters[B]],
        &Expect {
            attempts: &attempts,
            may_lose: &HashSet::new(),
            must_be_gone: &HashSet::new(),
            tokens: &tokens,
        },
    )?;
    let line = format!(
        "{} writes_per_s={achieved:.0} lag_entries_p50={} lag_entries_max={} catchup_ms={catchup_ms}",
        report.figures(),
        pct(0.5),
        pct(1.0),
    );
    let kept_up = caught.is_ok() && catchup_ms <= CATCHUP_LIMIT_MS;
    Ok(if report.clean() && kept_up && achieved >= RATE * 0.9 {
        Verdict::Pass(line)
    } else {
        let why = if achieved < RATE * 0.9 {
            " reason=\"the primary did not sustain the target rate\""
        } else {
            ""
        };
        Verdict::Fail(format!(
            "{line}{why} {} logs: {}",
            report.examples(),
            rig.logs()
        ))
    })
}

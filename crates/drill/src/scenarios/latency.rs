//! Scenario 5: 100 ms of delay, 1% loss and some reordering on the link between clusters.
//! Streaming is pipelined, so replication must keep up with 500 writes/s despite the round
//! trip: the lag stays bounded and drains within seconds when the writes stop.
//!
//! The link is impaired with `tc netem` between network namespaces when the kernel has it.
//! Otherwise (no root, or no `sch_netem`) the clusters run on loopback and the secondary
//! reaches the primary's cluster port through [`crate::relay`], which delays the stream as
//! netem would and models loss by its retransmission stalls; the verdict names the link used.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::{Env, Monitor, Rig, Verdict, ms, num};
use crate::cluster::{CLUSTER_PORT, ClusterOptions};
use crate::relay::{Impairment, Relay};
use crate::workload::{LoadSpec, Target, Workload, make_tokens};

const A: usize = 0;
const B: usize = 1;
const RATE: f64 = 500.0;
const WRITERS: usize = 24;
const SECONDS: u64 = 10;
/// The secondary must have drained the lag this soon after the writes stop.
const CATCHUP_LIMIT_MS: u128 = 5_000;
/// netem's settings, applied on both ends of the link (so 100 ms each way).
const NETEM: [&str; 7] = ["delay", "100ms", "loss", "1%", "reorder", "5%", "50%"];
/// The relay's equivalent, each way.
const RELAYED: Impairment = Impairment {
    one_way_delay: Duration::from_millis(100),
    loss: 0.01,
};
/// The relay listens on the primary's address, beside its cluster port.
const RELAY_PORT: u16 = CLUSTER_PORT + 100;

/// The degraded link in use, kept alive for the scenario.
enum Link {
    Netem,
    Relay(Relay, String),
}

impl Link {
    fn describe(&self) -> String {
        match self {
            Link::Netem => "link=netem".into(),
            Link::Relay(r, why) => format!(
                "link=relay penalised_chunks={} relay_reason=\"{why}\"",
                r.penalised.load(std::sync::atomic::Ordering::Relaxed)
            ),
        }
    }
}

/// A pair in namespaces with netem on their link, else on loopback through a relay.
fn degraded_pair(env: &Env) -> Result<(Rig, Link)> {
    let why = match &env.netns {
        Ok(()) => {
            let rig = Rig::new(env, &ClusterOptions::default(), true)?;
            match rig.topology()?.netem(&NETEM) {
                Ok(()) => {
                    let mut rig = rig;
                    rig.pair()?;
                    return Ok((rig, Link::Netem));
                }
                Err(e) if format!("{e:#}").contains("kind is unknown") => {
                    "this kernel has no sch_netem qdisc".to_string()
                }
                Err(e) => return Err(e),
            }
        }
        Err(reason) => format!("no network namespaces: {reason}"),
    };
    let mut rig = Rig::new(env, &ClusterOptions::default(), false)?;
    let ip = rig.clusters[A].placement.peer_ip.clone();
    let relay = Relay::start(
        format!("{ip}:{RELAY_PORT}").parse()?,
        format!("{ip}:{CLUSTER_PORT}").parse()?,
        RELAYED,
    )?;
    // The primary advertises the relay as its cluster address, so the secondary's stream
    // (and every reconnect) crosses the degraded link.
    rig.start_primary_with(
        A,
        serde_json::json!({"primary_cluster_addr": format!("https://{ip}:{RELAY_PORT}")}),
    )?;
    rig.start_secondary(B, A)?;
    rig.wait_caught_up(A, B, Duration::from_secs(60))?;
    Ok((rig, Link::Relay(relay, why)))
}

pub fn run(env: &Env) -> Result<Verdict> {
    // Set up: a pair whose link delays 100 ms each way and loses 1%.
    let (rig, link) = degraded_pair(env)?;
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
    if let Link::Netem = link {
        rig.topology()?.clear_netem()?;
    }
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
    let report = rig.check_nothing_lost(A, B, &attempts, &tokens)?;
    let line = format!(
        "{} writes_per_s={achieved:.0} lag_entries_p50={} lag_entries_max={} catchup_ms={catchup_ms} {}",
        report.figures(),
        pct(0.5),
        pct(1.0),
        link.describe(),
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

//! Scenario 7: the primary restarts (SIGTERM, start, unseal) while its secondary streams
//! under load. The secondary still holds a position the primary retains, so it must resume
//! streaming; a full merkle resync here would mean positions are not persisted correctly.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::planned::CLIENTS;
use super::{Env, Monitor, Rig, Verdict, ms, num, saw_resync};
use crate::cluster::ClusterOptions;
use crate::workload::{LoadSpec, Target, Workload, make_tokens};

const A: usize = 0;
const B: usize = 1;

pub fn run(env: &Env) -> Result<Verdict> {
    // Set up: a streaming pair under load, the secondary watched closely.
    let mut rig = Rig::new(env, &ClusterOptions::default(), false)?;
    rig.pair()?;
    let tokens = make_tokens(&rig.client, &rig.clusters[A].url(), &rig.root, CLIENTS)?;
    let spec = LoadSpec {
        first_client: 0,
        rate: None,
        run_tag: rig.tag.clone(),
    };
    let mut w = Workload::start(
        &rig.client,
        Target::new(rig.clusters[A].url()),
        &tokens,
        &spec,
    );
    let mut monitor = Monitor::start(
        &rig.client,
        vec![rig.clusters[B].url()],
        Duration::from_millis(10),
    );
    std::thread::sleep(Duration::from_secs(2));

    // Act: restart the primary; clients keep retrying against the same address.
    let t0 = Instant::now();
    rig.clusters[A].stop();
    rig.restart(A)?;
    let t_up = Instant::now();
    let wal_up = num(&rig.clusters[A].dr_status()?["last_wal"]);
    std::thread::sleep(Duration::from_secs(2));
    w.stop();
    rig.wait_caught_up(A, B, Duration::from_secs(120))?;
    let samples = monitor.stop();
    let resumed_ms = samples
        .iter()
        .filter(|s| s.sent >= t_up && num(&s.status["last_remote_wal"]) > wal_up)
        .map(|s| ms(t_up, s.sent))
        .min();
    let resync = saw_resync(&samples, 0, t0);

    // Assert: nothing lost, trees equal, and no merkle diff/sync was needed.
    let attempts = w.ledger.snapshot();
    let report = rig.check_nothing_lost(A, B, &attempts, &tokens)?;
    let line = format!(
        "{} full_resync={resync} restart_ms={} resumed_ms={}",
        report.figures(),
        ms(t0, t_up),
        resumed_ms.map_or("unknown".to_string(), |v| v.to_string())
    );
    Ok(if report.clean() && !resync {
        Verdict::Pass(line)
    } else {
        Verdict::Fail(format!("{line} {} logs: {}", report.examples(), rig.logs()))
    })
}

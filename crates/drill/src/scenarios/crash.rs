//! Scenario 6: the secondary crashes (SIGKILL) in the middle of a merkle sync or while
//! streaming under load. After a restart and an unseal with the primary's key it must
//! converge without help, and the primary must not have lost anything.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::planned::CLIENTS;
use super::{Env, Rig, Verdict, ms};
use crate::cluster::ClusterOptions;
use crate::workload::{LoadSpec, Target, Workload, make_tokens};

const A: usize = 0;
const B: usize = 1;

/// Retention small enough that a fresh secondary must bootstrap by merkle sync.
const RETENTION: u64 = 50;

fn load(rig: &Rig, tokens: &[String]) -> Workload {
    let spec = LoadSpec {
        first_client: 0,
        rate: None,
        run_tag: rig.tag.clone(),
    };
    Workload::start(
        &rig.client,
        Target::new(rig.clusters[A].url()),
        tokens,
        &spec,
    )
}

/// Restarts `b`, waits for convergence and checks the primary; returns the verdict figures.
fn recover_and_check(rig: &mut Rig, w: &mut Workload, tokens: &[String]) -> Result<(bool, String)> {
    let t0 = Instant::now();
    rig.restart(B)?;
    std::thread::sleep(Duration::from_secs(1));
    w.stop();
    rig.wait_caught_up(A, B, Duration::from_secs(120))?;
    let converge_ms = ms(t0, Instant::now());
    let attempts = w.ledger.snapshot();
    let report = rig.check_nothing_lost(A, B, &attempts, tokens)?;
    let clean = report.clean();
    let mut line = format!("{} converge_ms={converge_ms}", report.figures());
    if !clean {
        line.push_str(&format!(" {} logs: {}", report.examples(), rig.logs()));
    }
    Ok((clean, line))
}

pub fn run_sync(env: &Env) -> Result<Verdict> {
    // Set up: a primary with a few thousand keys and a tiny WAL retention.
    let options = ClusterOptions {
        wal_retention_entries: Some(RETENTION),
        ..ClusterOptions::default()
    };
    let mut rig = Rig::new(env, &options, false)?;
    rig.start_primary(A)?;
    let tokens = make_tokens(&rig.client, &rig.clusters[A].url(), &rig.root, CLIENTS)?;
    let mut w = load(&rig, &tokens);
    std::thread::sleep(Duration::from_secs(4));

    // Act: enable the secondary and kill it once it reports a merkle sync in progress (the
    // diff that precedes it is not enough: the sync is the step that writes data).
    rig.start_secondary(B, A)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut killed_in = "missed";
    while Instant::now() < deadline {
        let state = rig.clusters[B]
            .dr_status()
            .ok()
            .and_then(|s| s["state"].as_str().map(str::to_string));
        match state.as_deref() {
            Some("merkle-sync") => {
                rig.clusters[B].kill9();
                killed_in = "merkle-sync";
                break;
            }
            Some("stream-wals") => break,
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    if killed_in == "missed" {
        rig.clusters[B].kill9();
    }

    // Assert: it converges after a restart, and the primary lost nothing.
    let (clean, line) = recover_and_check(&mut rig, &mut w, &tokens)?;
    let line = format!("{line} killed_in={killed_in}");
    Ok(if clean && killed_in != "missed" {
        Verdict::Pass(line)
    } else {
        Verdict::Fail(line)
    })
}

pub fn run_stream(env: &Env) -> Result<Verdict> {
    // Set up: a streaming pair under load.
    let mut rig = Rig::new(env, &ClusterOptions::default(), false)?;
    rig.pair()?;
    let tokens = make_tokens(&rig.client, &rig.clusters[A].url(), &rig.root, CLIENTS)?;
    let mut w = load(&rig, &tokens);
    std::thread::sleep(Duration::from_secs(2));

    // Act: SIGKILL the secondary mid-stream; the primary keeps writing meanwhile.
    let state = rig.clusters[B].dr_status()?["state"].clone();
    rig.clusters[B].kill9();
    std::thread::sleep(Duration::from_secs(2));

    // Assert: restart, unseal, converge; nothing lost.
    let (clean, line) = recover_and_check(&mut rig, &mut w, &tokens)?;
    let line = format!("{line} killed_in={}", state.as_str().unwrap_or("unknown"));
    Ok(if clean && state == "stream-wals" {
        Verdict::Pass(line)
    } else {
        Verdict::Fail(line)
    })
}

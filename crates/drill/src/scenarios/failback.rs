//! Scenario 3: failback. After a planned or an emergency failover the old primary `a` is
//! demoted and re-pointed at the new primary `b` with `update-primary`; it must converge to
//! `b` (equal merkle roots), `b`'s data winning over anything `a` wrote after the fork.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{Env, Monitor, Rig, Verdict, emergency, ms, planned, saw_resync};
use crate::checker::{self, Expect};
use crate::workload::{Attempt, LoadSpec, Outcome, Target, Workload};

const A: usize = 0;
const B: usize = 1;

/// Which failover precedes the failback.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Base {
    Planned,
    Emergency,
}

pub fn run_planned(env: &Env) -> Result<Verdict> {
    drill(env, Base::Planned, false)
}

pub fn run_planned_divergent(env: &Env) -> Result<Verdict> {
    drill(env, Base::Planned, true)
}

pub fn run_emergency(env: &Env) -> Result<Verdict> {
    drill(env, Base::Emergency, false)
}

pub fn run_emergency_divergent(env: &Env) -> Result<Verdict> {
    drill(env, Base::Emergency, true)
}

/// Writes on the forked old primary for a second; returns its ledger.
fn fork_writes(rig: &Rig, tokens: &[String]) -> HashMap<String, Attempt> {
    let spec = LoadSpec {
        first_client: 100,
        rate: None,
        run_tag: format!("{}-fork", rig.tag),
    };
    let mut w = Workload::start(
        &rig.client,
        Target::new(rig.clusters[A].url()),
        tokens,
        &spec,
    );
    std::thread::sleep(Duration::from_secs(1));
    w.stop();
    w.ledger.snapshot()
}

fn drill(env: &Env, base: Base, divergent: bool) -> Result<Verdict> {
    // Set up: the failover, leaving `b` primary under load and `a` demoted or dead.
    let (mut rig, mut load, tokens, may_lose) = match base {
        Base::Planned => {
            let s = planned::failover(env)?;
            (s.rig, s.load, s.tokens, HashSet::new())
        }
        Base::Emergency => {
            let s = emergency::failover(env)?;
            (s.rig, s.load, s.tokens, s.may_lose)
        }
    };
    if base == Base::Emergency {
        rig.restart(A)?;
    }

    // The fork: the old primary takes writes of its own (a forced promote after a planned
    // failover; after an emergency it simply comes back as a primary).
    let mut fork = HashMap::new();
    if divergent {
        if base == Base::Planned {
            rig.promote(A, true)?;
        }
        fork = fork_writes(&rig, &tokens);
    }
    let forked_acks = fork
        .values()
        .filter(|a| a.outcome == Outcome::Acked)
        .count();
    if base == Base::Emergency || divergent {
        rig.demote(A)?;
    }

    // Act: re-point `a` at `b` while `b` still takes writes.
    let mut monitor = Monitor::start(
        &rig.client,
        vec![rig.clusters[A].url()],
        Duration::from_millis(10),
    );
    let t0 = Instant::now();
    rig.update_primary(A, B)?;
    std::thread::sleep(Duration::from_secs(2));
    load.stop();
    rig.wait_caught_up(B, A, Duration::from_secs(120))?;
    let converge_ms = ms(t0, Instant::now());
    let samples = monitor.stop();
    let resync = if saw_resync(&samples, 0, t0) {
        "merkle"
    } else {
        "stream"
    };

    // Assert: `b` holds every write the design keeps; nothing from the fork survives.
    let mut attempts = load.ledger.snapshot();
    let must_be_gone: HashSet<String> = fork
        .values()
        .filter(|a| a.outcome == Outcome::Acked)
        .map(|a| a.key.clone())
        .collect();
    attempts.extend(fork);
    let report = checker::check(
        &rig.clusters[B],
        &rig.root,
        &[&rig.clusters[A]],
        &Expect {
            attempts: &attempts,
            may_lose: &may_lose,
            must_be_gone: &must_be_gone,
            tokens: &tokens,
        },
    )?;
    let line = format!(
        "{} fork_writes={forked_acks} resync={resync} converge_ms={converge_ms}",
        report.figures()
    );
    // A planned failover leaves nothing to undo: the old primary must resume by streaming.
    let streaming_ok = base != Base::Planned || divergent || resync == "stream";
    Ok(if report.clean() && streaming_ok {
        Verdict::Pass(line)
    } else {
        Verdict::Fail(format!("{line} {} logs: {}", report.examples(), rig.logs()))
    })
}

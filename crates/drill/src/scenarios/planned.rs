//! Scenario 1: planned failover under load. The design promises zero loss here, so any
//! acknowledged write missing on the new primary fails the drill.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};

use super::{Env, Rig, Verdict, ms, num, wait_for};
use crate::checker::{self, Expect};
use crate::cluster::ClusterOptions;
use crate::workload::{LoadSpec, Target, Workload, make_tokens};

/// Writers per drill and seconds of load before the fault.
pub const CLIENTS: usize = 4;
pub const LOAD_SECS: u64 = 3;

/// The state a planned failover leaves: `b` is primary with clients writing to it.
pub struct AfterPlanned {
    pub rig: Rig,
    pub load: Workload,
    pub tokens: Vec<String>,
    pub failover_ms: u128,
    /// Whether the demoted primary's tree equalled the secondary's at promotion.
    pub roots_equal_at_promote: bool,
}

/// Builds a pair, writes, and fails over from `a` to `b` the planned way.
pub fn failover(env: &Env) -> Result<AfterPlanned> {
    let mut rig = Rig::new(env, &ClusterOptions::default(), false)?;
    rig.pair()?;
    let (a, b) = (0, 1);
    let tokens = make_tokens(&rig.client, &rig.clusters[a].url(), &rig.root, CLIENTS)?;
    rig.wait_caught_up(a, b, Duration::from_secs(30))?;
    let target = Target::new(rig.clusters[a].url());
    let spec = LoadSpec {
        first_client: 0,
        rate: None,
        run_tag: rig.tag.clone(),
    };
    let load = Workload::start(&rig.client, target.clone(), &tokens, &spec);
    std::thread::sleep(Duration::from_secs(LOAD_SECS));

    // Demote with the writers still running, then wait until the secondary holds everything
    // the demoted primary logged: same WAL index at least as far as before the demote, and
    // the same merkle root.
    let before = num(&rig.clusters[a].dr_status()?["last_wal"]);
    let t0 = Instant::now();
    rig.demote(a)?;
    let (ca, cb) = (&rig.clusters[a], &rig.clusters[b]);
    wait_for(
        Duration::from_secs(60),
        "the secondary to drain the final WAL",
        || {
            let (Ok(sa), Ok(sb)) = (ca.dr_status(), cb.dr_status()) else {
                return false;
            };
            num(&sb["last_remote_wal"]) >= before
                && sb["merkle_root"] == sa["merkle_root"]
                && sb["state"] == "stream-wals"
        },
    )?;
    let roots_equal_at_promote =
        rig.clusters[a].dr_status()?["merkle_root"] == rig.clusters[b].dr_status()?["merkle_root"];
    rig.promote(b, false)?;
    target.set(rig.clusters[b].url());
    let b_url = rig.clusters[b].url();
    wait_for(
        Duration::from_secs(30),
        "a write accepted by the new primary",
        || load.ledger.first_ack_after(t0, &b_url).is_some(),
    )?;
    let first = load
        .ledger
        .first_ack_after(t0, &b_url)
        .ok_or_else(|| anyhow!("no write reached the new primary"))?;
    Ok(AfterPlanned {
        rig,
        load,
        tokens,
        failover_ms: ms(t0, first),
        roots_equal_at_promote,
    })
}

pub fn run(env: &Env) -> Result<Verdict> {
    let mut s = failover(env)?;
    std::thread::sleep(Duration::from_secs(1));
    s.load.stop();
    let attempts = s.load.ledger.snapshot();
    let report = check_new_primary(&s, &attempts, &HashSet::new())?;
    let line = format!("{} failover_ms={}", report.figures(), s.failover_ms);
    Ok(if report.clean() && s.roots_equal_at_promote {
        Verdict::Pass(line)
    } else {
        Verdict::Fail(format!(
            "{line} {} logs: {}",
            report.examples(),
            s.rig.logs()
        ))
    })
}

/// Checks `b` (the new primary) against the ledger.
pub fn check_new_primary(
    s: &AfterPlanned,
    attempts: &HashMap<String, crate::workload::Attempt>,
    must_be_gone: &HashSet<String>,
) -> Result<checker::Report> {
    let mut report = checker::check(
        &s.rig.clusters[1],
        &s.rig.root,
        &[],
        &Expect {
            attempts,
            may_lose: &HashSet::new(),
            must_be_gone,
            tokens: &s.tokens,
        },
    )?;
    report.roots_equal &= s.roots_equal_at_promote;
    Ok(report)
}

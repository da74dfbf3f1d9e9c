//! Scenario 2: emergency failover. The primary is killed with SIGKILL under load and the
//! secondary is promoted with `force`. Asynchronous replication may lose the writes that were
//! acknowledged but not yet shipped; the drill proves every lost write falls in that window.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};

use super::planned::{CLIENTS, LOAD_SECS};
use super::{Env, Monitor, Rig, Sample, Verdict, ms, num, wait_for};
use crate::checker::{self, Expect};
use crate::cluster::ClusterOptions;
use crate::workload::{Attempt, LoadSpec, Outcome, Target, Workload, make_tokens};

/// The state an emergency failover leaves: `a` dead, `b` primary, clients writing to `b`.
pub struct AfterEmergency {
    pub rig: Rig,
    pub load: Workload,
    pub tokens: Vec<String>,
    pub failover_ms: u128,
    /// Acknowledged writes whose loss the design allows (acked after the last index the
    /// secondary is known to have received).
    pub may_lose: HashSet<String>,
    /// WAL entries the primary had logged beyond what the secondary received at the kill.
    pub lag_entries: u64,
}

pub fn failover(env: &Env) -> Result<AfterEmergency> {
    let mut rig = Rig::new(env, &ClusterOptions::default(), false)?;
    rig.pair()?;
    let (a, b) = (0, 1);
    let tokens = make_tokens(&rig.client, &rig.clusters[a].url(), &rig.root, CLIENTS)?;
    rig.wait_caught_up(a, b, Duration::from_secs(30))?;
    let mut monitor = Monitor::start(
        &rig.client,
        vec![rig.clusters[a].url()],
        Duration::from_millis(20),
    );
    let target = Target::new(rig.clusters[a].url());
    let spec = LoadSpec {
        first_client: 0,
        rate: None,
        run_tag: rig.tag.clone(),
    };
    let load = Workload::start(&rig.client, target.clone(), &tokens, &spec);
    std::thread::sleep(Duration::from_secs(LOAD_SECS));

    let t_kill = Instant::now();
    rig.clusters[a].kill9();
    let samples = monitor.stop();
    // Whatever the secondary received is final once the socket drains.
    std::thread::sleep(Duration::from_millis(300));
    let received = num(&rig.clusters[b].dr_status()?["last_remote_wal"]);
    rig.promote(b, true)?;
    target.set(rig.clusters[b].url());
    let b_url = rig.clusters[b].url();
    wait_for(
        Duration::from_secs(30),
        "a write accepted by the new primary",
        || load.ledger.first_ack_after(t_kill, &b_url).is_some(),
    )?;
    let first = load
        .ledger
        .first_ack_after(t_kill, &b_url)
        .ok_or_else(|| anyhow!("no write reached the new primary"))?;

    let last_seen = samples
        .iter()
        .map(|s| num(&s.status["last_wal"]))
        .max()
        .unwrap_or(0);
    let may_lose = lag_window(
        &samples,
        received,
        &load.ledger.snapshot(),
        &rig.clusters[a].url(),
    );
    Ok(AfterEmergency {
        rig,
        load,
        tokens,
        failover_ms: ms(t_kill, first),
        may_lose,
        lag_entries: last_seen.saturating_sub(received),
    })
}

/// The writes acknowledged by the killed primary at `primary_url` whose loss the design
/// allows: those acknowledged after the latest of its DR status readings (`samples`) at or
/// below `received`, the last WAL index the secondary is known to have received. Every write
/// acknowledged before that reading was sent had an index no higher, so it must survive.
pub fn lag_window(
    samples: &[Sample],
    received: u64,
    attempts: &HashMap<String, Attempt>,
    primary_url: &str,
) -> HashSet<String> {
    let safe_before = samples
        .iter()
        .filter(|s| num(&s.status["last_wal"]) <= received && s.status["last_wal"].is_u64())
        .map(|s| s.sent)
        .max();
    attempts
        .values()
        .filter(|x| x.outcome == Outcome::Acked && x.target == primary_url)
        .filter(|x| safe_before.is_none_or(|t| x.done >= t))
        .map(|x| x.key.clone())
        .collect()
}

pub fn run(env: &Env) -> Result<Verdict> {
    let mut s = failover(env)?;
    std::thread::sleep(Duration::from_secs(1));
    s.load.stop();
    let attempts = s.load.ledger.snapshot();
    let report = checker::check(
        &s.rig.clusters[1],
        &s.rig.root,
        &[],
        &Expect {
            attempts: &attempts,
            may_lose: &s.may_lose,
            must_be_gone: &HashSet::new(),
            tokens: &s.tokens,
        },
    )?;
    let line = format!(
        "{} lost_within_lag={} lag_bound_writes={} lag_entries_at_kill={} failover_ms={}",
        report.figures(),
        report.lost_allowed,
        s.may_lose.len(),
        s.lag_entries,
        s.failover_ms
    );
    Ok(if report.clean() {
        Verdict::Pass(line)
    } else {
        Verdict::Fail(format!(
            "{line} {} logs: {}",
            report.examples(),
            s.rig.logs()
        ))
    })
}

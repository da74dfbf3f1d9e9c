//! DR replication between two 3-node Raft clusters across leader changes.
//!
//! The claims under test: a secondary bootstrapped through any node of the primary (a standby
//! forwards the unwrap and redirects the stream to the active node) follows every leader
//! change on either side by resuming from its WAL position, never by a merkle diff or sync;
//! only the active node of each cluster streams; DR operations sent to a standby are
//! forwarded; and a planned failover after all that loses no acknowledged write.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;

use super::ha::{acked_between, rolling_order, writers_attempts, writers_through_every_node};
use super::{Env, Monitor, Verdict, ms, promote, saw_resync, wait_for};
use crate::checker::{self, Expect};
use crate::dr_ha::{
    Counts, DrHaPair, NODES, StreamCounters, applied_before, generate_op_token, streaming_again,
};
use crate::workload::Workload;

/// How often the secondary's nodes are polled for `dr/status`.
const POLL: Duration = Duration::from_millis(20);
/// Seconds of load before the first fault.
const WARM_UP: Duration = Duration::from_secs(3);
/// How long a resumed stream must stay up before its counters are read.
const SETTLE: Duration = Duration::from_secs(2);

/// What one leader change cost the stream.
struct Resume {
    victim: String,
    new_active: String,
    election_ms: u128,
    /// Fault to the secondary streaming new entries again.
    resume_ms: u128,
    counts: Counts,
}

impl Resume {
    fn figures(&self, p: &str) -> String {
        format!(
            "{p}killed={} {p}new_active={} {p}election_ms={} {p}resume_ms={} {}",
            self.victim,
            self.new_active,
            self.election_ms,
            self.resume_ms,
            self.counts.figures(p)
        )
    }
}

/// A monitor of every node of the secondary cluster.
fn watch_secondary(pair: &DrHaPair) -> Monitor {
    Monitor::start(
        &pair.sec.client,
        pair.sec.nodes.iter().map(|n| n.url()).collect(),
        POLL,
    )
}

/// Kills -9 the active node of the primary (`primary`) or the
/// secondary cluster, waits for the survivors to elect a leader and the secondary to stream
/// new entries again, and reads the secondary's counters once the stream has settled.
fn kill_active(
    pair: &mut DrHaPair,
    primary: bool,
    mon: &Monitor,
    counters: &mut StreamCounters,
) -> Result<(usize, Resume)> {
    let before = counters.observe(&pair.sec)?;
    let c = if primary {
        &mut pair.pri
    } else {
        &mut pair.sec
    };
    let victim = c.wait_active_among(&c.all(), Duration::from_secs(10))?;
    let t = Instant::now();
    c.nodes[victim].kill9();
    let survivors: Vec<usize> = c.all().into_iter().filter(|&i| i != victim).collect();
    let new = c.wait_active_among(&survivors, Duration::from_secs(60))?;
    let elected = Instant::now();
    let election_ms = ms(t, elected);
    // Entries beyond this can only have come over a new connection: what the dead primary
    // node had sent is applied long before its successor is elected, and a dead secondary
    // node applies nothing.
    let baseline = applied_before(&mon.samples(), if primary { elected } else { t });
    let c = if primary { &pair.pri } else { &pair.sec };
    wait_for(
        Duration::from_secs(60),
        "the secondary to stream again",
        || streaming_again(&mon.samples(), t, baseline).is_some(),
    )?;
    let resumed = streaming_again(&mon.samples(), t, baseline).unwrap_or(t);
    std::thread::sleep(SETTLE);
    let after = counters.observe(&pair.sec)?;
    Ok((
        victim,
        Resume {
            victim: c.nodes[victim].name.clone(),
            new_active: c.nodes[new].name.clone(),
            election_ms,
            resume_ms: ms(t, resumed),
            counts: after.minus(before),
        },
    ))
}

/// What `c` answers to one write with `token`, for a failure message.
fn probe_write(c: &crate::cluster::Cluster, token: &str) -> String {
    let r = c
        .req(reqwest::Method::PUT, "secret/data/drill-probe", token)
        .json(&json!({"data": {"v": "probe"}}))
        .send();
    match r {
        Ok(r) => {
            let status = r.status();
            let body: String = r.text().unwrap_or_default().chars().take(200).collect();
            format!("{}: {status} {body}", c.name)
        }
        Err(e) => format!("{}: {e}", c.name),
    }
}

/// Waits for the secondary to report every primary node's cluster address.
fn wait_known_addrs(pair: &DrHaPair) -> usize {
    let _ = wait_for(
        Duration::from_secs(15),
        "known_primary_cluster_addrs",
        || pair.known_primary_addrs().len() == NODES,
    );
    pair.known_primary_addrs().len()
}

/// Stops the writers and the monitor; whether any secondary node showed a merkle state.
fn stop_load(ws: &mut [Workload], mon: &mut Monitor, since: Instant) -> bool {
    for w in ws.iter_mut() {
        w.stop();
    }
    let samples = mon.stop();
    (0..NODES).any(|who| saw_resync(&samples, who, since))
}

pub fn run_leader_kills(env: &Env) -> Result<Verdict> {
    // Set up: bootstrap naming a standby of the primary; writers through every primary node.
    let mut pair = DrHaPair::new(env)?;
    let named = pair.bootstrap(|active| (active + 1) % NODES)?;
    let bootstrap_via = pair.pri.nodes[named].name.clone();
    let known = wait_known_addrs(&pair);
    let (tokens, targets, mut ws) = writers_through_every_node(&pair.pri)?;
    let mut mon = watch_secondary(&pair);
    let mut counters = StreamCounters::default();
    let start = counters.observe(&pair.sec)?;
    let t_load = Instant::now();
    std::thread::sleep(WARM_UP);

    // Act 1: kill -9 the primary's active node; the secondary must follow the new one.
    let (pk, p) = kill_active(&mut pair, true, &mon, &mut counters)?;
    // Act 2: kill -9 the secondary's active node; its new active node resumes the stream.
    let (sk, s) = kill_active(&mut pair, false, &mon, &mut counters)?;
    let acked_while_down = acked_between(&ws, t_load, Instant::now());

    // Both killed nodes come back (unsealed with the primary's keys) and catch up.
    let p_restart_ms = pair.restart_node(true, pk)?;
    let s_restart_ms = pair.restart_node(false, sk)?;
    std::thread::sleep(SETTLE);
    let before_failover = counters.observe(&pair.sec)?;

    // Act 3: planned failover; the token ceremony and the promote go to standbys of `b`.
    let roots_equal_at_promote = pair.demote_and_drain()?;
    let sa = pair
        .sec
        .wait_active_among(&pair.sec.all(), Duration::from_secs(30))?;
    let (sb1, sb2) = ((sa + 1) % NODES, (sa + 2) % NODES);
    let op_token = generate_op_token(&pair.sec.nodes[sb1], &pair.sec.nodes[sb1].keys)?;
    let t_promote = Instant::now();
    promote(
        &pair.sec.nodes[sb2],
        "",
        json!({"dr_operation_token": op_token}),
    )?;
    for (i, t) in targets.iter().enumerate() {
        t.set(pair.sec.nodes[i].url());
    }
    let urls: Vec<String> = pair.sec.nodes.iter().map(|n| n.url()).collect();
    let first_ack = || {
        ws.iter()
            .zip(&urls)
            .filter_map(|(w, u)| w.ledger.first_ack_after(t_promote, u))
            .min()
    };
    if let Err(e) = wait_for(
        Duration::from_secs(30),
        "a write accepted by the new primary",
        || first_ack().is_some(),
    ) {
        let probes: Vec<String> = pair
            .sec
            .nodes
            .iter()
            .map(|n| probe_write(n, &tokens[0]))
            .collect();
        return Ok(Verdict::Fail(format!(
            "error=\"{e:#}\" probes=[{}] logs: {}",
            probes.join(" | "),
            pair.logs()
        )));
    }
    let failover_ms = first_ack().map_or(0, |t| ms(t_promote, t));
    std::thread::sleep(Duration::from_secs(1));
    let resync = stop_load(&mut ws, &mut mon, t_load);
    let total = before_failover.minus(start);

    // Assert: every acknowledged write is on the new primary, through each of its nodes.
    pair.sec.merkle = true;
    let a = pair
        .sec
        .wait_active_among(&pair.sec.all(), Duration::from_secs(30))?;
    for i in pair.sec.all() {
        pair.sec.wait_caught_up(a, i, Duration::from_secs(60))?;
    }
    let (clean, line) = pair.sec.check_all(&writers_attempts(&ws), &tokens)?;
    let ok = clean
        && roots_equal_at_promote
        && !resync
        && known == NODES
        && total.diffs == 0.0
        && total.syncs == 0.0
        && p.counts.resumes >= 1.0
        && s.counts.resumes >= 1.0
        && acked_while_down > 0;
    let line = format!(
        "{line} bootstrap_via={bootstrap_via}(standby) known_primary_addrs={known} {} {} \
         p_restart_ms={p_restart_ms} s_restart_ms={s_restart_ms} {} full_resync={resync} \
         roots_equal_at_promote={roots_equal_at_promote} op_token_via={} promote_via={} \
         failover_ms={failover_ms}",
        p.figures("p_"),
        s.figures("s_"),
        total.figures("total_"),
        pair.sec.nodes[sb1].name,
        pair.sec.nodes[sb2].name,
    );
    Ok(if ok {
        Verdict::Pass(line)
    } else {
        Verdict::Fail(format!("{line} logs: {}", pair.logs()))
    })
}

pub fn run_rolling_restart(env: &Env) -> Result<Verdict> {
    // Set up: bootstrap naming the active node; writers through every primary node.
    let mut pair = DrHaPair::new(env)?;
    pair.bootstrap(|active| active)?;
    let (tokens, _, mut ws) = writers_through_every_node(&pair.pri)?;
    let mut mon = watch_secondary(&pair);
    let mut counters = StreamCounters::default();
    let start = counters.observe(&pair.sec)?;
    let t_load = Instant::now();
    std::thread::sleep(WARM_UP);

    // Act: restart the primary's nodes in turn (SIGTERM, start, unseal), the active one last.
    let mut figures = Vec::new();
    let mut resumes_after_leader_change = 0.0;
    for i in rolling_order(&pair.pri)? {
        let was_active = pair.pri.is_active(i);
        let before = counters.observe(&pair.sec)?;
        let t0 = Instant::now();
        pair.pri.nodes[i].stop();
        // As in `kill_active`: after the active node stops, only its elected successor can
        // bring new entries.
        let from = if was_active {
            let rest: Vec<usize> = pair.pri.all().into_iter().filter(|&j| j != i).collect();
            pair.pri.wait_active_among(&rest, Duration::from_secs(60))?;
            Instant::now()
        } else {
            t0
        };
        let baseline = applied_before(&mon.samples(), from);
        std::thread::sleep(Duration::from_secs(1));
        let restart_ms = pair.restart_node(true, i)?;
        wait_for(
            Duration::from_secs(60),
            "the secondary to stream again",
            || streaming_again(&mon.samples(), t0, baseline).is_some(),
        )?;
        let stream_ms = streaming_again(&mon.samples(), t0, baseline).map_or(0, |t| ms(t0, t));
        std::thread::sleep(SETTLE);
        let counts = counters.observe(&pair.sec)?.minus(before);
        if was_active {
            resumes_after_leader_change = counts.resumes;
        }
        figures.push(format!(
            "{}(was_active={was_active} restart_ms={restart_ms} stream_new_entry_ms={stream_ms} \
             acked_during={} {})",
            pair.pri.nodes[i].name,
            acked_between(&ws, t0, Instant::now()),
            counts.figures("")
        ));
    }
    let resync = stop_load(&mut ws, &mut mon, t_load);
    let total = counters.observe(&pair.sec)?.minus(start);

    // Assert: after a final catch-up the primary holds every acknowledged write and the
    // secondary's tree equals the primary's.
    pair.wait_caught_up(Duration::from_secs(120))?;
    let pa = pair
        .pri
        .wait_active_among(&pair.pri.all(), Duration::from_secs(30))?;
    let sa = pair
        .sec
        .wait_active_among(&pair.sec.all(), Duration::from_secs(30))?;
    let attempts = writers_attempts(&ws);
    let report = checker::check(
        &pair.pri.nodes[pa],
        &pair.pri.root,
        &[&pair.sec.nodes[sa]],
        &Expect {
            attempts: &attempts,
            may_lose: &HashSet::new(),
            must_be_gone: &HashSet::new(),
            tokens: &tokens,
        },
    )?;
    let ok = report.clean()
        && !resync
        && total.diffs == 0.0
        && total.syncs == 0.0
        && resumes_after_leader_change >= 1.0;
    let line = format!(
        "{} full_resync={resync} restarts=[{}] {} final_active={}",
        report.figures(),
        figures.join(" "),
        total.figures("total_"),
        pair.pri.nodes[pa].name
    );
    Ok(if ok {
        Verdict::Pass(line)
    } else {
        Verdict::Fail(format!(
            "{line} {} logs: {}",
            report.examples(),
            pair.logs()
        ))
    })
}

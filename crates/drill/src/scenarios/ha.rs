//! Multi-node Raft (HA) drills: a three-node cluster under load through every node, the
//! active node killed, a minority partitioned (a standby, then the active node), and a
//! rolling restart. Each ends with the no-loss checker run through every node.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use serde_json::json;

use super::{Env, Verdict, ms, wait_for};
use crate::ha_cluster::HaCluster;
use crate::workload::{Attempt, LoadSpec, Outcome, Target, Workload, make_tokens};

const NODES: usize = 3;
/// Writer tokens per node.
const PER_NODE: usize = 2;
/// Writes per second per node (the machine is small and shared).
const RATE_PER_NODE: f64 = 30.0;

/// What one node itself answered to a write (no redirects followed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Acked,
    Redirect,
    Refused,
    Failed,
}

/// Direct write probes, kept as attempts for the checker.
#[derive(Default)]
struct Probes {
    n: Mutex<u64>,
    /// (sent, node, answer, attempt)
    log: Mutex<Vec<(Instant, usize, Answer, Attempt)>>,
}

impl Probes {
    fn write(&self, ha: &HaCluster, i: usize) -> Answer {
        let n = {
            let mut g = self.n.lock().unwrap_or_else(|e| e.into_inner());
            *g += 1;
            *g
        };
        let key = format!("probe-{n}");
        let value = format!("{}-probe-{n}", ha.tag);
        let url = ha.nodes[i].url();
        let sent = Instant::now();
        let r = ha
            .raw
            .put(format!("{url}/v1/secret/data/{key}"))
            .header("X-Vault-Token", &ha.root)
            .json(&json!({"data": {"v": value}}))
            .send();
        let answer = match r {
            Ok(r) if r.status().is_success() => Answer::Acked,
            Ok(r) if r.status().is_redirection() => Answer::Redirect,
            Ok(r) if r.status().is_client_error() => Answer::Refused,
            _ => Answer::Failed,
        };
        // A redirect or a failure may still have reached the active node: in doubt.
        let outcome = match answer {
            Answer::Acked => Outcome::Acked,
            Answer::Refused => Outcome::Rejected,
            _ => Outcome::InDoubt,
        };
        let a = Attempt {
            key,
            value,
            outcome,
            done: Instant::now(),
            target: url,
        };
        if let Ok(mut l) = self.log.lock() {
            l.push((sent, i, answer, a));
        }
        answer
    }

    fn attempts(&self) -> Vec<Attempt> {
        self.log
            .lock()
            .map(|l| l.iter().map(|x| x.3.clone()).collect())
            .unwrap_or_default()
    }

    /// Counts of answers from node `i` to probes sent in `[from, to)`.
    fn counts(&self, i: usize, from: Instant, to: Instant) -> HashMap<&'static str, usize> {
        let mut m = HashMap::new();
        if let Ok(l) = self.log.lock() {
            for (sent, who, ans, _) in l.iter() {
                if *who == i && *sent >= from && *sent < to {
                    let k = match ans {
                        Answer::Acked => "acked",
                        Answer::Redirect => "redirect",
                        Answer::Refused => "refused",
                        Answer::Failed => "failed",
                    };
                    *m.entry(k).or_insert(0) += 1;
                }
            }
        }
        m
    }
}

fn fmt_counts(m: &HashMap<&'static str, usize>) -> String {
    let g = |k: &str| m.get(k).copied().unwrap_or(0);
    format!(
        "{}/{}/{}/{}",
        g("acked"),
        g("redirect"),
        g("refused"),
        g("failed")
    )
}

/// A formed cluster, writer tokens, and writers through every node.
fn setup(env: &Env, fast: bool) -> Result<(HaCluster, Vec<String>, Vec<Workload>)> {
    let mut ha = HaCluster::new(env, NODES, fast)?;
    ha.form()?;
    let (tokens, _, ws) = writers_through_every_node(&ha)?;
    Ok((ha, tokens, ws))
}

/// Writer tokens made on node 1, and [`PER_NODE`] writers through each node of `ha` at
/// [`RATE_PER_NODE`] each, with the [`Target`] of each node's writers (to re-point them).
pub(super) fn writers_through_every_node(
    ha: &HaCluster,
) -> Result<(Vec<String>, Vec<Target>, Vec<Workload>)> {
    let n = ha.nodes.len();
    let tokens = make_tokens(&ha.client, &ha.nodes[0].url(), &ha.root, n * PER_NODE)?;
    let targets: Vec<Target> = ha.nodes.iter().map(|c| Target::new(c.url())).collect();
    let ws = targets
        .iter()
        .enumerate()
        .map(|(i, target)| {
            let spec = LoadSpec {
                first_client: i * 100,
                rate: Some(RATE_PER_NODE),
                run_tag: ha.tag.clone(),
            };
            Workload::start(
                &ha.client,
                target.clone(),
                &tokens[i * PER_NODE..(i + 1) * PER_NODE],
                &spec,
            )
        })
        .collect();
    Ok((tokens, targets, ws))
}

/// Every attempt of the writers and the probes.
fn all_attempts(ws: &[Workload], probes: &Probes) -> HashMap<String, Attempt> {
    let mut m = writers_attempts(ws);
    for a in probes.attempts() {
        m.insert(a.key.clone(), a);
    }
    m
}

/// Every attempt of the writers.
pub(super) fn writers_attempts(ws: &[Workload]) -> HashMap<String, Attempt> {
    let mut m = HashMap::new();
    for w in ws {
        m.extend(w.ledger.snapshot());
    }
    m
}

pub(super) fn acked_between(ws: &[Workload], from: Instant, to: Instant) -> usize {
    ws.iter()
        .flat_map(|w| w.ledger.snapshot().into_values())
        .filter(|a| a.outcome == Outcome::Acked && a.done >= from && a.done < to)
        .count()
}

/// Stops the writers, lets every node catch up, runs the checker through every node.
fn finish(
    ha: &HaCluster,
    ws: &mut [Workload],
    probes: &Probes,
    tokens: &[String],
) -> Result<(bool, String)> {
    for w in ws.iter_mut() {
        w.stop();
    }
    let a = ha.wait_active_among(&ha.all(), Duration::from_secs(30))?;
    for i in ha.all() {
        ha.wait_caught_up(a, i, Duration::from_secs(60))?;
    }
    let attempts = all_attempts(ws, probes);
    let (clean, line) = ha.check_all(&attempts, tokens)?;
    let line = if clean {
        line
    } else {
        format!("{line} logs: {}", ha.logs())
    };
    Ok((clean, line))
}

/// Probes `among` round-robin until one acknowledges; the time of that answer.
fn first_ack(
    ha: &HaCluster,
    probes: &Probes,
    among: &[usize],
    timeout: Duration,
) -> Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        for &i in among {
            if probes.write(ha, i) == Answer::Acked {
                return Ok(Instant::now());
            }
        }
        if Instant::now() > deadline {
            return Err(anyhow!(
                "no node of {among:?} acknowledged a write within {timeout:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn run_leader_kill(env: &Env) -> Result<Verdict> {
    // Set up: three nodes, writers through each.
    let (mut ha, tokens, mut ws) = setup(env, true)?;
    let probes = Probes::default();
    std::thread::sleep(Duration::from_secs(3));
    let old = ha.wait_active_among(&ha.all(), Duration::from_secs(10))?;
    let survivors: Vec<usize> = ha.all().into_iter().filter(|&i| i != old).collect();

    // Act: kill -9 the active node.
    let t_kill = Instant::now();
    ha.nodes[old].kill9();
    let t_ack = first_ack(&ha, &probes, &survivors, Duration::from_secs(60))?;
    let failover_ms = ms(t_kill, t_ack);
    let new = ha.wait_active_among(&survivors, Duration::from_secs(30))?;
    let election_ms = ms(t_kill, Instant::now());
    let writer_first_ack_ms = survivors
        .iter()
        .filter_map(|&i| ws[i].ledger.first_ack_after(t_kill, &ha.nodes[i].url()))
        .min()
        .map(|t| ms(t_kill, t).to_string())
        .unwrap_or_else(|| "none".into());
    std::thread::sleep(Duration::from_secs(3));
    let acked_while_down = acked_between(&ws, t_kill, Instant::now());

    // Restart and unseal the killed node; it must rejoin as a voter and catch up.
    let t_restart = Instant::now();
    ha.start_node(old, true)?;
    ha.wait_rejoined(old, Duration::from_secs(60))?;
    let catchup_ms = ms(t_restart, Instant::now());
    std::thread::sleep(Duration::from_secs(2));

    // Assert: nothing acknowledged is missing, through every node.
    let (clean, line) = finish(&ha, &mut ws, &probes, &tokens)?;
    let ok = clean && new != old && acked_while_down > 0;
    let line = format!(
        "{line} killed={} new_active={} failover_ms={failover_ms} election_ms={election_ms} \
         writer_first_ack_ms={writer_first_ack_ms} acked_while_down={acked_while_down} \
         restart_catchup_ms={catchup_ms} unattributed_conns_accept/at_cut={}",
        ha.nodes[old].name,
        ha.nodes[new].name,
        ha.unattributed()
    );
    Ok(if ok {
        Verdict::Pass(line)
    } else {
        Verdict::Fail(line)
    })
}

/// Probes node `i` every 100 ms until `stop`.
fn probe_loop(ha: &HaCluster, probes: &Probes, i: usize, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        probes.write(ha, i);
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn run_minority_partition(env: &Env) -> Result<Verdict> {
    // The server default multiplier: with `performance_multiplier = 1` a cut peer link
    // never comes back on this machine (see the drill report: the 20 ms RPC bound covers
    // the re-dial and TLS handshake).
    let (ha, tokens, mut ws) = setup(env, false)?;
    let probes = Probes::default();
    std::thread::sleep(Duration::from_secs(3));
    let mut figures = Vec::new();
    let mut ok = true;

    // Phase 1: cut a standby from the other two.
    let a = ha.wait_active_among(&ha.all(), Duration::from_secs(10))?;
    let s = ha.all().into_iter().find(|&i| i != a).unwrap_or(1);
    let t_cut = Instant::now();
    ha.isolate(s)?;
    let stop = AtomicBool::new(false);
    std::thread::scope(|sc| {
        sc.spawn(|| probe_loop(&ha, &probes, s, &stop));
        std::thread::sleep(Duration::from_secs(6));
        stop.store(true, Ordering::SeqCst);
    });
    let t_heal = Instant::now();
    let majority_acks = (0..NODES)
        .filter(|&i| i != s)
        .map(|i| {
            ws[i]
                .ledger
                .snapshot()
                .values()
                .filter(|x| x.outcome == Outcome::Acked && x.done >= t_cut && x.done < t_heal)
                .count()
        })
        .sum::<usize>();
    let cut_counts = probes.counts(s, t_cut, t_heal);
    let cut_acks = cut_counts.get("acked").copied().unwrap_or(0);
    let a_during = ha.active_among(&(0..NODES).filter(|&i| i != s).collect::<Vec<_>>());
    ha.heal();
    let t0 = Instant::now();
    let a1 = ha.wait_active_among(&ha.all(), Duration::from_secs(30))?;
    ha.wait_caught_up(a1, s, Duration::from_secs(60))?;
    let heal1_ms = ms(t0, Instant::now());
    ok &= majority_acks > 0 && cut_acks == 0;
    figures.push(format!(
        "p1_cut={} p1_majority_acks={majority_acks} p1_cut_probe_ack/redir/refused/failed={} \
         p1_active_during={} p1_heal_catchup_ms={heal1_ms}",
        ha.nodes[s].name,
        fmt_counts(&cut_counts),
        a_during
            .map(|i| ha.nodes[i].name.clone())
            .unwrap_or("none".into()),
    ));
    std::thread::sleep(Duration::from_secs(2));

    // Phase 2: cut the active node (a minority of one).
    let old = ha.wait_active_among(&ha.all(), Duration::from_secs(10))?;
    let majority: Vec<usize> = ha.all().into_iter().filter(|&i| i != old).collect();
    let t_cut = Instant::now();
    ha.isolate(old)?;
    let stop = AtomicBool::new(false);
    let mut phase2: Result<(u128, u128, usize)> = Err(anyhow!("not run"));
    let mut old_claims = false;
    std::thread::scope(|sc| {
        sc.spawn(|| probe_loop(&ha, &probes, old, &stop));
        phase2 = (|| {
            let new = ha.wait_active_among(&majority, Duration::from_secs(60))?;
            let election_ms = ms(t_cut, Instant::now());
            let t_ack = first_ack(&ha, &probes, &majority, Duration::from_secs(60))?;
            let failover_ms = ms(t_cut, t_ack);
            std::thread::sleep(Duration::from_secs(5));
            Ok((election_ms, failover_ms, new))
        })();
        old_claims = ha.is_active(old);
        stop.store(true, Ordering::SeqCst);
    });
    let (election_ms, failover_ms, new) = phase2?;
    let t_heal = Instant::now();
    let old_counts = probes.counts(old, t_cut, t_heal);
    let old_acks = old_counts.get("acked").copied().unwrap_or(0);
    let majority_acks = majority
        .iter()
        .map(|&i| {
            ws[i]
                .ledger
                .snapshot()
                .values()
                .filter(|x| x.outcome == Outcome::Acked && x.done >= t_cut && x.done < t_heal)
                .count()
        })
        .sum::<usize>();
    ha.heal();
    let t0 = Instant::now();
    let mut stepped_down = true;
    if wait_for(
        Duration::from_secs(30),
        "the old leader to step down",
        || !ha.is_active(old),
    )
    .is_err()
    {
        stepped_down = false;
    }
    let a2 = ha.wait_active_among(&ha.all(), Duration::from_secs(30))?;
    ha.wait_caught_up(a2, old, Duration::from_secs(60))?;
    let heal2_ms = ms(t0, Instant::now());
    ok &= old_acks == 0 && majority_acks > 0 && stepped_down && new != old;
    figures.push(format!(
        "p2_cut={} p2_new_active={} p2_election_ms={election_ms} p2_failover_ms={failover_ms} \
         p2_majority_acks={majority_acks} p2_old_probe_ack/redir/refused/failed={} \
         p2_old_claims_active_while_cut={old_claims} p2_stepped_down_after_heal={stepped_down} \
         p2_heal_catchup_ms={heal2_ms}",
        ha.nodes[old].name,
        ha.nodes[new].name,
        fmt_counts(&old_counts),
    ));
    std::thread::sleep(Duration::from_secs(2));

    let (clean, line) = finish(&ha, &mut ws, &probes, &tokens)?;
    ok &= clean;
    let line = format!(
        "{line} {} unattributed_conns_accept/at_cut={}",
        figures.join(" "),
        ha.unattributed()
    );
    Ok(if ok {
        Verdict::Pass(line)
    } else {
        Verdict::Fail(line)
    })
}

/// Every node of `ha`, the standbys first and the active node last.
pub(super) fn rolling_order(ha: &HaCluster) -> Result<Vec<usize>> {
    let first_active = ha.wait_active_among(&ha.all(), Duration::from_secs(10))?;
    let mut order: Vec<usize> = ha
        .all()
        .into_iter()
        .filter(|&i| i != first_active)
        .collect();
    order.push(first_active);
    Ok(order)
}

pub fn run_rolling_restart(env: &Env) -> Result<Verdict> {
    let (mut ha, tokens, mut ws) = setup(env, true)?;
    let probes = Probes::default();
    std::thread::sleep(Duration::from_secs(3));
    let order = rolling_order(&ha)?;
    let mut figures = Vec::new();
    let mut ok = true;
    for i in order {
        let name = ha.nodes[i].name.clone();
        let was_active = ha.is_active(i);
        let t0 = Instant::now();
        ha.nodes[i].stop();
        let mut failover = String::new();
        if was_active {
            let rest: Vec<usize> = ha.all().into_iter().filter(|&j| j != i).collect();
            let t_ack = first_ack(&ha, &probes, &rest, Duration::from_secs(60))?;
            failover = format!(" failover_ms={}", ms(t0, t_ack));
        }
        std::thread::sleep(Duration::from_secs(1));
        ha.start_node(i, true)?;
        ha.wait_rejoined(i, Duration::from_secs(60))?;
        let t1 = Instant::now();
        let acked = acked_between(&ws, t0, t1);
        ok &= acked > 0;
        figures.push(format!(
            "{name}(was_active={was_active} restart_ms={}{failover} acked_during={acked})",
            ms(t0, t1)
        ));
        std::thread::sleep(Duration::from_secs(2));
    }
    let last = ha.wait_active_among(&ha.all(), Duration::from_secs(30))?;
    let (clean, line) = finish(&ha, &mut ws, &probes, &tokens)?;
    ok &= clean;
    let line = format!(
        "{line} restarts=[{}] final_active={}",
        figures.join(" "),
        ha.nodes[last].name
    );
    Ok(if ok {
        Verdict::Pass(line)
    } else {
        Verdict::Fail(line)
    })
}

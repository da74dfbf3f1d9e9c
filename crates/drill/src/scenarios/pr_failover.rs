//! PR primary failover: performance primary A is killed under load and its DR secondary A'
//! takes over; the region's performance secondary P is re-pointed at A' by address.
//!
//! A DR secondary of a performance primary stands in for that primary in the whole topology,
//! not only for its clients: the PR record travels to it, so on promotion it becomes the PR
//! primary, and P keeps its activation identity and needs only A's successor's address
//! (`update_primary_addrs`), no new activation token. The drill checks what an operator
//! relies on after such a loss: A' holds every acknowledged write outside the asynchronous DR
//! lag at the kill (the bound `emergency-failover` uses), P converges to A' (each of those
//! writes readable on P with P's own token, equal shared trees), and a write through P lands
//! on A'.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use reqwest::Method;
use serde_json::{Value, json};

use super::emergency::lag_window;
use super::planned::{CLIENTS, LOAD_SECS};
use super::{Env, Monitor, Rig, Verdict, ms, promote, wait_for};
use crate::checker::{self, Expect, Report, Tree};
use crate::cluster::{CLUSTER_PORT, Cluster, ClusterOptions};
use crate::pr::{self, Probe};
use crate::workload::{LoadSpec, Target, Workload, make_tokens};

const A: usize = 0;
/// A's DR secondary.
const A2: usize = 1;
/// Writes per second on the primary, across the writers.
const RATE: f64 = 50.0;

/// The topology before the fault.
struct Setup {
    rig: Rig,
    /// P's index in the rig.
    p: usize,
    /// The batch DR operation token made on A.
    dr_op: String,
    /// P's own token (userpass login on P).
    op: String,
    tokens: Vec<String>,
}

/// A batch token made on `a` whose policy allows the DR secondary operations: it replicates
/// to A' with the rest, and authorizes a promotion there once A is gone.
fn batch_op_token(a: &Cluster, root: &str) -> Result<String> {
    let policy = r#"path "sys/replication/dr/secondary/*" { capabilities = ["update"] }"#;
    a.call(
        a.req(Method::PUT, "sys/policies/acl/drill-dr-ops", root)
            .json(&json!({ "policy": policy })),
        "writing the DR operation policy",
    )?;
    let r = a.call(
        a.req(Method::POST, "auth/token/create", root).json(&json!({
            "policies": ["drill-dr-ops"], "type": "batch", "no_parent": true, "ttl": "1h",
        })),
        "creating the batch DR operation token",
    )?;
    r["auth"]["client_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the batch token create returned no client_token"))
}

/// A: DR and PR primary; A': its caught-up DR secondary; P: its streaming PR secondary.
fn setup(env: &Env) -> Result<Setup> {
    let mut rig = Rig::new(env, &ClusterOptions::default(), false)?;
    let p = rig.add_cluster(env, "p", &ClusterOptions::default())?;
    rig.pair()?;
    pr::enable_primary(&rig.clusters[A], &rig.root)?;
    let dr_op = batch_op_token(&rig.clusters[A], &rig.root)?;
    pr::start_secondary(&mut rig, p, A)?;
    pr::wait_streaming(&rig.clusters[A], &rig.clusters[p], Duration::from_secs(60))?;
    let op = pr::login(&rig.clusters[p])?;
    let tokens = make_tokens(&rig.client, &rig.clusters[A].url(), &rig.root, CLIENTS)?;
    rig.wait_caught_up(A, A2, Duration::from_secs(30))?;
    Ok(Setup {
        rig,
        p,
        dr_op,
        op,
        tokens,
    })
}

/// Whether performance status `s` streams from the primary at `addr`, connected.
fn streams_from(s: &Value, addr: &str) -> bool {
    s["state"] == "stream-wals"
        && s["primaries"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["cluster_address"] == addr && p["connection_status"] == "connected")
        })
}

/// What the failover showed.
struct Failover {
    /// The last WAL index A' had received from A at the kill.
    received: u64,
    promote_ms: u128,
    /// From the kill until P streamed from A'.
    streaming_ms: u128,
    /// Writes sent through P after it followed A'.
    probes: Vec<Probe>,
    /// Whether the acknowledged one of them reads back on A'.
    landed_on_a2: bool,
    a2_perf_mode: String,
    /// P's stream counters from before the kill until it caught up with A': connections
    /// resumed from its position, merkle diffs.
    p_counters: (f64, f64),
}

/// With A dead: promote A', send the writers there, re-point P at A' by address, wait until
/// P streams from it, and write through P.
fn fail_over(s: &Setup, target: &Target, t_kill: Instant) -> Result<Failover> {
    let (a2, pc) = (&s.rig.clusters[A2], &s.rig.clusters[s.p]);
    let received = super::num(&a2.dr_status()?["last_remote_wal"]);
    promote(
        a2,
        "",
        json!({"force": true, "dr_operation_token": s.dr_op}),
    )?;
    target.set(a2.url());
    let promote_ms = ms(t_kill, Instant::now());
    let addr = format!("https://{}:{CLUSTER_PORT}", a2.placement.peer_ip);
    pc.call(
        pc.req(
            Method::PUT,
            "sys/replication/performance/secondary/update-primary",
            &s.op,
        )
        .json(&json!({ "update_primary_addrs": [addr] })),
        "performance/secondary/update-primary",
    )?;
    let mut last = Value::Null;
    let streaming = wait_for(Duration::from_secs(60), "P to stream from A'", || {
        let Ok(st) = pr::perf_status(pc) else {
            return false;
        };
        let ok = streams_from(&st, &addr);
        last = st;
        ok
    });
    if let Err(e) = streaming {
        return Err(e.context(format!("P's last performance status: {last}")));
    }
    let streaming_ms = ms(t_kill, Instant::now());
    let mut probes = Vec::new();
    let value = format!("{}-via-p", s.rig.tag);
    let timeout = Duration::from_secs(30);
    pr::write_until_acked(pc, &s.op, "via-p", &value, timeout, &mut probes);
    let landed_on_a2 = probes.last().is_some_and(|p| {
        checker::read_value(a2, &s.rig.root, &p.attempt.key)
            .is_ok_and(|v| v.as_deref() == Some(p.attempt.value.as_str()))
    });
    let a2_perf_mode = pr::perf_status(a2)
        .map(|st| st["mode"].as_str().unwrap_or("?").to_string())
        .unwrap_or_else(|e| format!("error: {e}"));
    Ok(Failover {
        received,
        promote_ms,
        streaming_ms,
        probes,
        landed_on_a2,
        a2_perf_mode,
        p_counters: (0.0, 0.0),
    })
}

pub fn run(env: &Env) -> Result<Verdict> {
    // Set up: the three clusters, and a writer on A whose DR position is sampled.
    let mut s = setup(env)?;
    let mut monitor = Monitor::start(
        &s.rig.client,
        vec![s.rig.clusters[A].url()],
        Duration::from_millis(20),
    );
    let target = Target::new(s.rig.clusters[A].url());
    let spec = LoadSpec {
        first_client: 0,
        rate: Some(RATE),
        run_tag: s.rig.tag.clone(),
    };
    let mut load = Workload::start(&s.rig.client, target.clone(), &s.tokens, &spec);
    std::thread::sleep(Duration::from_secs(LOAD_SECS));

    // Act: kill -9 A; whatever A' received is final once the socket drains; fail over.
    let before = pr::stream_counters(&s.rig.clusters[s.p]);
    let t_kill = Instant::now();
    s.rig.clusters[A].kill9();
    let samples = monitor.stop();
    std::thread::sleep(Duration::from_millis(300));
    let mut f = fail_over(&s, &target, t_kill)?;
    std::thread::sleep(Duration::from_secs(1));
    load.stop();
    let (a2, pc) = (&s.rig.clusters[A2], &s.rig.clusters[s.p]);
    pr::wait_streaming(a2, pc, Duration::from_secs(60))?;
    let after = pr::stream_counters(pc);
    f.p_counters = (after.0 - before.0, after.1 - before.1);

    // Assert: A' lost nothing outside the lag bound, P holds what A' holds, the write through
    // P reached A'.
    let attempts = pr::all_attempts(load.ledger.snapshot(), &f.probes);
    let a_url = s.rig.clusters[A].url();
    let may_lose = lag_window(&samples, f.received, &attempts, &a_url);
    let expect = Expect {
        attempts: &attempts,
        may_lose: &may_lose,
        must_be_gone: &HashSet::new(),
        tokens: &s.tokens,
    };
    let on_a2 = checker::check_in(Tree::Performance, a2, &s.rig.root, &[pc], &expect)?;
    let on_p = pr::check_secondary(pc, &s.op, a2, &attempts, &may_lose)?;
    Ok(verdict(&s.rig, &f, may_lose.len(), &on_a2, &on_p))
}

fn verdict(rig: &Rig, f: &Failover, lag_bound: usize, on_a2: &Report, on_p: &Report) -> Verdict {
    let line = format!(
        "{} lost_within_lag={} lag_bound_writes={lag_bound} secondary: acked={} lost={} \
         lost_within_lag={} phantom={} roots_equal={} promote_ms={} kill_to_p_streaming_ms={} \
         write_via_p_lands_on_a2={} a2_performance_mode={} p_resumes={} p_merkle_diffs={}",
        on_a2.figures(),
        on_a2.lost_allowed,
        on_p.acked,
        on_p.lost.len() + on_p.lost_allowed,
        on_p.lost_allowed,
        on_p.phantom.len(),
        on_p.roots_equal,
        f.promote_ms,
        f.streaming_ms,
        f.landed_on_a2,
        f.a2_perf_mode,
        f.p_counters.0,
        f.p_counters.1,
    );
    if on_a2.clean() && on_p.clean() && f.landed_on_a2 && f.a2_perf_mode == "primary" {
        Verdict::Pass(line)
    } else {
        let tries: Vec<String> = f
            .probes
            .iter()
            .map(|p| format!("{:?}:{}", p.status, p.body.trim()))
            .collect();
        Verdict::Fail(format!(
            "{line} writes_via_p={tries:?} {} secondary: {} logs: {}",
            on_a2.examples(),
            on_p.examples(),
            rig.logs()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::streams_from;
    use serde_json::json;

    // Why: "P streams from A'" must not be read from a status that still names the dead
    // primary, or one that names A' while still connecting.
    #[test]
    fn streams_from_needs_the_new_address_connected_and_streaming() {
        let new = "https://127.1.1.2:8201";
        let status = |state, addr, conn| json!({"state": state, "primaries": [{"cluster_address": addr, "connection_status": conn}]});

        assert!(streams_from(&status("stream-wals", new, "connected"), new));
        assert!(!streams_from(
            &status("stream-wals", "https://127.1.1.1:8201", "connected"),
            new
        ));
        assert!(!streams_from(
            &status("connecting", new, "disconnected"),
            new
        ));
        assert!(!streams_from(
            &json!({"state": "stream-wals", "primaries": []}),
            new
        ));
    }
}

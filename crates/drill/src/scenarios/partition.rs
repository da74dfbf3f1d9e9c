//! Scenario 4: the link between the clusters is cut under load, briefly (the primary still
//! retains the secondary's position) or for long (retention is exceeded), then healed. The
//! secondary must catch up, and while cut off both its status and the primary's metrics
//! must have said so: an operator relies on those to notice a partition.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::planned::CLIENTS;
use super::{Env, Monitor, Rig, SECONDARY_ID, Verdict, ms, num, saw_resync, wait_for};
use crate::cluster::{Cluster, ClusterOptions};
use crate::workload::{LoadSpec, Target, Workload, make_tokens};

const A: usize = 0;
const B: usize = 1;
const RETENTION: u64 = 50;

pub fn run_short(env: &Env) -> Result<Verdict> {
    drill(env, false)
}

pub fn run_long(env: &Env) -> Result<Verdict> {
    drill(env, true)
}

/// Whether the secondary's status (DR or performance) says it has no live connection to its
/// primary.
pub fn status_disconnected(s: &serde_json::Value) -> bool {
    let state_down = s["connection_state"].as_str().is_some_and(|c| c != "ready");
    let peer_down = s["primaries"].as_array().is_some_and(|p| {
        p.is_empty() || p.iter().any(|x| x["connection_status"] == "disconnected")
    });
    state_down || peer_down
}

/// Whether the primary's metrics say the drill's secondary is disconnected.
fn metrics_disconnected(primary: &Cluster, token: &str) -> bool {
    let Ok(text) = primary.metrics(token) else {
        return false;
    };
    text.lines().any(|l| {
        l.starts_with("vault_replication_secondary_connected")
            && l.contains(&format!("secondary_id=\"{SECONDARY_ID}\""))
            && l.split_whitespace()
                .last()
                .and_then(|v| v.parse::<f64>().ok())
                == Some(0.0)
    })
}

fn drill(env: &Env, long: bool) -> Result<Verdict> {
    // Set up: a pair in two namespaces, a small WAL retention, a steady trickle of writes
    // (slow for the short cut so it stays within retention).
    let options = ClusterOptions {
        wal_retention_entries: Some(RETENTION),
        ..ClusterOptions::default()
    };
    let mut rig = Rig::new(env, &options, true)?;
    rig.pair()?;
    let tokens = make_tokens(&rig.client, &rig.clusters[A].url(), &rig.root, CLIENTS)?;
    rig.wait_caught_up(A, B, Duration::from_secs(30))?;
    let spec = LoadSpec {
        first_client: 0,
        rate: Some(if long { 40.0 } else { 1.0 }),
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
        Duration::from_millis(20),
    );
    std::thread::sleep(Duration::from_secs(1));

    // Act: cut the link; wait until the secondary's status and the primary's metrics both
    // report the disconnection (the idle timeout is 15 s); for the long cut also until the
    // primary has logged well beyond its retention; then heal.
    let wal_at_cut = num(&rig.clusters[A].dr_status()?["last_wal"]);
    let t_cut = Instant::now();
    rig.topology()?.cut()?;
    let (ca, cb) = (&rig.clusters[A], &rig.clusters[B]);
    let status_seen = wait_for(
        Duration::from_secs(45),
        "the secondary to report the cut",
        || cb.dr_status().is_ok_and(|s| status_disconnected(&s)),
    )
    .is_ok();
    let disconnected_ms = ms(t_cut, Instant::now());
    let metrics_seen = wait_for(
        Duration::from_secs(30),
        "the primary's metrics to report the cut",
        || metrics_disconnected(ca, &rig.root),
    )
    .is_ok();
    if long {
        wait_for(
            Duration::from_secs(60),
            "the primary to log past its retention",
            || {
                ca.dr_status()
                    .is_ok_and(|s| num(&s["last_wal"]) > wal_at_cut + 3 * RETENTION)
            },
        )?;
    }
    let wal_during = num(&ca.dr_status()?["last_wal"]).saturating_sub(wal_at_cut);
    let t_heal = Instant::now();
    rig.topology()?.heal()?;
    std::thread::sleep(Duration::from_secs(2));
    w.stop();
    rig.wait_caught_up(A, B, Duration::from_secs(120))?;
    let catchup_ms = ms(t_heal, Instant::now());
    let samples = monitor.stop();
    let resync = saw_resync(&samples, 0, t_heal);

    // Assert: nothing lost, trees equal, the cut was visible, and a short cut resumed the
    // stream without a merkle sync.
    let attempts = w.ledger.snapshot();
    let report = rig.check_nothing_lost(A, B, &attempts, &tokens)?;
    let line = format!(
        "{} partition_ms={} wal_during_partition={wal_during} status_said_disconnected={status_seen} disconnected_after_ms={disconnected_ms} metrics_said_disconnected={metrics_seen} catchup={} catchup_ms={catchup_ms}",
        report.figures(),
        ms(t_cut, t_heal),
        if resync { "merkle" } else { "stream" },
    );
    let resync_ok = long || !resync;
    Ok(
        if report.clean() && status_seen && metrics_seen && resync_ok {
            Verdict::Pass(line)
        } else {
            Verdict::Fail(format!("{line} {} logs: {}", report.examples(), rig.logs()))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::status_disconnected;
    use serde_json::json;

    // Why: the partition verdict rests on reading Vault's status vocabulary correctly.
    #[test]
    fn status_disconnected_reads_both_fields() {
        // Set up: a healthy status, and two ways a status reports a lost primary.
        let healthy =
            json!({"connection_state": "ready", "primaries": [{"connection_status": "connected"}]});
        let by_state = json!({"connection_state": "transient_failure", "primaries": [{"connection_status": "connected"}]});
        let by_peer = json!({"connection_state": "ready", "primaries": [{"connection_status": "disconnected"}]});

        // Act + assert: only the healthy one reads as connected.
        assert!(!status_disconnected(&healthy));
        assert!(status_disconnected(&by_state));
        assert!(status_disconnected(&by_peer));
    }
}

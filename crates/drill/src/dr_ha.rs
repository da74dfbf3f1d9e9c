//! A DR pair of two multi-node Raft clusters (3 × 2): primary cluster `a`, secondary `b`,
//! every node a real process over TLS, each cluster an [`HaCluster`] with its own relays.
//!
//! A DR claim about leader changes is only evidence if it is read from the clusters as an
//! operator would: which node is active (`sys/leader`), where the stream stands
//! (`dr/status`), and the secondary's own counters of how each connection started (resumed
//! from its WAL position, or a merkle diff). Those counters live in each process, and only
//! the active node of the secondary runs the stream, so [`StreamCounters`] reads them on the
//! active node and keeps one reading per process: a killed node's last reading still counts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::ha_cluster::HaCluster;
use crate::scenarios::{Env, SECONDARY_ID, Sample, activation_token, enable_secondary, num};

pub const NODES: usize = 3;

/// The secondary's replication counters (Prometheus, one process).
pub const RESUMES: &str = "vault_replication_stream_resumes_total";
pub const DIFFS: &str = "vault_replication_merkle_diffs_total";
pub const REDIRECTS: &str = "vault_replication_redirects_total";
pub const SYNCS: &str = "vault_replication_merkle_sync_seconds_count";

/// Primary cluster `pri`, DR secondary cluster `sec`.
pub struct DrHaPair {
    pub pri: HaCluster,
    pub sec: HaCluster,
}

impl DrHaPair {
    /// Prepares both clusters (nothing started); the server's default Raft timing.
    pub fn new(env: &Env) -> Result<DrHaPair> {
        let pri = HaCluster::labelled(env, NODES, false, "a", None)?;
        // One CA for both: writers re-pointed at the secondary after a failover keep their
        // client, and the secondary's `ca_file` is the primary's.
        let sec = HaCluster::labelled(env, NODES, false, "b", Some(&pri))?;
        Ok(DrHaPair { pri, sec })
    }

    pub fn logs(&self) -> String {
        format!("{} {}", self.pri.logs(), self.sec.logs())
    }

    /// Forms both clusters, makes `pri` a DR primary and `sec` its secondary with
    /// `primary_api_addr` naming primary node `name_node(active)`, unseals the secondary's
    /// standbys with the primary's keys, and waits until the secondary has caught up. Returns
    /// the primary node the bootstrap named.
    pub fn bootstrap(&mut self, name_node: impl Fn(usize) -> usize) -> Result<usize> {
        self.pri.form()?;
        if !self.pri.merkle {
            bail!("dr/primary/enable failed on the primary cluster");
        }
        self.sec.form_raft()?;
        let pa = self
            .pri
            .wait_active_among(&self.pri.all(), Duration::from_secs(30))?;
        let named = name_node(pa);
        let token = activation_token(&self.pri.nodes[pa], &self.pri.root, SECONDARY_ID)?;
        let sa = self
            .sec
            .wait_active_among(&self.sec.all(), Duration::from_secs(30))?;
        enable_secondary(
            &self.sec.nodes[sa],
            &self.sec.root,
            &token,
            &self.pri.nodes[named].url(),
            &self.pri.ca_file,
        )?;
        // The secondary now holds the primary's keys and tokens.
        let keys = self.pri.nodes[0].keys.clone();
        for n in &mut self.sec.nodes {
            n.keys = keys.clone();
        }
        self.sec.root = self.pri.root.clone();
        for i in self.sec.all().into_iter().filter(|&i| i != sa) {
            let n = &self.sec.nodes[i];
            crate::scenarios::wait_for(
                Duration::from_secs(60),
                "a secondary standby to seal itself after dr/secondary/enable",
                || n.seal_status().is_ok_and(|v| v["sealed"] == true),
            )
            .with_context(|| format!("{} never sealed; see {}", n.name, n.log_file().display()))?;
            n.unseal()
                .with_context(|| format!("unsealing {} with the primary's keys", n.name))?;
        }
        self.wait_caught_up(Duration::from_secs(120))?;
        Ok(named)
    }

    /// The active node of `c` among the running ones, if exactly one says so.
    fn active(c: &HaCluster) -> Option<usize> {
        let running: Vec<usize> = c
            .all()
            .into_iter()
            .filter(|&i| c.nodes[i].pid().is_some())
            .collect();
        c.active_among(&running)
    }

    /// `dr/status` of each cluster's active node.
    pub fn statuses(&self) -> Option<(Value, Value)> {
        let (p, s) = (Self::active(&self.pri)?, Self::active(&self.sec)?);
        Some((
            self.pri.nodes[p].dr_status().ok()?,
            self.sec.nodes[s].dr_status().ok()?,
        ))
    }

    /// Waits until the secondary streams, has applied the primary's last WAL index, and the
    /// trees agree.
    pub fn wait_caught_up(&self, timeout: Duration) -> Result<()> {
        crate::scenarios::wait_for(timeout, "the secondary cluster to catch up", || {
            self.statuses().is_some_and(|(ps, ss)| {
                ss["state"] == "stream-wals"
                    && ss["last_remote_wal"] == ps["last_wal"]
                    && ss["merkle_root"] == ps["merkle_root"]
            })
        })
        .with_context(|| format!("last statuses: {:?}", self.statuses()))
    }

    /// The secondary's `known_primary_cluster_addrs` (on its active node).
    pub fn known_primary_addrs(&self) -> Vec<String> {
        self.statuses()
            .and_then(|(_, s)| {
                s["known_primary_cluster_addrs"].as_array().map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
            })
            .unwrap_or_default()
    }

    /// Restarts node `i` of the cluster (`pri` when `primary`) and unseals it with the keys
    /// in force (the primary's, on both clusters); waits until it is a voter and caught up.
    pub fn restart_node(&mut self, primary: bool, i: usize) -> Result<u128> {
        let c = if primary {
            &mut self.pri
        } else {
            &mut self.sec
        };
        let t = Instant::now();
        c.start_node(i, true)?;
        c.wait_rejoined(i, Duration::from_secs(90))?;
        Ok(crate::scenarios::ms(t, Instant::now()))
    }

    /// Demotes the primary (through its active node), waits until the secondary holds every
    /// WAL entry it logged and the trees agree; returns whether the roots were equal then.
    pub fn demote_and_drain(&self) -> Result<bool> {
        let pa = self
            .pri
            .wait_active_among(&self.pri.all(), Duration::from_secs(30))?;
        let p = &self.pri.nodes[pa];
        let before = num(&p.dr_status()?["last_wal"]);
        p.call(
            p.req(
                Method::PUT,
                "sys/replication/dr/primary/demote",
                &self.pri.root,
            ),
            "dr/primary/demote",
        )?;
        let sa = self
            .sec
            .wait_active_among(&self.sec.all(), Duration::from_secs(30))?;
        let s = &self.sec.nodes[sa];
        crate::scenarios::wait_for(
            Duration::from_secs(60),
            "the secondary to drain the final WAL",
            || {
                let (Ok(sp), Ok(ss)) = (p.dr_status(), s.dr_status()) else {
                    return false;
                };
                num(&ss["last_remote_wal"]) >= before
                    && ss["merkle_root"] == sp["merkle_root"]
                    && ss["state"] == "stream-wals"
            },
        )?;
        Ok(p.dr_status()?["merkle_root"] == s.dr_status()?["merkle_root"])
    }
}

/// Runs the DR operation token ceremony on `c` with the unseal keys `keys`.
pub fn generate_op_token(c: &Cluster, keys: &[String]) -> Result<String> {
    const BASE: &str = "sys/replication/dr/secondary/generate-operation-token";
    let start = c.call(
        c.req(Method::PUT, &format!("{BASE}/attempt"), "")
            .json(&json!({})),
        "generate-operation-token/attempt",
    )?;
    let otp = start["otp"]
        .as_str()
        .ok_or_else(|| anyhow!("the attempt returned no otp: {start}"))?
        .to_string();
    let mut done = Value::Null;
    for k in keys {
        done = c.call(
            c.req(Method::PUT, &format!("{BASE}/update"), "")
                .json(&json!({"key": k, "nonce": start["nonce"]})),
            "generate-operation-token/update",
        )?;
        if done["complete"] == true {
            break;
        }
    }
    let encoded = done["encoded_token"]
        .as_str()
        .filter(|_| done["complete"] == true)
        .ok_or_else(|| anyhow!("the ceremony did not complete: {done}"))?;
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(encoded)
        .context("decoding the encoded DR operation token")?;
    let token: Vec<u8> = bytes.iter().zip(otp.bytes()).map(|(a, b)| a ^ b).collect();
    String::from_utf8(token).context("the decoded DR operation token is not text")
}

/// One process's reading of the secondary's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    pub resumes: f64,
    pub diffs: f64,
    pub redirects: f64,
    pub syncs: f64,
}

impl Counts {
    fn parse(text: &str) -> Counts {
        let get = |name| crate::scenarios::metric_value(text, name).unwrap_or(0.0);
        Counts {
            resumes: get(RESUMES),
            diffs: get(DIFFS),
            redirects: get(REDIRECTS),
            syncs: get(SYNCS),
        }
    }

    pub fn minus(self, o: Counts) -> Counts {
        Counts {
            resumes: self.resumes - o.resumes,
            diffs: self.diffs - o.diffs,
            redirects: self.redirects - o.redirects,
            syncs: self.syncs - o.syncs,
        }
    }

    pub fn figures(&self, prefix: &str) -> String {
        format!(
            "{prefix}resumes={} {prefix}merkle_diffs={} {prefix}redirects={} {prefix}merkle_syncs={}",
            self.resumes, self.diffs, self.redirects, self.syncs
        )
    }
}

/// The secondary's counters summed over every process that ran its stream.
#[derive(Default)]
pub struct StreamCounters {
    /// The newest reading per (node, pid).
    seen: HashMap<(usize, u32), Counts>,
}

impl StreamCounters {
    /// Reads the active node of `sec` (unauthenticated metrics) and returns the totals.
    pub fn observe(&mut self, sec: &HaCluster) -> Result<Counts> {
        let a = sec.wait_active_among(&sec.all(), Duration::from_secs(30))?;
        let n = &sec.nodes[a];
        let pid = n
            .pid()
            .ok_or_else(|| anyhow!("{} is not running", n.name))?;
        let r = sec
            .raw
            .get(format!("{}/v1/sys/metrics?format=prometheus", n.url()))
            .send()
            .with_context(|| format!("sys/metrics on {}", n.name))?;
        if !r.status().is_success() {
            bail!("sys/metrics on {} answered {}", n.name, r.status());
        }
        self.seen.insert((a, pid), Counts::parse(&r.text()?));
        Ok(self.total())
    }

    pub fn total(&self) -> Counts {
        self.seen.values().fold(Counts::default(), |t, c| Counts {
            resumes: t.resumes + c.resumes,
            diffs: t.diffs + c.diffs,
            redirects: t.redirects + c.redirects,
            syncs: t.syncs + c.syncs,
        })
    }
}

/// The highest `last_remote_wal` the secondary's nodes reported in requests sent before `t`.
pub fn applied_before(samples: &[Sample], t: Instant) -> u64 {
    samples
        .iter()
        .filter(|s| s.sent < t)
        .map(|s| num(&s.status["last_remote_wal"]))
        .max()
        .unwrap_or(0)
}

/// When the secondary streamed again after a fault at `since`: the first reading sent after
/// it in `stream-wals` that has applied beyond `baseline` (entries only a new connection can
/// have brought).
pub fn streaming_again(samples: &[Sample], since: Instant, baseline: u64) -> Option<Instant> {
    samples
        .iter()
        .filter(|s| {
            s.sent >= since
                && s.status["state"] == "stream-wals"
                && num(&s.status["last_remote_wal"]) > baseline
        })
        .map(|s| s.sent)
        .min()
}

#[cfg(test)]
mod tests {
    use super::{Counts, streaming_again};
    use crate::scenarios::Sample;
    use serde_json::json;
    use std::time::{Duration, Instant};

    // Why: resume times must not count a reading from before the fault, a reading that shows
    // no new entry, or one taken while the secondary was still re-syncing.
    #[test]
    fn streaming_again_needs_a_later_stream_reading_past_the_baseline() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let s = |ms, state, wal| Sample {
            sent: at(ms),
            who: 0,
            status: json!({"state": state, "last_remote_wal": wal}),
        };
        let samples = vec![
            s(0, "stream-wals", 20),
            s(20, "stream-wals", 10),
            s(30, "merkle-diff", 11),
            s(40, "stream-wals", 11),
        ];
        assert_eq!(streaming_again(&samples, at(10), 10), Some(at(40)));
        assert_eq!(streaming_again(&samples, at(10), 11), None);
    }

    // Why: the verdict rests on these counters; a missing series is zero, not an error.
    #[test]
    fn counts_parse_prometheus_text_and_missing_series_as_zero() {
        let text = "# TYPE x counter\nvault_replication_stream_resumes_total 3\n\
                    vault_replication_redirects_total{a=\"b\"} 2\n";
        let c = Counts::parse(text);
        assert_eq!(
            (c.resumes, c.redirects, c.diffs, c.syncs),
            (3.0, 2.0, 0.0, 0.0)
        );
    }
}

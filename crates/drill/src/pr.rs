//! Performance replication (PR) as the drills drive it: making a primary and a secondary,
//! reading the secondary's status, and writing through it with a token of its own.
//!
//! A performance secondary keeps its own token store, so nothing the drill holds as the
//! primary's root works there: an operator logs in on the secondary with userpass, whose
//! mount and user travel from the primary with the rest of the shared data. Writes sent to
//! the secondary outside the workload are kept as ledger attempts ([`Probe`]), so the one
//! checker accounts for them too; what a secondary holds is compared by the *shared* merkle
//! root (`checker::Tree::Performance`), the only tree that travels on its stream.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use reqwest::Method;
use serde_json::{Value, json};

use crate::checker::{self, Expect, Report, Tree};
use crate::cluster::Cluster;
use crate::scenarios::{Rig, metric_value, num, wait_for};
use crate::workload::{Attempt, Outcome};

/// The secondary id every PR drill gives its performance secondary.
pub const SECONDARY_ID: &str = "drill-pr";
/// The operator every PR drill logs in as on a secondary.
const USER: &str = "drill-operator";
const PASSWORD: &str = "drill-operator-password";
const OPERATOR_POLICY: &str =
    r#"path "*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }"#;
/// How long a write through a secondary may take: forwarding, then up to 2 s of waiting for
/// its own WAL index to come back; longer than the drill client's default on purpose, so a
/// hung forward shows as what it is rather than as the client giving up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// `sys/replication/performance/status` `data` of `c` (unauthenticated).
pub fn perf_status(c: &Cluster) -> Result<Value> {
    let r = c.call(
        c.req(Method::GET, "sys/replication/performance/status", ""),
        "performance/status",
    )?;
    Ok(r["data"].clone())
}

/// On primary `c` (with `root`): the operator's policy, userpass and user, then PR primary
/// enable.
pub fn enable_primary(c: &Cluster, root: &str) -> Result<()> {
    c.call(
        c.req(Method::PUT, "sys/policies/acl/drill-operator", root)
            .json(&json!({"policy": OPERATOR_POLICY})),
        "writing the operator policy",
    )?;
    c.call(
        c.req(Method::POST, "sys/auth/userpass", root)
            .json(&json!({"type": "userpass"})),
        "enabling userpass",
    )?;
    c.call(
        c.req(Method::PUT, &format!("auth/userpass/users/{USER}"), root)
            .json(&json!({"password": PASSWORD, "policies": "drill-operator"})),
        "creating the operator user",
    )?;
    c.call(
        c.req(
            Method::PUT,
            "sys/replication/performance/primary/enable",
            root,
        )
        .json(&json!({})),
        "performance/primary/enable",
    )
    .map(|_| ())
}

/// Starts cluster `s` with its own root and makes it the performance secondary of `p`.
pub fn start_secondary(rig: &mut Rig, s: usize, p: usize) -> Result<()> {
    rig.clusters[s].start()?;
    let own_root = rig.clusters[s].init()?;
    let pc = &rig.clusters[p];
    let r = pc.call(
        pc.req(
            Method::PUT,
            "sys/replication/performance/primary/secondary-token",
            &rig.root,
        )
        .json(&json!({"id": SECONDARY_ID})),
        "performance/primary/secondary-token",
    )?;
    let token = r["wrap_info"]["token"]
        .as_str()
        .ok_or_else(|| anyhow!("performance secondary-token returned no wrapping token"))?;
    let sc = &rig.clusters[s];
    sc.call(
        sc.req(
            Method::PUT,
            "sys/replication/performance/secondary/enable",
            &own_root,
        )
        .json(&json!({
            "token": token,
            "primary_api_addr": pc.peer_url(),
            "ca_file": rig.pki.ca_file.display().to_string(),
        })),
        "performance/secondary/enable",
    )
    .map(|_| ())
}

/// A token of the secondary's own: a userpass login on `c`.
pub fn login(c: &Cluster) -> Result<String> {
    let r = c.call(
        c.req(Method::PUT, &format!("auth/userpass/login/{USER}"), "")
            .json(&json!({"password": PASSWORD})),
        "userpass login",
    )?;
    r["auth"]["client_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the userpass login returned no client_token"))
}

/// Whether secondary status `s` streams and has applied primary status `p`'s last WAL index.
pub fn caught_up(p: &Value, s: &Value) -> bool {
    s["state"] == "stream-wals"
        && p["last_performance_wal"].is_u64()
        && num(&s["last_remote_wal"]) >= num(&p["last_performance_wal"])
}

/// Waits until performance secondary `s` streams and has applied everything `p` logged.
pub fn wait_streaming(p: &Cluster, s: &Cluster, timeout: Duration) -> Result<()> {
    wait_for(
        timeout,
        "the performance secondary to catch up",
        || matches!((perf_status(p), perf_status(s)), (Ok(ps), Ok(ss)) if caught_up(&ps, &ss)),
    )
}

/// A secondary's performance stream counters (this process): connections that resumed from
/// its position, and merkle diffs.
pub fn stream_counters(c: &Cluster) -> (f64, f64) {
    let text = c.metrics("").unwrap_or_default();
    let get = |name| metric_value(&text, name).unwrap_or(0.0);
    (
        get("vault_replication_performance_stream_resumes_total"),
        get("vault_replication_performance_merkle_diffs_total"),
    )
}

/// `state`, `connection_state` and each primary's `connection_status` of a secondary's
/// status, for verdict lines.
pub fn describe_connection(s: &Value) -> String {
    let primaries: Vec<&str> = s["primaries"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| p["connection_status"].as_str().unwrap_or("?"))
                .collect()
        })
        .unwrap_or_default();
    format!(
        "state={} connection_state={} primaries=[{}]",
        s["state"].as_str().unwrap_or("?"),
        s["connection_state"].as_str().unwrap_or("?"),
        primaries.join(",")
    )
}

/// One write sent outside the workload, and what the server answered.
pub struct Probe {
    pub attempt: Attempt,
    /// `None` when no answer came (connection failed or the client timed out).
    pub status: Option<u16>,
    pub body: String,
    pub took: Duration,
}

/// Writes KV v2 `secret/data/{key}` = `value` on `c` with `token`.
pub fn write(c: &Cluster, token: &str, key: &str, value: &str) -> Probe {
    let started = Instant::now();
    let r = c
        .req(Method::PUT, &format!("secret/data/{key}"), token)
        .json(&json!({"data": {"v": value}}))
        .timeout(WRITE_TIMEOUT)
        .send();
    let (status, body) = match r {
        Ok(r) => {
            let status = r.status().as_u16();
            (Some(status), r.text().unwrap_or_default())
        }
        Err(e) => (None, format!("{e:#}")),
    };
    let outcome = match status {
        Some(200..=299) => Outcome::Acked,
        Some(400..=499) => Outcome::Rejected,
        _ => Outcome::InDoubt,
    };
    Probe {
        attempt: Attempt {
            key: key.to_string(),
            value: value.to_string(),
            outcome,
            done: Instant::now(),
            target: c.url(),
        },
        status,
        body,
        took: started.elapsed(),
    }
}

/// Writes through `c` until one is acknowledged or `timeout` passes; every try is kept in
/// `probes`. Returns whether one was acknowledged.
pub fn write_until_acked(
    c: &Cluster,
    token: &str,
    key_base: &str,
    value_base: &str,
    timeout: Duration,
    probes: &mut Vec<Probe>,
) -> bool {
    let deadline = Instant::now() + timeout;
    let mut n = 0u32;
    loop {
        let p = write(
            c,
            token,
            &format!("{key_base}-{n}"),
            &format!("{value_base}-{n}"),
        );
        n += 1;
        let acked = p.attempt.outcome == Outcome::Acked;
        probes.push(p);
        if acked || Instant::now() > deadline {
            return acked;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The workload's attempts plus the probes', for the checker.
pub fn all_attempts<'a>(
    ledger: HashMap<String, Attempt>,
    probes: impl IntoIterator<Item = &'a Probe>,
) -> HashMap<String, Attempt> {
    let mut all = ledger;
    for p in probes {
        all.insert(p.attempt.key.clone(), p.attempt.clone());
    }
    all
}

/// Checks performance secondary `s`, read with its own `token`, against every attempt: each
/// acknowledged write outside `may_lose` readable with its value, nothing unexplained, and
/// the shared tree equal to primary `p`'s.
pub fn check_secondary(
    s: &Cluster,
    token: &str,
    p: &Cluster,
    attempts: &HashMap<String, Attempt>,
    may_lose: &HashSet<String>,
) -> Result<Report> {
    checker::check_in(
        Tree::Performance,
        s,
        token,
        &[p],
        &Expect {
            attempts,
            may_lose,
            must_be_gone: &HashSet::new(),
            // The writers' tokens are the primary's; the secondary never knew them.
            tokens: &[],
        },
    )
}

#[cfg(test)]
mod tests {
    use super::caught_up;
    use serde_json::json;

    // Why: catch-up times and the final check wait on this; a secondary that is not
    // streaming, or a primary status without its performance WAL index, is not caught up.
    #[test]
    fn caught_up_compares_the_remote_wal_with_the_primary_performance_wal() {
        let primary = json!({"last_performance_wal": 40});
        let s = |state, wal| json!({"state": state, "last_remote_wal": wal});

        assert!(caught_up(&primary, &s("stream-wals", 40)));
        assert!(!caught_up(&primary, &s("stream-wals", 39)));
        assert!(!caught_up(&primary, &s("merkle-sync", 40)));
        assert!(!caught_up(
            &json!({"mode": "disabled"}),
            &s("stream-wals", 40)
        ));
    }
}

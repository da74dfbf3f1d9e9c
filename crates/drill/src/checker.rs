//! The checker: compares what the surviving primary holds with the writers' ledger.
//!
//! It exists so that a drill's verdict rests on data, not on the server's own status: every
//! acknowledged write is read back, every key the server lists is explained by the ledger,
//! every token issued is tried, and every cluster's merkle root is compared.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use reqwest::Method;
use serde_json::Value;

use crate::cluster::Cluster;
use crate::workload::{Attempt, Outcome};

/// What the checker found.
#[derive(Debug, Default)]
pub struct Report {
    pub acked: usize,
    /// Acknowledged writes missing (or holding another value) on the primary.
    pub lost: Vec<String>,
    /// Acknowledged writes missing where the design allows it (`Expect::may_lose`).
    pub lost_allowed: usize,
    /// Keys present whose value was never acknowledged (or was refused) for that key.
    pub phantom: Vec<String>,
    /// Writes that must have been discarded (taken by a forked primary) but are present.
    pub resurrected: Vec<String>,
    pub tokens_broken: usize,
    pub roots_equal: bool,
}

/// What a check needs to know beyond the ledger.
pub struct Expect<'a> {
    /// Every attempt whose key may legitimately be present.
    pub attempts: &'a HashMap<String, Attempt>,
    /// Keys whose loss the design allows (e.g. acknowledged after the last replicated index
    /// before an emergency failover); they are not counted as lost.
    pub may_lose: &'a HashSet<String>,
    /// Keys written on a forked primary that the new primary's data must have replaced.
    pub must_be_gone: &'a HashSet<String>,
    pub tokens: &'a [String],
}

/// Reads `key` from KV v2 on `primary`: `Ok(None)` when absent.
pub fn read_value(primary: &Cluster, token: &str, key: &str) -> Result<Option<String>> {
    let r = primary
        .req(Method::GET, &format!("secret/data/{key}"), token)
        .send()
        .with_context(|| format!("reading {key}"))?;
    if r.status() == 404 {
        return Ok(None);
    }
    if !r.status().is_success() {
        bail!("reading {key} answered {}", r.status());
    }
    let v: Value = r.json()?;
    Ok(v["data"]["data"]["v"].as_str().map(str::to_string))
}

/// Every key under `secret/` on `primary`.
fn list_keys(primary: &Cluster, token: &str) -> Result<Vec<String>> {
    let r = primary
        .req(Method::GET, "secret/metadata/?list=true", token)
        .send()?;
    if r.status() == 404 {
        return Ok(Vec::new());
    }
    if !r.status().is_success() {
        bail!("listing secret/metadata answered {}", r.status());
    }
    let v: Value = r.json()?;
    Ok(v["data"]["keys"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// Which replication's merkle root the clusters are compared by: DR covers everything that
/// replicates, performance only the shared data (what a performance secondary holds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tree {
    Dr,
    Performance,
}

impl Tree {
    fn root(self, c: &Cluster) -> Option<String> {
        let status = match self {
            Tree::Dr => c.dr_status(),
            Tree::Performance => crate::pr::perf_status(c),
        };
        status
            .ok()
            .and_then(|s| s["merkle_root"].as_str().map(str::to_string))
    }
}

/// Waits up to `timeout` for every running cluster to report the same merkle root of `tree`.
pub fn roots_converge(tree: Tree, clusters: &[&Cluster], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let roots: Vec<Option<String>> = clusters.iter().map(|c| tree.root(c)).collect();
        if roots.iter().all(Option::is_some) && roots.windows(2).all(|w| w[0] == w[1]) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Checks `primary` against the ledger; `others` are compared by merkle root.
pub fn check(primary: &Cluster, root: &str, others: &[&Cluster], e: &Expect) -> Result<Report> {
    check_in(Tree::Dr, primary, root, others, e)
}

/// As [`check`], comparing the roots of `tree`. `root` is any token that reads and lists
/// `secret/` on `primary` (on a performance secondary: one of its own).
pub fn check_in(
    tree: Tree,
    primary: &Cluster,
    root: &str,
    others: &[&Cluster],
    e: &Expect,
) -> Result<Report> {
    let listed = list_keys(primary, root)?;
    let mut keys: HashSet<String> = listed.into_iter().collect();
    keys.extend(
        e.attempts
            .values()
            .filter(|a| a.outcome == Outcome::Acked)
            .map(|a| a.key.clone()),
    );
    keys.extend(e.must_be_gone.iter().cloned());
    let keys: Vec<String> = keys.into_iter().collect();

    // Read everything with a few threads: thousands of sequential reads are slow in debug.
    let found: Mutex<HashMap<String, Option<String>>> = Mutex::new(HashMap::new());
    let failed: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for chunk in keys.chunks(keys.len().div_ceil(4).max(1)) {
            let (found, failed) = (&found, &failed);
            s.spawn(move || {
                for k in chunk {
                    match read_value(primary, root, k) {
                        Ok(v) => {
                            if let Ok(mut f) = found.lock() {
                                f.insert(k.clone(), v);
                            }
                        }
                        Err(err) => {
                            if let Ok(mut f) = failed.lock() {
                                *f = Some(err);
                            }
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(err) = failed.into_inner().ok().flatten() {
        return Err(err.context("the checker could not read the primary"));
    }
    let found = found.into_inner().unwrap_or_default();

    let mut report = Report::default();
    for (key, value) in &found {
        let attempt = e.attempts.get(key);
        match (attempt, value) {
            (Some(a), Some(v)) if a.outcome == Outcome::Acked => {
                if e.must_be_gone.contains(key) {
                    report.resurrected.push(key.clone());
                } else if *v != a.value {
                    report.phantom.push(key.clone());
                }
            }
            (Some(a), Some(v)) => {
                if a.outcome == Outcome::Rejected || *v != a.value {
                    report.phantom.push(key.clone());
                } else if e.must_be_gone.contains(key) {
                    report.resurrected.push(key.clone());
                }
            }
            (None, Some(_)) => report.phantom.push(key.clone()),
            (_, None) => {}
        }
    }
    for a in e.attempts.values() {
        if a.outcome != Outcome::Acked || e.must_be_gone.contains(&a.key) {
            continue;
        }
        report.acked += 1;
        let present = found.get(&a.key).and_then(|v| v.as_deref()) == Some(a.value.as_str());
        if !present {
            if e.may_lose.contains(&a.key) {
                report.lost_allowed += 1;
            } else {
                report.lost.push(a.key.clone());
            }
        }
    }
    for t in e.tokens {
        let ok = primary
            .req(Method::GET, "auth/token/lookup-self", t)
            .send()
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        if !ok {
            report.tokens_broken += 1;
        }
    }
    let mut all = vec![primary];
    all.extend_from_slice(others);
    report.roots_equal = roots_converge(tree, &all, Duration::from_secs(60));
    report.lost.sort();
    report.phantom.sort();
    Ok(report)
}

impl Report {
    /// No loss beyond what the design allows, no phantoms, tokens intact, trees equal.
    pub fn clean(&self) -> bool {
        self.lost.is_empty()
            && self.phantom.is_empty()
            && self.resurrected.is_empty()
            && self.tokens_broken == 0
            && self.roots_equal
    }

    /// The figures every verdict line carries.
    pub fn figures(&self) -> String {
        let mut s = format!(
            "acked={} lost={} phantom={} tokens_broken={} roots_equal={}",
            self.acked,
            self.lost.len() + self.lost_allowed,
            self.phantom.len(),
            self.tokens_broken,
            self.roots_equal
        );
        if !self.resurrected.is_empty() {
            s.push_str(&format!(" resurrected={}", self.resurrected.len()));
        }
        s
    }

    /// A few example keys for a failure message.
    pub fn examples(&self) -> String {
        let pick = |v: &[String]| v.iter().take(5).cloned().collect::<Vec<_>>().join(",");
        format!(
            "lost_examples=[{}] phantom_examples=[{}] resurrected_examples=[{}]",
            pick(&self.lost),
            pick(&self.phantom),
            pick(&self.resurrected)
        )
    }
}

//! The checking workload: concurrent writers and the ledger of what the server promised.
//!
//! A drill is only evidence if we know exactly which writes the server acknowledged. Every
//! write uses a key and a value that are never reused, so the checker can later tell a lost
//! acknowledged write from an in-doubt one (the connection died before an answer) and from a
//! phantom (data the server never acknowledged with that value).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use reqwest::blocking::Client;
use serde_json::json;

/// What the server answered to one write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the server promised the write.
    Acked,
    /// 4xx: the server refused it; it must never appear.
    Rejected,
    /// No answer or 5xx: it may or may not have been applied.
    InDoubt,
}

/// One write attempt.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub key: String,
    pub value: String,
    pub outcome: Outcome,
    /// When its answer (or failure) arrived.
    pub done: Instant,
    /// The API URL the write went to.
    pub target: String,
}

/// Every attempt of a run, keyed by secret key (each key is written once).
#[derive(Default)]
pub struct Ledger {
    attempts: Mutex<HashMap<String, Attempt>>,
}

impl Ledger {
    fn record(&self, a: Attempt) {
        if let Ok(mut m) = self.attempts.lock() {
            m.insert(a.key.clone(), a);
        }
    }

    /// A copy of every attempt so far.
    pub fn snapshot(&self) -> HashMap<String, Attempt> {
        self.attempts.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn acked(&self) -> usize {
        self.snapshot()
            .values()
            .filter(|a| a.outcome == Outcome::Acked)
            .count()
    }

    /// The first acknowledgement received after `t` from `target`.
    pub fn first_ack_after(&self, t: Instant, target: &str) -> Option<Instant> {
        self.snapshot()
            .values()
            .filter(|a| a.outcome == Outcome::Acked && a.target == target && a.done >= t)
            .map(|a| a.done)
            .min()
    }
}

/// The URL writers send to; re-pointing it is how a drill fails clients over.
#[derive(Clone)]
pub struct Target(Arc<RwLock<String>>);

impl Target {
    pub fn new(url: String) -> Target {
        Target(Arc::new(RwLock::new(url)))
    }

    pub fn set(&self, url: String) {
        if let Ok(mut g) = self.0.write() {
            *g = url;
        }
    }

    pub fn get(&self) -> String {
        self.0.read().map(|g| g.clone()).unwrap_or_default()
    }
}

/// How the writers behave.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// Writer ids start here (keys are `w<id>-<n>`); distinct bases keep runs apart.
    pub first_client: usize,
    /// Total writes per second across all writers; `None` for as fast as they can.
    pub rate: Option<f64>,
    /// A tag making every value unique to this run.
    pub run_tag: String,
}

/// Running writers; stop them with [`Workload::stop`] (dropping also stops them).
pub struct Workload {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
    pub ledger: Arc<Ledger>,
}

impl Workload {
    /// Starts one writer per token, writing KV v2 `secret/data/w<client>-<n>` to `target`.
    pub fn start(client: &Client, target: Target, tokens: &[String], spec: &LoadSpec) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let ledger = Arc::new(Ledger::default());
        let per_writer_gap = spec
            .rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(tokens.len() as f64 / r));
        let handles = tokens
            .iter()
            .enumerate()
            .map(|(i, token)| {
                let w = Writer {
                    id: spec.first_client + i,
                    token: token.clone(),
                    tag: spec.run_tag.clone(),
                    client: client.clone(),
                    target: target.clone(),
                    ledger: ledger.clone(),
                    stop: stop.clone(),
                    gap: per_writer_gap,
                };
                std::thread::spawn(move || w.run())
            })
            .collect();
        Workload {
            stop,
            handles,
            ledger,
        }
    }

    /// Stops the writers and waits for their last answers.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Writer {
    id: usize,
    token: String,
    tag: String,
    client: Client,
    target: Target,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
    gap: Option<Duration>,
}

impl Writer {
    fn run(self) {
        let mut next = Instant::now();
        let mut n = 0u64;
        while !self.stop.load(Ordering::SeqCst) {
            if let Some(gap) = self.gap {
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                }
                next += gap;
            }
            let key = format!("w{}-{n}", self.id);
            let value = format!("{}-{}-{n}", self.tag, self.id);
            n += 1;
            let target = self.target.get();
            let outcome = match self
                .client
                .put(format!("{target}/v1/secret/data/{key}"))
                .header("X-Vault-Token", &self.token)
                .json(&json!({"data": {"v": value}}))
                .send()
            {
                Ok(r) if r.status().is_success() => Outcome::Acked,
                Ok(r) if r.status().is_client_error() => Outcome::Rejected,
                _ => Outcome::InDoubt,
            };
            self.ledger.record(Attempt {
                key,
                value,
                outcome,
                done: Instant::now(),
                target,
            });
            if outcome != Outcome::Acked {
                // The target is down or refusing: do not spin while the drill fails it over.
                std::thread::sleep(Duration::from_millis(25));
                next = Instant::now();
            }
        }
    }
}

/// A policy and one token per writer, created on `url` with `root`.
pub fn make_tokens(client: &Client, url: &str, root: &str, n: usize) -> Result<Vec<String>> {
    let r = client
        .put(format!("{url}/v1/sys/policies/acl/drill-writer"))
        .header("X-Vault-Token", root)
        .json(&json!({"policy": "path \"secret/*\" { capabilities = [\"create\", \"update\", \"read\", \"list\"] }"}))
        .send()?;
    if !r.status().is_success() {
        return Err(anyhow!(
            "creating the writer policy answered {}",
            r.status()
        ));
    }
    (0..n)
        .map(|_| {
            let r = client
                .post(format!("{url}/v1/auth/token/create"))
                .header("X-Vault-Token", root)
                .json(&json!({"policies": ["drill-writer"], "ttl": "2h"}))
                .send()?;
            if !r.status().is_success() {
                return Err(anyhow!("creating a writer token answered {}", r.status()));
            }
            let v: serde_json::Value = r.json()?;
            v["auth"]["client_token"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| anyhow!("token create returned no client_token"))
        })
        .collect()
}

//! The drill catalogue and the steps scenarios share (set up a DR pair, fail over, watch).
//!
//! Each scenario runs on its own thread with its own [`Rig`]; the rig owns every process and
//! namespace the scenario created, so a failure or a panic still tears everything down.

pub mod crash;
pub mod dr_ha;
pub mod emergency;
pub mod failback;
pub mod ha;
pub mod latency;
pub mod partition;
pub mod planned;
pub mod pr_failover;
pub mod pr_partition;
pub mod restart;
pub mod slow_disk;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use reqwest::Method;
use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::checker;
use crate::cluster::{Cluster, ClusterOptions, Pki, Placement};
use crate::netns::{self, Topology};
use crate::workload::Attempt;

/// What the drill was started with.
pub struct Env {
    pub bin: PathBuf,
    pub keep: bool,
    /// `Err(reason)` when namespaces cannot be used.
    pub netns: Result<(), String>,
}

/// A scenario's result.
pub enum Verdict {
    Pass(String),
    Fail(String),
    Skip(String),
}

/// What a scenario needs of network namespaces.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Netns {
    /// Runs on loopback.
    Unused,
    /// Uses them when available, else runs a loopback variant and says so.
    Preferred,
    /// Skipped without them.
    Required,
}

/// A named drill.
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    pub netns: Netns,
    /// Part of the fast subset `.ci/run` runs.
    pub in_ci: bool,
    pub run: fn(&Env) -> Result<Verdict>,
}

/// Every drill, in the order `run all` uses.
pub fn catalogue() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "planned-failover",
            about: "demote under load, wait for catch-up, promote, re-point clients: zero loss",
            netns: Netns::Unused,
            in_ci: true,
            run: planned::run,
        },
        Scenario {
            name: "emergency-failover",
            about: "kill -9 the primary under load, force-promote: loss bounded by the lag",
            netns: Netns::Unused,
            in_ci: true,
            run: emergency::run,
        },
        Scenario {
            name: "failback-planned",
            about: "after a planned failover, re-point the old primary; it resumes streaming",
            netns: Netns::Unused,
            in_ci: true,
            run: failback::run_planned,
        },
        Scenario {
            name: "failback-planned-divergent",
            about: "as failback-planned, but the old primary took writes after the fork",
            netns: Netns::Unused,
            in_ci: true,
            run: failback::run_planned_divergent,
        },
        Scenario {
            name: "failback-emergency",
            about: "after an emergency failover, the restarted old primary is demoted and re-pointed",
            netns: Netns::Unused,
            in_ci: true,
            run: failback::run_emergency,
        },
        Scenario {
            name: "failback-emergency-divergent",
            about: "as failback-emergency, but the old primary took writes after restarting",
            netns: Netns::Unused,
            in_ci: true,
            run: failback::run_emergency_divergent,
        },
        Scenario {
            name: "partition-short",
            about: "cut the link under load (within WAL retention), heal: streaming resumes",
            netns: Netns::Required,
            in_ci: false,
            run: partition::run_short,
        },
        Scenario {
            name: "partition-long",
            about: "cut the link beyond WAL retention, heal: the secondary catches up",
            netns: Netns::Required,
            in_ci: false,
            run: partition::run_long,
        },
        Scenario {
            name: "latency-loss",
            about: "100 ms delay + 1% loss (+ reordering) on the link: keeps up at 500 writes/s; \
                    tc netem in namespaces, else a user-space relay",
            netns: Netns::Preferred,
            in_ci: false,
            run: latency::run,
        },
        Scenario {
            name: "crash-secondary-sync",
            about: "kill -9 the secondary mid merkle sync, restart, unseal, converge",
            netns: Netns::Unused,
            in_ci: false,
            run: crash::run_sync,
        },
        Scenario {
            name: "crash-secondary-stream",
            about: "kill -9 the secondary while streaming under load, restart, converge",
            netns: Netns::Unused,
            in_ci: false,
            run: crash::run_stream,
        },
        Scenario {
            name: "restart-primary",
            about: "restart the primary while the secondary streams: no full resync",
            netns: Netns::Unused,
            in_ci: false,
            run: restart::run,
        },
        Scenario {
            name: "slow-disk",
            about: "fsync delay on the secondary: primary not slowed, lag visible",
            netns: Netns::Unused,
            in_ci: false,
            run: slow_disk::run,
        },
        Scenario {
            name: "ha-leader-kill",
            about: "3-node raft, load through every node: kill -9 the active node, a standby \
                    takes over, the killed node restarts and catches up",
            netns: Netns::Unused,
            in_ci: false,
            run: ha::run_leader_kill,
        },
        Scenario {
            name: "ha-minority-partition",
            about: "3-node raft: cut a standby, then the active node, from the other two; the \
                    majority keeps writing, the cut node acknowledges nothing; heal, catch up",
            netns: Netns::Unused,
            in_ci: false,
            run: ha::run_minority_partition,
        },
        Scenario {
            name: "ha-rolling-restart",
            about: "3-node raft under load: restart every node in turn, the active node last",
            netns: Netns::Unused,
            in_ci: false,
            run: ha::run_rolling_restart,
        },
        Scenario {
            name: "dr-ha-leader-kills",
            about: "two 3-node clusters, DR primary -> secondary bootstrapped via a primary \
                    standby: kill -9 the primary's active node, then the secondary's; the \
                    stream resumes without a merkle sync; planned failover promoted via a \
                    secondary standby with a DR operation token: zero loss",
            netns: Netns::Unused,
            in_ci: false,
            run: dr_ha::run_leader_kills,
        },
        Scenario {
            name: "dr-ha-rolling-restart",
            about: "two 3-node clusters under load: restart the primary's nodes in turn, the \
                    active node last; the secondary keeps streaming without a merkle sync",
            netns: Netns::Unused,
            in_ci: false,
            run: dr_ha::run_rolling_restart,
        },
        Scenario {
            name: "pr-partition",
            about: "performance primary -> secondary, writer on the primary: cut their link; \
                    the secondary serves reads, says it is disconnected and refuses writes \
                    with 503; heal: it catches up and forwards writes again; netns when root, \
                    else a user-space relay",
            netns: Netns::Preferred,
            in_ci: false,
            run: pr_partition::run,
        },
        Scenario {
            name: "pr-primary-failover",
            about: "performance primary A with DR secondary A' and performance secondary P: \
                    kill -9 A under load, promote A' with a batch DR operation token, re-point \
                    P by update_primary_addrs; P converges to A' and forwards writes to it",
            netns: Netns::Unused,
            in_ci: false,
            run: pr_failover::run,
        },
    ]
}

/// Distinguishes the loopback addresses of successive rigs in one run.
static RIG_SEQ: AtomicU32 = AtomicU32::new(1);

/// The secondary id every drill uses for cluster `b`.
pub const SECONDARY_ID: &str = "drill-b";

/// Everything one scenario created. Field order is drop order: processes first, then the
/// namespaces they ran in, then their directories.
pub struct Rig {
    pub clusters: Vec<Cluster>,
    topology: Option<Topology>,
    pub client: Client,
    pub pki: Pki,
    pub root: String,
    /// Makes this rig's values unique.
    pub tag: String,
    /// The first three octets of the clusters' loopback addresses (`None`: in namespaces).
    loopback_net: Option<String>,
    dir: Option<tempfile::TempDir>,
    keep: bool,
}

impl Rig {
    /// Two prepared (not started) clusters `a` and `b`, on loopback or in namespaces.
    pub fn new(env: &Env, options: &ClusterOptions, in_netns: bool) -> Result<Rig> {
        let dir = tempfile::Builder::new()
            .prefix("strongroom-drill-")
            .tempdir()?;
        let topology = if in_netns {
            let t = Topology::build().context("building the network namespaces")?;
            t.enter_ctl()?;
            Some(t)
        } else {
            None
        };
        let pki = Pki::new(dir.path())?;
        let client = pki.client()?;
        let seq = RIG_SEQ.fetch_add(1, Ordering::SeqCst) % 250;
        let second = 100 + std::process::id() % 100;
        let net = format!("127.{second}.{seq}");
        let placements = if in_netns {
            vec![
                Placement {
                    netns: Some(netns::NS_A.into()),
                    client_ip: netns::A_CTL_IP.into(),
                    peer_ip: netns::A_PEER_IP.into(),
                    bind_api_ip: "0.0.0.0".into(),
                },
                Placement {
                    netns: Some(netns::NS_B.into()),
                    client_ip: netns::B_CTL_IP.into(),
                    peer_ip: netns::B_PEER_IP.into(),
                    bind_api_ip: "0.0.0.0".into(),
                },
            ]
        } else {
            (1..=2)
                .map(|i| Placement::loopback(format!("{net}.{i}")))
                .collect()
        };
        let mut clusters = Vec::new();
        for (name, p) in ["a", "b"].into_iter().zip(placements) {
            clusters.push(Cluster::new(
                &pki,
                dir.path(),
                name,
                p,
                options,
                &env.bin,
                client.clone(),
            )?);
        }
        Ok(Rig {
            clusters,
            topology,
            client,
            pki,
            root: String::new(),
            tag: format!("r{}x{seq}", std::process::id()),
            loopback_net: (!in_netns).then_some(net),
            dir: Some(dir),
            keep: env.keep,
        })
    }

    /// Prepares (does not start) one more loopback cluster, `name`, beside the others;
    /// returns its index. Topologies of three clusters (a DR pair and a performance
    /// secondary) use it; a rig in namespaces has room for two only.
    pub fn add_cluster(
        &mut self,
        env: &Env,
        name: &str,
        options: &ClusterOptions,
    ) -> Result<usize> {
        let net = self
            .loopback_net
            .as_ref()
            .ok_or_else(|| anyhow!("a rig in network namespaces holds two clusters only"))?;
        let dir = self
            .dir
            .as_ref()
            .ok_or_else(|| anyhow!("the rig's directory is gone"))?;
        let ip = format!("{net}.{}", self.clusters.len() + 1);
        let c = Cluster::new(
            &self.pki,
            dir.path(),
            name,
            Placement::loopback(ip),
            options,
            &env.bin,
            self.client.clone(),
        )?;
        self.clusters.push(c);
        Ok(self.clusters.len() - 1)
    }

    pub fn topology(&self) -> Result<&Topology> {
        self.topology
            .as_ref()
            .ok_or_else(|| anyhow!("this rig has no network namespaces"))
    }

    /// Where the logs are, for failure messages.
    pub fn logs(&self) -> String {
        self.clusters
            .iter()
            .map(|c| c.log_file().display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Starts and initialises cluster `i` as the DR primary with a KV v2 mount at `secret/`.
    pub fn start_primary(&mut self, i: usize) -> Result<()> {
        self.start_primary_with(i, json!({}))
    }

    /// As [`Rig::start_primary`], with these `dr/primary/enable` parameters.
    pub fn start_primary_with(&mut self, i: usize, enable: serde_json::Value) -> Result<()> {
        let c = &mut self.clusters[i];
        c.start()?;
        self.root = c.init()?;
        let root = self.root.clone();
        let c = &self.clusters[i];
        c.call(
            c.req(Method::POST, "sys/mounts/secret", &root)
                .json(&json!({"type": "kv", "options": {"version": "2"}})),
            "mounting secret/",
        )?;
        c.call(
            c.req(Method::PUT, "sys/replication/dr/primary/enable", &root)
                .json(&enable),
            "dr/primary/enable",
        )?;
        Ok(())
    }

    /// A wrapped activation token minted on cluster `p`.
    pub fn activation_token(&self, p: usize, id: &str) -> Result<String> {
        activation_token(&self.clusters[p], &self.root, id)
    }

    /// Starts cluster `s` and makes it the DR secondary of `p`.
    pub fn start_secondary(&mut self, s: usize, p: usize) -> Result<()> {
        self.clusters[s].start()?;
        let own_root = self.clusters[s].init()?;
        let token = self.activation_token(p, SECONDARY_ID)?;
        enable_secondary(
            &self.clusters[s],
            &own_root,
            &token,
            &self.clusters[p].peer_url(),
            &self.pki.ca_file,
        )?;
        // The secondary adopts the primary's seal: from now on it unseals with its keys.
        self.clusters[s].keys = self.clusters[p].keys.clone();
        Ok(())
    }

    /// A primary `a` and its streaming secondary `b`.
    pub fn pair(&mut self) -> Result<()> {
        self.start_primary(0)?;
        self.start_secondary(1, 0)?;
        self.wait_caught_up(0, 1, Duration::from_secs(60))
    }

    /// Waits until `s` streams from `p`, has applied `p`'s last WAL index, and the trees agree.
    /// Checks primary `p` (and `s`'s merkle roots) against every attempt, for scenarios whose
    /// design allows no loss at all.
    pub fn check_nothing_lost(
        &self,
        p: usize,
        s: usize,
        attempts: &HashMap<String, Attempt>,
        tokens: &[String],
    ) -> Result<checker::Report> {
        checker::check(
            &self.clusters[p],
            &self.root,
            &[&self.clusters[s]],
            &checker::Expect {
                attempts,
                may_lose: &HashSet::new(),
                must_be_gone: &HashSet::new(),
                tokens,
            },
        )
    }

    pub fn wait_caught_up(&self, p: usize, s: usize, timeout: Duration) -> Result<()> {
        let (pc, sc) = (&self.clusters[p], &self.clusters[s]);
        wait_for(timeout, "the secondary to catch up", || {
            let (Ok(ps), Ok(ss)) = (pc.dr_status(), sc.dr_status()) else {
                return false;
            };
            ss["state"] == "stream-wals"
                && ss["last_remote_wal"] == ps["last_wal"]
                && ss["merkle_root"] == ps["merkle_root"]
        })
    }

    pub fn demote(&self, i: usize) -> Result<()> {
        let c = &self.clusters[i];
        c.call(
            c.req(Method::PUT, "sys/replication/dr/primary/demote", &self.root),
            "dr/primary/demote",
        )
        .map(|_| ())
    }

    /// Promotes `i`; without `force` retries while the server says it is not caught up.
    pub fn promote(&self, i: usize, force: bool) -> Result<()> {
        promote(&self.clusters[i], &self.root, json!({"force": force}))
    }

    /// Points secondary `s` at primary `p` with an activation token minted on `p`.
    pub fn update_primary(&self, s: usize, p: usize) -> Result<()> {
        let token = self.activation_token(p, &format!("drill-{}", self.clusters[s].name))?;
        let c = &self.clusters[s];
        c.call(
            c.req(
                Method::PUT,
                "sys/replication/dr/secondary/update-primary",
                &self.root,
            )
            .json(&json!({
                "token": token,
                "primary_api_addr": self.clusters[p].peer_url(),
                "ca_file": self.pki.ca_file.display().to_string(),
            })),
            "dr/secondary/update-primary",
        )
        .map(|_| ())
    }

    /// Restarts cluster `i` after a kill or stop and unseals it.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        let c = &mut self.clusters[i];
        c.start()?;
        c.unseal()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for c in &mut self.clusters {
            c.kill9();
        }
        if self.keep
            && let Some(d) = self.dir.take()
        {
            let path = d.keep();
            eprintln!("kept {}", path.display());
        }
    }
}

/// A wrapped activation token for secondary `id`, minted on primary `c` with `root`.
pub fn activation_token(c: &Cluster, root: &str, id: &str) -> Result<String> {
    let r = c.call(
        c.req(
            Method::PUT,
            "sys/replication/dr/primary/secondary-token",
            root,
        )
        .json(&json!({"id": id})),
        "dr/primary/secondary-token",
    )?;
    r["wrap_info"]["token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("secondary-token returned no wrapping token"))
}

/// `dr/secondary/enable` on `c` (with its own root token): unwraps `token` at
/// `primary_api_addr`, trusting `ca_file`.
pub fn enable_secondary(
    c: &Cluster,
    own_root: &str,
    token: &str,
    primary_api_addr: &str,
    ca_file: &std::path::Path,
) -> Result<()> {
    let body = json!({
        "token": token,
        "primary_api_addr": primary_api_addr,
        "ca_file": ca_file.display().to_string(),
    });
    c.call(
        c.req(Method::PUT, "sys/replication/dr/secondary/enable", own_root)
            .json(&body),
        "dr/secondary/enable",
    )
    .map(|_| ())
}

/// `dr/secondary/promote` on `c` with `body` (`force`, `dr_operation_token`) and `token` as
/// `X-Vault-Token` (may be empty); retries for 30 s while the server answers 503 (not caught
/// up).
pub fn promote(c: &Cluster, token: &str, body: Value) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = c
            .req(Method::PUT, "sys/replication/dr/secondary/promote", token)
            .json(&body)
            .send()?;
        let status = r.status();
        if status.is_success() {
            return Ok(());
        }
        let body = r.text().unwrap_or_default();
        if status != 503 || Instant::now() > deadline {
            bail!("promote on {} answered {status}: {body}", c.name);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `cond` every 50 ms until it holds; errors after `timeout`.
pub fn wait_for(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() > deadline {
            bail!("timed out after {}s waiting for {what}", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// One status reading.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When the status request was sent.
    pub sent: Instant,
    /// Index into the watched clusters.
    pub who: usize,
    pub status: Value,
}

/// Polls clusters' DR status in the background, keeping every reading.
pub struct Monitor {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    handle: Option<JoinHandle<()>>,
}

impl Monitor {
    pub fn start(client: &Client, urls: Vec<String>, every: Duration) -> Monitor {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (s, out, client) = (stop.clone(), samples.clone(), client.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                for (who, url) in urls.iter().enumerate() {
                    let sent = Instant::now();
                    let Ok(r) = client
                        .get(format!("{url}/v1/sys/replication/dr/status"))
                        .timeout(Duration::from_secs(2))
                        .send()
                    else {
                        continue;
                    };
                    let Ok(v) = r.json::<Value>() else { continue };
                    if let Ok(mut o) = out.lock() {
                        o.push(Sample {
                            sent,
                            who,
                            status: v["data"].clone(),
                        });
                    }
                }
                std::thread::sleep(every);
            }
        });
        Monitor {
            stop,
            samples,
            handle: Some(handle),
        }
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn stop(&mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.samples()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether any of `who`'s readings since `since` showed a merkle diff or sync.
pub fn saw_resync(samples: &[Sample], who: usize, since: Instant) -> bool {
    samples.iter().any(|s| {
        s.who == who
            && s.sent >= since
            && matches!(
                s.status["state"].as_str(),
                Some("merkle-diff" | "merkle-sync")
            )
    })
}

/// The value of metric `name` (not a longer name sharing its prefix) in Prometheus text.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        if !rest.starts_with([' ', '{']) {
            return None;
        }
        rest.split_whitespace().last()?.parse().ok()
    })
}

/// Milliseconds between two instants, for verdict figures.
pub fn ms(from: Instant, to: Instant) -> u128 {
    to.saturating_duration_since(from).as_millis()
}

/// The number in a status field that is an integer.
pub fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::{Sample, saw_resync};
    use serde_json::json;
    use std::time::{Duration, Instant};

    // Why: "no full resync" verdicts depend on only counting merkle states of the right
    // cluster after the fault.
    #[test]
    fn saw_resync_counts_only_the_watched_cluster_after_the_fault() {
        // Set up: a merkle-sync reading before the fault, one from another cluster after it.
        let before = Instant::now();
        let fault = before + Duration::from_millis(10);
        let later = before + Duration::from_millis(20);
        let mut samples = vec![
            Sample {
                sent: before,
                who: 0,
                status: json!({"state": "merkle-sync"}),
            },
            Sample {
                sent: later,
                who: 1,
                status: json!({"state": "merkle-diff"}),
            },
            Sample {
                sent: later,
                who: 0,
                status: json!({"state": "stream-wals"}),
            },
        ];

        // Act + assert: none of those counts; a later merkle-diff of cluster 0 does.
        assert!(!saw_resync(&samples, 0, fault));
        samples.push(Sample {
            sent: later,
            who: 0,
            status: json!({"state": "merkle-diff"}),
        });
        assert!(saw_resync(&samples, 0, fault));
    }
}

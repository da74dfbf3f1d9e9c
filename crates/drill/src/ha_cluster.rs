//! A multi-node Raft (HA) cluster of real `strongroom` processes on loopback, with a relay in
//! front of every node's cluster port so a drill can partition any node from its peers.
//!
//! Every node advertises `cluster_addr` as its relay (`:8202`), which forwards to its real
//! cluster bind (`:8201`); peers dial that address for Raft and request forwarding. Cutting
//! only a node's own relay would leave the connections *it* opens to its peers up (through
//! their relays), so [`LinkRelay`] tells which node opened each connection (the socket's
//! owner in `/proc`) and an isolation cuts both directions: everything into the node, and
//! everything the node opens towards the others.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use reqwest::Method;
use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::checker;
use crate::cluster::{API_PORT, CLUSTER_PORT, Cluster, Pki, Placement};
use crate::scenarios::{Env, wait_for};
use crate::workload::Attempt;

/// The port each node's relay listens on; the node advertises it as its `cluster_addr`.
pub const RELAY_PORT: u16 = 8202;

static HA_SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// What a relay currently refuses.
#[derive(Default)]
struct Rules {
    /// Refuse every connection (the node behind it is isolated).
    all: bool,
    /// Refuse connections opened by these pids (an isolated node dialling out).
    pids: HashSet<u32>,
}

struct Conn {
    src: Option<u32>,
    peer: Option<SocketAddr>,
    down: TcpStream,
    up: TcpStream,
}

#[derive(Default)]
struct RelayState {
    rules: Rules,
    /// Pids of every node, to attribute connections.
    candidates: Vec<u32>,
    conns: Vec<Conn>,
}

/// A plain TCP relay that can refuse and cut connections by who opened them.
pub struct LinkRelay {
    pub addr: SocketAddr,
    state: Arc<Mutex<RelayState>>,
    stop: Arc<AtomicBool>,
    /// Connections whose opener could not be identified (they are let through).
    pub unattributed: Arc<AtomicU64>,
    /// Connections refused or cut by a rule.
    pub refused: Arc<AtomicU64>,
    /// Live connections still unattributed when a cut by opener was applied (a cut may
    /// have missed them: they could belong to the isolated node).
    pub unattributed_at_cut: Arc<AtomicU64>,
    accept: Option<JoinHandle<()>>,
}

impl LinkRelay {
    pub fn start(listen: SocketAddr, upstream: SocketAddr) -> Result<LinkRelay> {
        let listener =
            TcpListener::bind(listen).with_context(|| format!("binding the relay on {listen}"))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(RelayState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let unattributed = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let accept = {
            let (state, stop, unattributed, refused) = (
                state.clone(),
                stop.clone(),
                unattributed.clone(),
                refused.clone(),
            );
            std::thread::spawn(move || {
                for incoming in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(down) = incoming else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    let candidates = state
                        .lock()
                        .map(|s| s.candidates.clone())
                        .unwrap_or_default();
                    let peer = down.peer_addr().ok();
                    let src = peer.and_then(|p| socket_owner(p, addr, &candidates));
                    if src.is_none() {
                        unattributed.fetch_add(1, Ordering::Relaxed);
                    }
                    let blocked = state
                        .lock()
                        .map(|s| s.rules.all || src.is_some_and(|p| s.rules.pids.contains(&p)))
                        .unwrap_or(true);
                    if blocked {
                        refused.fetch_add(1, Ordering::Relaxed);
                        let _ = down.shutdown(Shutdown::Both);
                        continue;
                    }
                    let Ok(up) = TcpStream::connect(upstream) else {
                        let _ = down.shutdown(Shutdown::Both);
                        continue;
                    };
                    let _ = (down.set_nodelay(true), up.set_nodelay(true));
                    let (Ok(d2), Ok(u2), Ok(d3), Ok(u3)) = (
                        down.try_clone(),
                        up.try_clone(),
                        down.try_clone(),
                        up.try_clone(),
                    ) else {
                        continue;
                    };
                    if let Ok(mut s) = state.lock() {
                        s.conns.push(Conn {
                            src,
                            peer,
                            down,
                            up,
                        });
                    }
                    copy(d2, u2);
                    copy(u3, d3);
                }
            })
        };
        Ok(LinkRelay {
            addr,
            state,
            stop,
            unattributed,
            refused,
            unattributed_at_cut: Arc::new(AtomicU64::new(0)),
            accept: Some(accept),
        })
    }

    fn set_candidates(&self, pids: Vec<u32>) {
        if let Ok(mut s) = self.state.lock() {
            s.candidates = pids;
        }
    }

    /// Refuses every connection and cuts the live ones: the link behind it is down.
    pub fn cut(&self) {
        self.set_rules(true, HashSet::new());
    }

    /// Lets every connection through again.
    pub fn heal(&self) {
        self.set_rules(false, HashSet::new());
    }

    /// Applies `rules` and cuts every live connection they refuse.
    fn set_rules(&self, all: bool, pids: HashSet<u32>) {
        if let Ok(mut s) = self.state.lock() {
            s.rules = Rules { all, pids };
            let mut kept = Vec::new();
            let candidates = s.candidates.clone();
            for mut c in std::mem::take(&mut s.conns) {
                // Connections opened before the opener's pid was known: attribute them now.
                if c.src.is_none()
                    && let Some(p) = c.peer
                {
                    c.src = socket_owner(p, self.addr, &candidates);
                    if c.src.is_none() && !s.rules.pids.is_empty() {
                        self.unattributed_at_cut.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let cut = s.rules.all || c.src.is_some_and(|p| s.rules.pids.contains(&p));
                if cut {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    let _ = c.down.shutdown(Shutdown::Both);
                    let _ = c.up.shutdown(Shutdown::Both);
                } else {
                    kept.push(c);
                }
            }
            s.conns = kept;
        }
    }
}

impl Drop for LinkRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        if let Ok(s) = self.state.lock() {
            for c in &s.conns {
                let _ = c.down.shutdown(Shutdown::Both);
                let _ = c.up.shutdown(Shutdown::Both);
            }
        }
    }
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// Which of `pids` owns the client socket `peer` -> `relay` (IPv4 loopback): the socket's
/// inode from `/proc/net/tcp`, then the process holding it.
fn socket_owner(peer: SocketAddr, relay: SocketAddr, pids: &[u32]) -> Option<u32> {
    let mut inode = None;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                continue;
            }
            let port = |s: &str| {
                s.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            if port(f[1]) == Some(peer.port()) && port(f[2]) == Some(relay.port()) {
                inode = Some(f[9].to_string());
                break;
            }
        }
        if inode.is_some() {
            break;
        }
    }
    let want = format!("socket:[{}]", inode?);
    pids.iter().copied().find(|pid| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                d.flatten().any(|e| {
                    std::fs::read_link(e.path())
                        .map(|l| l.to_string_lossy() == want)
                        .unwrap_or(false)
                })
            })
            .unwrap_or(false)
    })
}

/// A client that never follows redirects, to see what one node itself answers.
pub fn no_redirect_client(pki: &Pki) -> Result<Client> {
    Ok(Client::builder()
        .tls_backend_preconfigured(pki.tls_config()?)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(2))
        .build()?)
}

/// A Raft cluster of `n` nodes. Field order is drop order: processes, relays, directory.
pub struct HaCluster {
    pub nodes: Vec<Cluster>,
    pub relays: Vec<LinkRelay>,
    pub client: Client,
    pub raw: Client,
    pub root: String,
    pub tag: String,
    /// Whether `dr/primary/enable` worked, so every node reports a merkle root.
    pub merkle: bool,
    /// The CA that signed every node's API certificate (a DR secondary's `ca_file`).
    pub ca_file: PathBuf,
    /// The CA, unless this cluster uses another's.
    pki: Option<Pki>,
    dir: Option<tempfile::TempDir>,
    keep: bool,
}

impl HaCluster {
    /// Prepares `n` nodes (not started) and their relays; `fast` sets
    /// `performance_multiplier = 2` (tight Raft timeouts), else the server default.
    pub fn new(env: &Env, n: usize, fast: bool) -> Result<HaCluster> {
        HaCluster::labelled(env, n, fast, "node", None)
    }

    /// As [`HaCluster::new`], the nodes named `{label}1`..`{label}n` (two clusters of one
    /// drill tell their logs and verdict figures apart), their certificates signed by
    /// `other`'s CA when given (so one client reaches both clusters) or else by a new one.
    pub fn labelled(
        env: &Env,
        n: usize,
        fast: bool,
        label: &str,
        other: Option<&HaCluster>,
    ) -> Result<HaCluster> {
        let multiplier = if fast {
            "  performance_multiplier = 2\n"
        } else {
            ""
        };
        let dir = tempfile::Builder::new()
            .prefix("strongroom-drill-ha-")
            .tempdir()?;
        let own = match other {
            Some(_) => None,
            None => Some(Pki::new(dir.path())?),
        };
        let pki = own
            .as_ref()
            .or(other.and_then(|o| o.pki.as_ref()))
            .ok_or_else(|| anyhow!("the other cluster borrows its CA too"))?;
        let client = pki.client()?;
        let raw = no_redirect_client(pki)?;
        let seq = HA_SEQ.fetch_add(1, Ordering::SeqCst) % 250;
        let second = 100 + std::process::id() % 100;
        let ip = |i: usize| format!("127.{second}.{}.{}", 200 + seq % 50, i + 1);
        let mut nodes = Vec::new();
        let mut relays = Vec::new();
        for i in 0..n {
            let name = format!("{label}{}", i + 1);
            let ndir = dir.path().join(&name);
            std::fs::create_dir_all(ndir.join("raft"))?;
            let me = ip(i);
            let (cert, key) = pki.server_cert(&ndir, std::slice::from_ref(&me))?;
            let retry_join = if i == 0 {
                String::new()
            } else {
                format!(
                    "  retry_join {{\n    leader_api_addr = \"https://{}:{API_PORT}\"\n    leader_ca_cert_file = \"{}\"\n  }}\n",
                    ip(0),
                    pki.ca_file.display()
                )
            };
            let config = format!(
                r#"disable_mlock = true
api_addr     = "https://{me}:{API_PORT}"
cluster_addr = "https://{me}:{RELAY_PORT}"
storage "raft" {{
  path    = "{raft}"
  node_id = "{name}"
{multiplier}{retry_join}}}
listener "tcp" {{
  address         = "{me}:{API_PORT}"
  cluster_address = "{me}:{CLUSTER_PORT}"
  tls_cert_file   = "{cert}"
  tls_key_file    = "{key}"
  telemetry {{
    unauthenticated_metrics_access = true
  }}
}}
telemetry {{
  prometheus_retention_time = "1h"
  disable_hostname          = true
}}
"#,
                raft = ndir.join("raft").display(),
                cert = cert.display(),
                key = key.display(),
            );
            nodes.push(Cluster::prepared(
                &name,
                Placement::loopback(me.clone()),
                &ndir,
                &config,
                &env.bin,
                client.clone(),
            )?);
            relays.push(LinkRelay::start(
                format!("{me}:{RELAY_PORT}").parse()?,
                format!("{me}:{CLUSTER_PORT}").parse()?,
            )?);
        }
        Ok(HaCluster {
            nodes,
            relays,
            client,
            raw,
            root: String::new(),
            tag: format!("ha{}x{seq}", std::process::id()),
            merkle: false,
            ca_file: pki.ca_file.clone(),
            pki: own,
            dir: Some(dir),
            keep: env.keep,
        })
    }

    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|c| c.log_file().display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Tells every relay the current node pids.
    fn refresh_pids(&self) {
        let pids: Vec<u32> = self.nodes.iter().filter_map(Cluster::pid).collect();
        for r in &self.relays {
            r.set_candidates(pids.clone());
        }
    }

    /// Starts node `i` (a fresh process on its data) and, when `unseal`, unseals it.
    pub fn start_node(&mut self, i: usize, unseal: bool) -> Result<()> {
        self.nodes[i].start()?;
        self.refresh_pids();
        if unseal {
            self.nodes[i].unseal()?;
        }
        Ok(())
    }

    /// Forms the cluster ([`HaCluster::form_raft`]), mounts KV v2 at `secret/` and enables
    /// it as a DR primary.
    pub fn form(&mut self) -> Result<()> {
        self.form_raft()?;
        let a = &self.nodes[0];
        a.call(
            a.req(Method::POST, "sys/mounts/secret", &self.root)
                .json(&json!({"type": "kv", "options": {"version": "2"}})),
            "mounting secret/",
        )?;
        // A DR primary reports its merkle root on `dr/status`, which lets the checker compare
        // every node's tree; optional, the verdict says whether it was available.
        self.merkle = a
            .call(
                a.req(Method::PUT, "sys/replication/dr/primary/enable", &self.root)
                    .json(&json!({})),
                "dr/primary/enable",
            )
            .is_ok();
        Ok(())
    }

    /// Forms the Raft cluster: init node 1, join and unseal the others, wait until every node
    /// is a voter. Node 1 is active when it returns.
    pub fn form_raft(&mut self) -> Result<()> {
        self.start_node(0, false)?;
        self.root = self.nodes[0].init()?;
        wait_for(Duration::from_secs(30), "node1 to become active", || {
            self.is_active(0)
        })?;
        let keys = self.nodes[0].keys.clone();
        for i in 1..self.nodes.len() {
            self.nodes[i].keys = keys.clone();
            self.start_node(i, false)?;
            let n = &self.nodes[i];
            wait_for(
                Duration::from_secs(60),
                "a joining node to report initialized",
                || {
                    n.seal_status()
                        .map(|v| v["initialized"] == true)
                        .unwrap_or(false)
                },
            )?;
            n.unseal()?;
        }
        let a = &self.nodes[0];
        a.call(
            a.req(
                Method::POST,
                "sys/storage/raft/autopilot/configuration",
                &self.root,
            )
            .json(&json!({"server_stabilization_time": "1s"})),
            "autopilot configuration",
        )?;
        let n = self.nodes.len();
        wait_for(Duration::from_secs(60), "every node to be a voter", || {
            self.voters(0).map(|v| v.len() == n).unwrap_or(false)
        })?;
        Ok(())
    }

    /// `sys/leader` of node `i`.
    pub fn leader(&self, i: usize) -> Result<Value> {
        let n = &self.nodes[i];
        n.call(
            self.raw
                .get(format!("{}/v1/sys/leader", n.url()))
                .timeout(Duration::from_secs(2)),
            "sys/leader",
        )
    }

    pub fn is_active(&self, i: usize) -> bool {
        self.leader(i)
            .map(|v| v["is_self"] == true)
            .unwrap_or(false)
    }

    /// The active node among `among`, if exactly one says it is.
    pub fn active_among(&self, among: &[usize]) -> Option<usize> {
        let act: Vec<usize> = among
            .iter()
            .copied()
            .filter(|&i| self.is_active(i))
            .collect();
        (act.len() == 1).then(|| act[0])
    }

    pub fn all(&self) -> Vec<usize> {
        (0..self.nodes.len()).collect()
    }

    pub fn wait_active_among(&self, among: &[usize], timeout: Duration) -> Result<usize> {
        let mut found = None;
        wait_for(timeout, "an active node", || {
            found = self.active_among(among);
            found.is_some()
        })?;
        found.ok_or_else(|| anyhow!("no active node"))
    }

    /// Voter node ids per `sys/storage/raft/configuration` asked of node `i`.
    pub fn voters(&self, i: usize) -> Result<Vec<String>> {
        let n = &self.nodes[i];
        let v = n.call(
            n.req(Method::GET, "sys/storage/raft/configuration", &self.root)
                .timeout(Duration::from_secs(3)),
            "raft configuration",
        )?;
        Ok(v["data"]["config"]["servers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|s| s["voter"] == true)
                    .filter_map(|s| s["node_id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn index(&self, i: usize, field: &str) -> Option<u64> {
        self.leader(i).ok().and_then(|v| v[field].as_u64())
    }

    /// Waits until node `i` has applied what the active node `a` had committed when asked.
    pub fn wait_caught_up(&self, a: usize, i: usize, timeout: Duration) -> Result<u64> {
        let target = self
            .index(a, "raft_committed_index")
            .ok_or_else(|| anyhow!("no raft_committed_index on {}", self.nodes[a].name))?;
        wait_for(timeout, "a node to catch up", || {
            self.index(i, "raft_applied_index")
                .is_some_and(|x| x >= target)
        })?;
        Ok(target)
    }

    /// Waits until restarted node `i` is a voter again and has applied what the active node
    /// had committed.
    pub fn wait_rejoined(&self, i: usize, timeout: Duration) -> Result<()> {
        let (name, n) = (&self.nodes[i].name, self.nodes.len());
        wait_for(timeout, "the restarted node to be a voter", || {
            self.active_among(&self.all())
                .and_then(|a| self.voters(a).ok())
                .is_some_and(|v| v.len() == n && v.contains(name))
        })?;
        let a = self.wait_active_among(&self.all(), Duration::from_secs(30))?;
        self.wait_caught_up(a, i, timeout)?;
        Ok(())
    }

    /// Cuts node `i` from every peer, both directions (the API stays reachable).
    pub fn isolate(&self, i: usize) -> Result<()> {
        let pid = self.nodes[i]
            .pid()
            .ok_or_else(|| anyhow!("{} is not running", self.nodes[i].name))?;
        for (j, r) in self.relays.iter().enumerate() {
            if j == i {
                r.set_rules(true, HashSet::new());
            } else {
                r.set_rules(false, HashSet::from([pid]));
            }
        }
        Ok(())
    }

    pub fn heal(&self) {
        for r in &self.relays {
            r.set_rules(false, HashSet::new());
        }
    }

    /// Connections unattributed when accepted, and still unattributed (alive) at a cut.
    pub fn unattributed(&self) -> String {
        let sum = |f: fn(&LinkRelay) -> u64| self.relays.iter().map(f).sum::<u64>();
        format!(
            "{}/{}",
            sum(|r| r.unattributed.load(Ordering::Relaxed)),
            sum(|r| r.unattributed_at_cut.load(Ordering::Relaxed))
        )
    }

    /// Checks every acknowledged attempt through every running node; merkle roots compared
    /// when available. Returns (all clean, verdict figures of the first node + per-node loss).
    pub fn check_all(
        &self,
        attempts: &HashMap<String, Attempt>,
        tokens: &[String],
    ) -> Result<(bool, String)> {
        let none = HashSet::new();
        let expect = checker::Expect {
            attempts,
            may_lose: &none,
            must_be_gone: &none,
            tokens,
        };
        let mut clean = true;
        let mut parts = Vec::new();
        let running: Vec<usize> = self
            .all()
            .into_iter()
            .filter(|&i| self.nodes[i].pid().is_some())
            .collect();
        for (k, &i) in running.iter().enumerate() {
            let others: Vec<&Cluster> = if self.merkle && k == 0 {
                running
                    .iter()
                    .filter(|&&j| j != i)
                    .map(|&j| &self.nodes[j])
                    .collect()
            } else {
                Vec::new()
            };
            let mut r = checker::check(&self.nodes[i], &self.root, &others, &expect)
                .with_context(|| format!("checking through {}", self.nodes[i].name))?;
            if !self.merkle {
                // roots_converge needs dr/status merkle roots; without them it is not a check.
                r.roots_equal = true;
            }
            if !r.clean() {
                clean = false;
                parts.push(format!(
                    "{}: {} {}",
                    self.nodes[i].name,
                    r.figures(),
                    r.examples()
                ));
            } else if k == 0 {
                parts.push(r.figures());
            }
        }
        parts.push(format!(
            "checked_through={} merkle_compared={}",
            running.len(),
            self.merkle
        ));
        Ok((clean, parts.join(" ")))
    }
}

impl Drop for HaCluster {
    fn drop(&mut self) {
        for c in &mut self.nodes {
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

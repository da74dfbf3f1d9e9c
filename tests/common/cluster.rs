//! Multi-node raft clusters of real `strongroom` processes for end-to-end HA tests.
//!
//! All nodes share one CA and one server certificate (SANs 127.0.0.1 and localhost), each node
//! has its own directory, data and fixed, free API and cluster ports (raft advertises the
//! cluster address, so port 0 cannot be used here). Node `i` (0-based) has the raft node id
//! `node{i+1}`. When a test panics while a [`Cluster`] is alive, its drop prints the tail of
//! every node's log, so a failure shows what the servers were doing.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use super::{Certs, Node, make_certs, ok};

/// How the nodes after the first one find the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Join {
    /// A `retry_join` stanza pointing at node 1's API address.
    RetryJoin,
    /// Nothing in the config: the test runs `operator raft join` itself.
    Manual,
}

/// A node's fixed addresses.
#[derive(Clone, Debug)]
pub struct Ports {
    pub api: u16,
    pub cluster: u16,
}

impl Ports {
    pub fn api_addr(&self) -> String {
        format!("https://127.0.0.1:{}", self.api)
    }
    pub fn cluster_addr(&self) -> String {
        format!("127.0.0.1:{}", self.cluster)
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    pub ports: Vec<Ports>,
    /// The cluster's unseal keys (one share, threshold one) once node 1 is initialized.
    pub keys: Vec<String>,
    pub root: String,
    /// The shared certificates (`ca.pem`, `server.pem`, `server-key.pem`).
    pub certs_dir: tempfile::TempDir,
}

/// The raft node id of node `i` (0-based).
pub fn node_id(i: usize) -> String {
    format!("node{}", i + 1)
}

impl Cluster {
    /// `n` configured, not started nodes sharing certificates; node 1 never joins, the others
    /// join as `join` says.
    pub fn configure(n: usize, join: Join) -> Cluster {
        let certs_dir = tempfile::tempdir().unwrap();
        let shared = make_certs(certs_dir.path());
        let ports: Vec<Ports> = free_ports(2 * n)
            .chunks(2)
            .map(|p| Ports {
                api: p[0],
                cluster: p[1],
            })
            .collect();
        let leader = ports[0].api_addr();
        let nodes = (0..n)
            .map(|i| {
                let retry_join = (i > 0 && join == Join::RetryJoin).then_some(leader.as_str());
                node_with(&shared, &node_id(i), &ports[i], retry_join)
            })
            .collect();
        Cluster {
            nodes,
            ports,
            keys: Vec::new(),
            root: String::new(),
            certs_dir,
        }
    }

    /// A started, initialized cluster of `n` nodes: node 1 initialized and unsealed and
    /// active, autopilot's stabilization time set to 1s, the others joined (by `join`) and
    /// unsealed as standbys. Voters are not waited for: see [`Cluster::wait_voters`].
    pub fn form(n: usize, join: Join) -> Cluster {
        let mut c = Cluster::configure(n, join);
        c.nodes[0].start();
        let (keys, root) = c.nodes[0].init_and_unseal(1, 1);
        c.keys = keys;
        c.root = root;
        c.wait_health(0, 200, 30);
        ok(c.nodes[0]
            .req(
                Method::POST,
                "sys/storage/raft/autopilot/configuration",
                &c.root,
            )
            .json(&json!({"server_stabilization_time": "1s"}))
            .send()
            .unwrap());
        for i in 1..n {
            c.nodes[i].start();
            c.join(i, join);
        }
        c
    }

    /// Joins node `i` (started, not initialized) to the cluster and unseals it with the
    /// cluster's key; returns once it answers as an unsealed standby.
    ///
    /// A membership change in flight (autopilot promoting the previous joiner) makes the
    /// leader wait its turn, so the join succeeds at the first unseal.
    pub fn join(&self, i: usize, join: Join) {
        let node = &self.nodes[i];
        self.join_phase_one(i, join);
        let r = node.unseal(&self.keys);
        assert_eq!(r["sealed"], false, "unseal of joining {}: {r}", node_id(i));
        self.wait_health(i, 429, 30);
    }

    /// Phase one of the join: a challenge pending on node `i` (seal-status says initialized).
    fn join_phase_one(&self, i: usize, join: Join) {
        let node = &self.nodes[i];
        if seal_status(node)["initialized"] == true {
            return;
        }
        match join {
            Join::RetryJoin => wait_for_node(
                self,
                30,
                &format!("{} to get the challenge", node_id(i)),
                || seal_status(node)["initialized"] == true,
            ),
            Join::Manual => {
                let (code, out, err) = self.raft_join_cli(i, &self.ports[0].api_addr());
                assert_eq!(code, 0, "operator raft join on {}: {out}{err}", node_id(i));
                assert!(out.contains("Joined") && out.contains("true"), "{out}");
            }
        }
    }

    /// `operator raft join -leader-ca-cert=@ca.pem LEADER` run against node `i`.
    pub fn raft_join_cli(&self, i: usize, leader: &str) -> (i32, String, String) {
        let ca = format!("-leader-ca-cert=@{}", self.nodes[i].certs.ca.display());
        self.nodes[i].cli(None, &["operator", "raft", "join", &ca, leader])
    }

    /// The shared certificates.
    pub fn certs(&self) -> Certs {
        let d = self.certs_dir.path();
        Certs {
            ca: d.join("ca.pem"),
            cert: d.join("server.pem"),
            key: d.join("server-key.pem"),
        }
    }

    /// Status code and body of `sys/health` on node `i`; `None` when it does not answer.
    pub fn health(&self, i: usize) -> Option<(u16, Value)> {
        health(&self.nodes[i])
    }

    /// Waits until node `i`'s `sys/health` answers `code`.
    pub fn wait_health(&self, i: usize, code: u16, secs: u64) {
        wait_for_node(
            self,
            secs,
            &format!("{} to answer health {code}", node_id(i)),
            || self.health(i).is_some_and(|(c, _)| c == code),
        );
    }

    /// The running nodes (not in `except`) that answer health 200.
    pub fn actives(&self, except: &[usize]) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| !except.contains(i) && self.nodes[*i].child.is_some())
            .filter(|i| self.health(*i).is_some_and(|(c, _)| c == 200))
            .collect()
    }

    /// Waits until exactly one running node is active and every other unsealed running node
    /// agrees (`sys/leader` names its API address); returns its index. Sealed and removed
    /// nodes (health 503, 530) take no part.
    pub fn wait_active(&self, secs: u64) -> usize {
        let mut found = None;
        wait_for_node(
            self,
            secs,
            "exactly one active node that the others agree on",
            || {
                let actives = self.actives(&[]);
                let [a] = actives[..] else { return false };
                let addr = self.ports[a].api_addr();
                let agreed = (0..self.nodes.len())
                    .filter(|i| *i != a)
                    .filter(|i| self.health(*i).is_some_and(|(c, _)| c != 503 && c != 530))
                    .all(|i| {
                        leader(&self.nodes[i]).is_some_and(|l| {
                            l["leader_address"] == addr.as_str() && l["is_self"] == false
                        })
                    });
                found = Some(a);
                agreed && leader(&self.nodes[a]).is_some_and(|l| l["is_self"] == true)
            },
        );
        found.unwrap()
    }

    /// Running nodes other than `active`.
    pub fn standbys(&self, active: usize) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| *i != active && self.nodes[*i].child.is_some())
            .collect()
    }

    /// `data.config.servers` of `sys/storage/raft/configuration`, read through node `i`.
    pub fn servers(&self, i: usize) -> Vec<Value> {
        let r = ok(self.nodes[i]
            .req(Method::GET, "sys/storage/raft/configuration", &self.root)
            .send()
            .unwrap());
        r["data"]["config"]["servers"].as_array().unwrap().clone()
    }

    /// `operator raft list-peers` through node `i`: rows of (node, address, state, voter).
    pub fn list_peers(&self, i: usize) -> Vec<[String; 4]> {
        let (code, out, err) =
            self.nodes[i].cli(Some(&self.root), &["operator", "raft", "list-peers"]);
        assert_eq!(code, 0, "list-peers: {out}{err}");
        let mut lines = out.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        assert_eq!(header, ["Node", "Address", "State", "Voter"], "{out}");
        lines
            .filter(|l| !l.trim().is_empty() && !l.starts_with("----"))
            .map(|l| {
                let cols: Vec<String> = l.split_whitespace().map(str::to_string).collect();
                assert_eq!(cols.len(), 4, "list-peers row {l:?} in\n{out}");
                [
                    cols[0].clone(),
                    cols[1].clone(),
                    cols[2].clone(),
                    cols[3].clone(),
                ]
            })
            .collect()
    }

    /// Waits until `list-peers` through node `via` shows exactly `ids`, all voters.
    pub fn wait_voters(&self, via: usize, ids: &[String], secs: u64) {
        let mut want: Vec<String> = ids.to_vec();
        want.sort();
        wait_for_node(self, secs, &format!("voters {want:?}"), || {
            let peers = self.list_peers(via);
            let mut got: Vec<String> = peers
                .iter()
                .filter(|p| p[3] == "true")
                .map(|p| p[0].clone())
                .collect();
            got.sort();
            got == want && peers.len() == want.len()
        });
    }

    /// Writes `secret/data/{key}` = {"v": value} through node `i`.
    pub fn put(&self, i: usize, key: &str, value: &str) -> reqwest::blocking::Response {
        put(&self.nodes[i], &self.root, key, value)
    }

    /// `secret/data/{key}`'s "v" read through node `i` (`None` unless 200).
    pub fn get(&self, i: usize, key: &str) -> Option<String> {
        get(&self.nodes[i], &self.root, key)
    }

    /// The last `lines` lines of each node's stdout and stderr.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut s = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            for p in [n.stdout_log(), n.stderr_log()] {
                s.push_str(&format!("----- {} {} -----\n", node_id(i), p.display()));
                s.push_str(&tail(&p, lines));
            }
        }
        s
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("===== node logs (tails) =====\n{}", self.log_tails(40));
        }
    }
}

/// Like [`super::wait_for`], panicking with the nodes' health so the reason shows.
pub fn wait_for_node(c: &Cluster, secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    while !cond() {
        if Instant::now() >= deadline {
            let states: Vec<String> = (0..c.nodes.len())
                .map(|i| match c.health(i) {
                    Some((code, body)) => format!("{}: {code} {body}", node_id(i)),
                    None => format!("{}: no answer", node_id(i)),
                })
                .collect();
            panic!(
                "timed out after {secs}s waiting for {what}; health:\n{}",
                states.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A node sharing `certs` (copied into its own directory) with fixed ports.
pub fn node_with(certs: &Certs, id: &str, ports: &Ports, retry_join: Option<&str>) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let own = Certs {
        ca: dir.path().join("ca.pem"),
        cert: dir.path().join("server.pem"),
        key: dir.path().join("server-key.pem"),
    };
    std::fs::copy(&certs.ca, &own.ca).unwrap();
    std::fs::copy(&certs.cert, &own.cert).unwrap();
    std::fs::copy(&certs.key, &own.key).unwrap();
    let config = dir.path().join("config.hcl");
    let raft = dir.path().join("raft");
    let retry_join = retry_join
        .map(|leader| {
            format!(
                "  retry_join {{\n    leader_api_addr = \"{leader}\"\n    leader_ca_cert_file = \"{}\"\n  }}\n",
                own.ca.display()
            )
        })
        .unwrap_or_default();
    std::fs::write(
        &config,
        format!(
            r#"
disable_mlock = true
api_addr = "{api_addr}"
cluster_addr = "https://{cluster_addr}"
storage "raft" {{
  path    = "{raft}"
  node_id = "{id}"
  performance_multiplier = 2
{retry_join}}}
listener "tcp" {{
  address         = "127.0.0.1:{api}"
  cluster_address = "{cluster_addr}"
  tls_cert_file   = "{cert}"
  tls_key_file    = "{key}"
  telemetry {{
    unauthenticated_metrics_access = true
  }}
}}
telemetry {{
  prometheus_retention_time = "1h"
  disable_hostname = true
}}
"#,
            api_addr = ports.api_addr(),
            cluster_addr = ports.cluster_addr(),
            api = ports.api,
            raft = raft.display(),
            cert = own.cert.display(),
            key = own.key.display(),
        ),
    )
    .unwrap();
    Node {
        dir,
        certs: own,
        config,
        child: None,
        addr: String::new(),
        drains: Vec::new(),
    }
}

/// `n` distinct ports that are free on 127.0.0.1 now. They are picked at random below the
/// kernel's ephemeral range (32768+), where neither outgoing connections nor the port-0
/// listeners of other tests land, so a port stays free between this check and the server's
/// bind.
pub fn free_ports(n: usize) -> Vec<u16> {
    static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut taken = TAKEN.lock().unwrap();
    let taken = taken.get_or_insert_with(HashSet::new);
    let mut out = Vec::new();
    let mut seed = std::collections::hash_map::RandomState::new().build_hasher();
    seed.write_u32(std::process::id());
    let mut x = seed.finish() | 1;
    while out.len() < n {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = 20000 + (x % 12000) as u16;
        if taken.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.insert(port);
            out.push(port);
        }
    }
    out
}

pub fn seal_status(node: &Node) -> Value {
    node.client()
        .get(format!("{}/v1/sys/seal-status", node.addr))
        .send()
        .ok()
        .and_then(|r| r.json().ok())
        .unwrap_or(Value::Null)
}

/// Status and body of `sys/health`; `None` when the node does not answer.
pub fn health(node: &Node) -> Option<(u16, Value)> {
    node.child.as_ref()?;
    let r = quick_client(&node.certs.ca)
        .get(format!("{}/v1/sys/health", node.addr))
        .send()
        .ok()?;
    let code = r.status().as_u16();
    Some((code, r.json().unwrap_or(Value::Null)))
}

/// `sys/leader` (unauthenticated); `None` when it does not answer 200.
pub fn leader(node: &Node) -> Option<Value> {
    node.child.as_ref()?;
    let r = quick_client(&node.certs.ca)
        .get(format!("{}/v1/sys/leader", node.addr))
        .send()
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    r.json().ok()
}

pub fn put(node: &Node, token: &str, key: &str, value: &str) -> reqwest::blocking::Response {
    node.req(Method::PUT, &format!("secret/data/{key}"), token)
        .json(&json!({"data": {"v": value}}))
        .send()
        .unwrap()
}

pub fn get(node: &Node, token: &str, key: &str) -> Option<String> {
    let r = node
        .req(Method::GET, &format!("secret/data/{key}"), token)
        .send()
        .unwrap();
    if r.status() != 200 {
        return None;
    }
    let v: Value = r.json().unwrap();
    v["data"]["data"]["v"].as_str().map(str::to_string)
}

/// A client trusting `ca` that does not follow redirects and gives up after 3s: for probes
/// and for seeing a standby's 307.
pub fn quick_client(ca: &Path) -> reqwest::blocking::Client {
    client_with(ca, Duration::from_secs(3), false)
}

/// A client trusting `ca`, with a timeout, following redirects or not.
pub fn client_with(ca: &Path, timeout: Duration, follow: bool) -> reqwest::blocking::Client {
    use rustls_pki_types::pem::PemObject;
    let pem = std::fs::read(ca).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let redirect = if follow {
        reqwest::redirect::Policy::default()
    } else {
        reqwest::redirect::Policy::none()
    };
    reqwest::blocking::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(timeout)
        .redirect(redirect)
        .build()
        .unwrap()
}

/// The last `n` lines of a file ("" when it does not exist).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut s = lines[lines.len().saturating_sub(n)..].join("\n");
    s.push('\n');
    s
}

/// Sum of the samples of counter `name` on a node (0 when absent: never incremented). Read
/// anonymously: a DR secondary answers `sys/metrics` only so (this helper's listeners allow
/// it), and then each node answers for itself.
pub fn counter(node: &Node, name: &str) -> f64 {
    let text = quick_client(&node.certs.ca)
        .get(format!("{}/v1/sys/metrics?format=prometheus", node.addr))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .filter(|l| l.split([' ', '{']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
        + 0.0
}

/// `data` of `sys/replication/{kind}/status` on a running node (`kind`: `dr` or
/// `performance`), or `None` when it does not answer.
pub fn replication_status(node: &Node, kind: &str) -> Option<Value> {
    node.child.as_ref()?;
    let r = quick_client(&node.certs.ca)
        .get(format!("{}/v1/sys/replication/{kind}/status", node.addr))
        .send()
        .ok()?;
    let v: Value = r.json().ok()?;
    Some(v["data"].clone())
}

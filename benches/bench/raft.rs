//! Multi-node Raft clusters of real servers, formed as an operator forms them.
//!
//! Fixed `api_addr` / `cluster_addr` in HCL, `retry_join` with `leader_ca_cert_file`, init and
//! unseal on the first node, unseal with the same key on the others, autopilot promoting them
//! to voters after a one-second stabilization. Every node is a [`Node`], so a benchmark can
//! kill, restart and call it like any other server.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::{Env, Node};

/// `n` nodes of one Raft cluster, all unsealed voters once [`RaftCluster::form`] returns.
pub struct RaftCluster {
    pub nodes: Vec<Node>,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The HCL of one node: fixed ports, telemetry open to the benchmark, `retry_join` to
/// `leader_api` unless it is the first node.
fn node_config(
    dir: &std::path::Path,
    id: &str,
    (api, cluster): (u16, u16),
    join: Option<(&str, &str)>,
    multiplier: Option<u64>,
) -> String {
    let join = join.map_or(String::new(), |(leader_api, ca)| {
        format!(
            "  retry_join {{\n    leader_api_addr = \"{leader_api}\"\n    leader_ca_cert_file = \"{ca}\"\n  }}\n"
        )
    });
    let mult = multiplier.map_or(String::new(), |m| {
        format!("  performance_multiplier = {m}\n")
    });
    let d = dir.display();
    format!(
        "disable_mlock = true\napi_addr = \"https://127.0.0.1:{api}\"\ncluster_addr = \"https://127.0.0.1:{cluster}\"\n\
         storage \"raft\" {{\n  path = \"{d}/raft\"\n  node_id = \"{id}\"\n{mult}{join}}}\n\
         listener \"tcp\" {{\n  address = \"127.0.0.1:{api}\"\n  cluster_address = \"127.0.0.1:{cluster}\"\n  \
         tls_cert_file = \"{d}/cert.pem\"\n  tls_key_file = \"{d}/key.pem\"\n  \
         telemetry {{\n    unauthenticated_metrics_access = true\n  }}\n}}\n\
         telemetry {{\n  prometheus_retention_time = \"1h\"\n  disable_hostname = true\n}}\n"
    )
}

impl RaftCluster {
    /// Starts `n` nodes named `{prefix}1`.. and forms one cluster of voters; the first node
    /// is active and holds the root token (copied to every node with the unseal key).
    pub async fn form(
        env: &Env,
        prefix: &str,
        n: usize,
        multiplier: Option<u64>,
    ) -> Result<RaftCluster> {
        let ports: Vec<(u16, u16)> = (0..n)
            .map(|_| Ok((free_port()?, free_port()?)))
            .collect::<Result<_>>()?;
        let leader_api = format!("https://127.0.0.1:{}", ports[0].0);
        let ca = env.ca_file.display().to_string();
        let mut nodes = Vec::new();
        for (i, &p) in ports.iter().enumerate() {
            let id = format!("{prefix}{}", i + 1);
            let join = (i > 0).then_some((leader_api.as_str(), ca.as_str()));
            let node = env
                .start_with_config(&id, |d| node_config(d, &id, p, join, multiplier))
                .await?;
            nodes.push(node);
        }
        nodes[0].init_unseal().await?;
        nodes[0]
            .call(
                Method::POST,
                "sys/storage/raft/autopilot/configuration",
                Some(json!({"server_stabilization_time": "1s"})),
            )
            .await?;
        let (root, key) = (nodes[0].root.clone(), nodes[0].unseal_key.clone());
        for node in &mut nodes[1..] {
            node.root = root.clone();
            node.unseal_key = key.clone();
            wait_seal_status(node, "initialized", true, Duration::from_secs(60)).await?;
            node.call(Method::PUT, "sys/unseal", Some(json!({ "key": key })))
                .await?;
        }
        let c = RaftCluster { nodes };
        c.wait_voters(Duration::from_secs(60)).await?;
        Ok(c)
    }

    /// Until the first node's Raft configuration lists every node as a voter.
    async fn wait_voters(&self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let conf = self.nodes[0]
                .call(Method::GET, "sys/storage/raft/configuration", None)
                .await?;
            let voters = conf["data"]["config"]["servers"].as_array().map_or(0, |s| {
                s.iter().filter(|s| s["voter"] == json!(true)).count()
            });
            if voters == self.nodes.len() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("autopilot did not make every node a voter within {limit:?}: {conf}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Index of the node whose `sys/leader` says `is_self`, among `among` (all when empty).
    pub async fn active_among(&self, among: &[usize], limit: Duration) -> Result<usize> {
        let deadline = Instant::now() + limit;
        loop {
            for (i, n) in self.nodes.iter().enumerate() {
                if !among.is_empty() && !among.contains(&i) {
                    continue;
                }
                if is_self(&n.client, &n.url("sys/leader"), Duration::from_secs(2)).await {
                    return Ok(i);
                }
            }
            if Instant::now() > deadline {
                bail!("no node reports is_self in sys/leader within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub async fn active(&self) -> Result<usize> {
        self.active_among(&[], Duration::from_secs(30)).await
    }

    /// Until autopilot on the active node reports the cluster and every server healthy.
    pub async fn wait_healthy(&self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        let mut last = Value::Null;
        loop {
            if let Ok(a) = self.active().await
                && let Ok(s) = self.nodes[a]
                    .call(Method::GET, "sys/storage/raft/autopilot/state", None)
                    .await
            {
                let d = &s["data"];
                let all = d["servers"].as_object().is_some_and(|m| {
                    m.len() == self.nodes.len()
                        && m.values().all(|v| {
                            v["healthy"] == json!(true)
                                && matches!(v["status"].as_str(), Some("leader" | "voter"))
                        })
                });
                if d["healthy"] == json!(true) && all {
                    return Ok(());
                }
                last = s;
            }
            if Instant::now() > deadline {
                bail!("autopilot did not report every server healthy within {limit:?}: {last}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Whether the node whose `sys/leader` URL is `leader_url` says it is the active node.
pub async fn is_self(client: &reqwest::Client, leader_url: &str, timeout: Duration) -> bool {
    let Ok(r) = client.get(leader_url).timeout(timeout).send().await else {
        return false;
    };
    r.json::<Value>()
        .await
        .is_ok_and(|v| v["is_self"] == json!(true))
}

/// Waits until `n`'s `sys/seal-status` has `field == want`.
pub async fn wait_seal_status(n: &Node, field: &str, want: bool, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(r) = n.client.get(n.url("sys/seal-status")).send().await
            && let Ok(s) = r.json::<Value>().await
            && s[field] == json!(want)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} never reported {field}={want} in sys/seal-status within {limit:?}",
                n.name
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

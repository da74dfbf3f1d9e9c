//! `strongroom server -dev-ha`: a three-node Raft cluster in one process, already formed.
//!
//! The quickest way to see high availability: three real Raft nodes (each with its own data
//! directory, API port and cluster port, over TLS with certificates made at start-up) that
//! joined through the same two-phase join an operator runs, so killing the active node's
//! traffic, stepping it down or reading through a standby all behave as in production.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::json;
use strongroom_api::UnsealRequest;
use strongroom_core::ha::LeaderTls;
use strongroom_core::{Operation, Request};

use crate::config::{RaftStorageConfig, StorageConfig};
use crate::dev_env::{DevEnv, addresses, call, config, mount_secret, obj};
use crate::flags::ServerFlags;
use crate::run::{Clustering, RunningNode, new_core, open_storage, start_node};

/// Nodes in the dev cluster.
const NODES: usize = 3;
/// How long the cluster gets to form before start-up fails.
const FORM_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the cluster until SIGTERM/SIGINT.
pub(crate) async fn run(flags: &ServerFlags) -> anyhow::Result<()> {
    let env = DevEnv::new("dev-ha")?;
    let ca_pem = std::fs::read_to_string(&env.tls.ca)?;

    let mut nodes: Vec<RunningNode> = Vec::new();
    let mut unseal_key = String::new();
    let mut root = String::new();
    for (i, address) in addresses::<NODES>(flags)?.iter().enumerate() {
        // The cluster port is the API port + 1 (0 stays 0), the listener default.
        let mut cfg = config(address, &env.tls);
        cfg.storage = StorageConfig::Raft(RaftStorageConfig {
            path: env.dir.join(format!("node{}", i + 1)),
            node_id: Some(format!("node{}", i + 1)),
            performance_multiplier: 0,
            ..RaftStorageConfig::default()
        });
        let cluster_bind = cfg
            .listeners
            .first()
            .context("dev listener")?
            .cluster_address_or_default()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let dialer = Arc::new(strongroom_replication::ClusterDialer::new());
        let (storage, raft) = open_storage(&cfg, &cluster_bind, dialer.clone()).await?;
        let raft = raft.context("dev-ha storage is raft")?;
        let core = new_core(&cfg, storage, env.telemetry.clone());
        core.set_cluster(raft.clone());
        let clustering = Clustering { raft, dialer };
        let node = start_node(&cfg, core, &env.shutdown_rx, Some(&clustering)).await?;
        if i == 0 {
            let (key, token) = node
                .core
                .dev_bootstrap(flags.dev_root_token_id.as_deref())
                .await
                .map_err(|e| anyhow::anyhow!("initializing node1: {e}"))?;
            (unseal_key, root) = (key, token);
            if !flags.dev_no_store_token
                && let Some(home) = std::env::var_os("HOME")
            {
                let path = std::path::Path::new(&home).join(".vault-token");
                if let Err(e) = crate::run::write_private(&path, root.as_bytes()) {
                    tracing::warn!(error = %e, "could not store the root token in ~/.vault-token");
                }
            }
            call(
                &node.core,
                &root,
                "sys/storage/raft/autopilot/configuration",
                obj(json!({"server_stabilization_time": "1s"})),
            )
            .await?;
            mount_secret(&node.core, &root).await?;
        } else {
            let leader = nodes.first().map(|n| n.api_addr.clone()).context("node1")?;
            let tls = LeaderTls {
                ca_cert_pem: Some(ca_pem.clone()),
                ..LeaderTls::default()
            };
            node.core
                .raft_join(vec![(leader, tls)], false, false)
                .await
                .map_err(|e| anyhow::anyhow!("node{} joining: {e}", i + 1))?;
            node.core
                .unseal(UnsealRequest {
                    key: Some(unseal_key.clone()),
                    ..UnsealRequest::default()
                })
                .await
                .map_err(|e| anyhow::anyhow!("node{} unsealing: {e}", i + 1))?;
        }
        nodes.push(node);
    }
    wait_voters(&nodes, &root).await?;
    print_banner(&nodes, &env.tls.ca, &root, &unseal_key);
    env.serve(nodes).await;
    Ok(())
}

/// Waits until autopilot made every node a voter.
async fn wait_voters(nodes: &[RunningNode], root: &str) -> anyhow::Result<()> {
    let active = nodes.first().context("no nodes")?;
    let deadline = Instant::now() + FORM_TIMEOUT;
    loop {
        let voters = active
            .core
            .handle(
                Request::new(Operation::Read, "sys/storage/raft/configuration").with_token(root),
            )
            .await
            .ok()
            .and_then(|r| r.data)
            .and_then(|d| d.get("config").and_then(|c| c.get("servers")).cloned())
            .and_then(|s| {
                s.as_array()
                    .map(|a| a.iter().filter(|v| v["voter"] == true).count())
            })
            .unwrap_or(0);
        if voters == nodes.len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the dev cluster has {voters} voters of {} after {FORM_TIMEOUT:?}",
                nodes.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn print_banner(nodes: &[RunningNode], ca: &std::path::Path, root: &str, unseal_key: &str) {
    println!(
        "==> Strongroom -dev-ha: a three-node Raft cluster over mutual TLS, formed and unsealed.\n"
    );
    for (i, n) in nodes.iter().enumerate() {
        let role = if i == 0 {
            "active"
        } else {
            "standby (forwards to the active node)"
        };
        println!(
            "node{}  {role}\n             Api Address: {}\n         Cluster Address: {}\n",
            i + 1,
            n.api_addr,
            n.cluster_addr
        );
    }
    let first = nodes.first().map(|n| n.api_addr.as_str()).unwrap_or("");
    let second = nodes.get(1).map(|n| n.api_addr.as_str()).unwrap_or("");
    println!(
        "                 CA File: {ca}
              Root Token: {root}
              Unseal Key: {unseal_key}

Try:
    export VAULT_CACERT={ca} VAULT_TOKEN={root}
    VAULT_ADDR={second} strongroom kv put secret/demo hello=world   # through a standby
    VAULT_ADDR={first} strongroom operator raft list-peers
    VAULT_ADDR={first} strongroom operator step-down
    VAULT_ADDR={second} strongroom status

Data lives in a temporary directory removed on exit. Development mode should NOT be used in production.
",
        ca = ca.display()
    );
}

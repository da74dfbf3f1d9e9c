//! DR pair setup, catch-up waits and bulk loading shared by the replication benchmarks.
//!
//! The calls are exactly the operator's runbook (`dr/primary/enable`, `secondary-token`,
//! `dr/secondary/enable` with `primary_api_addr` and `ca_file`), so a benchmark exercises the
//! same path a production secondary takes, including the activation-token unwrap over TLS.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::{Env, Node};

/// Mount path of the KV v1 engine every benchmark writes to.
pub const MOUNT: &str = "kv";

/// A new, unsealed node with a KV v1 mount at [`MOUNT`] and replication left disabled.
pub async fn standalone(env: &Env, name: &str) -> Result<Node> {
    let mut p = env.start(name).await?;
    p.init_unseal().await?;
    p.call(
        Method::POST,
        &format!("sys/mounts/{MOUNT}"),
        Some(json!({"type": "kv"})),
    )
    .await?;
    Ok(p)
}

/// A new, unsealed DR primary with a KV v1 mount at [`MOUNT`].
pub async fn primary(env: &Env, name: &str) -> Result<Node> {
    let p = standalone(env, name).await?;
    p.call(Method::PUT, "sys/replication/dr/primary/enable", None)
        .await?;
    Ok(p)
}

/// A new node, initialized and unsealed but not yet a secondary.
pub async fn spare(env: &Env, name: &str) -> Result<Node> {
    let mut s = env.start(name).await?;
    s.init_unseal().await?;
    Ok(s)
}

/// A response-wrapped activation token for secondary `id`, minted on `primary`.
pub async fn activation_token(primary: &Node, id: &str) -> Result<String> {
    let r = primary
        .call(
            Method::PUT,
            "sys/replication/dr/primary/secondary-token",
            Some(json!({ "id": id })),
        )
        .await?;
    Ok(r["wrap_info"]["token"]
        .as_str()
        .context("secondary-token answered without wrap_info.token")?
        .to_string())
}

/// Turns `spare` into a DR secondary of `primary`; it then answers to the primary's root token.
pub async fn enable_secondary(env: &Env, primary: &Node, spare: &mut Node, id: &str) -> Result<()> {
    enable_secondary_via(env, primary, &primary.addr, spare, id).await
}

/// As [`enable_secondary`], the token minted on `primary` and unwrapped at `primary_api_addr`
/// (any node of the primary's cluster: a standby forwards the unwrap to its active node).
pub async fn enable_secondary_via(
    env: &Env,
    primary: &Node,
    primary_api_addr: &str,
    spare: &mut Node,
    id: &str,
) -> Result<()> {
    let token = activation_token(primary, id).await?;
    spare
        .call(
            Method::PUT,
            "sys/replication/dr/secondary/enable",
            Some(json!({
                "token": token,
                "primary_api_addr": primary_api_addr,
                "ca_file": env.ca_file.to_string_lossy(),
            })),
        )
        .await?;
    spare.root = primary.root.clone();
    spare.unseal_key = primary.unseal_key.clone();
    Ok(())
}

/// Polls every `every` until [`caught_up`]; returns the time it took and every secondary state
/// seen on the way with the time it was first seen (so bootstrap reports its phases).
pub async fn wait_caught_up(
    primary: &Node,
    secondary: &Node,
    every: Duration,
    timeout: Duration,
) -> Result<(Duration, Vec<(String, Duration)>)> {
    let start = Instant::now();
    let mut states: Vec<(String, Duration)> = Vec::new();
    loop {
        let (p, s) = tokio::try_join!(primary.dr_status(), secondary.dr_status())?;
        let state = s["state"].as_str().unwrap_or("?").to_string();
        if states.last().map(|(st, _)| st != &state).unwrap_or(true) {
            states.push((state.clone(), start.elapsed()));
        }
        if state == "stream-wals"
            && p["last_wal"].is_u64()
            && s["last_remote_wal"] == p["last_wal"]
            && s["merkle_root"] == p["merkle_root"]
        {
            return Ok((start.elapsed(), states));
        }
        if start.elapsed() > timeout {
            bail!(
                "{} did not catch up with {} within {timeout:?}: primary {p}, secondary {s}",
                secondary.name,
                primary.name
            );
        }
        tokio::time::sleep(every).await;
    }
}

/// Path of secret `i` under `prefix`.
pub fn secret_path(prefix: &str, i: u64) -> String {
    format!("{MOUNT}/{prefix}/{i:08}")
}

/// A 32-character value, distinct per secret.
pub fn secret_value(i: u64) -> Value {
    json!({ "v": format!("{:032x}", (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5cb3_7a83)) })
}

/// Writes secrets `from..to` under `prefix` with `clients` concurrent connections; returns
/// the elapsed time. Group commit turns the concurrency into few large fsyncs.
pub async fn fill(
    node: &Node,
    prefix: &str,
    from: u64,
    to: u64,
    clients: usize,
) -> Result<Duration> {
    let next = Arc::new(AtomicU64::new(from));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, addr, token, prefix, next) = (
            node.client.clone(),
            node.addr.clone(),
            node.root.clone(),
            prefix.to_string(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= to {
                    return Ok::<(), anyhow::Error>(());
                }
                let r = client
                    .put(format!("{addr}/v1/{}", secret_path(&prefix, i)))
                    .header("X-Vault-Token", &token)
                    .json(&secret_value(i))
                    .send()
                    .await?;
                if !r.status().is_success() {
                    bail!("writing secret {i} answered {}", r.status());
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(start.elapsed())
}

//! Replication setup (DR and performance), catch-up waits and bulk loading shared by the
//! replication benchmarks.
//!
//! The calls are exactly the operator's runbook (`{dr,performance}/primary/enable`,
//! `secondary-token`, `{dr,performance}/secondary/enable` with `primary_api_addr` and
//! `ca_file`), so a benchmark exercises the same path a production secondary takes, including
//! the activation-token unwrap over TLS.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::{Env, Node};

/// Mount path of the KV v1 engine every benchmark writes to.
pub const MOUNT: &str = "kv";

/// Which replication a primary/secondary pair runs: the endpoints under
/// `sys/replication/<kind>/` and the secondary's stream metrics differ, the measure does not.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Dr,
    Performance,
}

impl Kind {
    /// The path segment under `sys/replication/`.
    pub fn path(self) -> &'static str {
        match self {
            Kind::Dr => "dr",
            Kind::Performance => "performance",
        }
    }

    /// Short name for tables.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Dr => "DR",
            Kind::Performance => "PR",
        }
    }

    /// `sys/replication/<kind>/status` (unauthenticated).
    pub fn status_path(self) -> String {
        format!("sys/replication/{}/status", self.path())
    }

    /// The secondary's histogram of one apply call (a batch of streamed WAL entries).
    pub fn apply_metric(self) -> &'static str {
        match self {
            Kind::Dr => "vault_replication_stream_apply_seconds",
            Kind::Performance => "vault_replication_performance_stream_apply_seconds",
        }
    }

    /// The secondary's per-entry histogram from the primary's proposal to the apply here.
    pub fn stamped_metric(self) -> &'static str {
        match self {
            Kind::Dr => "vault_replication_stream_lag_seconds",
            Kind::Performance => "vault_replication_performance_stream_lag_seconds",
        }
    }

    /// The secondary's per-entry histogram from the primary's commit to the apply here: the
    /// lag as a client sees it.
    pub fn committed_metric(self) -> &'static str {
        match self {
            Kind::Dr => "vault_replication_stream_commit_lag_seconds",
            Kind::Performance => "vault_replication_performance_stream_commit_lag_seconds",
        }
    }
}

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
    enable_primary(&p, Kind::Dr).await?;
    Ok(p)
}

/// Makes `node` a primary of `kind` (a cluster can be both a DR and a performance primary).
pub async fn enable_primary(node: &Node, kind: Kind) -> Result<()> {
    node.call(
        Method::PUT,
        &format!("sys/replication/{}/primary/enable", kind.path()),
        None,
    )
    .await?;
    Ok(())
}

/// A new node, initialized and unsealed but not yet a secondary.
pub async fn spare(env: &Env, name: &str) -> Result<Node> {
    let mut s = env.start(name).await?;
    s.init_unseal().await?;
    Ok(s)
}

/// A response-wrapped activation token of `kind` for secondary `id`, minted on `primary`.
pub async fn activation_token(primary: &Node, kind: Kind, id: &str) -> Result<String> {
    let r = primary
        .call(
            Method::PUT,
            &format!("sys/replication/{}/primary/secondary-token", kind.path()),
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
    enable_secondary_via(env, Kind::Dr, primary, &primary.addr, spare, id).await
}

/// Turns `spare` into a secondary of `kind`, the token minted on `primary` and unwrapped at
/// `primary_api_addr` (any node of the primary's cluster: a standby forwards the unwrap to its
/// active node). Either kind adopts the primary's seal; a DR secondary also answers to the
/// primary's root token, while a performance secondary keeps tokens of its own and has none
/// left after the wipe: `spare.root` is cleared, log in there ([`login`]) once it streams.
pub async fn enable_secondary_via(
    env: &Env,
    kind: Kind,
    primary: &Node,
    primary_api_addr: &str,
    spare: &mut Node,
    id: &str,
) -> Result<()> {
    let token = activation_token(primary, kind, id).await?;
    spare
        .call(
            Method::PUT,
            &format!("sys/replication/{}/secondary/enable", kind.path()),
            Some(json!({
                "token": token,
                "primary_api_addr": primary_api_addr,
                "ca_file": env.ca_file.to_string_lossy(),
            })),
        )
        .await?;
    spare.root = match kind {
        Kind::Dr => primary.root.clone(),
        Kind::Performance => String::new(),
    };
    spare.unseal_key = primary.unseal_key.clone();
    Ok(())
}

/// The userpass policy [`add_user`] grants: everything, as a regional operator would have.
const ADMIN_POLICY: &str =
    r#"path "*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }"#;

/// Enables userpass on `node` (with its root token) and adds `user` with an allow-all policy;
/// the mount, the user and the policy are shared state, so they reach performance secondaries.
pub async fn add_user(node: &Node, user: &str, password: &str) -> Result<()> {
    node.call(
        Method::PUT,
        "sys/policies/acl/bench-admin",
        Some(json!({ "policy": ADMIN_POLICY })),
    )
    .await?;
    node.call(
        Method::POST,
        "sys/auth/userpass",
        Some(json!({"type": "userpass"})),
    )
    .await?;
    node.call(
        Method::PUT,
        &format!("auth/userpass/users/{user}"),
        Some(json!({"password": password, "policies": "bench-admin"})),
    )
    .await?;
    Ok(())
}

/// A userpass login on `node`: a token of that cluster (a performance secondary issues its own).
pub async fn login(node: &Node, user: &str, password: &str) -> Result<String> {
    let r: Value = node
        .client
        .put(node.url(&format!("auth/userpass/login/{user}")))
        .json(&json!({ "password": password }))
        .send()
        .await?
        .error_for_status()
        .with_context(|| format!("userpass login of {user} on {}", node.name))?
        .json()
        .await?;
    Ok(r["auth"]["client_token"]
        .as_str()
        .with_context(|| format!("login on {} answered without auth.client_token", node.name))?
        .to_string())
}

/// Polls `kind`'s status every `every` until the secondary streams WALs, has applied the
/// primary's last WAL index and holds the same merkle root (for a performance pair, the root
/// of the shared keys); returns the time it took and every secondary state seen on the way
/// with the time it was first seen (so bootstrap reports its phases).
pub async fn wait_caught_up(
    kind: Kind,
    primary: &Node,
    secondary: &Node,
    every: Duration,
    timeout: Duration,
) -> Result<(Duration, Vec<(String, Duration)>)> {
    let start = Instant::now();
    let mut states: Vec<(String, Duration)> = Vec::new();
    loop {
        let (p, s) = tokio::try_join!(primary.repl_status(kind), secondary.repl_status(kind))?;
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
                "{} did not catch up ({}) with {} within {timeout:?}: primary {p}, secondary {s}",
                secondary.name,
                kind.label(),
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

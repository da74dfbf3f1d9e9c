//! `strongroom server -dev-dr`: a DR primary and its DR secondary in one process.
//!
//! The fastest way to see replication: both clusters run in memory, speak TLS with
//! certificates generated at start-up, and are already replicating when the banner prints, so
//! a newcomer can write on one and watch `read sys/replication/dr/status` on the other.

use std::path::Path;

use anyhow::Context as _;

use crate::dev_env::{DR, DevEnv, addresses, mount_secret};
use crate::flags::ServerFlags;
use crate::run::RunningNode;

/// Runs both clusters until SIGTERM/SIGINT.
pub(crate) async fn run(flags: &ServerFlags) -> anyhow::Result<()> {
    let [primary_addr, secondary_addr] = addresses(flags)?;
    let env = DevEnv::new("dev-dr")?;

    // The primary: initialized, unsealed, KV v2 at secret/, DR primary.
    let (p, unseal_key, root) = env
        .start_cluster(&primary_addr, flags.dev_root_token_id.as_deref())
        .await
        .context("starting the primary")?;
    mount_secret(&p.core, &root).await?;
    let s = env
        .replicate(DR, &p, &root, "dr-secondary", &secondary_addr)
        .await
        .context("starting the DR secondary")?;

    print_banner(&p, &s, &env.tls.ca, &root, &unseal_key);
    env.serve(vec![p, s]).await;
    Ok(())
}

fn print_banner(p: &RunningNode, s: &RunningNode, ca: &Path, root: &str, unseal_key: &str) {
    println!(
        "==> Strongroom -dev-dr: a DR primary and its DR secondary, replicating over mutual TLS.

Primary (serves clients)
             Api Address: {p_api}
         Cluster Address: {p_cluster}
                 CA File: {ca}
              Root Token: {root}
              Unseal Key: {unseal_key}

DR secondary (serves no clients until promoted)
             Api Address: {s_api}
         Cluster Address: {s_cluster}
                 CA File: {ca}
              Root Token: {root} (tokens replicate; it also authorizes DR operations)
              Unseal Key: {unseal_key} (the secondary adopted the primary's keys)

Try:
    export VAULT_CACERT={ca} VAULT_TOKEN={root}
    VAULT_ADDR={p_api} strongroom kv put secret/demo hello=world
    VAULT_ADDR={s_api} strongroom read sys/replication/dr/status
    VAULT_ADDR={p_api} strongroom write -f sys/replication/dr/primary/demote
    VAULT_ADDR={s_api} strongroom write -f sys/replication/dr/secondary/promote

Everything is in memory and lost on exit. Development mode should NOT be used in production.
",
        p_api = p.api_addr,
        p_cluster = p.cluster_addr,
        s_api = s.api_addr,
        s_cluster = s.cluster_addr,
        ca = ca.display(),
    );
}

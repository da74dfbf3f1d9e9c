//! `strongroom server -dev-pr`: a performance primary, its performance secondary and that
//! secondary's own DR secondary, in one process.
//!
//! The fastest way to see performance replication, and the thing most surprising about it: a
//! performance secondary shares the primary's data and auth methods but not its tokens. All
//! three clusters run in memory over TLS with certificates made at start-up and are already
//! replicating when the banner prints; the primary holds a `demo` user, so a newcomer logs in
//! on the secondary as that user, reads what was written on the primary, and writes through
//! the secondary to the primary.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine as _;
use serde_json::json;
use strongroom_api::{GenerateRootStartRequest, GenerateRootUpdateRequest};
use strongroom_core::Core;

use crate::dev_env::{DR, DevEnv, PERF, addresses, call, mount_secret, obj};
use crate::flags::ServerFlags;
use crate::run::RunningNode;

/// The userpass user the primary holds, replicated to the secondary (password = name).
const DEMO_USER: &str = "demo";
/// What the demo user may do: everything under the KV v2 mount `secret/`.
const DEMO_POLICY: &str =
    r#"path "secret/*" { capabilities = ["create", "read", "update", "patch", "delete", "list"] }"#;

/// Runs the three clusters until SIGTERM/SIGINT.
pub(crate) async fn run(flags: &ServerFlags) -> anyhow::Result<()> {
    let [p_addr, s_addr, d_addr] = addresses(flags)?;
    let env = DevEnv::new("dev-pr")?;

    let (p, unseal_key, root) = env
        .start_cluster(&p_addr, flags.dev_root_token_id.as_deref())
        .await
        .context("starting the performance primary")?;
    seed_primary(&p.core, &root).await?;
    let s = env
        .replicate(PERF, &p, &root, "pr-secondary", &s_addr)
        .await
        .context("starting the performance secondary")?;
    let s_root = generate_root(&s.core, &unseal_key)
        .await
        .context("generating a root token on the performance secondary")?;
    let d = env
        .replicate(DR, &s, &s_root, "pr-secondary-dr", &d_addr)
        .await
        .context("starting the performance secondary's DR secondary")?;

    print_banner([&p, &s, &d], &env.tls.ca, [&root, &s_root], &unseal_key);
    env.serve(vec![p, s, d]).await;
    Ok(())
}

/// KV v2 at `secret/`, and userpass with the demo user holding the demo policy.
async fn seed_primary(core: &Arc<Core>, root: &str) -> anyhow::Result<()> {
    mount_secret(core, root).await?;
    let steps = [
        (
            "sys/policies/acl/demo".to_owned(),
            json!({"policy": DEMO_POLICY}),
        ),
        ("sys/auth/userpass".to_owned(), json!({"type": "userpass"})),
        (
            format!("auth/userpass/users/{DEMO_USER}"),
            json!({"password": DEMO_USER, "policies": "demo"}),
        ),
    ];
    for (path, body) in steps {
        call(core, root, &path, obj(body)).await?;
    }
    Ok(())
}

/// A root token of the performance secondary's own (the primary's is not valid there), made
/// as an operator makes one: `operator generate-root` with the unseal key, which the
/// secondary adopted from the primary.
async fn generate_root(core: &Arc<Core>, unseal_key: &str) -> anyhow::Result<String> {
    let start = core
        .generate_root_start(GenerateRootStartRequest::default())
        .await
        .map_err(|e| anyhow::anyhow!("sys/generate-root/attempt: {e}"))?;
    let done = core
        .generate_root_update(GenerateRootUpdateRequest {
            key: unseal_key.to_owned(),
            nonce: start.nonce.clone(),
        })
        .await
        .map_err(|e| anyhow::anyhow!("sys/generate-root/update: {e}"))?;
    let xored = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(done.encoded_token.as_bytes())
        .context("decoding the encoded root token")?;
    if xored.len() != start.otp.len() {
        anyhow::bail!("the encoded root token and the OTP differ in length");
    }
    let token = xored.iter().zip(start.otp.bytes()).map(|(t, o)| t ^ o);
    String::from_utf8(token.collect()).context("the decoded root token is not text")
}

fn print_banner(nodes: [&RunningNode; 3], ca: &Path, tokens: [&str; 2], unseal_key: &str) {
    let [p, s, d] = nodes;
    let [root, s_root] = tokens;
    println!(
        "==> Strongroom -dev-pr: a performance primary, its performance secondary and that
    secondary's DR secondary, replicating over mutual TLS.

Performance primary (serves clients)
             Api Address: {p_api}
         Cluster Address: {p_cluster}
                 CA File: {ca}
              Root Token: {root}
              Unseal Key: {unseal_key}

Performance secondary (serves reads with its own tokens; forwards shared writes to the primary)
             Api Address: {s_api}
         Cluster Address: {s_cluster}
                 CA File: {ca}
              Root Token: {s_root} (its own, from generate-root with the unseal key;
                          the primary's root token is NOT valid here)
              Unseal Key: {unseal_key} (the secondary adopted the primary's keys)
                   Login: VAULT_ADDR={s_api} strongroom login -method=userpass username={DEMO_USER}
                          (password: {DEMO_USER}; the user replicates from the primary)

DR secondary of the performance secondary (serves no clients until promoted)
             Api Address: {d_api}
         Cluster Address: {d_cluster}
                 CA File: {ca}
              Root Token: {s_root} (the performance secondary's tokens replicate here)
              Unseal Key: {unseal_key}

Try:
    export VAULT_CACERT={ca}
    VAULT_ADDR={p_api} VAULT_TOKEN={root} strongroom kv put secret/demo hello=world
    VAULT_ADDR={s_api} strongroom login -method=userpass username={DEMO_USER}
    VAULT_ADDR={s_api} strongroom kv get secret/demo
    VAULT_ADDR={s_api} strongroom kv put secret/demo hello=again   # forwarded to the primary
    VAULT_ADDR={s_api} strongroom read sys/replication/performance/status
    VAULT_ADDR={d_api} strongroom read sys/replication/dr/status

Everything is in memory and lost on exit. Development mode should NOT be used in production.
",
        p_api = p.api_addr,
        p_cluster = p.cluster_addr,
        s_api = s.api_addr,
        s_cluster = s.cluster_addr,
        d_api = d.api_addr,
        d_cluster = d.cluster_addr,
        ca = ca.display(),
    );
}

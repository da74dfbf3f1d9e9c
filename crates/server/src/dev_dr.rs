//! `strongroom server -dev-dr`: a DR primary and its DR secondary in one process.
//!
//! The fastest way to see replication: both clusters run in memory, speak TLS with
//! certificates generated at start-up, and are already replicating when the banner prints, so
//! a newcomer can write on one and watch `read sys/replication/dr/status` on the other.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::{Map, Value, json};
use strongroom_core::{Core, Operation, Request, Telemetry};
use strongroom_storage::InmemStorage;

use crate::config::{ListenerConfig, ServerConfig, StorageConfig, TelemetryConfig};
use crate::flags::ServerFlags;
use crate::run::{RunningNode, new_core, start_node};

/// How long the secondary gets to finish its initial sync before start-up fails.
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs both clusters until SIGTERM/SIGINT.
pub(crate) async fn run(flags: &ServerFlags) -> anyhow::Result<()> {
    let (primary_addr, secondary_addr) = addresses(flags)?;
    let dir = std::env::temp_dir().join(format!("strongroom-dev-dr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let tls = write_certs(&dir)?;

    let telemetry = Telemetry::install(Duration::from_secs(24 * 3600));
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);

    // The primary: initialized, unsealed, KV v2 at secret/, DR primary.
    let p_config = config(&primary_addr, &tls);
    let primary = new_core(&p_config, Arc::new(InmemStorage::new()), telemetry.clone());
    let (unseal_key, root) = primary
        .dev_bootstrap(flags.dev_root_token_id.as_deref())
        .await
        .map_err(|e| anyhow::anyhow!("initializing the primary: {e}"))?;
    let mut options = Map::new();
    options.insert("version".into(), json!("2"));
    primary
        .mount("secret/", "kv", "key/value secret storage", options)
        .await
        .map_err(|e| anyhow::anyhow!("mounting secret/: {e}"))?;
    let p = start_node(&p_config, primary, &shutdown_rx, None).await?;
    call(
        &p.core,
        &root,
        "sys/replication/dr/primary/enable",
        Map::new(),
    )
    .await?;
    let activation = call(
        &p.core,
        &root,
        "sys/replication/dr/primary/secondary-token",
        obj(json!({"id": "dr-secondary"})),
    )
    .await?
    .wrap_info
    .map(|w| w.token)
    .context("the primary returned no activation token")?;

    // The secondary: its own keys at first; enabling replication adopts the primary's.
    let s_config = config(&secondary_addr, &tls);
    let secondary = new_core(&s_config, Arc::new(InmemStorage::new()), telemetry);
    let (_, s_root) = secondary
        .dev_bootstrap(None)
        .await
        .map_err(|e| anyhow::anyhow!("initializing the secondary: {e}"))?;
    let s = start_node(&s_config, secondary, &shutdown_rx, None).await?;
    let ca_file = tls.ca.display().to_string();
    call(
        &s.core,
        &s_root,
        "sys/replication/dr/secondary/enable",
        obj(json!({"token": activation, "primary_api_addr": p.api_addr, "ca_file": ca_file})),
    )
    .await?;
    wait_streaming(&s.core).await?;

    print_banner(&p, &s, &tls.ca, &root, &unseal_key);
    crate::run::wait_for_shutdown().await;
    let _ = shutdown_tx.send(true);
    for node in [p, s] {
        for l in node.listeners {
            let _ = tokio::time::timeout(Duration::from_secs(10), l.wait()).await;
        }
        node.cluster_task.abort();
        node.core.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// API listen addresses of the primary and the secondary (secondary = primary port + 10).
fn addresses(flags: &ServerFlags) -> anyhow::Result<(String, String)> {
    let primary = flags
        .dev_listen_address
        .clone()
        .unwrap_or_else(|| "127.0.0.1:8200".into());
    let (host, port) = primary
        .rsplit_once(':')
        .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h.to_owned(), p)))
        .with_context(|| format!("-dev-listen-address {primary:?} is not host:port"))?;
    let secondary_port = if port == 0 {
        0
    } else {
        port.checked_add(10).context("port too large")?
    };
    Ok((primary, format!("{host}:{secondary_port}")))
}

pub(crate) struct DevTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A CA and one server certificate for loopback, shared by both clusters.
pub(crate) fn write_certs(dir: &Path) -> anyhow::Result<DevTls> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "strongroom dev-dr CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?
        .signed_by(&key, &ca)?;
    let tls = DevTls {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server-key.pem"),
    };
    std::fs::write(&tls.ca, ca.pem())?;
    std::fs::write(&tls.cert, cert.pem())?;
    crate::run::write_private(&tls.key, key.serialize_pem().as_bytes())?;
    Ok(tls)
}

pub(crate) fn config(address: &str, tls: &DevTls) -> ServerConfig {
    ServerConfig {
        storage: StorageConfig::Inmem,
        listeners: vec![ListenerConfig {
            address: address.to_owned(),
            tls_cert_file: Some(tls.cert.clone()),
            tls_key_file: Some(tls.key.clone()),
            ..ListenerConfig::default()
        }],
        disable_mlock: true,
        telemetry: TelemetryConfig {
            prometheus_retention_time: Duration::from_secs(24 * 3600),
            disable_hostname: true,
        },
        ..ServerConfig::default()
    }
}

pub(crate) fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// One authenticated write through the core pipeline.
pub(crate) async fn call(
    core: &Arc<Core>,
    token: &str,
    path: &str,
    data: Map<String, Value>,
) -> anyhow::Result<strongroom_core::Response> {
    core.handle(
        Request::new(Operation::Update, path)
            .with_token(token)
            .with_data(data),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{path}: {e}"))
}

/// Waits until the secondary streams WALs (initial sync done).
async fn wait_streaming(core: &Arc<Core>) -> anyhow::Result<()> {
    let deadline = Instant::now() + BOOTSTRAP_TIMEOUT;
    loop {
        let state = core
            .handle(Request::new(Operation::Read, "sys/replication/dr/status"))
            .await
            .ok()
            .and_then(|r| r.data)
            .and_then(|d| d.get("state").and_then(Value::as_str).map(str::to_owned));
        if state.as_deref() == Some("stream-wals") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the DR secondary did not reach stream-wals within {BOOTSTRAP_TIMEOUT:?} (state {state:?})"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

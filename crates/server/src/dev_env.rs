//! What the multi-cluster dev modes (`-dev-dr`, `-dev-ha`, `-dev-pr`) share.
//!
//! Each of them starts several in-memory nodes in one process, over TLS with certificates made
//! at start-up, and drives them through the same core requests an operator would send. The
//! pieces live here once so that the modes differ only in their topology and their banner:
//! ports, certificates, node configuration, in-process calls, replication set-up and the
//! wait for its initial sync, and shutdown.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::{Map, Value, json};
use strongroom_core::{Core, Operation, Request, Telemetry};
use strongroom_storage::InmemStorage;
use tokio::sync::watch;

use crate::config::{ListenerConfig, ServerConfig, StorageConfig, TelemetryConfig};
use crate::flags::ServerFlags;
use crate::run::{RunningNode, new_core, start_node};

/// DR replication, as it appears in `sys/replication/<kind>/...`.
pub(crate) const DR: &str = "dr";
/// Performance replication, as it appears in `sys/replication/<kind>/...`.
pub(crate) const PERF: &str = "performance";

/// How long a secondary gets to finish its initial sync before start-up fails.
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(60);

/// `N` API listen addresses: -dev-listen-address (default 127.0.0.1:8200), then 10 ports
/// above it each (port 0 stays 0: every node picks a free port).
pub(crate) fn addresses<const N: usize>(flags: &ServerFlags) -> anyhow::Result<[String; N]> {
    let first = flags
        .dev_listen_address
        .clone()
        .unwrap_or_else(|| "127.0.0.1:8200".into());
    let (host, port) = first
        .rsplit_once(':')
        .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h.to_owned(), p)))
        .with_context(|| format!("-dev-listen-address {first:?} is not host:port"))?;
    let mut out = Vec::with_capacity(N);
    for i in 0..N {
        let next = if port == 0 {
            Some(0)
        } else {
            u16::try_from(10 * i)
                .ok()
                .and_then(|step| port.checked_add(step))
        };
        let next =
            next.with_context(|| format!("-dev-listen-address {first:?}: port too large"))?;
        out.push(format!("{host}:{next}"));
    }
    out.try_into()
        .map_err(|_| anyhow::anyhow!("{N} addresses were asked for"))
}

/// The certificates, metrics and shutdown signal of one dev process, and its scratch directory.
pub(crate) struct DevEnv {
    pub dir: PathBuf,
    pub tls: DevTls,
    pub telemetry: Telemetry,
    pub shutdown_rx: watch::Receiver<bool>,
    shutdown_tx: watch::Sender<bool>,
}

impl DevEnv {
    /// Makes `$TMPDIR/strongroom-<mode>-<pid>` with a CA and a loopback server certificate.
    pub(crate) fn new(mode: &str) -> anyhow::Result<DevEnv> {
        let dir = std::env::temp_dir().join(format!("strongroom-{mode}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let tls = write_certs(&dir)?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        Ok(DevEnv {
            dir,
            tls,
            telemetry: Telemetry::install(Duration::from_secs(24 * 3600)),
            shutdown_rx,
            shutdown_tx,
        })
    }

    /// A one-node in-memory cluster on `address`, initialized with one key share and unsealed;
    /// returns it with its unseal key and root token.
    pub(crate) async fn start_cluster(
        &self,
        address: &str,
        root_token_id: Option<&str>,
    ) -> anyhow::Result<(RunningNode, String, String)> {
        let cfg = config(address, &self.tls);
        let core = new_core(&cfg, Arc::new(InmemStorage::new()), self.telemetry.clone());
        let (unseal_key, root) = core
            .dev_bootstrap(root_token_id)
            .await
            .map_err(|e| anyhow::anyhow!("initializing the cluster on {address}: {e}"))?;
        let node = start_node(&cfg, core, &self.shutdown_rx, None).await?;
        Ok((node, unseal_key, root))
    }

    /// Makes `primary` a `kind` primary (with `token`), starts a new cluster on `address` and
    /// makes it that primary's `kind` secondary `id`; returns once it streams WALs.
    pub(crate) async fn replicate(
        &self,
        kind: &str,
        primary: &RunningNode,
        token: &str,
        id: &str,
        address: &str,
    ) -> anyhow::Result<RunningNode> {
        let path = |p: &str| format!("sys/replication/{kind}/{p}");
        call(&primary.core, token, &path("primary/enable"), Map::new()).await?;
        let activation = call(
            &primary.core,
            token,
            &path("primary/secondary-token"),
            obj(json!({"id": id})),
        )
        .await?
        .wrap_info
        .map(|w| w.token)
        .context("the primary returned no activation token")?;
        // Its own keys at first; enabling replication adopts the primary's.
        let (node, _, root) = self.start_cluster(address, None).await?;
        let ca_file = self.tls.ca.display().to_string();
        call(
            &node.core,
            &root,
            &path("secondary/enable"),
            obj(json!({"token": activation, "primary_api_addr": primary.api_addr, "ca_file": ca_file})),
        )
        .await?;
        wait_streaming(&node.core, kind).await?;
        Ok(node)
    }

    /// Serves until SIGTERM/SIGINT, then stops every node and removes the scratch directory.
    pub(crate) async fn serve(self, nodes: Vec<RunningNode>) {
        crate::run::wait_for_shutdown().await;
        let _ = self.shutdown_tx.send(true);
        for node in nodes {
            for l in node.listeners {
                let _ = tokio::time::timeout(Duration::from_secs(10), l.wait()).await;
            }
            node.cluster_task.abort();
            node.core.shutdown().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) struct DevTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A CA and one server certificate for loopback, shared by every node of the process.
pub(crate) fn write_certs(dir: &Path) -> anyhow::Result<DevTls> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "strongroom dev CA");
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

/// An in-memory node with one TLS listener on `address` (cluster port: that port + 1).
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

/// Mounts KV v2 at `secret/`, as `server -dev` does.
pub(crate) async fn mount_secret(core: &Arc<Core>, token: &str) -> anyhow::Result<()> {
    let body = json!({"type": "kv", "description": "key/value secret storage", "options": {"version": "2"}});
    call(core, token, "sys/mounts/secret", obj(body)).await?;
    Ok(())
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

/// Waits until `core`, a `kind` secondary, streams WALs (its initial sync is done).
pub(crate) async fn wait_streaming(core: &Arc<Core>, kind: &str) -> anyhow::Result<()> {
    let path = format!("sys/replication/{kind}/status");
    let deadline = Instant::now() + BOOTSTRAP_TIMEOUT;
    loop {
        let state = core
            .handle(Request::new(Operation::Read, &path))
            .await
            .ok()
            .and_then(|r| r.data)
            .and_then(|d| d.get("state").and_then(Value::as_str).map(str::to_owned));
        if state.as_deref() == Some("stream-wals") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the {kind} secondary did not reach stream-wals within {BOOTSTRAP_TIMEOUT:?} (state {state:?})"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

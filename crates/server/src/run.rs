//! The server process lifecycle: configure, start, serve, reload on SIGHUP, stop on SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use strongroom_core::{Core, CoreConfig, Telemetry};
use strongroom_storage::{InmemStorage, RaftOptions, RaftStorage, RaftTuning, Storage};

use crate::config::{self, ListenerConfig, ServerConfig, StorageConfig, TelemetryConfig};
use crate::flags::ServerFlags;
use crate::logging::LogControl;

/// How long in-flight requests get to finish after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs `strongroom server ARGS`; returns the process exit code.
pub fn run(args: &[String]) -> i32 {
    crate::malloc::tune();
    let flags = match ServerFlags::parse(args, |k| std::env::var(k).ok()) {
        Ok(f) => f,
        Err(msg) => {
            eprintln!("{msg}");
            return 1;
        }
    };
    let config = match load_config(&flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let level = flags
        .log_level
        .clone()
        .or_else(|| config.log_level.clone())
        .unwrap_or_else(|| "info".into());
    let logs = match LogControl::init(&level, config.log_format.as_deref() == Some("json")) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("Error: {e}");
            return 1;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: starting the async runtime: {e}");
            return 1;
        }
    };
    let result = if flags.dev_dr {
        runtime.block_on(crate::dev_dr::run(&flags))
    } else if flags.dev_ha {
        runtime.block_on(crate::dev_ha::run(&flags))
    } else if flags.dev_pr {
        runtime.block_on(crate::dev_pr::run(&flags))
    } else {
        runtime.block_on(serve(flags, config, logs))
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("Error: {e:#}");
            1
        }
    }
}

/// Reads the configuration files, or builds dev mode's.
fn load_config(flags: &ServerFlags) -> Result<ServerConfig, String> {
    if flags.dev || flags.dev_dr || flags.dev_ha || flags.dev_pr {
        return Ok(dev_config(flags));
    }
    let mut config = config::load(&flags.config).map_err(|e| e.to_string())?;
    config
        .apply_env(|k| std::env::var(k).ok())
        .map_err(|e| e.to_string())?;
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// Dev mode: memory storage, plain HTTP on loopback, Prometheus metrics on.
fn dev_config(flags: &ServerFlags) -> ServerConfig {
    ServerConfig {
        storage: StorageConfig::Inmem,
        listeners: vec![ListenerConfig {
            address: flags
                .dev_listen_address
                .clone()
                .unwrap_or_else(|| "127.0.0.1:8200".into()),
            tls_disable: true,
            ..ListenerConfig::default()
        }],
        disable_mlock: true,
        ui: true,
        telemetry: TelemetryConfig {
            prometheus_retention_time: Duration::from_secs(24 * 3600),
            disable_hostname: true,
        },
        ..ServerConfig::default()
    }
}

async fn serve(flags: ServerFlags, config: ServerConfig, logs: LogControl) -> anyhow::Result<()> {
    for ignored in &config.ignored {
        tracing::warn!(setting = %ignored, "configuration setting has no effect in Strongroom and was ignored");
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    if !config.disable_mlock {
        lock_memory()?;
    }
    let cluster_bind = config
        .listeners
        .first()
        .context("the configuration has no listener \"tcp\" stanza")?
        .cluster_address_or_default()
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    let dialer = Arc::new(strongroom_replication::ClusterDialer::new());
    let (storage, raft) = open_storage(&config, &cluster_bind, dialer.clone()).await?;
    storage.set_wal_retention(
        config.replication.wal_retention_entries,
        config.replication.wal_retention_bytes,
    );
    let telemetry = Telemetry::install(config.telemetry.prometheus_retention_time);
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let core = new_core(&config, storage, telemetry);
    let clustering = raft.map(|raft| Clustering {
        raft,
        dialer: dialer.clone(),
    });
    if let Some(c) = &clustering {
        core.set_cluster(c.raft.clone());
    }

    // Dev mode initializes before any listener exists, so no client can race the bootstrap.
    let dev = if flags.dev {
        Some(dev_bootstrap(&core, &flags).await?)
    } else {
        None
    };
    let node = start_node(&config, core, &shutdown_rx, clustering.as_ref()).await?;
    if let (Some(_), StorageConfig::Raft(raft)) = (&clustering, &config.storage) {
        crate::cluster::start_retry_join(
            &node.core,
            &raft.retry_join,
            raft.retry_join_as_non_voter,
        )
        .await;
    }
    let (core, listeners, cluster_task) = (node.core, node.listeners, node.cluster_task);
    let (bound, api_addr, cluster_addr) = (node.bound, node.api_addr, node.cluster_addr);

    print_banner(&config, &bound, &api_addr, &cluster_addr);
    if flags.dev {
        print_dev_banner(&dev, &api_addr);
    }

    wait_for_signals(&flags, &logs, &listeners).await;

    tracing::info!("shutting down");
    let _ = shutdown_tx.send(true);
    for handle in listeners {
        if tokio::time::timeout(SHUTDOWN_GRACE, handle.wait())
            .await
            .is_err()
        {
            tracing::warn!("a listener did not stop within {SHUTDOWN_GRACE:?}");
        }
    }
    cluster_task.abort();
    core.shutdown().await;
    Ok(())
}

/// What a Raft node adds to a server: the storage as a cluster and the dialer it speaks
/// through.
pub(crate) struct Clustering {
    pub raft: Arc<RaftStorage>,
    pub dialer: Arc<strongroom_replication::ClusterDialer>,
}

/// A server node whose listeners are up.
pub(crate) struct RunningNode {
    pub core: Arc<Core>,
    pub listeners: Vec<strongroom_http::ServerHandle>,
    pub cluster_task: tokio::task::JoinHandle<()>,
    pub bound: Vec<SocketAddr>,
    pub api_addr: String,
    pub cluster_addr: String,
}

/// A core configured from `config`.
pub(crate) fn new_core(
    config: &ServerConfig,
    storage: Arc<dyn Storage>,
    telemetry: Telemetry,
) -> Arc<Core> {
    Core::new(
        CoreConfig {
            cluster_name: config.cluster_name.clone(),
            api_addr: String::new(),
            cluster_addr: String::new(),
            telemetry,
            default_lease_ttl: config.default_lease_ttl,
            max_lease_ttl: config.max_lease_ttl,
            disable_standby_reads: config.disable_standby_reads,
        },
        storage,
    )
}

/// Starts the API listeners and the cluster port of `core`; learns the bound addresses.
pub(crate) async fn start_node(
    config: &ServerConfig,
    core: Arc<Core>,
    shutdown_rx: &tokio::sync::watch::Receiver<bool>,
    clustering: Option<&Clustering>,
) -> anyhow::Result<RunningNode> {
    let first = config
        .listeners
        .first()
        .context("the configuration has no listener \"tcp\" stanza")?
        .clone();
    let scheme = if first.tls_disable { "http" } else { "https" };
    let cluster_bind = first
        .cluster_address_or_default()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let forwarder = clustering.map(|c| {
        Arc::new(strongroom_http::Forwarder::new(
            c.dialer.clone(),
            strongroom_http::ForwarderOptions::default(),
        ))
    });
    let mut listeners = Vec::new();
    for l in &config.listeners {
        let mut opts = listener_options(l)?;
        opts.forwarder = forwarder.clone();
        let mut rx = shutdown_rx.clone();
        let stop = async move {
            let _ = rx.changed().await;
        };
        let handle = strongroom_http::serve(opts, core.clone(), stop)
            .await
            .with_context(|| format!("starting the listener on {}", l.address))?;
        listeners.push(handle);
    }
    let bound: Vec<SocketAddr> = listeners.iter().map(|h| h.bound_addr()).collect();
    let api_addr = config
        .api_addr
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{}", advertise(bound[0])));
    // The cluster port: mutual TLS against the replication CA once this cluster is a DR
    // primary; before that every client is refused. Raft transport joins it later.
    let cluster_listener = Arc::new(
        strongroom_replication::ClusterListener::new()
            .map_err(|e| anyhow::anyhow!("preparing the cluster port: {e}"))?,
    );
    core.set_cluster_listener(cluster_listener.clone());
    crate::cluster::wire_performance(&core, &cluster_listener, listener_options(&first)?)?;
    if let (Some(c), Some(forwarder)) = (clustering, &forwarder) {
        crate::cluster::wire(
            &core,
            c,
            &cluster_listener,
            forwarder,
            listener_options(&first)?,
        )?;
    }
    let (cluster_local, cluster_task) = cluster_listener
        .serve(&cluster_bind, core.replication_primary_server(), shutdown_rx.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cannot serve the cluster port {cluster_bind}: {e} (set cluster_address in the listener stanza)"))?;
    let cluster_addr = config
        .cluster_addr
        .clone()
        .unwrap_or_else(|| format!("https://{}", advertise(cluster_local)));
    core.set_advertised_addrs(api_addr.clone(), cluster_addr.clone());
    Ok(RunningNode {
        core,
        listeners,
        cluster_task,
        bound,
        api_addr,
        cluster_addr,
    })
}

/// Waits for SIGTERM or SIGINT (the multi-cluster dev modes have nothing to reload).
pub(crate) async fn wait_for_shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
}

/// Waits for SIGTERM or SIGINT; on SIGHUP reloads TLS certificates and the log level.
async fn wait_for_signals(
    flags: &ServerFlags,
    logs: &LogControl,
    listeners: &[strongroom_http::ServerHandle],
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the server with SIGKILL");
        std::future::pending::<()>().await;
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading TLS certificates and log level");
                for handle in listeners {
                    if let Err(e) = handle.reload() {
                        tracing::error!(error = %e, "TLS certificate reload failed; keeping the previous certificate");
                    }
                }
                if !flags.dev {
                    match config::load(&flags.config) {
                        Ok(c) => {
                            let level = flags.log_level.clone().or(c.log_level).unwrap_or_else(|| "info".into());
                            if let Err(e) = logs.set_level(&level) {
                                tracing::error!(error = %e, "log level reload failed");
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "configuration reload failed; keeping the running settings"),
                    }
                }
            }
        }
    }
}

pub(crate) async fn open_storage(
    config: &ServerConfig,
    cluster_bind: &str,
    dialer: Arc<strongroom_replication::ClusterDialer>,
) -> anyhow::Result<(Arc<dyn Storage>, Option<Arc<RaftStorage>>)> {
    Ok(match &config.storage {
        StorageConfig::Inmem => (Arc::new(InmemStorage::new()), None),
        StorageConfig::Raft(raft) => {
            let path = &raft.path;
            std::fs::create_dir_all(path)
                .with_context(|| format!("creating the raft data directory {}", path.display()))?;
            let node_id = match &raft.node_id {
                Some(id) => id.clone(),
                None => persistent_node_id(path)?,
            };
            let cluster_addr = config
                .cluster_addr
                .clone()
                .map(|a| a.trim_start_matches("https://").to_owned())
                .unwrap_or_else(|| cluster_bind.to_owned());
            let mut tuning = RaftTuning {
                performance_multiplier: u32::from(raft.performance_multiplier),
                max_batch_bytes: usize::try_from(raft.max_entry_size).unwrap_or(usize::MAX),
                ..RaftTuning::default()
            };
            if let Some(n) = raft.snapshot_threshold {
                tuning.snapshot_every_entries = n;
            }
            if let Some(n) = raft.trailing_logs {
                tuning.logs_kept_after_snapshot = n;
            }
            let storage = RaftStorage::open_with(
                RaftOptions::new(path.clone(), node_id, cluster_addr).with_dialer(dialer),
                tuning,
            )
            .await
            .with_context(|| format!("opening raft storage in {}", path.display()))?;
            (storage.clone(), Some(storage))
        }
    })
}

/// A node id generated once and kept in the data directory, as Vault does when `node_id` is
/// not configured.
fn persistent_node_id(dir: &Path) -> anyhow::Result<String> {
    let file = dir.join("node-id");
    match std::fs::read_to_string(&file) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        Ok(_) => anyhow::bail!(
            "{} is empty: restore it, or set node_id in the storage stanza to this node's id",
            file.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = uuid_like();
            // Write-then-rename with fsync, so a crash never leaves an empty id behind.
            let tmp = dir.join("node-id.tmp");
            {
                use std::io::Write;
                let mut f = std::fs::File::create(&tmp)
                    .with_context(|| format!("writing {}", tmp.display()))?;
                f.write_all(id.as_bytes())?;
                f.sync_all()?;
            }
            std::fs::rename(&tmp, &file).with_context(|| format!("writing {}", file.display()))?;
            std::fs::File::open(dir)?.sync_all()?;
            Ok(id)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", file.display())),
    }
}

fn uuid_like() -> String {
    let mut b = [0u8; 16];
    if getrandom_fill(&mut b).is_err() {
        return format!("node-{}", std::process::id());
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn getrandom_fill(b: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(b)
}

fn listener_options(l: &ListenerConfig) -> anyhow::Result<strongroom_http::ListenerOptions> {
    let tls = if l.tls_disable {
        None
    } else {
        Some(strongroom_http::TlsOptions {
            cert_file: l
                .tls_cert_file
                .clone()
                .context("tls_cert_file is required unless tls_disable = true")?,
            key_file: l
                .tls_key_file
                .clone()
                .context("tls_key_file is required unless tls_disable = true")?,
            client_ca_file: l.tls_client_ca_file.clone(),
            min_version: tls_version(l.tls_min_version),
            max_version: tls_version(l.tls_max_version),
            require_and_verify_client_cert: l.tls_require_and_verify_client_cert,
            disable_client_certs: l.tls_disable_client_certs,
        })
    };
    let mut opts = strongroom_http::ListenerOptions::new(l.address.clone());
    opts.shutdown_grace = SHUTDOWN_GRACE - Duration::from_secs(2);
    opts.tls = tls;
    opts.max_request_size = l.max_request_size;
    opts.unauthenticated_metrics_access = l.unauthenticated_metrics_access;
    opts.max_request_duration = l.max_request_duration;
    Ok(opts)
}

fn tls_version(v: config::TlsVersion) -> strongroom_http::TlsVersion {
    match v {
        config::TlsVersion::Tls12 => strongroom_http::TlsVersion::Tls12,
        config::TlsVersion::Tls13 => strongroom_http::TlsVersion::Tls13,
    }
}

/// An address clients can dial: a wildcard bind advertises loopback.
fn advertise(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    }
}

fn print_banner(config: &ServerConfig, bound: &[SocketAddr], api_addr: &str, cluster_addr: &str) {
    let storage = match &config.storage {
        StorageConfig::Raft(_) => "raft",
        StorageConfig::Inmem => "inmem",
    };
    println!("==> Strongroom server configuration:\n");
    println!("             Api Address: {api_addr}");
    println!("         Cluster Address: {cluster_addr}");
    for (i, (addr, l)) in bound.iter().zip(&config.listeners).enumerate() {
        let tls = if l.tls_disable { "disabled" } else { "enabled" };
        println!(
            "              Listener {}: tcp (addr: \"{addr}\", tls: \"{tls}\")",
            i + 1
        );
    }
    println!("                 Storage: {storage}");
    println!(
        "                 Version: Strongroom v{} (Vault API {})",
        strongroom_api::STRONGROOM_VERSION,
        strongroom_api::VAULT_COMPAT_VERSION
    );
    println!("\n==> Strongroom server started! Log data will stream in below:\n");
}

/// The dev server's unseal key and root token, printed once the address is known.
struct DevKeys {
    unseal_key: String,
    root_token: String,
}

async fn dev_bootstrap(core: &Arc<Core>, flags: &ServerFlags) -> anyhow::Result<DevKeys> {
    let (unseal_key, root_token) = core
        .dev_bootstrap(flags.dev_root_token_id.as_deref())
        .await
        .map_err(|e| anyhow::anyhow!("initializing the dev server: {e}"))?;
    let mut options = serde_json::Map::new();
    options.insert("version".into(), serde_json::Value::String("2".into()));
    core.mount("secret/", "kv", "key/value secret storage", options)
        .await
        .map_err(|e| anyhow::anyhow!("mounting secret/ on the dev server: {e}"))?;
    if !flags.dev_no_store_token
        && let Some(home) = std::env::var_os("HOME")
    {
        let path = Path::new(&home).join(".vault-token");
        if let Err(e) = write_private(&path, root_token.as_bytes()) {
            tracing::warn!(error = %e, "could not store the root token in ~/.vault-token");
        }
    }
    Ok(DevKeys {
        unseal_key,
        root_token,
    })
}

fn print_dev_banner(dev: &Option<DevKeys>, api_addr: &str) {
    let Some(DevKeys {
        unseal_key,
        root_token,
    }) = dev
    else {
        return;
    };
    println!(
        "WARNING! dev mode is enabled! In this mode, Strongroom runs entirely in-memory
and starts unsealed with a single unseal key. The root token is already
authenticated to the CLI, so you can immediately begin using it.

You may need to set the following environment variables:

    $ export VAULT_ADDR='{api_addr}'

The unseal key and root token are displayed below in case you want to
seal/unseal the server or re-authenticate.

Unseal Key: {unseal_key}
Root Token: {root_token}

Development mode should NOT be used in production installations!
"
    );
}

pub(crate) fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}

/// Locks the process memory so key material never reaches swap.
fn lock_memory() -> anyhow::Result<()> {
    if let Err(err) = crate::os::lock_all_memory() {
        anyhow::bail!(
            "failed to lock memory: {err}. Run as root or with CAP_IPC_LOCK, or set disable_mlock = true in the configuration (recommended with raft storage)"
        );
    }
    Ok(())
}

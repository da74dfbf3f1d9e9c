//! The validated, merged server configuration the rest of the server reads.
//!
//! Files, directories and environment variables all end up here; nothing downstream needs to
//! know whether a value came from HCL, JSON or a default. Defaults follow Vault's documented
//! ones so that existing Vault configuration files behave the same.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use strongroom_api::SecretString;

use super::error::ConfigError;

/// Default API listener address, as in Vault.
pub const DEFAULT_LISTENER_ADDRESS: &str = "127.0.0.1:8200";
/// Default maximum request body size: 32 MiB, as in Vault.
pub const DEFAULT_MAX_REQUEST_SIZE: u64 = 32 * 1024 * 1024;

/// Where a stanza was written, for error messages raised after merging.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceLocation {
    pub file: String,
    pub line: Option<usize>,
}

/// The complete server configuration after merging every file.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub storage: StorageConfig,
    /// Where the winning `storage` stanza was written (`None` for built-in configurations).
    pub storage_defined_at: Option<SourceLocation>,
    pub listeners: Vec<ListenerConfig>,
    pub api_addr: Option<String>,
    pub cluster_addr: Option<String>,
    pub cluster_name: Option<String>,
    pub disable_mlock: bool,
    /// Standbys forward reads to the active node instead of serving them (OpenBao's
    /// `disable_standby_reads`; default false: standbys serve reads).
    pub disable_standby_reads: bool,
    pub ui: bool,
    /// Lower-case; one of `trace`, `debug`, `info`, `warn`, `warning`, `error`.
    pub log_level: Option<String>,
    /// `standard` or `json`.
    pub log_format: Option<String>,
    pub default_lease_ttl: Option<Duration>,
    pub max_lease_ttl: Option<Duration>,
    pub telemetry: TelemetryConfig,
    pub replication: ReplicationConfig,
    pub pid_file: Option<PathBuf>,
    /// Vault settings that were accepted but have no effect here, each as
    /// `setting (file:line)`. The server should log a warning for each.
    pub ignored: Vec<String>,
    /// Values that were adjusted rather than rejected (e.g. `tls_min_version = "tls10"` raised
    /// to TLS 1.2). The server should log a warning for each.
    pub warnings: Vec<String>,
}

impl Default for ServerConfig {
    /// In-memory storage and no listeners: the starting point for dev mode.
    fn default() -> Self {
        Self {
            storage: StorageConfig::Inmem,
            storage_defined_at: None,
            listeners: Vec::new(),
            api_addr: None,
            cluster_addr: None,
            cluster_name: None,
            disable_mlock: false,
            disable_standby_reads: false,
            ui: false,
            log_level: None,
            log_format: None,
            default_lease_ttl: None,
            max_lease_ttl: None,
            telemetry: TelemetryConfig::default(),
            replication: ReplicationConfig::default(),
            pid_file: None,
            ignored: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

/// The storage backend: integrated raft storage or volatile memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    Raft(RaftStorageConfig),
    Inmem,
}

/// Vault's default `max_entry_size`: 1 MiB.
pub const DEFAULT_MAX_ENTRY_SIZE: u64 = 1024 * 1024;
/// Vault's default `autopilot_reconcile_interval`.
pub const DEFAULT_AUTOPILOT_RECONCILE_INTERVAL: Duration = Duration::from_secs(10);
/// Vault's default `autopilot_update_interval`.
pub const DEFAULT_AUTOPILOT_UPDATE_INTERVAL: Duration = Duration::from_secs(2);
/// The largest `performance_multiplier` accepted (Vault's documented range is 0 to 10).
pub const MAX_PERFORMANCE_MULTIPLIER: u8 = 10;

/// The `storage "raft"` stanza with Vault's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftStorageConfig {
    /// Data directory. Empty only if neither the file nor `VAULT_RAFT_PATH` set it;
    /// [`ServerConfig::validate`] rejects that.
    pub path: PathBuf,
    pub node_id: Option<String>,
    pub trailing_logs: Option<u64>,
    pub snapshot_threshold: Option<u64>,
    /// The `retry_join` stanzas in file order, certificates already read.
    pub retry_join: Vec<RetryJoin>,
    /// Join through `retry_join` as a non-voter (`retry_join_as_non_voter`, env
    /// `VAULT_RAFT_RETRY_JOIN_AS_NON_VOTER`).
    pub retry_join_as_non_voter: bool,
    /// Raft timing scale, 0 to [`MAX_PERFORMANCE_MULTIPLIER`]; 0 means "the default timing".
    pub performance_multiplier: u8,
    /// Largest Raft entry in bytes (default [`DEFAULT_MAX_ENTRY_SIZE`]); always positive.
    pub max_entry_size: u64,
    /// How often autopilot reconciles membership (promotions, dead-server cleanup); positive.
    pub autopilot_reconcile_interval: Duration,
    /// How often autopilot refreshes its view of the servers' health; positive.
    pub autopilot_update_interval: Duration,
}

impl Default for RaftStorageConfig {
    /// No path (which `validate` rejects) and Vault's defaults for everything else.
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            node_id: None,
            trailing_logs: None,
            snapshot_threshold: None,
            retry_join: Vec::new(),
            retry_join_as_non_voter: false,
            performance_multiplier: 0,
            max_entry_size: DEFAULT_MAX_ENTRY_SIZE,
            autopilot_reconcile_interval: DEFAULT_AUTOPILOT_RECONCILE_INTERVAL,
            autopilot_update_interval: DEFAULT_AUTOPILOT_UPDATE_INTERVAL,
        }
    }
}

/// One `retry_join` stanza: a cluster node to join through, with the TLS material to reach
/// its API. PEM texts are already resolved, whether the file gave them inline
/// (`leader_ca_cert`) or by path (`leader_ca_cert_file`, read at load time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryJoin {
    /// API address of the node (`https://node-1.example.com:8200`).
    pub leader_api_addr: String,
    /// `leader_tls_servername`: the name to send as SNI and verify on its certificate.
    pub tls_servername: Option<String>,
    /// CA (PEM) that verifies the node's API certificate; `None` uses the system roots.
    pub ca_cert_pem: Option<String>,
    /// Client certificate (PEM) to present; always given together with `client_key_pem`.
    pub client_cert_pem: Option<String>,
    /// Key (PEM) of `client_cert_pem`: redacted in `Debug`, wiped on drop.
    pub client_key_pem: Option<SecretString>,
    /// Where the stanza was written.
    pub defined_at: SourceLocation,
}

/// WAL retention on a replication primary (the `replication` stanza): how many entries and
/// bytes a primary keeps so that a disconnected secondary can resume without a merkle sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationConfig {
    pub wal_retention_entries: u64,
    pub wal_retention_bytes: u64,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            wal_retention_entries: 100_000,
            wal_retention_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Vault's default `prometheus_retention_time`: Prometheus metrics are on unless turned off.
pub const DEFAULT_PROMETHEUS_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Process-wide metrics settings (the top-level `telemetry` stanza).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// How long Prometheus metrics are kept (default 24h, as in Vault); zero disables
    /// `sys/metrics?format=prometheus`.
    pub prometheus_retention_time: Duration,
    pub disable_hostname: bool,
}

impl Default for TelemetryConfig {
    /// Vault's defaults: Prometheus on with 24h retention, hostname prefix on.
    fn default() -> Self {
        TelemetryConfig {
            prometheus_retention_time: DEFAULT_PROMETHEUS_RETENTION,
            disable_hostname: false,
        }
    }
}

/// TLS protocol versions a listener may negotiate. TLS 1.0 and 1.1 are not offered at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// The configuration spelling (`tls12`, `tls13`).
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "tls12",
            TlsVersion::Tls13 => "tls13",
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `listener "tcp"` stanza with Vault's defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerConfig {
    pub address: String,
    /// Explicit cluster address; see [`ListenerConfig::cluster_address_or_default`].
    pub cluster_address: Option<String>,
    pub tls_disable: bool,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub tls_client_ca_file: Option<PathBuf>,
    pub tls_min_version: TlsVersion,
    pub tls_max_version: TlsVersion,
    pub tls_require_and_verify_client_cert: bool,
    pub tls_disable_client_certs: bool,
    /// Maximum request body in bytes; always positive.
    pub max_request_size: u64,
    pub max_request_duration: Option<Duration>,
    pub unauthenticated_metrics_access: bool,
    /// Where this listener was written (`None` for built-in listeners such as dev mode's).
    pub defined_at: Option<SourceLocation>,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            address: DEFAULT_LISTENER_ADDRESS.into(),
            cluster_address: None,
            tls_disable: false,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            tls_min_version: TlsVersion::Tls12,
            tls_max_version: TlsVersion::Tls13,
            tls_require_and_verify_client_cert: false,
            tls_disable_client_certs: false,
            max_request_size: DEFAULT_MAX_REQUEST_SIZE,
            max_request_duration: None,
            unauthenticated_metrics_access: false,
            defined_at: None,
        }
    }
}

impl ListenerConfig {
    /// The cluster (server-to-server) address: the explicit `cluster_address`, else the API
    /// address with its port plus one (port 0, "any free port", stays 0).
    ///
    /// # Errors
    ///
    /// Fails when `address` is not `host:port` or its port is 65535.
    pub fn cluster_address_or_default(&self) -> Result<String, ConfigError> {
        if let Some(explicit) = &self.cluster_address {
            return Ok(explicit.clone());
        }
        let located = |message: String| {
            let (file, line) = self
                .defined_at
                .as_ref()
                .map(|at| (at.file.clone(), at.line))
                .unwrap_or_default();
            ConfigError::new(file, line, Some("listener.tcp.address".into()), message)
        };
        let (host, port) = split_host_port(&self.address).map_err(located)?;
        let cluster_port = match port {
            0 => 0,
            65535 => {
                return Err(located(format!(
                    "cannot derive a cluster address from \"{}\" (port + 1 overflows): set cluster_address",
                    self.address
                )));
            }
            other => other + 1,
        };
        Ok(format!("{host}:{cluster_port}"))
    }
}

/// Splits a listener address `host:port` (`[v6]:port` for IPv6) and checks both parts.
pub(crate) fn split_host_port(address: &str) -> Result<(&str, u16), String> {
    let usage = "use host:port, e.g. \"0.0.0.0:8200\" or \"[::]:8200\"";
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("invalid address \"{address}\": missing port ({usage})"))?;
    if host.is_empty() {
        return Err(format!(
            "invalid address \"{address}\": missing host ({usage})"
        ));
    }
    if let Some(inner) = host.strip_prefix('[') {
        let valid_v6 = inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
        if !valid_v6 {
            return Err(format!(
                "invalid address \"{address}\": bad IPv6 host ({usage})"
            ));
        }
    } else if host.contains(':') || host.contains('/') || host.contains(char::is_whitespace) {
        return Err(format!("invalid address \"{address}\": bad host ({usage})"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("invalid address \"{address}\": port must be 0-65535 ({usage})"))?;
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The cluster port must follow Vault's port+1 convention unless set explicitly.
    #[test]
    fn cluster_address_defaults_to_port_plus_one() {
        let implicit = ListenerConfig {
            address: "0.0.0.0:8200".into(),
            ..ListenerConfig::default()
        };
        let explicit = ListenerConfig {
            cluster_address: Some("10.0.0.1:9000".into()),
            ..ListenerConfig::default()
        };
        let ephemeral = ListenerConfig {
            address: "127.0.0.1:0".into(),
            ..ListenerConfig::default()
        };
        let ipv6 = ListenerConfig {
            address: "[::1]:8200".into(),
            ..ListenerConfig::default()
        };

        assert_eq!(
            implicit.cluster_address_or_default().unwrap(),
            "0.0.0.0:8201"
        );
        assert_eq!(
            explicit.cluster_address_or_default().unwrap(),
            "10.0.0.1:9000"
        );
        assert_eq!(
            ephemeral.cluster_address_or_default().unwrap(),
            "127.0.0.1:0"
        );
        assert_eq!(ipv6.cluster_address_or_default().unwrap(), "[::1]:8201");
    }

    // Port 65535 has no port+1; that must be an error, not a wrap to 0.
    #[test]
    fn cluster_address_overflow_is_an_error() {
        let listener = ListenerConfig {
            address: "0.0.0.0:65535".into(),
            ..ListenerConfig::default()
        };

        let err = listener.cluster_address_or_default().unwrap_err();

        assert!(err.message.contains("set cluster_address"), "{err}");
    }

    // Address validation accepts the usual forms and rejects the rest.
    #[test]
    fn split_host_port_accepts_and_rejects() {
        for good in [
            "0.0.0.0:8200",
            "localhost:1",
            "[::]:8200",
            "vault.example.com:443",
        ] {
            assert!(split_host_port(good).is_ok(), "{good}");
        }
        for bad in [
            "8200",
            ":8200",
            "0.0.0.0:",
            "0.0.0.0:70000",
            "::1:8200",
            "[zz]:1",
            "a b:1",
        ] {
            assert!(split_host_port(bad).is_err(), "{bad}");
        }
    }
}

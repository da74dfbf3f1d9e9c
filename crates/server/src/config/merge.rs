//! One file's worth of settings, and how several files combine.
//!
//! Vault lets operators split configuration over several `-config` files and directories.
//! Each file is decoded on its own into a [`PartialConfig`] (every setting optional, so "not
//! set" differs from "set to the default"), and the partials are folded in order: scalars from
//! later files win, listeners accumulate, a later storage stanza replaces an earlier one, and
//! telemetry merges setting by setting. Defaults are applied only once, at the end.

use std::path::PathBuf;
use std::time::Duration;

use super::error::ConfigError;
use super::model::{
    ListenerConfig, ReplicationConfig, ServerConfig, SourceLocation, StorageConfig, TelemetryConfig,
};
use super::retry_join::{PemReader, RetryJoinSpec, read_pem_file};

/// Settings read from one file (or several already merged), before defaults are applied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartialConfig {
    pub storage: Option<(StorageConfig, SourceLocation)>,
    /// The `retry_join` stanzas of `storage`'s raft stanza, files not read yet; they belong to
    /// that stanza and are replaced with it.
    pub retry_join: Vec<RetryJoinSpec>,
    pub listeners: Vec<ListenerConfig>,
    pub api_addr: Option<String>,
    pub cluster_addr: Option<String>,
    pub cluster_name: Option<String>,
    pub disable_mlock: Option<bool>,
    pub disable_standby_reads: Option<bool>,
    pub ui: Option<bool>,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
    pub default_lease_ttl: Option<Duration>,
    pub max_lease_ttl: Option<Duration>,
    pub telemetry: PartialTelemetry,
    pub replication: PartialReplication,
    pub pid_file: Option<PathBuf>,
    pub ignored: Vec<String>,
    pub warnings: Vec<String>,
}

/// The top-level `telemetry` stanza, each setting optional so files can merge field by field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartialTelemetry {
    pub prometheus_retention_time: Option<Duration>,
    pub disable_hostname: Option<bool>,
}

/// The `replication` stanza, each setting optional so files can merge field by field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartialReplication {
    pub wal_retention_entries: Option<u64>,
    pub wal_retention_bytes: Option<u64>,
}

impl PartialConfig {
    /// Combines `self` (an earlier file) with `later`, Vault style.
    #[must_use]
    pub fn merge(self, later: PartialConfig) -> PartialConfig {
        let mut listeners = self.listeners;
        listeners.extend(later.listeners);
        let mut ignored = self.ignored;
        ignored.extend(later.ignored);
        let mut warnings = self.warnings;
        warnings.extend(later.warnings);
        let (storage, retry_join) = match later.storage {
            Some(storage) => (Some(storage), later.retry_join),
            None => (self.storage, self.retry_join),
        };
        PartialConfig {
            storage,
            retry_join,
            listeners,
            api_addr: later.api_addr.or(self.api_addr),
            cluster_addr: later.cluster_addr.or(self.cluster_addr),
            cluster_name: later.cluster_name.or(self.cluster_name),
            disable_mlock: later.disable_mlock.or(self.disable_mlock),
            disable_standby_reads: later.disable_standby_reads.or(self.disable_standby_reads),
            ui: later.ui.or(self.ui),
            log_level: later.log_level.or(self.log_level),
            log_format: later.log_format.or(self.log_format),
            default_lease_ttl: later.default_lease_ttl.or(self.default_lease_ttl),
            max_lease_ttl: later.max_lease_ttl.or(self.max_lease_ttl),
            telemetry: PartialTelemetry {
                prometheus_retention_time: later
                    .telemetry
                    .prometheus_retention_time
                    .or(self.telemetry.prometheus_retention_time),
                disable_hostname: later
                    .telemetry
                    .disable_hostname
                    .or(self.telemetry.disable_hostname),
            },
            replication: PartialReplication {
                wal_retention_entries: later
                    .replication
                    .wal_retention_entries
                    .or(self.replication.wal_retention_entries),
                wal_retention_bytes: later
                    .replication
                    .wal_retention_bytes
                    .or(self.replication.wal_retention_bytes),
            },
            pid_file: later.pid_file.or(self.pid_file),
            ignored,
            warnings,
        }
    }

    /// Applies defaults, reads the certificate files named by `retry_join` stanzas, and
    /// produces the final configuration. Does not run [`ServerConfig::validate`]; apply
    /// environment overrides first, then validate.
    ///
    /// # Errors
    ///
    /// Fails when no file declared a storage stanza, or a `retry_join` certificate file cannot
    /// be read or holds no PEM data.
    pub fn into_config(self) -> Result<ServerConfig, ConfigError> {
        self.into_config_with(&read_pem_file)
    }

    /// [`PartialConfig::into_config`] with the certificate files read by `read` (a path to
    /// its text, or why not): tests and fuzzing use it to stay off the filesystem.
    ///
    /// # Errors
    ///
    /// As [`PartialConfig::into_config`].
    pub fn into_config_with(self, read: PemReader<'_>) -> Result<ServerConfig, ConfigError> {
        let Some((mut storage, storage_defined_at)) = self.storage else {
            return Err(ConfigError::global(
                Some("storage"),
                "no storage stanza found: add `storage \"raft\" { path = \"/var/lib/strongroom\" }` or `storage \"inmem\" {}`",
            ));
        };
        if let StorageConfig::Raft(raft) = &mut storage {
            raft.retry_join = self
                .retry_join
                .iter()
                .map(|spec| spec.resolve(read))
                .collect::<Result<_, _>>()?;
        }
        Ok(ServerConfig {
            storage,
            storage_defined_at: Some(storage_defined_at),
            listeners: self.listeners,
            api_addr: self.api_addr,
            cluster_addr: self.cluster_addr,
            cluster_name: self.cluster_name,
            disable_mlock: self.disable_mlock.unwrap_or(false),
            disable_standby_reads: self.disable_standby_reads.unwrap_or(false),
            ui: self.ui.unwrap_or(false),
            log_level: self.log_level,
            log_format: self.log_format,
            default_lease_ttl: self.default_lease_ttl,
            max_lease_ttl: self.max_lease_ttl,
            telemetry: TelemetryConfig {
                prometheus_retention_time: self
                    .telemetry
                    .prometheus_retention_time
                    .unwrap_or(TelemetryConfig::default().prometheus_retention_time),
                disable_hostname: self
                    .telemetry
                    .disable_hostname
                    .unwrap_or(TelemetryConfig::default().disable_hostname),
            },
            replication: ReplicationConfig {
                wal_retention_entries: self
                    .replication
                    .wal_retention_entries
                    .unwrap_or(ReplicationConfig::default().wal_retention_entries),
                wal_retention_bytes: self
                    .replication
                    .wal_retention_bytes
                    .unwrap_or(ReplicationConfig::default().wal_retention_bytes),
            },
            pid_file: self.pid_file,
            ignored: self.ignored,
            warnings: self.warnings,
        })
    }
}

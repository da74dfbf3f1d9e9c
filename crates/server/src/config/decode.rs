//! Applies Strongroom's configuration rules to one file's [`tree`](super::tree).
//!
//! This is where "what does Vault accept" is decided, once for both HCL and JSON: which
//! settings exist, which are accepted but ignored, which are refused (auto-unseal seals), their
//! types (with Vault's loose booleans and numbers-as-strings), and value checks that need no
//! other file. Every error names the file, the line and the dotted setting.

use super::error::ConfigError;
use super::merge::PartialConfig;
use super::model::{
    DEFAULT_MAX_REQUEST_SIZE, ListenerConfig, MAX_PERFORMANCE_MULTIPLIER, RaftStorageConfig,
    SourceLocation, StorageConfig,
};
use super::tree::Entry;
use super::values::{LOG_FORMATS, LOG_LEVELS};

/// Top-level Vault settings accepted without effect.
const IGNORED_TOP_LEVEL: &[&str] = &[
    "plugin_directory",
    "plugin_file_uid",
    "plugin_file_permissions",
    "cache_size",
    "disable_cache",
    "raw_storage_endpoint",
    "introspection_endpoint",
    "enable_response_header_hostname",
    "enable_response_header_raft_node_id",
    "disable_clustering",
    "default_max_request_duration",
    "disable_performance_standby",
    "disable_sealwrap",
    "disable_printable_check",
    "log_requests_level",
    "detect_deadlocks",
];

/// Listener settings accepted without effect.
const IGNORED_LISTENER: &[&str] = &[
    "http_idle_timeout",
    "http_read_header_timeout",
    "http_read_timeout",
    "http_write_timeout",
    "tls_cipher_suites",
    "tls_prefer_server_cipher_suites",
    "profiling",
    "custom_response_headers",
];

/// Top-level telemetry settings for sinks Strongroom does not implement.
const IGNORED_TELEMETRY: &[&str] = &[
    "statsd_address",
    "statsite_address",
    "dogstatsd_addr",
    "dogstatsd_tags",
    "usage_gauge_period",
    "maximum_gauge_cardinality",
    "enable_hostname_label",
    "metrics_prefix",
    "lease_metrics_epsilon",
    "num_lease_metrics_buckets",
    "add_lease_metrics_namespace_labels",
    "filter_default",
    "prefix_filter",
];

/// Decodes the top-level entries of the file named `file`.
pub(crate) fn decode(entries: &[Entry], file: &str) -> Result<PartialConfig, ConfigError> {
    let mut decoder = Decoder {
        file,
        out: PartialConfig::default(),
    };
    for entry in entries {
        decoder.top_level(entry)?;
    }
    Ok(decoder.out)
}

/// Decoding state for one file: its name (for errors) and the settings read so far.
pub(crate) struct Decoder<'a> {
    pub(crate) file: &'a str,
    pub(crate) out: PartialConfig,
}

impl Decoder<'_> {
    pub(crate) fn error(
        &self,
        line: Option<usize>,
        setting: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::new(self.file, line, Some(setting.to_owned()), message)
    }

    fn unknown(&self, entry: &Entry, setting: &str) -> ConfigError {
        self.error(entry.line, setting, "unknown setting")
    }

    fn ignore(&mut self, setting: &str, line: Option<usize>) {
        self.ignore_with(setting, line, "not supported by Strongroom, ignored");
    }

    /// Records an accepted setting that has no effect, with the reason.
    pub(crate) fn ignore_with(&mut self, setting: &str, line: Option<usize>, why: &str) {
        let at = match line {
            Some(line) => format!("{}:{line}", self.file),
            None => self.file.to_owned(),
        };
        self.out.ignored.push(format!("{setting} ({at}): {why}"));
    }

    fn location(&self, line: Option<usize>) -> SourceLocation {
        SourceLocation {
            file: self.file.to_owned(),
            line,
        }
    }

    fn top_level(&mut self, entry: &Entry) -> Result<(), ConfigError> {
        let key = entry.key.as_str();
        let value = &entry.value;
        match key {
            "storage" | "backend" => self.storage(entry)?,
            "listener" => self.listeners(entry)?,
            "telemetry" => self.telemetry(entry)?,
            "replication" => self.replication(entry)?,
            "seal" => {
                return Err(self.error(
                    entry.line,
                    key,
                    "auto-unseal seals are not supported; remove the seal stanza to use Shamir unseal keys",
                ));
            }
            "ha_storage" => {
                return Err(self.error(
                    entry.line,
                    key,
                    "a separate HA storage backend is not supported: raft storage provides high availability; remove the ha_storage stanza",
                ));
            }
            "api_addr" => self.out.api_addr = Some(self.url(key, value)?),
            "cluster_addr" => self.out.cluster_addr = Some(self.url(key, value)?),
            "cluster_name" => self.out.cluster_name = Some(self.string(key, value)?),
            "disable_mlock" => self.out.disable_mlock = Some(self.boolean(key, value)?),
            "disable_standby_reads" => {
                self.out.disable_standby_reads = Some(self.boolean(key, value)?);
            }
            "ui" => self.out.ui = Some(self.boolean(key, value)?),
            "log_level" => {
                self.out.log_level = Some(self.one_of(key, value, LOG_LEVELS)?);
            }
            "log_format" => {
                self.out.log_format = Some(self.one_of(key, value, LOG_FORMATS)?);
            }
            "default_lease_ttl" => self.out.default_lease_ttl = Some(self.duration(key, value)?),
            "max_lease_ttl" => self.out.max_lease_ttl = Some(self.duration(key, value)?),
            "pid_file" => self.out.pid_file = Some(self.path(key, value)?),
            _ if IGNORED_TOP_LEVEL.contains(&key) => self.ignore(key, entry.line),
            _ => return Err(self.unknown(entry, key)),
        }
        Ok(())
    }

    fn storage(&mut self, entry: &Entry) -> Result<(), ConfigError> {
        let stanza = entry.key.as_str();
        for typed in self.objects(stanza, &entry.value)? {
            if typed.len() != 1 {
                return Err(self.error(
                    entry.line,
                    stanza,
                    "expected exactly one storage type, e.g. storage \"raft\" { ... }",
                ));
            }
            for type_entry in typed {
                if self.out.storage.is_some() {
                    return Err(self.error(
                        type_entry.line,
                        stanza,
                        "more than one storage stanza in one file; keep only one",
                    ));
                }
                let storage = match type_entry.key.as_str() {
                    "raft" => self.raft(stanza, type_entry)?,
                    "inmem" => {
                        for body in self.objects(&format!("{stanza}.inmem"), &type_entry.value)? {
                            if let Some(first) = body.first() {
                                let setting = format!("{stanza}.inmem.{}", first.key);
                                return Err(self.unknown(first, &setting));
                            }
                        }
                        StorageConfig::Inmem
                    }
                    other => {
                        return Err(self.error(
                            type_entry.line,
                            stanza,
                            format!(
                                "unsupported storage type \"{other}\": supported types are \"raft\" and \"inmem\""
                            ),
                        ));
                    }
                };
                self.out.storage = Some((storage, self.location(type_entry.line)));
            }
        }
        Ok(())
    }

    fn raft(&mut self, stanza: &str, type_entry: &Entry) -> Result<StorageConfig, ConfigError> {
        let prefix = format!("{stanza}.raft");
        let mut raft = RaftStorageConfig::default();
        let mut retry_join = Vec::new();
        for body in self.objects(&prefix, &type_entry.value)? {
            for entry in body {
                let setting = format!("{prefix}.{}", entry.key);
                let value = &entry.value;
                match entry.key.as_str() {
                    "path" => raft.path = self.path(&setting, value)?,
                    "node_id" => raft.node_id = Some(self.string(&setting, value)?),
                    "trailing_logs" => raft.trailing_logs = Some(self.unsigned(&setting, value)?),
                    "snapshot_threshold" => {
                        raft.snapshot_threshold = Some(self.unsigned(&setting, value)?);
                    }
                    "retry_join" => retry_join.extend(self.retry_join(&prefix, entry)?),
                    "retry_join_as_non_voter" => {
                        raft.retry_join_as_non_voter = self.boolean(&setting, value)?;
                    }
                    "performance_multiplier" => {
                        let n = self.unsigned(&setting, value)?;
                        raft.performance_multiplier = u8::try_from(n)
                            .ok()
                            .filter(|n| *n <= MAX_PERFORMANCE_MULTIPLIER)
                            .ok_or_else(|| {
                                self.error(
                                    entry.line,
                                    &setting,
                                    format!(
                                        "{n} is out of range: use 0 (the default timing) to {MAX_PERFORMANCE_MULTIPLIER} (most tolerant of slow networks)"
                                    ),
                                )
                            })?;
                    }
                    "max_entry_size" => {
                        let size = self.unsigned(&setting, value)?;
                        if size == 0 {
                            return Err(self.error(
                                entry.line,
                                &setting,
                                "must be a positive number of bytes (default 1048576, 1 MiB)",
                            ));
                        }
                        raft.max_entry_size = size;
                    }
                    "autopilot_reconcile_interval" => {
                        raft.autopilot_reconcile_interval =
                            self.positive_duration(&setting, value)?;
                    }
                    "autopilot_update_interval" => {
                        raft.autopilot_update_interval = self.positive_duration(&setting, value)?;
                    }
                    _ => return Err(self.unknown(entry, &setting)),
                }
            }
        }
        self.out.retry_join = retry_join;
        Ok(StorageConfig::Raft(raft))
    }

    fn positive_duration(
        &self,
        setting: &str,
        value: &super::tree::Node,
    ) -> Result<std::time::Duration, ConfigError> {
        let duration = self.duration(setting, value)?;
        if duration.is_zero() {
            return Err(self.error(
                value.line,
                setting,
                "must be longer than zero, e.g. \"10s\"",
            ));
        }
        Ok(duration)
    }

    fn listeners(&mut self, entry: &Entry) -> Result<(), ConfigError> {
        for typed in self.objects("listener", &entry.value)? {
            for type_entry in typed {
                if type_entry.key != "tcp" {
                    return Err(self.error(
                        type_entry.line,
                        "listener",
                        format!(
                            "unsupported listener type \"{}\": only \"tcp\" is supported",
                            type_entry.key
                        ),
                    ));
                }
                for body in self.objects("listener.tcp", &type_entry.value)? {
                    let listener = self.listener(body, type_entry.line)?;
                    self.out.listeners.push(listener);
                }
            }
        }
        Ok(())
    }

    fn listener(
        &mut self,
        body: &[Entry],
        line: Option<usize>,
    ) -> Result<ListenerConfig, ConfigError> {
        let mut listener = ListenerConfig {
            defined_at: Some(self.location(line)),
            ..ListenerConfig::default()
        };
        for entry in body {
            let setting = format!("listener.tcp.{}", entry.key);
            let value = &entry.value;
            match entry.key.as_str() {
                "address" => listener.address = self.address(&setting, value)?,
                "cluster_address" => {
                    listener.cluster_address = Some(self.address(&setting, value)?);
                }
                "tls_disable" => listener.tls_disable = self.boolean(&setting, value)?,
                "tls_cert_file" => listener.tls_cert_file = Some(self.path(&setting, value)?),
                "tls_key_file" => listener.tls_key_file = Some(self.path(&setting, value)?),
                "tls_client_ca_file" => {
                    listener.tls_client_ca_file = Some(self.path(&setting, value)?);
                }
                "tls_min_version" => {
                    listener.tls_min_version = self.tls_version(&setting, value, true)?;
                }
                "tls_max_version" => {
                    listener.tls_max_version = self.tls_version(&setting, value, false)?;
                }
                "tls_require_and_verify_client_cert" => {
                    listener.tls_require_and_verify_client_cert = self.boolean(&setting, value)?;
                }
                "tls_disable_client_certs" => {
                    listener.tls_disable_client_certs = self.boolean(&setting, value)?;
                }
                "max_request_size" => {
                    // Vault reads a negative size as "no limit"; an unbounded body is a memory
                    // exhaustion risk, so zero and negative both mean the default here.
                    let size = self.signed(&setting, value)?;
                    listener.max_request_size = u64::try_from(size)
                        .ok()
                        .filter(|size| *size > 0)
                        .unwrap_or(DEFAULT_MAX_REQUEST_SIZE);
                }
                "max_request_duration" => {
                    listener.max_request_duration = Some(self.duration(&setting, value)?);
                }
                "telemetry" => {
                    for telemetry in self.objects(&setting, value)? {
                        for item in telemetry {
                            let nested = format!("{setting}.{}", item.key);
                            match item.key.as_str() {
                                "unauthenticated_metrics_access" => {
                                    listener.unauthenticated_metrics_access =
                                        self.boolean(&nested, &item.value)?;
                                }
                                _ => return Err(self.unknown(item, &nested)),
                            }
                        }
                    }
                }
                key if IGNORED_LISTENER.contains(&key) => self.ignore(&setting, entry.line),
                _ => return Err(self.unknown(entry, &setting)),
            }
        }
        Ok(listener)
    }

    /// `replication { wal_retention_entries, wal_retention_bytes }` (Vault's
    /// `logshipper_buffer_length` / `logshipper_buffer_size` are accepted as aliases).
    fn replication(&mut self, entry: &Entry) -> Result<(), ConfigError> {
        for body in self.objects("replication", &entry.value)? {
            for item in body {
                let setting = format!("replication.{}", item.key);
                let positive = |this: &Self, v| -> Result<u64, ConfigError> {
                    let n = this.signed(&setting, v)?;
                    u64::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
                        ConfigError::new(
                            this.file,
                            item.line,
                            Some(setting.clone()),
                            "must be a positive integer".to_string(),
                        )
                    })
                };
                match item.key.as_str() {
                    "wal_retention_entries" | "logshipper_buffer_length" => {
                        self.out.replication.wal_retention_entries =
                            Some(positive(self, &item.value)?);
                    }
                    "wal_retention_bytes" | "logshipper_buffer_size" => {
                        self.out.replication.wal_retention_bytes =
                            Some(positive(self, &item.value)?);
                    }
                    _ => return Err(self.unknown(item, &setting)),
                }
            }
        }
        Ok(())
    }

    fn telemetry(&mut self, entry: &Entry) -> Result<(), ConfigError> {
        for body in self.objects("telemetry", &entry.value)? {
            for item in body {
                let setting = format!("telemetry.{}", item.key);
                match item.key.as_str() {
                    "prometheus_retention_time" => {
                        self.out.telemetry.prometheus_retention_time =
                            Some(self.duration(&setting, &item.value)?);
                    }
                    "disable_hostname" => {
                        self.out.telemetry.disable_hostname =
                            Some(self.boolean(&setting, &item.value)?);
                    }
                    key if IGNORED_TELEMETRY.contains(&key) => self.ignore(&setting, item.line),
                    _ => return Err(self.unknown(item, &setting)),
                }
            }
        }
        Ok(())
    }
}

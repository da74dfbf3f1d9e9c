//! Whole-configuration checks that can only run after every file and environment override has
//! been merged.
//!
//! A single file may legitimately lack a listener or a raft path that another file or
//! `VAULT_RAFT_PATH` supplies, so these rules cannot live in the per-file decoder. They catch
//! configurations that would otherwise start a server that is insecure or cannot work (TLS on
//! without a certificate, client-certificate checks without a CA, an empty raft path).

use std::collections::HashSet;

use super::error::ConfigError;
use super::model::{ListenerConfig, ServerConfig, SourceLocation, StorageConfig, split_host_port};
use super::values::{LOG_FORMATS, LOG_LEVELS, check_url};

impl ServerConfig {
    /// Checks the merged configuration. Call after [`ServerConfig::apply_env`].
    ///
    /// # Errors
    ///
    /// Returns the first problem found, located at the stanza it concerns where known.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listeners.is_empty() {
            return Err(ConfigError::global(
                Some("listener"),
                "at least one listener is required: add `listener \"tcp\" { address = \"127.0.0.1:8200\" ... }`",
            ));
        }
        let mut addresses = HashSet::new();
        for listener in &self.listeners {
            validate_listener(listener)?;
            let port_is_fixed = split_host_port(&listener.address)
                .map(|(_, port)| port != 0)
                .unwrap_or(false);
            if port_is_fixed && !addresses.insert(listener.address.as_str()) {
                return Err(listener_error(
                    listener,
                    "address",
                    format!(
                        "address \"{}\" is used by more than one listener",
                        listener.address
                    ),
                ));
            }
        }

        if let StorageConfig::Raft(raft) = &self.storage
            && raft.path.as_os_str().is_empty()
        {
            let at = self.storage_defined_at.clone().unwrap_or_default();
            return Err(ConfigError::new(
                at.file,
                at.line,
                Some("storage.raft.path".into()),
                "raft storage requires a data directory: set path or VAULT_RAFT_PATH",
            ));
        }

        if let Some(level) = &self.log_level
            && !LOG_LEVELS.contains(&level.as_str())
        {
            return Err(ConfigError::global(
                Some("log_level"),
                format!(
                    "invalid value \"{level}\": use one of {}",
                    LOG_LEVELS.join(", ")
                ),
            ));
        }
        if let Some(format) = &self.log_format
            && !LOG_FORMATS.contains(&format.as_str())
        {
            return Err(ConfigError::global(
                Some("log_format"),
                format!(
                    "invalid value \"{format}\": use one of {}",
                    LOG_FORMATS.join(", ")
                ),
            ));
        }
        for (setting, value) in [
            ("api_addr", &self.api_addr),
            ("cluster_addr", &self.cluster_addr),
        ] {
            if let Some(url) = value {
                check_url(url).map_err(|message| ConfigError::global(Some(setting), message))?;
            }
        }

        if let (Some(default_ttl), Some(max_ttl)) = (self.default_lease_ttl, self.max_lease_ttl)
            && default_ttl > max_ttl
        {
            return Err(ConfigError::global(
                Some("default_lease_ttl"),
                format!(
                    "default_lease_ttl ({}s) is greater than max_lease_ttl ({}s): lower it or raise max_lease_ttl",
                    default_ttl.as_secs(),
                    max_ttl.as_secs()
                ),
            ));
        }
        Ok(())
    }
}

fn listener_error(
    listener: &ListenerConfig,
    setting: &str,
    message: impl Into<String>,
) -> ConfigError {
    let SourceLocation { file, line } = listener.defined_at.clone().unwrap_or_default();
    ConfigError::new(file, line, Some(format!("listener.tcp.{setting}")), message)
}

fn validate_listener(listener: &ListenerConfig) -> Result<(), ConfigError> {
    split_host_port(&listener.address)
        .map_err(|message| listener_error(listener, "address", message))?;
    if let Some(cluster) = &listener.cluster_address {
        split_host_port(cluster)
            .map_err(|message| listener_error(listener, "cluster_address", message))?;
    }
    listener.cluster_address_or_default()?;

    if listener.tls_disable {
        return Ok(());
    }
    for (setting, file) in [
        ("tls_cert_file", &listener.tls_cert_file),
        ("tls_key_file", &listener.tls_key_file),
    ] {
        if file.is_none() {
            return Err(listener_error(
                listener,
                setting,
                format!(
                    "TLS is enabled but {setting} is not set: set tls_cert_file and tls_key_file, or tls_disable = true"
                ),
            ));
        }
    }
    if listener.tls_min_version > listener.tls_max_version {
        return Err(listener_error(
            listener,
            "tls_min_version",
            format!(
                "tls_min_version ({}) is above tls_max_version ({})",
                listener.tls_min_version, listener.tls_max_version
            ),
        ));
    }
    if listener.tls_require_and_verify_client_cert {
        if listener.tls_disable_client_certs {
            return Err(listener_error(
                listener,
                "tls_require_and_verify_client_cert",
                "cannot be combined with tls_disable_client_certs: keep only one",
            ));
        }
        if listener.tls_client_ca_file.is_none() {
            return Err(listener_error(
                listener,
                "tls_require_and_verify_client_cert",
                "requires tls_client_ca_file naming the CA that signs client certificates",
            ));
        }
    }
    Ok(())
}

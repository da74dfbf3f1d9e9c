//! Environment variable overrides, as Vault applies them after reading the files.
//!
//! Containers and systemd units commonly set `VAULT_API_ADDR`, `VAULT_RAFT_PATH` and friends
//! instead of templating config files; honouring them keeps those deployments working. The
//! variable lookup is injected so tests do not touch the process environment.

use std::path::PathBuf;

use super::error::ConfigError;
use super::model::{ServerConfig, StorageConfig};
use super::values::{LOG_LEVELS, parse_loose_bool};

fn env_error(variable: &str, message: String) -> ConfigError {
    ConfigError::new("environment", None, Some(variable.to_owned()), message)
}

impl ServerConfig {
    /// Overrides settings from `VAULT_API_ADDR`, `VAULT_CLUSTER_ADDR`, `VAULT_RAFT_PATH`,
    /// `VAULT_RAFT_NODE_ID`, `VAULT_RAFT_RETRY_JOIN_AS_NON_VOTER` (raft storage only), `VAULT_LOG_LEVEL`, `VAULT_DISABLE_MLOCK` and
    /// `VAULT_UI`. Unset or empty variables change nothing. Pass
    /// `|name| std::env::var(name).ok()` in production.
    ///
    /// # Errors
    ///
    /// Fails on a malformed boolean or an unknown log level, naming the variable.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let read = |name: &str| get(name).filter(|value| !value.is_empty());

        if let Some(value) = read("VAULT_API_ADDR") {
            self.api_addr = Some(value);
        }
        if let Some(value) = read("VAULT_CLUSTER_ADDR") {
            self.cluster_addr = Some(value);
        }
        if let StorageConfig::Raft(raft) = &mut self.storage {
            if let Some(value) = read("VAULT_RAFT_PATH") {
                raft.path = PathBuf::from(value);
            }
            if let Some(value) = read("VAULT_RAFT_NODE_ID") {
                raft.node_id = Some(value);
            }
            if let Some(value) = read("VAULT_RAFT_RETRY_JOIN_AS_NON_VOTER") {
                raft.retry_join_as_non_voter = parse_loose_bool(value.trim()).ok_or_else(|| {
                    env_error(
                        "VAULT_RAFT_RETRY_JOIN_AS_NON_VOTER",
                        format!("invalid boolean \"{value}\": use true or false"),
                    )
                })?;
            }
        }
        if let Some(value) = read("VAULT_LOG_LEVEL") {
            let level = value.trim().to_ascii_lowercase();
            if !LOG_LEVELS.contains(&level.as_str()) {
                return Err(env_error(
                    "VAULT_LOG_LEVEL",
                    format!(
                        "invalid value \"{value}\": use one of {}",
                        LOG_LEVELS.join(", ")
                    ),
                ));
            }
            self.log_level = Some(level);
        }
        for (variable, target) in [
            ("VAULT_DISABLE_MLOCK", &mut self.disable_mlock),
            ("VAULT_UI", &mut self.ui),
        ] {
            if let Some(value) = read(variable) {
                *target = parse_loose_bool(value.trim()).ok_or_else(|| {
                    env_error(
                        variable,
                        format!("invalid boolean \"{value}\": use true or false"),
                    )
                })?;
            }
        }
        Ok(())
    }
}

//! Autopilot's configuration: Vault's defaults, its GET body, its POST rules and the record
//! the integrator keeps in the barrier.
//!
//! Vault treats a zero in a POST as "not given" (its merge skips zero values), refuses dead
//! server cleanup unless `min_quorum` is at least 3 and the dead threshold at least a minute,
//! and ignores parameters it does not know. We follow all three, because the
//! `vault operator raft autopilot set-config` command and Terraform's `vault_raft_autopilot`
//! resource send whole configurations and rely on them. The persisted form stores every field
//! (whole seconds for durations) rather than only the supplied ones: with defaults that do not
//! change between releases the two are the same, and a complete record needs no merge on load.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use strongroom_logical::params::{bool_param, duration_param, int_param};
use thiserror::Error;

use super::go_duration;
use crate::CoreError;

/// The smallest `min_quorum` Vault accepts with cleanup on: fewer voters cannot lose one and
/// keep a majority.
const MIN_QUORUM_FOR_CLEANUP: u64 = 3;

/// The shortest `dead_server_last_contact_threshold` Vault accepts with cleanup on, so that a
/// restart or a short partition never costs a server its membership.
const MIN_DEAD_THRESHOLD: Duration = Duration::from_secs(60);

/// The effective autopilot configuration (defaults merged with what operators set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct AutopilotConfig {
    /// Whether servers silent past `dead_server_last_contact_threshold` are removed.
    pub cleanup_dead_servers: bool,
    /// A server without leader contact for longer than this is unhealthy.
    #[serde(with = "whole_seconds")]
    pub last_contact_threshold: Duration,
    /// A server without leader contact for longer than this is dead (removed with cleanup).
    #[serde(with = "whole_seconds")]
    pub dead_server_last_contact_threshold: Duration,
    /// A server more than this many entries behind the leader is unhealthy.
    pub max_trailing_logs: u64,
    /// Cleanup never leaves fewer voters than this (0: unset).
    pub min_quorum: u64,
    /// How long a non-voter must stay healthy before it is promoted.
    #[serde(with = "whole_seconds")]
    pub server_stabilization_time: Duration,
}

impl Default for AutopilotConfig {
    fn default() -> Self {
        AutopilotConfig {
            cleanup_dead_servers: false,
            last_contact_threshold: Duration::from_secs(10),
            dead_server_last_contact_threshold: Duration::from_secs(24 * 3600),
            max_trailing_logs: 1000,
            min_quorum: 0,
            server_stabilization_time: Duration::from_secs(10),
        }
    }
}

/// Why a `POST sys/storage/raft/autopilot/configuration` was refused; the configuration in
/// force is unchanged by all of them.
#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum ConfigUpdateError {
    /// A parameter had the wrong shape (the message names it).
    #[error("{0}")]
    BadParameter(String),
    /// Vault's text, including Go's `%#v` rendering of an unsigned integer (`0x2`).
    #[error(
        "min_quorum must be set when cleanup_dead_servers is set and it should at least be 3; cleanup_dead_servers: {cleanup_dead_servers}, min_quorum: {min_quorum:#x}"
    )]
    MinQuorumRequired {
        cleanup_dead_servers: bool,
        min_quorum: u64,
    },
    /// Vault's text; `received` is the value given in this request, in seconds, or Go's
    /// `<nil>` when the short threshold came from the stored configuration.
    #[error(
        "dead_server_last_contact_threshold should not be set to less than 1m; received: {received}"
    )]
    DeadThresholdTooShort { received: String },
    #[error("disable_upgrade_migration is only available in Vault Enterprise")]
    EnterpriseOnly,
}

impl From<ConfigUpdateError> for CoreError {
    fn from(e: ConfigUpdateError) -> Self {
        CoreError::InvalidRequest(e.to_string())
    }
}

impl AutopilotConfig {
    /// The `data` of `GET sys/storage/raft/autopilot/configuration`, in Vault's types:
    /// durations as Go duration strings, counts as numbers.
    pub(crate) fn to_data(&self) -> Map<String, Value> {
        let body = json!({
            "cleanup_dead_servers": self.cleanup_dead_servers,
            "last_contact_threshold": go_duration(self.last_contact_threshold),
            "dead_server_last_contact_threshold": go_duration(self.dead_server_last_contact_threshold),
            "max_trailing_logs": self.max_trailing_logs,
            "min_quorum": self.min_quorum,
            "server_stabilization_time": go_duration(self.server_stabilization_time),
            "disable_upgrade_migration": false,
        });
        match body {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    /// Applies the parameters of a POST to this configuration and returns the new one, for
    /// the integrator to persist and put in force. Durations are integer seconds or strings
    /// such as `"10s"`; a zero leaves the field as it was; unknown parameters are ignored.
    pub(crate) fn updated(&self, data: &Map<String, Value>) -> Result<Self, ConfigUpdateError> {
        let mut next = self.clone();
        if bool_param(data, "disable_upgrade_migration")
            .map_err(bad)?
            .is_some()
        {
            return Err(ConfigUpdateError::EnterpriseOnly);
        }
        if let Some(cleanup) = bool_param(data, "cleanup_dead_servers").map_err(bad)? {
            next.cleanup_dead_servers = cleanup;
        }
        if let Some(d) = nonzero_duration(data, "last_contact_threshold")? {
            next.last_contact_threshold = d;
        }
        let dead_given = nonzero_duration(data, "dead_server_last_contact_threshold")?;
        if let Some(d) = dead_given {
            next.dead_server_last_contact_threshold = d;
        }
        if let Some(n) = nonzero_count(data, "max_trailing_logs")? {
            next.max_trailing_logs = n;
        }
        if let Some(n) = nonzero_count(data, "min_quorum")? {
            next.min_quorum = n;
        }
        if let Some(d) = nonzero_duration(data, "server_stabilization_time")? {
            next.server_stabilization_time = d;
        }
        next.validate(dead_given)?;
        Ok(next)
    }

    /// Vault's two cross-field rules, checked on the merged configuration.
    fn validate(&self, dead_given: Option<Duration>) -> Result<(), ConfigUpdateError> {
        if !self.cleanup_dead_servers {
            return Ok(());
        }
        if self.min_quorum < MIN_QUORUM_FOR_CLEANUP {
            return Err(ConfigUpdateError::MinQuorumRequired {
                cleanup_dead_servers: true,
                min_quorum: self.min_quorum,
            });
        }
        if self.dead_server_last_contact_threshold < MIN_DEAD_THRESHOLD {
            let received =
                dead_given.map_or_else(|| "<nil>".to_owned(), |d| d.as_secs().to_string());
            return Err(ConfigUpdateError::DeadThresholdTooShort { received });
        }
        Ok(())
    }
}

fn bad(e: strongroom_logical::BackendError) -> ConfigUpdateError {
    ConfigUpdateError::BadParameter(match e {
        strongroom_logical::BackendError::InvalidRequest(m) => m,
        other => other.to_string(),
    })
}

fn nonzero_duration(
    data: &Map<String, Value>,
    name: &str,
) -> Result<Option<Duration>, ConfigUpdateError> {
    let secs = duration_param(data, name).map_err(bad)?;
    Ok(secs.filter(|s| *s > 0).map(Duration::from_secs))
}

fn nonzero_count(data: &Map<String, Value>, name: &str) -> Result<Option<u64>, ConfigUpdateError> {
    match int_param(data, name).map_err(bad)? {
        None | Some(0) => Ok(None),
        Some(n) => u64::try_from(n).map(Some).map_err(|_| {
            ConfigUpdateError::BadParameter(format!(
                "invalid value for \"{name}\": expected a non-negative integer, got {n}"
            ))
        }),
    }
}

/// Durations persisted as whole seconds: Vault's parameters have no finer resolution.
mod whole_seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

//! Multi-node integrated storage: `sys/storage/raft/*` bodies (join, peers, autopilot),
//! `sys/ha-status`, and Strongroom's own two-phase bootstrap between a joining node and the
//! leader.
//!
//! Field names and JSON types follow `shared/spec/vault-ha-raft.md` (Vault's API) except for
//! the bootstrap bodies, which are ours: Vault's are protobuf-shaped and no outside client
//! sends them.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::go_string;
use crate::sys::null_default;

/// A secret string (a private key): redacted in `Debug`, wiped from memory on drop, and
/// serialized as the plain string it holds.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret text.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("SecretString(\"\")")
        } else {
            f.write_str("SecretString(<redacted>)")
        }
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

fn is_zero_u16(n: &u16) -> bool {
    *n == 0
}

/// `POST sys/storage/raft/join` body, sent to the *joining* node (unauthenticated, raw answer).
///
/// PEM fields carry the PEM text itself, not file names. Empty strings mean "not given", as in
/// Vault (the Go client sends every field). Check with [`RaftJoinRequest::validate`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftJoinRequest {
    /// API address of a node of the cluster (`https://node-1:8200`); required unless
    /// `auto_join`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub leader_api_addr: String,
    /// Keep trying until the join works.
    #[serde(default, deserialize_with = "null_default")]
    pub retry: bool,
    /// CA (PEM) to verify the leader's API certificate.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub leader_ca_cert: String,
    /// Client certificate (PEM) for the leader's API.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub leader_client_cert: String,
    /// Key (PEM) of `leader_client_cert`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "SecretString::is_empty"
    )]
    pub leader_client_key: SecretString,
    /// SNI and name to verify on the leader's certificate.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub leader_tls_servername: String,
    /// Cloud auto-join (go-discover) configuration: refused by Strongroom, see `validate`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub auto_join: String,
    /// Scheme for auto-joined addresses (Vault's default `https`).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub auto_join_scheme: String,
    /// Port for auto-joined addresses (Vault's default 8200; 0 means the default).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero_u16"
    )]
    pub auto_join_port: u16,
    /// Join as a non-voter.
    #[serde(default, deserialize_with = "null_default")]
    pub non_voter: bool,
}

impl RaftJoinRequest {
    /// Checks the request as the server must before trying to join: exactly one of
    /// `leader_api_addr` and `auto_join`, auto-join refused (not supported), and a client
    /// certificate only with its key.
    ///
    /// # Errors
    ///
    /// A message for the 400 answer, saying what to change.
    pub fn validate(&self) -> Result<(), String> {
        let has_addr = !self.leader_api_addr.trim().is_empty();
        let has_auto = !self.auto_join.trim().is_empty();
        if has_addr && has_auto {
            return Err(
                "leader_api_addr and auto_join are mutually exclusive: give only one".to_string(),
            );
        }
        if has_auto {
            return Err(
                "auto_join (cloud auto-join) is not supported by Strongroom: give leader_api_addr"
                    .to_string(),
            );
        }
        if !has_addr {
            return Err("leader_api_addr is required: the API address of a cluster node, e.g. https://node-1:8200".to_string());
        }
        let addr = self.leader_api_addr.trim();
        if !(addr.starts_with("https://") || addr.starts_with("http://")) {
            return Err(format!(
                "invalid leader_api_addr \"{addr}\": use a URL such as https://node-1:8200"
            ));
        }
        if self.leader_client_cert.is_empty() != self.leader_client_key.is_empty() {
            return Err(
                "leader_client_cert and leader_client_key must be given together".to_string(),
            );
        }
        Ok(())
    }
}

/// `POST sys/storage/raft/join` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftJoinResponse {
    pub joined: bool,
}

/// `data` of `GET sys/storage/raft/configuration` (the `config` object is
/// [`crate::RaftConfiguration`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RaftConfigurationData {
    pub config: crate::RaftConfiguration,
}

/// `POST sys/storage/raft/remove-peer` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovePeerRequest {
    /// The Raft node id of the peer to remove.
    pub server_id: String,
    /// On a DR secondary: the DR operation token that authorizes the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dr_operation_token: Option<String>,
}

/// `POST sys/storage/raft/promote` and `POST sys/storage/raft/demote` body (OpenBao's):
/// make a non-voter a voter, or a voter a non-voter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftVoterChangeRequest {
    pub server_id: String,
}

/// Vault's default `last_contact_threshold`.
pub const DEFAULT_LAST_CONTACT_THRESHOLD: Duration = Duration::from_secs(10);
/// Vault's default `dead_server_last_contact_threshold`.
pub const DEFAULT_DEAD_SERVER_LAST_CONTACT_THRESHOLD: Duration = Duration::from_secs(24 * 3600);
/// Vault's default `max_trailing_logs`.
pub const DEFAULT_MAX_TRAILING_LOGS: u64 = 1000;
/// Vault's default `server_stabilization_time`.
pub const DEFAULT_SERVER_STABILIZATION_TIME: Duration = Duration::from_secs(10);
/// The smallest `dead_server_last_contact_threshold` Vault accepts.
pub const MIN_DEAD_SERVER_LAST_CONTACT_THRESHOLD: Duration = Duration::from_secs(60);

/// `GET sys/storage/raft/autopilot/configuration` answer (`data`), and the configuration the
/// server keeps. Durations are written as Go duration strings (`"10s"`, `"24h0m0s"`) and read
/// from strings or whole seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutopilotConfiguration {
    #[serde(default)]
    pub cleanup_dead_servers: bool,
    #[serde(with = "go_string", default = "default_last_contact")]
    pub last_contact_threshold: Duration,
    #[serde(with = "go_string", default = "default_dead_server")]
    pub dead_server_last_contact_threshold: Duration,
    #[serde(default = "default_trailing")]
    pub max_trailing_logs: u64,
    /// 0 when unset; required (at least 1) when `cleanup_dead_servers` is on.
    #[serde(default)]
    pub min_quorum: u32,
    #[serde(with = "go_string", default = "default_stabilization")]
    pub server_stabilization_time: Duration,
}

fn default_last_contact() -> Duration {
    DEFAULT_LAST_CONTACT_THRESHOLD
}
fn default_dead_server() -> Duration {
    DEFAULT_DEAD_SERVER_LAST_CONTACT_THRESHOLD
}
fn default_trailing() -> u64 {
    DEFAULT_MAX_TRAILING_LOGS
}
fn default_stabilization() -> Duration {
    DEFAULT_SERVER_STABILIZATION_TIME
}

impl Default for AutopilotConfiguration {
    /// Vault's defaults (spec §2).
    fn default() -> Self {
        Self {
            cleanup_dead_servers: false,
            last_contact_threshold: DEFAULT_LAST_CONTACT_THRESHOLD,
            dead_server_last_contact_threshold: DEFAULT_DEAD_SERVER_LAST_CONTACT_THRESHOLD,
            max_trailing_logs: DEFAULT_MAX_TRAILING_LOGS,
            min_quorum: 0,
            server_stabilization_time: DEFAULT_SERVER_STABILIZATION_TIME,
        }
    }
}

impl AutopilotConfiguration {
    /// The configuration after `update` (fields it leaves out keep their value), checked.
    ///
    /// # Errors
    ///
    /// A message for the 400 answer: `min_quorum` missing while `cleanup_dead_servers` is on,
    /// a zero threshold, or a dead-server threshold under one minute.
    pub fn updated(&self, update: &AutopilotConfigurationUpdate) -> Result<Self, String> {
        let mut next = self.clone();
        if let Some(v) = update.cleanup_dead_servers {
            next.cleanup_dead_servers = v;
        }
        if let Some(v) = update.last_contact_threshold {
            next.last_contact_threshold = v;
        }
        if let Some(v) = update.dead_server_last_contact_threshold {
            next.dead_server_last_contact_threshold = v;
        }
        if let Some(v) = update.max_trailing_logs {
            next.max_trailing_logs = v;
        }
        if let Some(v) = update.min_quorum {
            next.min_quorum = v;
        }
        if let Some(v) = update.server_stabilization_time {
            next.server_stabilization_time = v;
        }
        next.validate()?;
        Ok(next)
    }

    /// Checks the rules of [`AutopilotConfiguration::updated`].
    ///
    /// # Errors
    ///
    /// As [`AutopilotConfiguration::updated`].
    pub fn validate(&self) -> Result<(), String> {
        if self.cleanup_dead_servers && self.min_quorum == 0 {
            return Err("min_quorum must be set when cleanup_dead_servers is true: set it to the number of voters the cluster must keep (at least 3 is recommended)".to_string());
        }
        if self.last_contact_threshold.is_zero() {
            return Err("last_contact_threshold must be greater than zero".to_string());
        }
        if self.cleanup_dead_servers
            && self.dead_server_last_contact_threshold < MIN_DEAD_SERVER_LAST_CONTACT_THRESHOLD
        {
            return Err("dead_server_last_contact_threshold must be at least 1m".to_string());
        }
        Ok(())
    }
}

/// `POST sys/storage/raft/autopilot/configuration` body: only the fields given change.
/// Durations are accepted as strings (`"10s"`) or whole seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutopilotConfigurationUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup_dead_servers: Option<bool>,
    #[serde(
        default,
        with = "go_string::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_contact_threshold: Option<Duration>,
    #[serde(
        default,
        with = "go_string::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub dead_server_last_contact_threshold: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_trailing_logs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_quorum: Option<u32>,
    #[serde(
        default,
        with = "go_string::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub server_stabilization_time: Option<Duration>,
}

/// `GET sys/storage/raft/autopilot/state` answer (`data`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutopilotState {
    pub healthy: bool,
    /// How many voters may fail before quorum is lost.
    pub failure_tolerance: u32,
    /// Node id of the leader.
    #[serde(default)]
    pub leader: String,
    /// Node ids of the voters.
    #[serde(default, deserialize_with = "null_default")]
    pub voters: Vec<String>,
    /// Node ids of the non-voters (left out when there are none).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_voters: Vec<String>,
    /// Every server, keyed by node id.
    #[serde(default, deserialize_with = "null_default")]
    pub servers: BTreeMap<String, AutopilotServer>,
}

/// One server of [`AutopilotState`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutopilotServer {
    pub id: String,
    pub name: String,
    /// Cluster address.
    pub address: String,
    pub node_status: AutopilotNodeStatus,
    /// Time since the leader last heard from it, as a Go duration (`"0s"`, `"678.62575ms"`);
    /// see [`crate::duration::format_go_duration`].
    pub last_contact: String,
    pub last_term: u64,
    pub last_index: u64,
    pub healthy: bool,
    /// RFC 3339.
    pub stable_since: String,
    pub status: AutopilotServerStatus,
    #[serde(default)]
    pub version: String,
    /// `"voter"` (Vault Enterprise adds zone and read-replica types).
    #[serde(default)]
    pub node_type: String,
}

/// `node_status` of an autopilot server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutopilotNodeStatus {
    #[default]
    Unknown,
    Alive,
    Left,
    Failed,
}

impl AutopilotNodeStatus {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Alive => "alive",
            Self::Left => "left",
            Self::Failed => "failed",
        }
    }
}

/// `status` of an autopilot server: its Raft role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AutopilotServerStatus {
    Leader,
    #[default]
    Voter,
    NonVoter,
    /// Being stabilized before promotion.
    Staging,
}

impl AutopilotServerStatus {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Leader => "leader",
            Self::Voter => "voter",
            Self::NonVoter => "non-voter",
            Self::Staging => "staging",
        }
    }
}

/// `GET sys/ha-status` answer (`data`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaStatusResponse {
    #[serde(default, deserialize_with = "null_default")]
    pub nodes: Vec<HaNode>,
}

/// One node of [`HaStatusResponse`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaNode {
    pub hostname: String,
    pub api_address: String,
    pub cluster_address: String,
    pub active_node: bool,
    /// RFC 3339 time of the last echo from this standby; `null` for the active node (always
    /// written, as Vault does).
    #[serde(default)]
    pub last_echo: Option<String>,
    #[serde(default)]
    pub version: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    // The Vault CLI sends every join field, empty ones included; they must read as "not given".
    #[test]
    fn join_body_of_the_vault_cli_parses() {
        let body = json!({"leader_api_addr": "https://n1:8200", "retry": true,
            "leader_ca_cert": "", "leader_client_cert": "", "leader_client_key": "",
            "auto_join": "", "auto_join_scheme": "", "auto_join_port": 0, "non_voter": false});

        let req: RaftJoinRequest = serde_json::from_value(body).unwrap();

        assert_eq!(req.leader_api_addr, "https://n1:8200");
        assert!(req.retry && !req.non_voter);
        assert!(req.validate().is_ok());
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"leader_api_addr": "https://n1:8200", "retry": true, "non_voter": false})
        );
    }

    // Join refuses what it cannot do, with a message that says what to give instead.
    #[test]
    fn join_validation() {
        let base = RaftJoinRequest {
            leader_api_addr: "https://n1:8200".into(),
            ..RaftJoinRequest::default()
        };
        let both = RaftJoinRequest {
            auto_join: "provider=aws".into(),
            ..base.clone()
        };
        let auto = RaftJoinRequest {
            auto_join: "provider=aws".into(),
            ..RaftJoinRequest::default()
        };
        let half_cert = RaftJoinRequest {
            leader_client_cert: "PEM".into(),
            ..base.clone()
        };
        let bad_url = RaftJoinRequest {
            leader_api_addr: "n1:8200".into(),
            ..RaftJoinRequest::default()
        };

        assert!(both.validate().unwrap_err().contains("mutually exclusive"));
        assert!(auto.validate().unwrap_err().contains("not supported"));
        assert!(
            RaftJoinRequest::default()
                .validate()
                .unwrap_err()
                .contains("leader_api_addr is required")
        );
        assert!(half_cert.validate().unwrap_err().contains("together"));
        assert!(bad_url.validate().unwrap_err().contains("URL"));
    }

    // A client key never shows in Debug output (logs), but travels in JSON.
    #[test]
    fn secret_string_is_redacted_in_debug() {
        let req = RaftJoinRequest {
            leader_client_key: SecretString::new("-----BEGIN PRIVATE KEY-----"),
            ..RaftJoinRequest::default()
        };

        assert!(!format!("{req:?}").contains("BEGIN"));
        assert_eq!(
            serde_json::to_value(&req).unwrap()["leader_client_key"],
            "-----BEGIN PRIVATE KEY-----"
        );
    }

    // GET shows Vault's defaults in Vault's types: durations as Go strings, min_quorum 0.
    #[test]
    fn autopilot_configuration_defaults_on_the_wire() {
        assert_eq!(
            serde_json::to_value(AutopilotConfiguration::default()).unwrap(),
            json!({"cleanup_dead_servers": false, "last_contact_threshold": "10s",
                "dead_server_last_contact_threshold": "24h0m0s", "max_trailing_logs": 1000,
                "min_quorum": 0, "server_stabilization_time": "10s"})
        );
    }

    // POST accepts strings or seconds, changes only what it names, and enforces min_quorum.
    #[test]
    fn autopilot_update_rules() {
        let update: AutopilotConfigurationUpdate = serde_json::from_value(json!({
            "last_contact_threshold": 20, "server_stabilization_time": "1m"}))
        .unwrap();
        let next = AutopilotConfiguration::default().updated(&update).unwrap();
        assert_eq!(next.last_contact_threshold, Duration::from_secs(20));
        assert_eq!(next.server_stabilization_time, Duration::from_secs(60));
        assert_eq!(next.max_trailing_logs, 1000);

        let cleanup = AutopilotConfigurationUpdate {
            cleanup_dead_servers: Some(true),
            ..AutopilotConfigurationUpdate::default()
        };
        let err = AutopilotConfiguration::default()
            .updated(&cleanup)
            .unwrap_err();
        assert!(err.contains("min_quorum"), "{err}");
        let with_quorum = AutopilotConfigurationUpdate {
            min_quorum: Some(3),
            ..cleanup
        };
        assert!(
            AutopilotConfiguration::default()
                .updated(&with_quorum)
                .is_ok()
        );

        assert_eq!(
            serde_json::to_value(&with_quorum).unwrap(),
            json!({"cleanup_dead_servers": true, "min_quorum": 3})
        );
        assert!(
            serde_json::from_value::<AutopilotConfigurationUpdate>(
                json!({"last_contact_threshold": "often"})
            )
            .is_err()
        );
    }

    // Vault's documented autopilot state sample decodes, and re-encodes to the same JSON.
    #[test]
    fn autopilot_state_sample_round_trips() {
        let sample = json!({"failure_tolerance": 1, "healthy": true, "leader": "vault_1",
            "servers": {"vault_1": {"address": "127.0.0.1:8201", "healthy": true,
                "id": "vault_1", "last_contact": "0s", "last_index": 63, "last_term": 3,
                "name": "vault_1", "node_status": "alive", "node_type": "voter",
                "stable_since": "2024-08-29T16:02:45.639829+02:00", "status": "leader",
                "version": "1.17.3"},
              "vault_2": {"address": "127.0.0.1:8203", "healthy": false, "id": "vault_2",
                "last_contact": "678.62575ms", "last_index": 60, "last_term": 3,
                "name": "vault_2", "node_status": "failed", "node_type": "voter",
                "stable_since": "2024-08-29T16:02:47.640976+02:00", "status": "non-voter",
                "version": "1.17.3"}},
            "voters": ["vault_1"]});

        let state: AutopilotState = serde_json::from_value(sample.clone()).unwrap();

        assert_eq!(
            state.servers["vault_2"].status,
            AutopilotServerStatus::NonVoter
        );
        assert_eq!(
            state.servers["vault_2"].node_status,
            AutopilotNodeStatus::Failed
        );
        assert_eq!(serde_json::to_value(&state).unwrap(), sample);
    }

    // The active node's last_echo is written as null, as Vault does.
    #[test]
    fn ha_status_active_node_has_null_last_echo() {
        let status = HaStatusResponse {
            nodes: vec![HaNode {
                hostname: "n1".into(),
                api_address: "https://n1:8200".into(),
                cluster_address: "https://n1:8201".into(),
                active_node: true,
                last_echo: None,
                version: "1.16.3".into(),
            }],
        };

        let value = serde_json::to_value(&status).unwrap();

        assert!(value["nodes"][0]["last_echo"].is_null());
        assert_eq!(
            serde_json::from_value::<HaStatusResponse>(value).unwrap(),
            status
        );
    }

    // Vault omits the newer health fields when they do not apply; so must we.
    #[test]
    fn health_cluster_fields_are_omitted_when_unset() {
        let plain = serde_json::to_value(crate::HealthResponse::default()).unwrap();
        let removed = serde_json::to_value(crate::HealthResponse {
            removed_from_cluster: Some(true),
            ha_connection_healthy: Some(false),
            last_request_forwarding_heartbeat_ms: Some(1500),
            ..crate::HealthResponse::default()
        })
        .unwrap();

        for key in [
            "removed_from_cluster",
            "ha_connection_healthy",
            "last_request_forwarding_heartbeat_ms",
        ] {
            assert!(plain.get(key).is_none(), "{key}");
        }
        assert_eq!(removed["removed_from_cluster"], true);
        assert_eq!(removed["ha_connection_healthy"], false);
        assert_eq!(removed["last_request_forwarding_heartbeat_ms"], 1500);
    }
}

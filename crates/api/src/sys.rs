//! Raw (un-enveloped) sys endpoints: init, seal, unseal, health, leader, generate-root, raft
//! configuration (rekey and the rest of raft have their own files).

use serde::{Deserialize, Serialize};

/// `PUT sys/init` body.
///
/// The Vault CLI sends every field, with `null` for unused lists and strings, and hvac sends
/// `"root_token_pgp_key": null`: nulls read as empty here. Auto-unseal fields are accepted
/// and must be zero or empty (Shamir seals only).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InitRequest {
    #[serde(default, deserialize_with = "null_default")]
    pub secret_shares: u32,
    #[serde(default, deserialize_with = "null_default")]
    pub secret_threshold: u32,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub pgp_keys: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub root_token_pgp_key: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub stored_shares: u32,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub recovery_shares: u32,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub recovery_threshold: u32,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub recovery_pgp_keys: Vec<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Reads JSON `null` as the type's default, as Go's decoder does.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_bodies_of_real_clients_parse() {
        // Why: the Vault CLI and hvac send nulls for unused fields; refusing them breaks init.
        let go = r#"{"secret_shares":5,"secret_threshold":3,"stored_shares":0,"pgp_keys":null,"recovery_shares":0,"recovery_threshold":0,"recovery_pgp_keys":null,"root_token_pgp_key":""}"#;
        let hvac =
            r#"{"secret_shares":5,"secret_threshold":3,"pgp_keys":null,"root_token_pgp_key":null}"#;
        for body in [go, hvac] {
            let r: InitRequest = serde_json::from_str(body).unwrap();
            assert_eq!((r.secret_shares, r.secret_threshold), (5, 3));
            assert!(r.pgp_keys.is_empty() && r.root_token_pgp_key.is_empty());
        }
    }
}

/// `PUT sys/init` answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InitResponse {
    pub keys: Vec<String>,
    pub keys_base64: Vec<String>,
    pub root_token: String,
}

/// `PUT sys/unseal` body. `reset` wins over `key` when both are given.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UnsealRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub migrate: bool,
}

/// `GET sys/seal-status`, and the answer of `sys/unseal`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SealStatus {
    #[serde(rename = "type")]
    pub seal_type: String,
    pub initialized: bool,
    pub sealed: bool,
    pub t: u32,
    pub n: u32,
    pub progress: u32,
    pub nonce: String,
    pub version: String,
    pub build_date: String,
    pub migration: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    pub recovery_seal: bool,
    pub storage_type: String,
}

/// `GET sys/leader`. `active_time` is always a valid RFC 3339 timestamp.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LeaderResponse {
    pub ha_enabled: bool,
    pub is_self: bool,
    pub active_time: String,
    pub leader_address: String,
    pub leader_cluster_address: String,
    pub performance_standby: bool,
    pub performance_standby_last_remote_wal: u64,
    #[serde(default)]
    pub last_wal: u64,
    #[serde(default)]
    pub raft_committed_index: u64,
    #[serde(default)]
    pub raft_applied_index: u64,
}

/// `GET sys/health` body (the status code carries the verdict).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HealthResponse {
    pub initialized: bool,
    pub sealed: bool,
    pub standby: bool,
    pub performance_standby: bool,
    pub replication_performance_mode: String,
    pub replication_dr_mode: String,
    pub server_time_utc: i64,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    pub enterprise: bool,
    pub echo_duration_ms: i64,
    pub clock_skew_ms: i64,
    /// The node's last WAL index (present while unsealed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_wal: Option<u64>,
    /// On a DR secondary: age of the newest primary canary applied (replication lag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_primary_canary_age_ms: Option<i64>,
    /// Raft (Vault 1.19+): the node was removed from the cluster (answered with 530).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_from_cluster: Option<bool>,
    /// On a standby (Vault 1.19+): whether it reaches the active node (474 when not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ha_connection_healthy: Option<bool>,
    /// On a standby: milliseconds since the last request-forwarding heartbeat from the active
    /// node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_request_forwarding_heartbeat_ms: Option<i64>,
}

/// `GET|PUT sys/generate-root/attempt` and `PUT sys/generate-root/update` answers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GenerateRootStatus {
    pub started: bool,
    pub nonce: String,
    pub progress: u32,
    pub required: u32,
    pub encoded_token: String,
    pub encoded_root_token: String,
    pub pgp_fingerprint: String,
    pub otp_length: u32,
    pub otp: String,
    pub complete: bool,
}

/// `PUT sys/generate-root/attempt` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GenerateRootStartRequest {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub otp: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pgp_key: String,
}

/// `PUT sys/generate-root/update` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GenerateRootUpdateRequest {
    pub key: String,
    pub nonce: String,
}

/// `data.config` of `GET sys/storage/raft/configuration`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RaftConfiguration {
    pub index: u64,
    pub servers: Vec<RaftServer>,
}

/// One member of the Raft configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RaftServer {
    pub address: String,
    pub leader: bool,
    pub node_id: String,
    pub protocol_version: String,
    pub voter: bool,
}

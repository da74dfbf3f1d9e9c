//! The persisted DR replication configuration of this cluster.
//!
//! Mode, cluster id, the primary's CA and signing key, the secondary's client identity and
//! where its primary lives must survive a restart, and must never replicate (each cluster has
//! its own role and its own keys), so they live in one cluster-local record
//! (`core/replication/dr/config`) written through the barrier: key material is only ever
//! stored encrypted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::{Core, CoreError};

/// Storage key of the record (cluster-local: `core/replication/` never replicates).
pub(crate) const CONFIG_KEY: &str = "core/replication/dr/config";

/// This cluster's role in DR replication.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplicationMode {
    #[default]
    Disabled,
    Primary,
    Secondary,
}

impl ReplicationMode {
    /// The wire name used in status and health (`disabled`, `primary`, `secondary`).
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicationMode::Disabled => "disabled",
            ReplicationMode::Primary => "primary",
            ReplicationMode::Secondary => "secondary",
        }
    }

    pub(crate) fn as_u8(self) -> u8 {
        match self {
            ReplicationMode::Disabled => 0,
            ReplicationMode::Primary => 1,
            ReplicationMode::Secondary => 2,
        }
    }

    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            1 => ReplicationMode::Primary,
            2 => ReplicationMode::Secondary,
            _ => ReplicationMode::Disabled,
        }
    }
}

/// What a primary needs to serve secondaries: its private CA, its cluster-port identity and
/// the key that signs activation tokens.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub(crate) struct PrimaryMaterial {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    /// P-521 private scalar, base64.
    pub signing_key_b64: String,
    /// Cluster addresses handed to secondaries (`https://host:port`).
    pub cluster_addrs: Vec<String>,
}

/// What a secondary needs to reach its primary.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub(crate) struct SecondaryMaterial {
    pub secondary_id: String,
    pub primary_api_addr: String,
    pub primary_cluster_addrs: Vec<String>,
    /// Refreshed from heartbeats.
    pub known_primary_cluster_addrs: Vec<String>,
    pub ca_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

/// One activation token ever issued by this primary.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct SecondaryRecord {
    pub revoked: bool,
    /// Unix seconds.
    pub issued_at: i64,
}

/// The whole record.
#[derive(Clone, Default, Serialize, Deserialize)]
pub(crate) struct DrConfig {
    pub mode: ReplicationMode,
    /// Id of the replication set; empty when disabled.
    pub cluster_id: String,
    /// Primary: the `primary_cluster_addr` given at enable/promote (blank = none given).
    /// Secondary: the first primary cluster address it used.
    pub primary_cluster_addr: String,
    #[serde(default)]
    pub primary: Option<PrimaryMaterial>,
    #[serde(default)]
    pub secondaries: BTreeMap<String, SecondaryRecord>,
    /// `None` on a demoted primary or after `update-primary token=""`: no primary to follow.
    #[serde(default)]
    pub secondary: Option<SecondaryMaterial>,
    /// Unix seconds of the last reindex, 0 if never.
    #[serde(default)]
    pub last_reindex_epoch: i64,
}

impl DrConfig {
    /// Ids of activation tokens that were not revoked (status `known_secondaries`).
    pub fn known_secondaries(&self) -> Vec<String> {
        self.secondaries
            .iter()
            .filter(|(_, r)| !r.revoked)
            .map(|(id, _)| id.clone())
            .collect()
    }
}

impl Core {
    /// Reads the record; `None` on a cluster that never enabled replication.
    pub(crate) async fn read_dr_config(&self) -> Result<Option<DrConfig>, CoreError> {
        let Some(raw) = self.barrier.get(CONFIG_KEY).await? else {
            return Ok(None);
        };
        let raw = zeroize::Zeroizing::new(raw);
        serde_json::from_slice(&raw).map(Some).map_err(|e| {
            CoreError::Internal(format!(
                "the replication configuration ({CONFIG_KEY}) is corrupt: {e}; disable replication to reset it"
            ))
        })
    }

    /// Writes the record.
    pub(crate) async fn write_dr_config(&self, config: &DrConfig) -> Result<(), CoreError> {
        let raw = zeroize::Zeroizing::new(serde_json::to_vec(config).map_err(|e| {
            CoreError::Internal(format!("encoding the replication configuration: {e}"))
        })?);
        self.barrier.put(CONFIG_KEY, &raw).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_key_never_replicates() {
        // Why: a secondary receiving its primary's CA key and role would become a second primary.
        assert_eq!(
            strongroom_storage::keyspace::classify(CONFIG_KEY),
            strongroom_storage::keyspace::KeyClass::ClusterLocal
        );
    }

    #[test]
    fn known_secondaries_leave_out_revoked_ids() {
        // Why: status must list every non-revoked token id and nothing else.
        let mut c = DrConfig::default();
        let rec = |revoked| SecondaryRecord {
            revoked,
            issued_at: 1,
        };
        c.secondaries.insert("a".into(), rec(false));
        c.secondaries.insert("b".into(), rec(true));
        c.secondaries.insert("c".into(), rec(false));

        assert_eq!(c.known_secondaries(), vec!["a", "c"]);
    }
}

//! The persisted replication configuration of this cluster, one record per replication kind.
//!
//! Mode, cluster id, the primary's CA and signing key, the secondary's client identity and
//! where its primary lives must survive a restart, and are written through the barrier: key
//! material is only ever stored encrypted. Where each record lives decides where it travels:
//! - DR: `core/replication/dr/config`, cluster-local. A DR secondary's role is the opposite
//!   of its primary's, so the record must never replicate.
//! - Performance: `core/perf-replication/config`, replicated-local. It never reaches a
//!   performance secondary, but a DR secondary holds its primary's, so that a promoted DR
//!   secondary *is* what its primary was in performance replication (spec §2.6): the PR
//!   primary, with the same CA and secondaries, or the PR secondary, with the same
//!   activation identity.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use strongroom_replication::ReplicationKind;

use crate::{Core, CoreError};

/// Storage key of the DR record (cluster-local: `core/replication/` never replicates).
pub(crate) const CONFIG_KEY: &str = "core/replication/dr/config";
/// Storage key of the performance record (replicated-local: DR secondaries only).
pub(crate) const PERF_CONFIG_KEY: &str = "core/perf-replication/config";

/// The record key of `kind`.
pub(crate) fn config_key(kind: ReplicationKind) -> &'static str {
    match kind {
        ReplicationKind::Dr => CONFIG_KEY,
        ReplicationKind::Performance => PERF_CONFIG_KEY,
    }
}

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
    /// Performance: the path filter the primary last stated for us (its mounts are hidden).
    #[serde(default)]
    #[zeroize(skip)]
    pub paths_filter: Option<PathsFilter>,
}

/// One activation token ever issued by this primary.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct SecondaryRecord {
    pub revoked: bool,
    /// Unix seconds.
    pub issued_at: i64,
}

/// `paths-filter` mode: which mounts a performance secondary receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FilterMode {
    /// Only the listed paths travel.
    #[default]
    Allow,
    /// Everything but the listed paths travels.
    Deny,
}

impl FilterMode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FilterMode::Allow => "allow",
            FilterMode::Deny => "deny",
        }
    }
}

/// One secondary's `paths-filter` (performance primaries only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PathsFilter {
    pub mode: FilterMode,
    /// Mount paths with a trailing slash (`secret/`, `auth/userpass/`).
    pub paths: Vec<String>,
}

/// The whole record.
#[derive(Clone, Default, Serialize, Deserialize)]
pub(crate) struct ReplConfig {
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
    /// Performance primary: `paths-filter` by secondary id.
    #[serde(default)]
    pub paths_filters: BTreeMap<String, PathsFilter>,
}

impl ReplConfig {
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
    /// Reads the DR record; `None` on a cluster that never enabled DR replication.
    pub(crate) async fn read_dr_config(&self) -> Result<Option<ReplConfig>, CoreError> {
        self.read_repl_config(ReplicationKind::Dr).await
    }

    /// Reads the record of `kind`; `None` on a cluster that never enabled it.
    pub(crate) async fn read_repl_config(
        &self,
        kind: ReplicationKind,
    ) -> Result<Option<ReplConfig>, CoreError> {
        let key = config_key(kind);
        let Some(raw) = self.barrier.get(key).await? else {
            return Ok(None);
        };
        let raw = zeroize::Zeroizing::new(raw);
        serde_json::from_slice(&raw).map(Some).map_err(|e| {
            CoreError::Internal(format!(
                "the replication configuration ({key}) is corrupt: {e}; disable replication to reset it"
            ))
        })
    }

    /// Writes the record of `kind`.
    pub(crate) async fn write_repl_config(
        &self,
        kind: ReplicationKind,
        config: &ReplConfig,
    ) -> Result<(), CoreError> {
        let raw = zeroize::Zeroizing::new(serde_json::to_vec(config).map_err(|e| {
            CoreError::Internal(format!("encoding the replication configuration: {e}"))
        })?);
        self.barrier.put(config_key(kind), &raw).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn performance_config_travels_to_dr_secondaries_only() {
        // Why: a PR secondary receiving its primary's CA key would become a second primary;
        // a DR secondary needs it to take over the PR role on promotion.
        assert_eq!(
            strongroom_storage::keyspace::classify(PERF_CONFIG_KEY),
            strongroom_storage::keyspace::KeyClass::ReplicatedLocal
        );
    }

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
        let mut c = ReplConfig::default();
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

//! `sys/replication/status`, `.../dr/status` and `.../performance/status`.
//!
//! Monitoring tools and the official Go client decode these with fixed types (strings for the
//! `*_ms` and epoch fields, integers for WAL indexes), so every field is built here with its
//! exact JSON type rather than derived from internal structs.

use std::time::SystemTime;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use strongroom_replication::{PeerInfo, ReplicationKind, SecondaryStatus};
use strongroom_storage::{MerkleTree, ReplStatus};

use super::config::{ReplConfig, ReplicationMode};
use crate::{Core, Response};

/// Go's zero time as unix seconds: "never checked".
const NEVER_CHECKED: &str = "-62135596800";

fn peer_json(p: &PeerInfo, with_node_id: bool, canary_age_ms: u64) -> Value {
    let mut m = Map::new();
    m.insert("api_address".into(), json!(p.api_address));
    m.insert("cluster_address".into(), json!(p.cluster_address));
    m.insert("clock_skew_ms".into(), json!(p.clock_skew_ms.to_string()));
    m.insert("connection_status".into(), json!(p.connection_status));
    m.insert("last_heartbeat".into(), json!(rfc3339(p.last_heartbeat)));
    m.insert(
        "last_heartbeat_duration_ms".into(),
        json!(p.last_heartbeat_duration_ms.to_string()),
    );
    if with_node_id {
        m.insert("node_id".into(), json!(p.node_id));
    }
    m.insert(
        "replication_primary_canary_age_ms".into(),
        json!(canary_age_ms.to_string()),
    );
    Value::Object(m)
}

/// A streaming secondary's state, connection and primary as its runner reports them.
fn runner_fields(
    s: &SecondaryStatus,
    primary_api_addr: &str,
    canary_age_ms: u64,
    m: &mut Map<String, Value>,
) {
    m.insert("state".into(), json!(s.state));
    m.insert("connection_state".into(), json!(s.connection_state));
    m.insert("last_start".into(), json!(rfc3339(s.last_start)));
    let primaries: Vec<Value> = s
        .primaries
        .iter()
        .map(|p| {
            let mut p = p.clone();
            if p.api_address.is_empty() {
                p.api_address = primary_api_addr.to_owned();
            }
            peer_json(&p, false, canary_age_ms)
        })
        .collect();
    m.insert("primaries".into(), Value::Array(primaries));
    if s.state == "merkle-sync"
        && let Some(p) = &s.sync_progress
    {
        m.insert(
            "merkle_sync_progress".into(),
            json!({"sync_progress": p.sync_progress, "sync_total_keys": p.sync_total_keys}),
        );
    }
}

fn rfc3339(t: Option<SystemTime>) -> String {
    match t {
        Some(t) => humantime::format_rfc3339_seconds(t).to_string(),
        None => crate::util::rfc3339(SystemTime::UNIX_EPOCH, true),
    }
}

impl Core {
    /// The `dr` object.
    pub(crate) fn dr_status(&self) -> Map<String, Value> {
        self.repl_status(ReplicationKind::Dr)
    }

    /// The root of the shared merkle tree, 40 hex characters: what a performance secondary
    /// and its primary compare (the local tree never travels on that stream).
    fn shared_merkle_root(&self) -> String {
        let mut h = Sha256::new();
        for page in self.storage.merkle_hashes(MerkleTree::Shared, None) {
            h.update(page);
        }
        hex::encode(&h.finalize()[..20])
    }

    /// The `dr` or `performance` object.
    pub(crate) fn repl_status(&self, kind: ReplicationKind) -> Map<String, Value> {
        let set = self.repl(kind);
        let mut m = Map::new();
        let Some(config) = set.config() else {
            m.insert("mode".into(), json!("disabled"));
            return m;
        };
        if config.mode == ReplicationMode::Disabled {
            m.insert("mode".into(), json!("disabled"));
            return m;
        }
        let repl = self.storage.replication_status();
        m.insert("cluster_id".into(), json!(config.cluster_id));
        m.insert("corrupted_merkle_tree".into(), json!(false));
        m.insert("last_corruption_check_epoch".into(), json!(NEVER_CHECKED));
        m.insert(
            "last_reindex_epoch".into(),
            json!(config.last_reindex_epoch.to_string()),
        );
        let merkle_root = match kind {
            ReplicationKind::Dr => repl.merkle_root.clone(),
            ReplicationKind::Performance => self.shared_merkle_root(),
        };
        m.insert("merkle_root".into(), json!(merkle_root));
        m.insert("mode".into(), json!(config.mode.as_str()));
        m.insert(
            "primary_cluster_addr".into(),
            json!(config.primary_cluster_addr),
        );
        m.insert("ssct_generation_counter".into(), json!(0u64));
        match config.mode {
            ReplicationMode::Primary => self.primary_fields(kind, &config, &repl, &mut m),
            _ => self.secondary_fields(kind, &config, &repl, &mut m),
        }
        m
    }

    /// The fields only a primary reports.
    fn primary_fields(
        &self,
        kind: ReplicationKind,
        config: &ReplConfig,
        repl: &ReplStatus,
        m: &mut Map<String, Value>,
    ) {
        m.insert(
            "known_secondaries".into(),
            json!(config.known_secondaries()),
        );
        m.insert("last_wal".into(), json!(repl.last_wal));
        // Every WAL index travels on both streams (a performance secondary receives entries
        // without shared ops empty), so both count in the same indexes and compare with a
        // secondary's `last_remote_wal`.
        let shipped = match kind {
            ReplicationKind::Dr => "last_dr_wal",
            ReplicationKind::Performance => "last_performance_wal",
        };
        m.insert(shipped.into(), json!(repl.last_wal));
        let secondaries: Vec<Value> = self
            .repl(kind)
            .registry
            .peers()
            .iter()
            .map(|p| peer_json(p, true, p.canary_age_ms))
            .collect();
        m.insert("secondaries".into(), Value::Array(secondaries));
        m.insert("state".into(), json!("running"));
    }

    /// The fields only a secondary reports, from its runner while it has one.
    fn secondary_fields(
        &self,
        kind: ReplicationKind,
        config: &ReplConfig,
        repl: &ReplStatus,
        m: &mut Map<String, Value>,
    ) {
        let set = self.repl(kind);
        let secondary = config.secondary.as_ref();
        m.insert(
            "secondary_id".into(),
            json!(
                secondary
                    .map(|s| s.secondary_id.clone())
                    .unwrap_or_default()
            ),
        );
        let runner = crate::util::lock(&set.runner).as_ref().map(|h| h.status());
        let last_remote_wal = match kind {
            ReplicationKind::Dr => repl.last_remote_wal,
            ReplicationKind::Performance => runner.as_ref().map_or_else(
                || set.last_applied.load(std::sync::atomic::Ordering::Relaxed),
                |s| s.last_remote_wal,
            ),
        };
        let mut known: Vec<String> = secondary
            .map(|s| s.known_primary_cluster_addrs.clone())
            .unwrap_or_default();
        if known.is_empty() {
            known = secondary
                .map(|s| s.primary_cluster_addrs.clone())
                .unwrap_or_default();
        }
        match runner {
            Some(s) => {
                if !s.known_primary_cluster_addrs.is_empty() {
                    known = s.known_primary_cluster_addrs.clone();
                }
                let api_address = secondary
                    .map(|s| s.primary_api_addr.clone())
                    .unwrap_or_default();
                runner_fields(&s, &api_address, set.canary_age_ms(), m);
            }
            None => {
                m.insert("state".into(), json!("idle"));
                m.insert("connection_state".into(), json!("idle"));
                m.insert("last_start".into(), json!(rfc3339(None)));
                m.insert("primaries".into(), json!([]));
            }
        }
        m.insert("known_primary_cluster_addrs".into(), json!(known));
        m.insert("last_remote_wal".into(), json!(last_remote_wal));
    }

    /// `sys/replication/status`.
    pub(super) fn replication_status_response(&self) -> Response {
        let mut data = Map::new();
        data.insert("dr".into(), Value::Object(self.dr_status()));
        data.insert(
            "performance".into(),
            Value::Object(self.repl_status(ReplicationKind::Performance)),
        );
        Response::with_data(data)
    }
}

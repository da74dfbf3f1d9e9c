//! Performance path filters: which mounts' data each performance secondary receives.
//!
//! The stream runs outside core (in the cluster-port server) and asks, for every key it is
//! about to send, whether that secondary may have it, so the answer must be synchronous and
//! cheap: this module keeps each secondary's filter and a map from mount uuid to mount path,
//! both refreshed by core when the replication record or the mount table changes. A key that
//! is not mount data (mount tables, policies, the keyring) always travels; mount data travels
//! when its mount's path is allowed. Core updates the map before a new mount can hold data, so
//! a uuid the map does not know is a mount that is gone: what still travels for it is the
//! deletes of its data, which every secondary that holds it needs.
//!
//! Each filter also has a digest, folded by the stream into the chain hashes it shows that
//! secondary: the filter's text and the set of mounts it withholds. Either changing (a new
//! filter, or a mount enabled under, remounted into or out of a filtered path) makes the
//! secondary's stored position unknown to the primary, which forces a merkle diff that brings
//! what it should now hold and deletes what the filter now withholds.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use strongroom_replication::wire::PathsFilterWire;
use strongroom_replication::{PerformanceFilter, ReplicationKind};

use super::config::{FilterMode, PathsFilter, ReplConfig, ReplicationMode};
use crate::mounts::{MountEntry, MountTable};
use crate::util::{lock_read, lock_write};
use crate::{Core, CoreError, Request, Response};

#[derive(Default)]
struct Inner {
    filters: BTreeMap<String, PathsFilter>,
    /// Shared mounts (secrets and auth) by uuid: their paths, with a trailing slash.
    mounts: HashMap<String, String>,
}

/// Implements [`PerformanceFilter`] over core's replication record and mount table.
#[derive(Default)]
pub(crate) struct PathFilters {
    inner: RwLock<Inner>,
}

/// The digest of "no filter".
fn unfiltered_digest() -> [u8; 32] {
    Sha256::digest(b"strongroom/paths-filter/none").into()
}

fn digest_of(f: &PathsFilter) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"strongroom/paths-filter/v1");
    h.update(f.mode.as_str().as_bytes());
    let mut paths = f.paths.clone();
    paths.sort();
    for p in paths {
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    h.finalize().into()
}

/// The mount uuid a storage key holds data of, if it is shared mount data.
fn mount_uuid(key: &str) -> Option<&str> {
    let rest = key
        .strip_prefix("logical/")
        .or_else(|| key.strip_prefix("auth/"))?;
    rest.split('/').next().filter(|u| !u.is_empty())
}

/// Whether `filter` lets the data of the mount at `path` travel.
fn passes(filter: &PathsFilter, path: &str) -> bool {
    let listed = filter.paths.iter().any(|p| path.starts_with(p.as_str()));
    match filter.mode {
        FilterMode::Allow => listed,
        FilterMode::Deny => !listed,
    }
}

impl PathFilters {
    /// Adopts the filters of `config` (none unless it is a performance primary's).
    pub(crate) fn refresh(&self, config: Option<&ReplConfig>) {
        let filters = config
            .filter(|c| c.mode == ReplicationMode::Primary)
            .map(|c| c.paths_filters.clone())
            .unwrap_or_default();
        lock_write(&self.inner).filters = filters;
    }

    /// Adopts the shared mounts of `table`.
    pub(crate) fn set_mounts(&self, table: &MountTable) {
        let mounts = table
            .entries
            .iter()
            .filter(|e| !e.local)
            .map(|e| (e.uuid.clone(), e.path.clone()))
            .collect();
        lock_write(&self.inner).mounts = mounts;
    }

    /// Paths of the mounts whose data `secondary_id` does not receive, sorted.
    fn filtered_mounts(&self, secondary_id: &str) -> Vec<String> {
        let inner = lock_read(&self.inner);
        let Some(f) = inner.filters.get(secondary_id) else {
            return Vec::new();
        };
        let mut out: Vec<String> = inner
            .mounts
            .values()
            .filter(|path| !passes(f, path))
            .cloned()
            .collect();
        out.sort();
        out
    }
}

impl PerformanceFilter for PathFilters {
    fn digest(&self, secondary_id: &str) -> [u8; 32] {
        let inner = lock_read(&self.inner);
        let Some(f) = inner.filters.get(secondary_id) else {
            return unfiltered_digest();
        };
        let mut withheld: Vec<&str> = inner
            .mounts
            .iter()
            .filter(|(_, path)| !passes(f, path))
            .map(|(uuid, _)| uuid.as_str())
            .collect();
        withheld.sort_unstable();
        let mut h = Sha256::new();
        h.update(digest_of(f));
        for uuid in withheld {
            h.update([0u8]);
            h.update(uuid.as_bytes());
        }
        h.finalize().into()
    }

    fn allows(&self, secondary_id: &str, key: &str) -> bool {
        let inner = lock_read(&self.inner);
        let Some(f) = inner.filters.get(secondary_id) else {
            return true;
        };
        let Some(uuid) = mount_uuid(key) else {
            return true;
        };
        // An unknown uuid is a mount that is gone: its deletes travel.
        inner.mounts.get(uuid).is_none_or(|path| passes(f, path))
    }

    fn filters_anything(&self, secondary_id: &str) -> bool {
        lock_read(&self.inner).filters.contains_key(secondary_id)
    }

    fn wire_filter(&self, secondary_id: &str) -> Option<PathsFilterWire> {
        lock_read(&self.inner)
            .filters
            .get(secondary_id)
            .map(|f| PathsFilterWire {
                deny: f.mode == FilterMode::Deny,
                paths: f.paths.clone(),
            })
    }
}

/// Engines whose mounts exist on every cluster and are never hidden: they hold no shared data.
const BUILT_IN_ENGINES: &[&str] = &["cubbyhole", "token", "system", "identity"];

/// Whether a performance secondary under `filter` shows `entry` (its data never arrives
/// otherwise). Local mounts are its own; built-in mounts hold nothing shared.
pub(crate) fn visible(filter: &PathsFilter, entry: &MountEntry) -> bool {
    entry.local || BUILT_IN_ENGINES.contains(&entry.engine.as_str()) || passes(filter, &entry.path)
}

/// A filter path as stored: no leading slash, one trailing slash.
fn normalize_path(p: &str) -> Option<String> {
    let p = p.trim().trim_start_matches('/');
    if p.is_empty() {
        return None;
    }
    Some(if p.ends_with('/') {
        p.to_owned()
    } else {
        format!("{p}/")
    })
}

fn filter_data(f: &PathsFilter) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("mode".into(), json!(f.mode.as_str()));
    data.insert("paths".into(), json!(f.paths));
    data
}

impl Core {
    /// `GET sys/replication/performance/primary/paths-filter/:id`.
    pub(super) fn paths_filter_read(&self, id: &str) -> Result<Response, CoreError> {
        let config = self.require_primary(ReplicationKind::Performance)?;
        match config.paths_filters.get(id) {
            Some(f) => Ok(Response::with_data(filter_data(f))),
            None => Err(CoreError::NotFound),
        }
    }

    /// `POST sys/replication/performance/primary/paths-filter/:id` (`mode`, `paths`).
    pub(super) async fn paths_filter_write(
        &self,
        id: &str,
        req: &Request,
    ) -> Result<Response, CoreError> {
        let mode = match crate::util::str_param(&req.data, "mode")?.unwrap_or("allow") {
            "allow" => FilterMode::Allow,
            "deny" => FilterMode::Deny,
            other => {
                return Err(CoreError::InvalidRequest(format!(
                    "invalid mode {other:?}: use \"allow\" or \"deny\""
                )));
            }
        };
        let paths = crate::params::string_list_param(&req.data, "paths")?.unwrap_or_default();
        let mut normalized: Vec<String> = paths.iter().filter_map(|p| normalize_path(p)).collect();
        normalized.sort();
        normalized.dedup();
        if normalized.is_empty() {
            return Err(CoreError::InvalidRequest(
                "paths is required: the mount paths to allow or deny, e.g. [\"secret/\"]".into(),
            ));
        }
        if id.is_empty() || id.contains('/') {
            return Err(CoreError::InvalidRequest(
                "the filter id (the secondary's id) is missing or malformed".into(),
            ));
        }
        let kind = ReplicationKind::Performance;
        let _ops = self.perf.ops.lock().await;
        let mut config = self.require_primary(kind)?;
        config.paths_filters.insert(
            id.to_owned(),
            PathsFilter {
                mode,
                paths: normalized,
            },
        );
        self.store_filters(config).await?;
        tracing::info!(secondary_id = %id, mode = mode.as_str(), "performance paths filter set");
        Ok(Response::no_content())
    }

    /// `DELETE sys/replication/performance/primary/paths-filter/:id`.
    pub(super) async fn paths_filter_delete(&self, id: &str) -> Result<Response, CoreError> {
        let kind = ReplicationKind::Performance;
        let _ops = self.perf.ops.lock().await;
        let mut config = self.require_primary(kind)?;
        if config.paths_filters.remove(id).is_some() {
            self.store_filters(config).await?;
            tracing::info!(secondary_id = %id, "performance paths filter removed");
        }
        Ok(Response::no_content())
    }

    /// Persists a changed filter set and makes it the one in force (live streams of the
    /// changed secondary end at their next batch or heartbeat and resync).
    async fn store_filters(&self, config: ReplConfig) -> Result<(), CoreError> {
        self.write_repl_config(ReplicationKind::Performance, &config)
            .await?;
        self.perf.filters.refresh(Some(&config));
        *crate::util::lock(&self.perf.config) = Some(config);
        Ok(())
    }

    /// `GET sys/replication/performance/primary/dynamic-filter/:id`.
    pub(super) async fn primary_dynamic_filter(&self, id: &str) -> Result<Response, CoreError> {
        self.require_primary(ReplicationKind::Performance)?;
        let mut data = Map::new();
        data.insert(
            "dynamic_filtered_mounts".into(),
            json!(self.perf.filters.filtered_mounts(id)),
        );
        data.insert("dynamic_filtered_namespaces".into(), json!([]));
        Ok(Response::with_data(data))
    }

    /// `GET sys/replication/performance/secondary/dynamic-filter/:id`: the mounts this
    /// secondary hides because the filter its primary stated keeps their data away.
    pub(super) fn secondary_dynamic_filter(&self, id: &str) -> Result<Response, CoreError> {
        let config = self
            .perf
            .config()
            .filter(|c| c.mode == ReplicationMode::Secondary)
            .ok_or_else(|| CoreError::InvalidRequest("Not a performance secondary.".into()))?;
        let ours = config
            .secondary
            .as_ref()
            .is_some_and(|s| s.secondary_id == id);
        let mounts = if ours {
            crate::util::lock(&self.perf.hidden_mounts).clone()
        } else {
            Vec::new()
        };
        let mut data = Map::new();
        data.insert("dynamic_filtered_mounts".into(), json!(mounts));
        data.insert("dynamic_filtered_namespaces".into(), json!([]));
        Ok(Response::with_data(data))
    }

    /// The path filter this cluster's data passes through, when it is a performance
    /// secondary whose primary stated one.
    pub(crate) fn secondary_paths_filter(&self) -> Option<PathsFilter> {
        let config = crate::util::lock(&self.perf.config);
        let c = config.as_ref()?;
        if c.mode != ReplicationMode::Secondary {
            return None;
        }
        c.secondary.as_ref()?.paths_filter.clone()
    }

    /// Adopts the filter a performance primary stated at connect (persisted, so a restart
    /// hides the same mounts before it reconnects) and reloads the mount table if it changed.
    pub(super) async fn adopt_paths_filter(&self, wire: Option<PathsFilterWire>) {
        let filter = wire.map(|w| PathsFilter {
            mode: if w.deny {
                FilterMode::Deny
            } else {
                FilterMode::Allow
            },
            paths: w.paths,
        });
        let Ok(_ops) = self.perf.ops.try_lock() else {
            // A mode change is running; the next connection states the filter again.
            return;
        };
        let Some(mut config) = self.perf.config() else {
            return;
        };
        let Some(s) = config.secondary.as_mut() else {
            return;
        };
        if s.paths_filter == filter {
            return;
        }
        s.paths_filter = filter;
        if let Err(e) = self
            .write_repl_config(ReplicationKind::Performance, &config)
            .await
        {
            tracing::warn!(error = %e, "persisting the stated paths filter failed");
            return;
        }
        *crate::util::lock(&self.perf.config) = Some(config);
        if let Err(e) = self.load_mounts().await {
            tracing::warn!(error = %e, "reloading the mount table after a paths filter change failed");
        }
        tracing::info!("performance secondary adopted its primary's paths filter");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(mode: FilterMode, paths: &[&str]) -> PathFilters {
        let f = PathFilters::default();
        let mut config = ReplConfig {
            mode: ReplicationMode::Primary,
            ..ReplConfig::default()
        };
        config.paths_filters.insert(
            "pr-1".into(),
            PathsFilter {
                mode,
                paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            },
        );
        f.refresh(Some(&config));
        let mut inner = lock_write(&f.inner);
        inner.mounts.insert("u-secret".into(), "secret/".into());
        inner.mounts.insert("u-team".into(), "team/".into());
        inner.mounts.insert("u-up".into(), "auth/userpass/".into());
        drop(inner);
        f
    }

    #[test]
    fn deny_withholds_only_the_listed_mounts_data() {
        // Why: a deny filter must keep a mount's data off the secondary, and nothing else.
        let f = filters(FilterMode::Deny, &["team/"]);

        assert!(f.allows("pr-1", "logical/u-secret/a"));
        assert!(!f.allows("pr-1", "logical/u-team/a"));
        assert!(f.allows("pr-1", "auth/u-up/user/bob"));
        assert!(f.allows("pr-1", "core/mounts"));
        assert!(f.allows("pr-1", "sys/policy/p"));
        assert!(f.allows("other", "logical/u-team/a"));
        assert_eq!(f.filtered_mounts("pr-1"), vec!["team/"]);
    }

    #[test]
    fn allow_sends_only_the_listed_mounts_and_the_deletes_of_a_gone_one() {
        // Why: in allow mode everything unlisted stays home; a mount that was unmounted is no
        // longer in the map, and the deletes of its data must reach every secondary holding it.
        let f = filters(FilterMode::Allow, &["secret/", "auth/userpass/"]);

        assert!(f.allows("pr-1", "logical/u-secret/a"));
        assert!(!f.allows("pr-1", "logical/u-team/a"));
        assert!(f.allows("pr-1", "auth/u-up/user/bob"));
        assert!(f.allows("pr-1", "logical/u-unmounted/a"));
        assert!(f.allows("pr-1", "core/keyring"));
    }

    #[test]
    fn the_digest_changes_when_a_mount_moves_across_the_filter() {
        // Why: a remount keeps its uuid; without a new digest the data would stay where the
        // filter no longer lets it be (or never arrive where it now may).
        let f = filters(FilterMode::Deny, &["team/"]);
        let before = f.digest("pr-1");
        lock_write(&f.inner)
            .mounts
            .insert("u-secret".into(), "team/moved/".into());

        assert_ne!(f.digest("pr-1"), before);
    }

    #[test]
    fn the_digest_changes_with_the_filter_and_not_with_path_order() {
        // Why: the digest forces a resync exactly when what travels may have changed.
        let a = filters(FilterMode::Deny, &["team/", "secret/"]);
        let b = filters(FilterMode::Deny, &["secret/", "team/"]);
        let c = filters(FilterMode::Allow, &["secret/", "team/"]);

        assert_eq!(a.digest("pr-1"), b.digest("pr-1"));
        assert_ne!(a.digest("pr-1"), c.digest("pr-1"));
        assert_eq!(a.digest("nobody"), unfiltered_digest());
        assert_ne!(a.digest("pr-1"), unfiltered_digest());
    }

    #[test]
    fn filter_paths_are_normalized() {
        // Why: `secret` and `/secret/` name the same mount; an empty path names none.
        assert_eq!(normalize_path("secret").as_deref(), Some("secret/"));
        assert_eq!(normalize_path("/secret/").as_deref(), Some("secret/"));
        assert_eq!(normalize_path("  "), None);
    }
}

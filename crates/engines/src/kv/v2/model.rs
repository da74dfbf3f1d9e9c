//! The stored records of a KV v2 mount and their JSON views.
//!
//! Layout under the mount's view: `config` (mount settings), `meta/<key>` (one record per
//! key: settings plus the state of every retained version), `versions/<sha256(key)>/<n>`
//! (the data of version n). Version data is keyed by a hash so that any key, including one
//! containing `/`, maps to one flat directory that can be deleted without listing.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use strongroom_logical::{BackendError, View};

/// Versions kept per key when neither the key nor the mount sets `max_versions`.
pub(crate) const DEFAULT_MAX_VERSIONS: u64 = 10;

/// Mount-wide settings (`<m>/config`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub(crate) struct V2Config {
    pub max_versions: u64,
    pub cas_required: bool,
    /// Seconds; 0 = versions never expire.
    pub delete_version_after: u64,
}

/// The state of one version.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct VersionMeta {
    /// Unix nanoseconds.
    pub created_time: u64,
    /// Unix nanoseconds; in the future when scheduled by `delete_version_after`.
    pub deletion_time: Option<u64>,
    pub destroyed: bool,
}

impl VersionMeta {
    /// Soft-deleted (deletion time reached) or destroyed: reads answer 404 with metadata.
    pub fn unreadable(&self, now: u64) -> bool {
        self.destroyed || self.deletion_time.is_some_and(|t| t <= now)
    }

    /// `{"created_time", "deletion_time", "destroyed"}` as metadata listings show it.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("created_time".into(), json!(time_str(self.created_time)));
        m.insert(
            "deletion_time".into(),
            json!(self.deletion_time.map(time_str).unwrap_or_default()),
        );
        m.insert("destroyed".into(), json!(self.destroyed));
        m
    }
}

/// Everything known about one key.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub(crate) struct KeyMetadata {
    pub created_time: u64,
    pub updated_time: u64,
    pub current_version: u64,
    /// 0 until versions have been pruned, then the oldest retained version.
    pub oldest_version: u64,
    pub max_versions: u64,
    pub cas_required: bool,
    /// Seconds; 0 = inherit the mount's.
    pub delete_version_after: u64,
    pub custom_metadata: BTreeMap<String, String>,
    pub versions: BTreeMap<u64, VersionMeta>,
}

impl KeyMetadata {
    /// A fresh record created now.
    pub fn new(now: u64) -> Self {
        KeyMetadata {
            created_time: now,
            updated_time: now,
            ..KeyMetadata::default()
        }
    }

    /// `custom_metadata` as JSON: `null` when empty, as Vault answers.
    pub fn custom_json(&self) -> Value {
        if self.custom_metadata.is_empty() {
            Value::Null
        } else {
            json!(self.custom_metadata)
        }
    }

    /// The version metadata returned by reads and writes (`data.metadata`).
    pub fn version_json(&self, version: u64, vm: &VersionMeta) -> Value {
        let mut m = vm.to_json();
        m.insert("custom_metadata".into(), self.custom_json());
        m.insert("version".into(), json!(version));
        Value::Object(m)
    }

    /// The `GET metadata/:path` answer.
    pub fn to_json(&self) -> Map<String, Value> {
        let versions: Map<String, Value> = self
            .versions
            .iter()
            .map(|(n, v)| (n.to_string(), Value::Object(v.to_json())))
            .collect();
        let mut m = Map::new();
        m.insert("cas_required".into(), json!(self.cas_required));
        m.insert("created_time".into(), json!(time_str(self.created_time)));
        m.insert("current_version".into(), json!(self.current_version));
        m.insert("custom_metadata".into(), self.custom_json());
        m.insert(
            "delete_version_after".into(),
            json!(go_duration(self.delete_version_after)),
        );
        m.insert("max_versions".into(), json!(self.max_versions));
        m.insert("oldest_version".into(), json!(self.oldest_version));
        m.insert("updated_time".into(), json!(time_str(self.updated_time)));
        m.insert("versions".into(), Value::Object(versions));
        m
    }
}

/// Storage key of a key's metadata.
pub(crate) fn meta_key(key: &str) -> String {
    format!("meta/{key}")
}

/// Storage directory of a key's version data.
pub(crate) fn versions_dir(key: &str) -> String {
    format!("versions/{}/", hex::encode(Sha256::digest(key.as_bytes())))
}

/// Storage key of one version's data.
pub(crate) fn version_key(key: &str, version: u64) -> String {
    format!("{}{version}", versions_dir(key))
}

/// Storage key of the mount settings.
pub(crate) const CONFIG_KEY: &str = "config";

/// Loads a JSON record, `None` when absent.
pub(crate) async fn load<T: serde::de::DeserializeOwned>(
    view: &View<'_>,
    key: &str,
) -> Result<Option<T>, BackendError> {
    match view.get(key).await? {
        None => Ok(None),
        Some(raw) => serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| BackendError::Internal(format!("KV v2 record {key:?} is corrupt: {e}"))),
    }
}

/// Encodes a record for storage.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, BackendError> {
    serde_json::to_vec(value)
        .map_err(|e| BackendError::Internal(format!("encoding KV record: {e}")))
}

/// Now, in Unix nanoseconds.
pub(crate) fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// RFC 3339 with nanoseconds, as Vault prints KV times.
pub(crate) fn time_str(nanos: u64) -> String {
    strongroom_logical::time::rfc3339(UNIX_EPOCH + Duration::from_nanos(nanos), false)
}

/// Formats whole seconds as Go's `time.Duration.String()`: `0s`, `30s`, `30m0s`, `1h0m0s`.
pub(crate) fn go_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go() {
        // Why: clients compare delete_version_after strings such as "30m0s" exactly.
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(30), "30s");
        assert_eq!(go_duration(1800), "30m0s");
        assert_eq!(go_duration(3600), "1h0m0s");
        assert_eq!(go_duration(768 * 3600 + 61), "768h1m1s");
    }

    #[test]
    fn deleted_and_destroyed_versions_are_unreadable() {
        // Why: a scheduled deletion must only take effect once its time has come.
        let mut v = VersionMeta {
            created_time: 1,
            deletion_time: Some(100),
            destroyed: false,
        };
        assert!(!v.unreadable(99));
        assert!(v.unreadable(100));
        v.deletion_time = None;
        v.destroyed = true;
        assert!(v.unreadable(0));
    }

    #[test]
    fn version_data_of_different_keys_never_share_a_directory() {
        // Why: `a` and `a/b` must not see each other's versions.
        assert_ne!(versions_dir("a"), versions_dir("a/b"));
        assert!(version_key("a", 3).ends_with("/3"));
    }
}

//! The mount table: which engine serves which path prefix.
//!
//! Each mount gets a random UUID and keeps its data under `logical/<uuid>/`, so moving or
//! renaming a mount never rewrites data, and disabling one deletes exactly its own keys. The
//! table itself is one barrier-encrypted record, replicated with everything shared.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{Core, CoreError};

/// Storage key of the secrets mount table.
pub(crate) const MOUNTS_KEY: &str = "core/mounts";

/// Engine types this build can mount.
pub(crate) const SUPPORTED_ENGINES: &[&str] = &["kv"];

/// Paths that can never be mounted over.
const RESERVED: &[&str] = &["sys/", "auth/", "cubbyhole/", "identity/"];

/// One secrets engine mount.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MountEntry {
    /// With trailing slash: `secret/`.
    pub path: String,
    #[serde(rename = "type")]
    pub engine: String,
    pub uuid: String,
    pub accessor: String,
    pub description: String,
    pub options: Map<String, Value>,
    pub local: bool,
}

impl MountEntry {
    /// The storage prefix of this mount's data.
    pub fn data_prefix(&self) -> String {
        format!("logical/{}/", self.uuid)
    }

    /// The `sys/mounts` view of this entry.
    pub fn to_json(&self) -> Value {
        json!({
            "type": self.engine,
            "description": self.description,
            "accessor": self.accessor,
            "uuid": self.uuid,
            "local": self.local,
            "seal_wrap": false,
            "external_entropy_access": false,
            "options": if self.options.is_empty() { Value::Null } else { Value::Object(self.options.clone()) },
            "config": {"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false},
            "plugin_version": "",
            "running_plugin_version": "",
            "running_sha256": "",
        })
    }
}

/// All secrets mounts, ordered by path.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MountTable {
    pub entries: Vec<MountEntry>,
}

impl MountTable {
    /// Finds the mount owning `path` by longest prefix; returns it and the path below it.
    pub fn resolve<'a>(&self, path: &'a str) -> Option<(&MountEntry, &'a str)> {
        self.entries
            .iter()
            .filter(|m| path.starts_with(&m.path) || format!("{path}/") == m.path)
            .max_by_key(|m| m.path.len())
            .map(|m| (m, path.get(m.path.len()..).unwrap_or("")))
    }

    /// Forgets every mount (on seal).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// Normalizes a mount path to `name/` and rejects reserved or malformed ones.
pub(crate) fn normalize_mount_path(path: &str) -> Result<String, CoreError> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Err(CoreError::InvalidRequest(
            "mount path must not be empty".into(),
        ));
    }
    if trimmed.contains("..") || trimmed.contains("//") {
        return Err(CoreError::InvalidRequest(format!(
            "invalid mount path {path:?}"
        )));
    }
    let p = format!("{trimmed}/");
    if RESERVED.iter().any(|r| p.starts_with(r)) {
        return Err(CoreError::InvalidRequest(format!(
            "cannot mount at reserved path {p:?}"
        )));
    }
    Ok(p)
}

impl Core {
    /// Loads the mount table after unseal.
    pub(crate) async fn load_mounts(&self) -> Result<(), CoreError> {
        let table = match self.barrier.get(MOUNTS_KEY).await? {
            Some(raw) => serde_json::from_slice(&raw)
                .map_err(|e| CoreError::Internal(format!("mount table is corrupt: {e}")))?,
            None => MountTable::default(),
        };
        *self.mounts.write().await = table;
        Ok(())
    }

    /// Mounts created at initialization (none yet for a production server).
    pub(crate) async fn mount_defaults(&self) -> Result<(), CoreError> {
        self.load_mounts().await
    }

    /// Enables a secrets engine at `path`.
    pub async fn mount(
        &self,
        path: &str,
        engine: &str,
        description: &str,
        options: Map<String, Value>,
    ) -> Result<(), CoreError> {
        if !SUPPORTED_ENGINES.contains(&engine) {
            return Err(CoreError::InvalidRequest(format!(
                "plugin not found in the catalog: {engine} (supported: {})",
                SUPPORTED_ENGINES.join(", ")
            )));
        }
        if let Some(v) = options.get("version").and_then(|v| {
            v.as_str()
                .map(str::to_owned)
                .or_else(|| v.as_i64().map(|n| n.to_string()))
        }) && v != "1"
        {
            return Err(CoreError::InvalidRequest(format!(
                "kv version {v} is not available yet; mount with version 1"
            )));
        }
        let path = normalize_mount_path(path)?;
        let mut table = self.mounts.write().await;
        if table
            .entries
            .iter()
            .any(|m| m.path.starts_with(&path) || path.starts_with(&m.path))
        {
            return Err(CoreError::InvalidRequest(format!(
                "path is already in use at {path}"
            )));
        }
        let entry = MountEntry {
            path,
            engine: engine.to_owned(),
            uuid: uuid::Uuid::new_v4().to_string(),
            accessor: format!(
                "{engine}_{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            description: description.to_owned(),
            options,
            local: false,
        };
        let mut next = table.clone();
        next.entries.push(entry);
        next.entries.sort_by(|a, b| a.path.cmp(&b.path));
        self.persist_mounts(&next).await?;
        *table = next;
        Ok(())
    }

    /// Disables the mount at `path` and deletes its data. Absent mounts succeed (Vault: 204).
    pub async fn unmount(&self, path: &str) -> Result<(), CoreError> {
        let path = normalize_mount_path(path)?;
        let mut table = self.mounts.write().await;
        let Some(entry) = table.entries.iter().find(|m| m.path == path).cloned() else {
            return Ok(());
        };
        let mut next = table.clone();
        next.entries.retain(|m| m.path != path);
        // Remove the entry first so no request reaches half-deleted data, then the data.
        self.persist_mounts(&next).await?;
        *table = next;
        drop(table);
        self.delete_prefix(&entry.data_prefix()).await
    }

    /// Lists the mounts as `sys/mounts` shows them.
    pub async fn mounts_json(&self) -> Map<String, Value> {
        let table = self.mounts.read().await;
        let mut out = Map::new();
        for m in &table.entries {
            out.insert(m.path.clone(), m.to_json());
        }
        out.insert(
            "sys/".into(),
            json!({"type": "system", "description": "system endpoints used for control, policy and debugging", "local": false, "seal_wrap": false, "options": null, "accessor": "system", "uuid": "", "config": {"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false}}),
        );
        out
    }

    async fn persist_mounts(&self, table: &MountTable) -> Result<(), CoreError> {
        let raw = serde_json::to_vec(table)
            .map_err(|e| CoreError::Internal(format!("encoding mount table: {e}")))?;
        self.barrier.put(MOUNTS_KEY, &raw).await?;
        Ok(())
    }

    /// Deletes every key below `prefix`, in bounded batches.
    pub(crate) async fn delete_prefix(&self, prefix: &str) -> Result<(), CoreError> {
        const PAGE: usize = 512;
        loop {
            let page = self.storage.scan(prefix, None, PAGE).await?;
            if page.is_empty() {
                return Ok(());
            }
            let ops = page
                .into_iter()
                .map(|(key, _)| strongroom_storage::Op::Delete { key })
                .collect();
            self.storage.write(ops).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> MountEntry {
        MountEntry {
            path: path.into(),
            engine: "kv".into(),
            uuid: path.into(),
            accessor: String::new(),
            description: String::new(),
            options: Map::new(),
            local: false,
        }
    }

    #[test]
    fn resolve_picks_longest_prefix() {
        // Why: nested mounts must route to the innermost engine.
        let table = MountTable {
            entries: vec![entry("a/"), entry("a/b/")],
        };
        assert_eq!(
            table.resolve("a/b/c").map(|(m, r)| (m.path.as_str(), r)),
            Some(("a/b/", "c"))
        );
        assert_eq!(
            table.resolve("a/x").map(|(m, r)| (m.path.as_str(), r)),
            Some(("a/", "x"))
        );
        assert!(table.resolve("zzz/x").is_none());
    }

    #[test]
    fn reserved_paths_are_refused() {
        // Why: a mount over sys/ would shadow the control plane.
        assert!(normalize_mount_path("sys").is_err());
        assert!(normalize_mount_path("../x").is_err());
        assert_eq!(normalize_mount_path("/kv/").unwrap(), "kv/");
    }
}

//! The mount table: which engine or auth method serves which path prefix.
//!
//! Each mount gets a random UUID and keeps its data under a prefix derived from it
//! (`logical/<uuid>/`, `auth/<uuid>/`, `local/<uuid>/`), so moving a mount never rewrites
//! data and disabling one deletes exactly its own keys. The table is barrier-encrypted and
//! stored as four records (secrets/auth × shared/local) so that replication can keep local
//! mounts out of performance secondaries.

mod entry;
mod table;

pub use entry::{AUTH_PREFIX, MountConfig, MountEntry};
pub use table::MountTable;
pub(crate) use table::{normalize_any, normalize_auth_path, normalize_mount_path};

use serde_json::{Map, Value, json};
use strongroom_barrier::BarrierOp;

use crate::{Core, CoreError};
use entry::system_mount_json;
use table::TableKind;

/// Secrets engine types this build can mount (`kv-v1`/`kv-v2` are aliases of `kv`).
pub(crate) const SECRET_ENGINES: &[&str] = &["kv", "generic", "kv-v1", "kv-v2"];
/// Auth method types this build can enable.
pub(crate) const AUTH_METHODS: &[&str] = &["userpass", "approle"];
/// Mount types that exist once and can be neither disabled nor moved.
const SINGLETONS: &[&str] = &["cubbyhole", "token", "system", "identity"];

/// What `sys/mounts/:path` or `sys/auth/:path` asks to enable.
#[derive(Debug, Clone, Default)]
pub struct MountSpec {
    /// As the client typed it; `auth` decides which namespace it lands in.
    pub path: String,
    pub engine: String,
    pub description: String,
    pub options: Map<String, Value>,
    pub local: bool,
    pub seal_wrap: bool,
    pub config: MountConfig,
    /// Enable an auth method (under `auth/`) rather than a secrets engine.
    pub auth: bool,
}

/// A change requested by `.../tune`; `None` leaves a setting alone.
#[derive(Debug, Clone, Default)]
pub struct TuneSpec {
    pub default_lease_ttl: Option<i64>,
    pub max_lease_ttl: Option<i64>,
    pub description: Option<String>,
    pub force_no_cache: Option<bool>,
    pub token_type: Option<String>,
    pub listing_visibility: Option<String>,
    pub audit_non_hmac_request_keys: Option<Vec<String>>,
    pub audit_non_hmac_response_keys: Option<Vec<String>>,
    pub passthrough_request_headers: Option<Vec<String>>,
    pub allowed_response_headers: Option<Vec<String>>,
    pub options: Option<Map<String, Value>>,
}

/// What a tune did that the caller should tell the client about.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TuneOutcome {
    /// The KV mount was upgraded from version 1 to 2 (its data migrated).
    pub upgraded_kv: bool,
}

/// Stringifies option values as Vault stores them (`map[string]string`), and validates the
/// KV version.
pub(crate) fn normalize_options(
    engine: &str,
    options: &Map<String, Value>,
) -> Result<Map<String, Value>, CoreError> {
    let mut out = Map::new();
    for (k, v) in options {
        let s = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => continue,
            other => {
                return Err(CoreError::InvalidRequest(format!(
                    "invalid value for option {k:?}: expected a string, got {other}"
                )));
            }
        };
        out.insert(k.clone(), Value::String(s));
    }
    if matches!(engine, "kv" | "generic")
        && let Some(v) = out.get("version").and_then(Value::as_str)
        && !matches!(v, "" | "1" | "2")
    {
        return Err(CoreError::InvalidRequest(format!(
            "invalid kv version {v:?}: use \"1\" or \"2\""
        )));
    }
    Ok(out)
}

/// Validates a `token_type` setting of an auth mount.
pub(crate) fn validate_token_type(t: &str) -> Result<(), CoreError> {
    match t {
        "" | "default-service" | "default-batch" | "service" | "batch" => Ok(()),
        other => Err(CoreError::InvalidRequest(format!(
            "invalid token_type {other:?}: use default-service, default-batch, service or batch"
        ))),
    }
}

/// Validates a `listing_visibility` setting.
pub(crate) fn validate_visibility(v: &str) -> Result<(), CoreError> {
    match v {
        "" | "unauth" | "hidden" => Ok(()),
        other => Err(CoreError::InvalidRequest(format!(
            "invalid listing_visibility {other:?}: use \"unauth\" or \"hidden\""
        ))),
    }
}

/// `<type>_<8 hex>` for secrets mounts, `auth_<type>_<8 hex>` for auth methods.
fn new_accessor(engine: &str, auth: bool) -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    let short = hex.get(..8).unwrap_or(&hex);
    if auth {
        format!("auth_{engine}_{short}")
    } else {
        format!("{engine}_{short}")
    }
}

/// The built-in mounts every initialized server has.
fn builtin_entries() -> Vec<MountEntry> {
    let make = |path: &str, engine: &str, description: &str, local: bool, auth: bool| MountEntry {
        path: path.into(),
        engine: engine.into(),
        uuid: uuid::Uuid::new_v4().to_string(),
        accessor: new_accessor(engine, auth),
        description: description.into(),
        options: Map::new(),
        local,
        config: MountConfig::default(),
        seal_wrap: false,
    };
    vec![
        make(
            "cubbyhole/",
            "cubbyhole",
            "per-token private secret storage",
            true,
            false,
        ),
        make(
            "auth/token/",
            "token",
            "token based credentials",
            false,
            true,
        ),
    ]
}

/// Ensures the built-in mounts are present; returns whether any was added.
fn ensure_builtins(table: &mut MountTable) -> bool {
    let mut added = false;
    for b in builtin_entries() {
        if table.get(&b.path).is_none() {
            table.insert(b);
            added = true;
        }
    }
    added
}

impl Core {
    /// Finds the mount (secrets or auth) that owns `path`, and the path below it.
    pub(crate) async fn resolve_mount(&self, path: &str) -> Option<(MountEntry, String)> {
        let table = self.mounts.read().await;
        table
            .resolve(path)
            .map(|(m, rest)| (m.clone(), rest.to_owned()))
    }

    /// The mount at exactly `path` (router form, trailing slash).
    pub(crate) async fn mount_entry(&self, path: &str) -> Option<MountEntry> {
        self.mounts.read().await.get(path).cloned()
    }

    /// Loads the four mount table records after unseal.
    pub(crate) async fn load_mounts(&self) -> Result<(), CoreError> {
        let mut table = MountTable::default();
        for kind in TableKind::ALL {
            if let Some(raw) = self.barrier.get(kind.key()).await? {
                let part: MountTable = serde_json::from_slice(&raw).map_err(|e| {
                    CoreError::Internal(format!("mount table {} is corrupt: {e}", kind.key()))
                })?;
                for e in part.entries {
                    table.insert(e);
                }
            }
        }
        // Tables written before the built-ins existed: add them, and store them so their
        // accessors stay stable. A node that cannot write (a follower) still routes them.
        if ensure_builtins(&mut table)
            && let Err(e) = self.persist_mounts(&table).await
        {
            tracing::warn!(error = %e, "could not store the built-in mounts; will retry on next unseal");
        }
        self.perf.filters.set_mounts(&table);
        // A performance secondary hides the mounts whose data its primary's filter keeps
        // away: they would answer every read with nothing and take writes it never sees.
        let hidden = match self.secondary_paths_filter() {
            Some(filter) => {
                let (shown, hidden): (Vec<_>, Vec<_>) = std::mem::take(&mut table.entries)
                    .into_iter()
                    .partition(|e| crate::replication::mount_visible(&filter, e));
                table.entries = shown;
                let mut paths: Vec<String> = hidden.into_iter().map(|e| e.path).collect();
                paths.sort();
                paths
            }
            None => Vec::new(),
        };
        *crate::util::lock(&self.perf.hidden_mounts) = hidden;
        *self.mounts.write().await = table;
        Ok(())
    }

    /// Creates the built-in mounts (`cubbyhole/`, `auth/token/`) at initialization.
    pub(crate) async fn mount_defaults(&self) -> Result<(), CoreError> {
        self.load_mounts().await?;
        let table = self.mounts.read().await;
        self.persist_mounts(&table).await
    }

    /// Enables a secrets engine at `path` (convenience for the dev server and tests).
    pub async fn mount(
        &self,
        path: &str,
        engine: &str,
        description: &str,
        options: Map<String, Value>,
    ) -> Result<(), CoreError> {
        self.enable_mount(MountSpec {
            path: path.into(),
            engine: engine.into(),
            description: description.into(),
            options,
            ..MountSpec::default()
        })
        .await
        .map(|_| ())
    }

    /// Enables a secrets engine or auth method; returns the new entry.
    pub async fn enable_mount(&self, spec: MountSpec) -> Result<MountEntry, CoreError> {
        let (path, engine, mut options) = if spec.auth {
            if !AUTH_METHODS.contains(&spec.engine.as_str()) {
                return Err(plugin_not_found(&spec.engine));
            }
            let path = normalize_auth_path(&spec.path)?;
            if path == "auth/token/" {
                return Err(CoreError::InvalidRequest(
                    "cannot mount at reserved path \"auth/token/\"".into(),
                ));
            }
            let options = normalize_options(&spec.engine, &spec.options)?;
            (path, spec.engine.clone(), options)
        } else {
            if !SECRET_ENGINES.contains(&spec.engine.as_str()) {
                return Err(plugin_not_found(&spec.engine));
            }
            let path = normalize_mount_path(&spec.path)?;
            let mut options = normalize_options("kv", &spec.options)?;
            let engine = match spec.engine.as_str() {
                "kv-v1" => {
                    options.insert("version".into(), json!("1"));
                    "kv"
                }
                "kv-v2" => {
                    options.insert("version".into(), json!("2"));
                    "kv"
                }
                other => other,
            };
            (path, engine.to_owned(), options)
        };
        if options.get("version").and_then(Value::as_str) == Some("") {
            options.remove("version");
        }
        validate_token_type(&spec.config.token_type)?;
        validate_visibility(&spec.config.listing_visibility)?;
        check_ttls(
            self,
            spec.config.default_lease_ttl,
            spec.config.max_lease_ttl,
        )?;
        let entry = MountEntry {
            path: path.clone(),
            accessor: new_accessor(&engine, spec.auth),
            engine,
            uuid: uuid::Uuid::new_v4().to_string(),
            description: spec.description,
            options,
            local: spec.local,
            config: spec.config,
            seal_wrap: spec.seal_wrap,
        };
        let mut table = self.mounts.write().await;
        if table.conflicts(&path) {
            return Err(CoreError::InvalidRequest(format!(
                "path is already in use at {path}"
            )));
        }
        let mut next = table.clone();
        next.insert(entry.clone());
        self.persist_mounts(&next).await?;
        *table = next;
        Ok(entry)
    }

    /// Disables the secrets engine at `path` and deletes its data (absent: Ok, as Vault).
    pub async fn unmount(&self, path: &str) -> Result<(), CoreError> {
        self.disable_mount(&normalize_mount_path(path)?).await
    }

    /// Disables the mount at `path` (router form): revokes its leases and the tokens it
    /// issued, removes the entry, then deletes its data. Absent mounts succeed.
    pub(crate) async fn disable_mount(&self, path: &str) -> Result<(), CoreError> {
        let Some(entry) = self.mount_entry(path).await else {
            return Ok(());
        };
        if SINGLETONS.contains(&entry.engine.as_str()) {
            return Err(CoreError::InvalidRequest(format!(
                "cannot unmount {:?}: {} mounts are built in",
                entry.path, entry.engine
            )));
        }
        // Revoke first: if that fails the mount stays, and the operator can retry. Lease ids
        // start with the mount path (`auth/userpass/login/bob/...`, `kv/...`).
        self.revoke_leases_under(&entry.path).await?;
        let mut table = self.mounts.write().await;
        if table.get(path).map(|e| &e.uuid) != Some(&entry.uuid) {
            // Disabled or replaced concurrently; the other request owns the cleanup.
            return Ok(());
        }
        let mut next = table.clone();
        next.entries.retain(|m| m.path != path);
        // Remove the entry before the data so no request reaches half-deleted data.
        self.persist_mounts(&next).await?;
        *table = next;
        drop(table);
        // Anything issued between the first sweep and the removal.
        self.revoke_leases_under(&entry.path).await?;
        self.delete_prefix(&entry.data_prefix()).await
    }

    /// Applies a tune to the mount at `path` (router form).
    pub(crate) async fn tune_mount(
        &self,
        path: &str,
        tune: TuneSpec,
    ) -> Result<TuneOutcome, CoreError> {
        let mut table = self.mounts.write().await;
        let mut entry = table.get(path).cloned().ok_or_else(|| {
            CoreError::InvalidRequest(format!("cannot tune {path:?}: no mount at that path"))
        })?;
        let mut outcome = TuneOutcome::default();
        let c = &mut entry.config;
        if let Some(v) = tune.default_lease_ttl {
            c.default_lease_ttl = v;
        }
        if let Some(v) = tune.max_lease_ttl {
            c.max_lease_ttl = v;
        }
        check_ttls(self, c.default_lease_ttl, c.max_lease_ttl)?;
        if let Some(v) = tune.force_no_cache {
            c.force_no_cache = v;
        }
        if let Some(v) = tune.token_type {
            if !entry.path.starts_with(AUTH_PREFIX) {
                return Err(CoreError::InvalidRequest(
                    "token_type can only be tuned on auth mounts".into(),
                ));
            }
            validate_token_type(&v)?;
            c.token_type = v;
        }
        if let Some(v) = tune.listing_visibility {
            validate_visibility(&v)?;
            c.listing_visibility = v;
        }
        if let Some(v) = tune.audit_non_hmac_request_keys {
            c.audit_non_hmac_request_keys = v;
        }
        if let Some(v) = tune.audit_non_hmac_response_keys {
            c.audit_non_hmac_response_keys = v;
        }
        if let Some(v) = tune.passthrough_request_headers {
            c.passthrough_request_headers = v;
        }
        if let Some(v) = tune.allowed_response_headers {
            c.allowed_response_headers = v;
        }
        if let Some(v) = tune.description {
            entry.description = v;
        }
        if let Some(opts) = tune.options {
            let opts = normalize_options(&entry.engine, &opts)?;
            let is_kv = matches!(entry.engine.as_str(), "kv" | "generic");
            let want = opts.get("version").and_then(Value::as_str).unwrap_or("");
            if is_kv && !want.is_empty() {
                match (entry.kv_version(), want) {
                    (1, "2") => outcome.upgraded_kv = true,
                    (2, "1") => {
                        return Err(CoreError::InvalidRequest(
                            "cannot downgrade a KV mount from version 2 to version 1".into(),
                        ));
                    }
                    _ => {}
                }
            }
            for (k, v) in opts {
                if k == "version" && v.as_str() == Some("") {
                    continue;
                }
                entry.options.insert(k, v);
            }
        }
        if outcome.upgraded_kv {
            // The write lock is held through the migration so no request sees a half-moved
            // mount; upgrades are rare and operator-initiated.
            crate::backend::upgrade_kv_v1_to_v2(self, &entry).await?;
        }
        let mut next = table.clone();
        next.entries.retain(|m| m.path != path);
        next.insert(entry);
        self.persist_mounts(&next).await?;
        *table = next;
        Ok(outcome)
    }

    /// Moves a mount to a new path; data stays where it is (keys are by UUID).
    pub(crate) async fn remount(&self, from: &str, to: &str) -> Result<MountEntry, CoreError> {
        let from = normalize_any(from)?;
        let to = normalize_any(to)?;
        if from.starts_with(AUTH_PREFIX) != to.starts_with(AUTH_PREFIX) {
            return Err(CoreError::InvalidRequest(
                "cannot move a mount between secrets engines and auth methods".into(),
            ));
        }
        if !to.starts_with(AUTH_PREFIX) {
            normalize_mount_path(&to)?;
        } else if to == "auth/token/" {
            return Err(CoreError::InvalidRequest(
                "cannot remount to reserved path \"auth/token/\"".into(),
            ));
        }
        let mut table = self.mounts.write().await;
        let mut entry = table
            .get(&from)
            .cloned()
            .ok_or_else(|| CoreError::InvalidRequest(format!("no matching mount at {from:?}")))?;
        if SINGLETONS.contains(&entry.engine.as_str()) {
            return Err(CoreError::InvalidRequest(format!(
                "cannot remount {from:?}: {} mounts are built in",
                entry.engine
            )));
        }
        let mut next = table.clone();
        next.entries.retain(|m| m.path != from);
        if next.conflicts(&to) {
            return Err(CoreError::InvalidRequest(format!(
                "path already in use at {to}"
            )));
        }
        entry.path = to;
        next.insert(entry.clone());
        self.persist_mounts(&next).await?;
        *table = next;
        Ok(entry)
    }

    /// Lists the secrets mounts as `sys/mounts` shows them.
    pub async fn mounts_json(&self) -> Map<String, Value> {
        let table = self.mounts.read().await;
        let mut out = Map::new();
        for m in table.entries.iter().filter(|m| !m.is_auth()) {
            out.insert(m.path.clone(), m.to_json());
        }
        out.insert("sys/".into(), system_mount_json());
        out
    }

    /// Lists the auth mounts as `sys/auth` shows them (keys without `auth/`).
    pub async fn auth_json(&self) -> Map<String, Value> {
        let table = self.mounts.read().await;
        let mut out = Map::new();
        for m in table.entries.iter().filter(|m| m.is_auth()) {
            out.insert(m.listing_path().to_owned(), m.to_json());
        }
        out
    }

    /// Writes the table records that changed, in one atomic batch. Only the changed ones: on
    /// a performance secondary the shared records are the primary's, and a local mount must
    /// change only the local records (a write of a shared record goes to the primary).
    async fn persist_mounts(&self, table: &MountTable) -> Result<(), CoreError> {
        let mut ops = Vec::with_capacity(4);
        let hiding = self.secondary_paths_filter();
        for kind in TableKind::ALL {
            let raw = serde_json::to_vec(&table.part(kind))
                .map_err(|e| CoreError::Internal(format!("encoding mount table: {e}")))?;
            let stored = self.barrier.get(kind.key()).await?;
            if stored.as_deref() == Some(raw.as_slice()) {
                continue;
            }
            // A performance secondary's table lacks the mounts it hides: a shared record that
            // differs only by those is unchanged.
            if let (Some(filter), Some(stored)) = (&hiding, &stored)
                && let Ok(mut part) = serde_json::from_slice::<MountTable>(stored)
            {
                part.entries
                    .retain(|e| crate::replication::mount_visible(filter, e));
                if serde_json::to_vec(&part).ok().as_deref() == Some(raw.as_slice()) {
                    continue;
                }
            }
            ops.push(BarrierOp::Put {
                key: kind.key().to_owned(),
                value: raw,
            });
        }
        if !ops.is_empty() {
            self.barrier.write(ops).await?;
        }
        // Before any request can write data to a new mount: the performance stream places
        // every key it sends by this map.
        self.perf.filters.set_mounts(table);
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

/// Vault's error for an unknown plugin type.
fn plugin_not_found(engine: &str) -> CoreError {
    CoreError::InvalidRequest(format!("plugin not found in the catalog: {engine}"))
}

/// Refuses TTLs that contradict each other. A `max_lease_ttl` above the system maximum is
/// accepted, as Vault accepts it: leases and tokens are capped at use, at the lower of the
/// two (see `MountEntry::effective_max_ttl`), so raising the system maximum later takes effect
/// without re-tuning every mount.
fn check_ttls(core: &Core, default: i64, max: i64) -> Result<(), CoreError> {
    let system_max = core.config.max_ttl().as_secs() as i64;
    if default < 0 || max < 0 {
        return Err(CoreError::InvalidRequest(
            "lease TTLs must not be negative".into(),
        ));
    }
    let effective_max = if max > 0 { max } else { system_max };
    if default > effective_max {
        return Err(CoreError::InvalidRequest(format!(
            "default_lease_ttl ({default}s) cannot be greater than max_lease_ttl ({effective_max}s)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_stored_as_strings_and_versions_checked() {
        // Why: hvac asserts options == {"version": "2"} even when it sent the integer 2.
        let mut o = Map::new();
        o.insert("version".into(), json!(2));
        let n = normalize_options("kv", &o).unwrap();
        assert_eq!(Value::Object(n), json!({"version": "2"}));
        o.insert("version".into(), json!(3));
        assert!(normalize_options("kv", &o).is_err());
        o.insert("version".into(), json!({"x": 1}));
        assert!(normalize_options("kv", &o).is_err());
    }

    #[test]
    fn accessors_follow_vault_format() {
        // Why: clients and audit entries identify mounts by accessor shape.
        let a = new_accessor("userpass", true);
        assert!(a.starts_with("auth_userpass_") && a.len() == "auth_userpass_".len() + 8);
        let s = new_accessor("kv", false);
        assert!(s.starts_with("kv_") && s.len() == 11);
    }
}

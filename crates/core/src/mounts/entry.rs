//! One mount: what it is, where its data lives, and how `sys/mounts` and `sys/auth` show it.
//!
//! The JSON shapes here are what clients assert on (hvac compares `options` exactly), so every
//! listing, read and tune answer is built from these few functions.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Auth mounts live below this prefix in the router and in their stored `path`.
pub const AUTH_PREFIX: &str = "auth/";

/// Per-mount settings (`config` in `sys/mounts`, changed by `tune`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct MountConfig {
    /// Seconds; 0 = the system default.
    pub default_lease_ttl: i64,
    /// Seconds; 0 = the system default.
    pub max_lease_ttl: i64,
    pub force_no_cache: bool,
    /// Auth mounts: `default-service`, `default-batch`, `service`, `batch`.
    pub token_type: String,
    /// `unauth` or `hidden` (empty = hidden).
    pub listing_visibility: String,
    pub audit_non_hmac_request_keys: Vec<String>,
    pub audit_non_hmac_response_keys: Vec<String>,
    pub passthrough_request_headers: Vec<String>,
    pub allowed_response_headers: Vec<String>,
}

/// One secrets engine or auth method mount.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MountEntry {
    /// With trailing slash: `secret/`; auth mounts carry the `auth/` prefix (`auth/userpass/`).
    pub path: String,
    #[serde(rename = "type")]
    pub engine: String,
    pub uuid: String,
    pub accessor: String,
    pub description: String,
    pub options: Map<String, Value>,
    pub local: bool,
    #[serde(default)]
    pub config: MountConfig,
    /// Accepted and reported; values are barrier-encrypted either way.
    #[serde(default)]
    pub seal_wrap: bool,
}

impl MountEntry {
    /// The storage prefix of this mount's data.
    pub fn data_prefix(&self) -> String {
        if self.local {
            crate::keys::local_prefix(&self.uuid)
        } else if self.is_auth() {
            crate::keys::auth_prefix(&self.uuid)
        } else {
            crate::keys::logical_prefix(&self.uuid)
        }
    }

    /// Whether this is an auth method mount.
    pub fn is_auth(&self) -> bool {
        self.path.starts_with(AUTH_PREFIX)
    }

    /// The path as `sys/mounts` or `sys/auth` keys it (auth mounts without `auth/`).
    pub fn listing_path(&self) -> &str {
        self.path.strip_prefix(AUTH_PREFIX).unwrap_or(&self.path)
    }

    /// The longest lease or token TTL this mount may hand out, in seconds: its own
    /// `max_lease_ttl` when set, never above `system_max`. A mount may be tuned above the
    /// system maximum (Vault allows it); this is where that value is capped.
    pub fn effective_max_ttl(&self, system_max: i64) -> i64 {
        match self.config.max_lease_ttl {
            m if m > 0 => m.min(system_max),
            _ => system_max,
        }
    }

    /// The KV version of this mount: 2 when `options.version` says so, else 1.
    pub fn kv_version(&self) -> u8 {
        match self.options.get("version").and_then(Value::as_str) {
            Some("2") => 2,
            _ => 1,
        }
    }

    /// The `config` object as listings show it.
    fn config_json(&self) -> Value {
        let c = &self.config;
        let mut out = Map::new();
        out.insert("default_lease_ttl".into(), json!(c.default_lease_ttl));
        out.insert("max_lease_ttl".into(), json!(c.max_lease_ttl));
        out.insert("force_no_cache".into(), json!(c.force_no_cache));
        if self.is_auth() {
            out.insert("token_type".into(), json!(self.token_type()));
        }
        insert_optional(&mut out, c);
        Value::Object(out)
    }

    /// The token type auth mounts issue by default.
    pub fn token_type(&self) -> &str {
        if self.config.token_type.is_empty() {
            "default-service"
        } else {
            &self.config.token_type
        }
    }

    /// The `options` value: `null` when there are none (hvac checks this exactly).
    pub fn options_json(&self) -> Value {
        if self.options.is_empty() {
            Value::Null
        } else {
            Value::Object(self.options.clone())
        }
    }

    /// The `sys/mounts` / `sys/auth` view of this entry.
    pub fn to_json(&self) -> Value {
        let mut out = json!({
            "type": self.engine,
            "description": self.description,
            "accessor": self.accessor,
            "uuid": self.uuid,
            "local": self.local,
            "seal_wrap": self.seal_wrap,
            "external_entropy_access": false,
            "options": self.options_json(),
            "config": self.config_json(),
            "plugin_version": "",
            "running_plugin_version": running_version(&self.engine),
            "running_sha256": "",
        });
        if self.is_auth()
            && let Value::Object(m) = &mut out
        {
            m.insert("deprecation_status".into(), json!("supported"));
        }
        out
    }

    /// The `tune` view: effective TTLs with the system defaults (seconds) filled in.
    pub fn tune_json(&self, system_default: i64, system_max: i64) -> Map<String, Value> {
        let c = &self.config;
        let pick = |own: i64, sys: i64| if own > 0 { own } else { sys };
        let mut out = Map::new();
        out.insert("description".into(), json!(self.description));
        out.insert(
            "default_lease_ttl".into(),
            json!(pick(c.default_lease_ttl, system_default)),
        );
        out.insert(
            "max_lease_ttl".into(),
            json!(pick(c.max_lease_ttl, system_max)),
        );
        out.insert("force_no_cache".into(), json!(c.force_no_cache));
        if self.is_auth() {
            out.insert("token_type".into(), json!(self.token_type()));
        }
        if !self.options.is_empty() {
            out.insert("options".into(), self.options_json());
        }
        insert_optional(&mut out, c);
        out
    }
}

/// Settings Vault shows only when they are set.
fn insert_optional(out: &mut Map<String, Value>, c: &MountConfig) {
    if !c.listing_visibility.is_empty() {
        out.insert("listing_visibility".into(), json!(c.listing_visibility));
    }
    for (name, list) in [
        (
            "audit_non_hmac_request_keys",
            &c.audit_non_hmac_request_keys,
        ),
        (
            "audit_non_hmac_response_keys",
            &c.audit_non_hmac_response_keys,
        ),
        (
            "passthrough_request_headers",
            &c.passthrough_request_headers,
        ),
        ("allowed_response_headers", &c.allowed_response_headers),
    ] {
        if !list.is_empty() {
            out.insert(name.into(), json!(list));
        }
    }
}

/// The builtin plugin version string Vault reports for an engine type.
fn running_version(engine: &str) -> String {
    match engine {
        "kv" => "v0.17.0+builtin".into(),
        _ => format!("v{}+builtin.vault", strongroom_api::VAULT_COMPAT_VERSION),
    }
}

/// The synthetic `sys/` entry: the system backend is not a stored mount but is listed.
pub fn system_mount_json() -> Value {
    json!({
        "type": "system",
        "description": "system endpoints used for control, policy and debugging",
        "accessor": "system",
        "uuid": "",
        "local": false,
        "seal_wrap": true,
        "external_entropy_access": false,
        "options": null,
        "config": {"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false,
                   "passthrough_request_headers": ["Accept"]},
        "plugin_version": "",
        "running_plugin_version": running_version("system"),
        "running_sha256": "",
    })
}

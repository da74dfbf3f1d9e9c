//! The token record and its two public renderings (the `auth` block and lookup `data`).
//!
//! Kept apart from the store so the shape clients see is defined in one place: the Vault CLI
//! and hvac read these fields by name and type.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::now_secs;

pub use strongroom_logical::TokenType;

/// What the store knows about one token.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TokenEntry {
    /// SHA-256 (hex) of the token: its storage identity and its cubbyhole key.
    pub id_hash: String,
    /// Empty for batch tokens.
    pub accessor: String,
    /// Hash of the parent token; `None` for orphans.
    pub parent_hash: Option<String>,
    pub policies: Vec<String>,
    /// Creation path (`auth/token/create`, `auth/userpass/login/bob`).
    pub path: String,
    pub meta: BTreeMap<String, String>,
    pub display_name: String,
    /// Remaining uses; 0 = unlimited; -1 = last use taken, revocation pending.
    pub num_uses: i64,
    /// Unix seconds.
    pub creation_time: i64,
    /// Current TTL in seconds (0 = no expiry): the creation TTL, or the last renewal's.
    pub ttl: i64,
    pub explicit_max_ttl: i64,
    pub period: i64,
    pub renewable: bool,
    /// Unix seconds; `None` = never expires.
    pub expire_time: Option<i64>,
    pub token_type: TokenType,
    pub orphan: bool,
    pub role: Option<String>,
    pub bound_cidrs: Vec<String>,
    /// Token entity id (always empty: no identity engine yet).
    pub entity_id: String,
    /// Unix seconds of the last renewal, if any.
    #[serde(default)]
    pub last_renewal_time: Option<i64>,
}

impl TokenEntry {
    /// Whether this token carries the root policy.
    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }

    /// Whether the token is past its expiry or has used its last use.
    pub fn is_dead(&self, now: i64) -> bool {
        self.num_uses < 0 || self.expire_time.is_some_and(|t| t <= now)
    }

    /// The lease that tracks this token's expiry: `<creation path>/<hash>`, as Vault names it.
    pub fn lease_id(&self) -> String {
        format!("{}/{}", self.path.trim_end_matches('/'), self.id_hash)
    }

    /// Remaining lifetime in seconds (0 for non-expiring tokens), never above the TTL granted.
    pub fn remaining_ttl(&self, now: i64) -> i64 {
        match self.expire_time {
            None => 0,
            Some(t) => (t - now).clamp(0, self.ttl.max(self.period)),
        }
    }

    /// The `data` of `auth/token/lookup*`. `id` is the presented token (empty for
    /// lookup-accessor).
    pub fn lookup_data(&self, id: &str) -> Map<String, Value> {
        let now = now_secs();
        let mut data = Map::new();
        data.insert("accessor".into(), json!(self.accessor));
        data.insert("creation_time".into(), json!(self.creation_time));
        data.insert("creation_ttl".into(), json!(self.ttl));
        data.insert("display_name".into(), json!(self.display_name));
        data.insert("entity_id".into(), json!(self.entity_id));
        data.insert(
            "expire_time".into(),
            match self.expire_time {
                Some(t) => json!(rfc3339_secs(t)),
                None => Value::Null,
            },
        );
        data.insert("explicit_max_ttl".into(), json!(self.explicit_max_ttl));
        data.insert("id".into(), json!(id));
        data.insert("issue_time".into(), json!(rfc3339_secs(self.creation_time)));
        data.insert(
            "meta".into(),
            if self.meta.is_empty() {
                Value::Null
            } else {
                json!(self.meta)
            },
        );
        data.insert("num_uses".into(), json!(self.num_uses.max(0)));
        data.insert("orphan".into(), json!(self.orphan));
        data.insert("path".into(), json!(self.path));
        data.insert("policies".into(), json!(self.policies));
        data.insert("renewable".into(), json!(self.renewable));
        data.insert("ttl".into(), json!(self.remaining_ttl(now)));
        data.insert("type".into(), json!(self.token_type.as_str()));
        if self.period > 0 {
            data.insert("period".into(), json!(self.period));
        }
        if let Some(role) = &self.role {
            data.insert("role".into(), json!(role));
        }
        if let Some(t) = self.last_renewal_time {
            data.insert("last_renewal".into(), json!(rfc3339_secs(t)));
            data.insert("last_renewal_time".into(), json!(t));
        }
        if !self.bound_cidrs.is_empty() {
            data.insert("bound_cidrs".into(), json!(self.bound_cidrs));
        }
        data
    }

    /// The wire `auth` block for this token, with `client_token` as given (empty for
    /// renew-accessor).
    pub fn to_auth(&self, client_token: &str) -> strongroom_api::Auth {
        let mut policies = self.policies.clone();
        policies.sort();
        policies.dedup();
        strongroom_api::Auth {
            client_token: client_token.to_owned(),
            accessor: self.accessor.clone(),
            policies: policies.clone(),
            token_policies: policies,
            metadata: if self.meta.is_empty() {
                None
            } else {
                Some(
                    self.meta
                        .iter()
                        .map(|(k, v)| (k.clone(), json!(v)))
                        .collect(),
                )
            },
            lease_duration: if self.expire_time.is_some() {
                self.ttl
            } else {
                0
            },
            renewable: self.renewable,
            token_type: self.token_type.as_str().into(),
            orphan: self.orphan,
            num_uses: self.num_uses.max(0),
            ..strongroom_api::Auth::default()
        }
    }
}

/// What a caller asks [`crate::Core::issue_token`] for.
#[derive(Debug, Clone, Default)]
pub struct IssueRequest {
    pub policies: Vec<String>,
    /// `None`: the system default TTL, or no expiry for root-policy tokens.
    pub ttl: Option<Duration>,
    /// Upper bound for `ttl` (mount or role maximum); the system maximum always applies.
    pub max_ttl: Option<Duration>,
    pub explicit_max_ttl: Option<Duration>,
    pub period: Option<Duration>,
    pub num_uses: i64,
    pub renewable: bool,
    pub display_name: String,
    pub meta: BTreeMap<String, String>,
    pub token_type: TokenType,
    /// `None` makes an orphan.
    pub parent: Option<TokenEntry>,
    pub path: String,
    pub no_default_policy: bool,
    pub bound_cidrs: Vec<String>,
    pub role: Option<String>,
    /// A caller-chosen id (dev root token, `id` parameter); normally `None`.
    pub id: Option<String>,
}

/// A freshly issued token: the secret itself (shown once) and its entry.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: zeroize::Zeroizing<String>,
    pub entry: TokenEntry,
}

impl IssuedToken {
    /// The wire `auth` block for this token.
    pub fn to_auth(&self) -> strongroom_api::Auth {
        self.entry.to_auth(&self.token)
    }
}

/// Unix seconds as RFC 3339 (what lookup prints for times).
pub(crate) fn rfc3339_secs(t: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_secs(t.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// Seconds since the epoch for a `SystemTime` (0 before 1970).
pub(crate) fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

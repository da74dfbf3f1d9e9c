//! Token roles: named templates for `auth/token/create/:role`.
//!
//! A role lets an operator hand out a narrowly-scoped "token vending" capability: whoever may
//! write `auth/token/create/<role>` gets tokens limited to the role's policies and TTLs, without
//! needing those policies themselves.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::keys::TOKEN_ROLE_PREFIX;
use crate::params::{bool_param, duration_param, int_param, string_list_param};
use crate::util::str_param;
use crate::{Core, CoreError, Request, Response};

/// One stored role. Durations are seconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub(crate) struct TokenRole {
    pub name: String,
    pub allowed_policies: Vec<String>,
    pub disallowed_policies: Vec<String>,
    pub allowed_policies_glob: Vec<String>,
    pub disallowed_policies_glob: Vec<String>,
    pub orphan: bool,
    pub renewable: bool,
    pub path_suffix: String,
    pub allowed_entity_aliases: Vec<String>,
    /// `default-service`, `default-batch`, `service` or `batch`.
    pub token_type: String,
    pub token_ttl: i64,
    pub token_max_ttl: i64,
    pub token_explicit_max_ttl: i64,
    pub token_period: i64,
    pub token_bound_cidrs: Vec<String>,
    pub token_no_default_policy: bool,
    pub token_num_uses: i64,
}

impl Default for TokenRole {
    fn default() -> Self {
        TokenRole {
            name: String::new(),
            allowed_policies: Vec::new(),
            disallowed_policies: Vec::new(),
            allowed_policies_glob: Vec::new(),
            disallowed_policies_glob: Vec::new(),
            orphan: false,
            renewable: true,
            path_suffix: String::new(),
            allowed_entity_aliases: Vec::new(),
            token_type: "default-service".into(),
            token_ttl: 0,
            token_max_ttl: 0,
            token_explicit_max_ttl: 0,
            token_period: 0,
            token_bound_cidrs: Vec::new(),
            token_no_default_policy: false,
            token_num_uses: 0,
        }
    }
}

/// Vault's glob for role policy lists: `*` matches any run of characters.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else if let Some(pos) = rest.find(part) {
            rest = &rest[pos + part.len()..];
        } else {
            return false;
        }
    }
    true
}

impl TokenRole {
    /// Whether the role lets a token carry `policy`.
    pub fn allows(&self, policy: &str) -> bool {
        let denied = self.disallowed_policies.iter().any(|p| p == policy)
            || self
                .disallowed_policies_glob
                .iter()
                .any(|g| glob_match(g, policy));
        if denied {
            return false;
        }
        if self.allowed_policies.is_empty() && self.allowed_policies_glob.is_empty() {
            return true;
        }
        policy == "default"
            || self.allowed_policies.iter().any(|p| p == policy)
            || self
                .allowed_policies_glob
                .iter()
                .any(|g| glob_match(g, policy))
    }

    /// The `data` of a role read.
    pub fn to_data(&self) -> Map<String, Value> {
        let mut d = Map::new();
        d.insert("name".into(), json!(self.name));
        d.insert("allowed_policies".into(), json!(self.allowed_policies));
        d.insert(
            "disallowed_policies".into(),
            json!(self.disallowed_policies),
        );
        d.insert(
            "allowed_policies_glob".into(),
            json!(self.allowed_policies_glob),
        );
        d.insert(
            "disallowed_policies_glob".into(),
            json!(self.disallowed_policies_glob),
        );
        d.insert("orphan".into(), json!(self.orphan));
        d.insert("renewable".into(), json!(self.renewable));
        d.insert("path_suffix".into(), json!(self.path_suffix));
        d.insert(
            "allowed_entity_aliases".into(),
            json!(self.allowed_entity_aliases),
        );
        d.insert("token_type".into(), json!(self.token_type));
        d.insert("token_ttl".into(), json!(self.token_ttl));
        d.insert("token_max_ttl".into(), json!(self.token_max_ttl));
        d.insert(
            "token_explicit_max_ttl".into(),
            json!(self.token_explicit_max_ttl),
        );
        d.insert(
            "explicit_max_ttl".into(),
            json!(self.token_explicit_max_ttl),
        );
        d.insert("token_period".into(), json!(self.token_period));
        d.insert("period".into(), json!(self.token_period));
        d.insert("token_bound_cidrs".into(), json!(self.token_bound_cidrs));
        d.insert(
            "token_no_default_policy".into(),
            json!(self.token_no_default_policy),
        );
        d.insert("token_num_uses".into(), json!(self.token_num_uses));
        d
    }

    /// Applies the parameters of a role write on top of `self`.
    fn update(&mut self, data: &Map<String, Value>) -> Result<(), CoreError> {
        let list = |name: &str| string_list_param(data, name);
        if let Some(v) = list("allowed_policies")? {
            self.allowed_policies = v;
        }
        if let Some(v) = list("disallowed_policies")? {
            self.disallowed_policies = v;
        }
        if let Some(v) = list("allowed_policies_glob")? {
            self.allowed_policies_glob = v;
        }
        if let Some(v) = list("disallowed_policies_glob")? {
            self.disallowed_policies_glob = v;
        }
        if let Some(v) = list("allowed_entity_aliases")? {
            self.allowed_entity_aliases = v;
        }
        if let Some(v) = list("token_bound_cidrs")?.or(list("bound_cidrs")?) {
            for c in &v {
                let addr = c.split('/').next().unwrap_or_default();
                if addr.parse::<std::net::IpAddr>().is_err() {
                    return Err(CoreError::InvalidRequest(format!(
                        "invalid CIDR block \"{c}\" in \"token_bound_cidrs\""
                    )));
                }
            }
            self.token_bound_cidrs = v;
        }
        if let Some(v) = bool_param(data, "orphan")? {
            self.orphan = v;
        }
        if let Some(v) = bool_param(data, "renewable")? {
            self.renewable = v;
        }
        if let Some(v) = bool_param(data, "token_no_default_policy")? {
            self.token_no_default_policy = v;
        }
        if let Some(v) = str_param(data, "path_suffix")? {
            if v.contains("..") {
                return Err(CoreError::InvalidRequest(
                    "\"path_suffix\" cannot contain \"..\"".into(),
                ));
            }
            self.path_suffix = v.trim_matches('/').to_owned();
        }
        if let Some(v) = str_param(data, "token_type")? {
            match v {
                "" | "default" => self.token_type = "default-service".into(),
                "service" | "batch" | "default-service" | "default-batch" => {
                    self.token_type = v.to_owned();
                }
                other => {
                    return Err(CoreError::InvalidRequest(format!(
                        "invalid \"token_type\" {other:?}: use service, batch, default-service or default-batch"
                    )));
                }
            }
        }
        let dur = |name: &str| duration_param(data, name).map(|d| d.map(|s| s as i64));
        if let Some(v) = dur("token_ttl")? {
            self.token_ttl = v;
        }
        if let Some(v) = dur("token_max_ttl")? {
            self.token_max_ttl = v;
        }
        if let Some(v) = dur("token_explicit_max_ttl")?.or(dur("explicit_max_ttl")?) {
            self.token_explicit_max_ttl = v;
        }
        if let Some(v) = dur("token_period")?.or(dur("period")?) {
            self.token_period = v;
        }
        if let Some(v) = int_param(data, "token_num_uses")? {
            if v < 0 {
                return Err(CoreError::InvalidRequest(
                    "\"token_num_uses\" cannot be negative".into(),
                ));
            }
            self.token_num_uses = v;
        }
        if self.token_max_ttl > 0 && self.token_ttl > self.token_max_ttl {
            return Err(CoreError::InvalidRequest(
                "\"token_ttl\" cannot be greater than \"token_max_ttl\"".into(),
            ));
        }
        if self.token_type == "batch" && (self.token_period > 0 || self.token_num_uses > 0) {
            return Err(CoreError::InvalidRequest(
                "batch tokens cannot be periodic or have limited uses".into(),
            ));
        }
        Ok(())
    }
}

/// Role names become storage keys: keep them to a safe alphabet.
fn valid_role_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
        && name != "."
        && name != ".."
}

impl Core {
    /// Reads a role; `None` when absent.
    pub(crate) async fn token_role(&self, name: &str) -> Result<Option<TokenRole>, CoreError> {
        if !valid_role_name(name) {
            return Ok(None);
        }
        let Some(raw) = self
            .barrier
            .get(&format!("{TOKEN_ROLE_PREFIX}{name}"))
            .await?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| CoreError::Internal(format!("token role is corrupt: {e}")))
    }
}

/// `LIST auth/token/roles`.
pub(crate) async fn list(core: &Core) -> Result<Response, CoreError> {
    let keys = core.barrier.list(TOKEN_ROLE_PREFIX).await?;
    if keys.is_empty() {
        return Err(CoreError::NotFound);
    }
    let mut data = Map::new();
    data.insert("keys".into(), json!(keys));
    Ok(Response::with_data(data))
}

/// `GET auth/token/roles/:name`.
pub(crate) async fn read(core: &Core, name: &str) -> Result<Response, CoreError> {
    let role = core.token_role(name).await?.ok_or(CoreError::NotFound)?;
    Ok(Response::with_data(role.to_data()))
}

/// `POST auth/token/roles/:name` (create or update) → 204.
pub(crate) async fn write(core: &Core, req: &Request, name: &str) -> Result<Response, CoreError> {
    if !valid_role_name(name) {
        return Err(CoreError::InvalidRequest(format!(
            "invalid role name {name:?}: use letters, digits, '-', '_', '.' or '@'"
        )));
    }
    let mut role = core.token_role(name).await?.unwrap_or_default();
    role.name = name.to_owned();
    role.update(&req.data)?;
    let raw = serde_json::to_vec(&role)
        .map_err(|e| CoreError::Internal(format!("encoding token role: {e}")))?;
    core.barrier
        .put(&format!("{TOKEN_ROLE_PREFIX}{name}"), &raw)
        .await?;
    Ok(Response::no_content())
}

/// `DELETE auth/token/roles/:name` → 204, also when absent.
pub(crate) async fn delete(core: &Core, name: &str) -> Result<Response, CoreError> {
    if valid_role_name(name) {
        core.barrier
            .delete(&format!("{TOKEN_ROLE_PREFIX}{name}"))
            .await?;
    }
    Ok(Response::no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_prefixes_suffixes_and_middles() {
        // Why: allowed_policies_glob is an authorization boundary for role tokens.
        assert!(glob_match("dev-*", "dev-web"));
        assert!(!glob_match("dev-*", "prod-web"));
        assert!(glob_match("*-ro", "db-ro"));
        assert!(glob_match("a*c*e", "abcde"));
        assert!(!glob_match("a*c*e", "abcd"));
        assert!(glob_match("exact", "exact"));
    }

    #[test]
    fn disallowed_wins_over_allowed() {
        // Why: an operator's deny list must hold even when a glob would allow the policy.
        let role = TokenRole {
            allowed_policies_glob: vec!["*".into()],
            disallowed_policies: vec!["admin".into()],
            ..TokenRole::default()
        };
        assert!(role.allows("web"));
        assert!(!role.allows("admin"));
    }

    #[test]
    fn role_update_parses_loose_values_and_rejects_bad_ones() {
        // Why: role writes come from the CLI as strings; bad TTL orderings must be refused.
        let mut role = TokenRole::default();
        let data = json!({"allowed_policies": "a,b", "token_period": "1h", "orphan": "true"});
        role.update(data.as_object().unwrap()).unwrap();
        assert_eq!(role.allowed_policies, ["a", "b"]);
        assert_eq!(role.token_period, 3600);
        assert!(role.orphan);
        let bad = json!({"token_ttl": "2h", "token_max_ttl": "1h"});
        assert!(role.update(bad.as_object().unwrap()).is_err());
    }
}

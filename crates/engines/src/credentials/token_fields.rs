//! The `token_*` settings every auth method stores per user or role.
//!
//! userpass users and approle roles describe the token a login earns with the same fields
//! (and the same legacy aliases older clients still send), so parsing, validation, the read
//! view and the conversion into a [`LoginRequest`] are written once here.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use strongroom_logical::params::{
    bool_param, duration_param, int_param, str_param, string_list_param,
};
use strongroom_logical::{BackendError, LoginRequest, TokenType, cidr};

/// Token types a user or role may ask for.
const TOKEN_TYPES: &[&str] = &[
    "default",
    "service",
    "batch",
    "default-service",
    "default-batch",
];

/// What a login through one user or role earns. Durations are whole seconds; 0 means "use the
/// mount or system default".
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub(crate) struct TokenFields {
    pub token_policies: Vec<String>,
    pub token_ttl: u64,
    pub token_max_ttl: u64,
    pub token_explicit_max_ttl: u64,
    pub token_period: u64,
    pub token_num_uses: i64,
    pub token_bound_cidrs: Vec<String>,
    pub token_type: String,
    pub token_no_default_policy: bool,
}

impl Default for TokenFields {
    fn default() -> Self {
        TokenFields {
            token_policies: Vec::new(),
            token_ttl: 0,
            token_max_ttl: 0,
            token_explicit_max_ttl: 0,
            token_period: 0,
            token_num_uses: 0,
            token_bound_cidrs: Vec::new(),
            token_type: "default".to_owned(),
            token_no_default_policy: false,
        }
    }
}

/// Reads `name`, falling back to its legacy alias when only the alias was sent.
fn duration_or_alias(
    data: &Map<String, Value>,
    name: &str,
    alias: &str,
) -> Result<Option<u64>, BackendError> {
    match duration_param(data, name)? {
        Some(v) => Ok(Some(v)),
        None => duration_param(data, alias),
    }
}

fn list_or_alias(
    data: &Map<String, Value>,
    name: &str,
    alias: &str,
) -> Result<Option<Vec<String>>, BackendError> {
    match string_list_param(data, name)? {
        Some(v) => Ok(Some(v)),
        None => string_list_param(data, alias),
    }
}

/// Trims, lower-cases, de-duplicates and sorts policy names, as the token store expects.
pub(crate) fn sanitize_policies(list: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = list
        .into_iter()
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

impl TokenFields {
    /// Applies the token fields present in a write request (`token_*` and the legacy aliases
    /// `policies`, `ttl`, `max_ttl`, `period`, `bound_cidrs`), then validates the result.
    pub fn update(&mut self, data: &Map<String, Value>) -> Result<(), BackendError> {
        if let Some(p) = list_or_alias(data, "token_policies", "policies")? {
            self.token_policies = sanitize_policies(p);
        }
        if let Some(v) = duration_or_alias(data, "token_ttl", "ttl")? {
            self.token_ttl = v;
        }
        if let Some(v) = duration_or_alias(data, "token_max_ttl", "max_ttl")? {
            self.token_max_ttl = v;
        }
        if let Some(v) = duration_param(data, "token_explicit_max_ttl")? {
            self.token_explicit_max_ttl = v;
        }
        if let Some(v) = duration_or_alias(data, "token_period", "period")? {
            self.token_period = v;
        }
        if let Some(v) = int_param(data, "token_num_uses")? {
            self.token_num_uses = v;
        }
        if let Some(v) = list_or_alias(data, "token_bound_cidrs", "bound_cidrs")? {
            self.token_bound_cidrs = v;
        }
        if let Some(v) = str_param(data, "token_type")? {
            self.token_type = if v.is_empty() {
                "default".to_owned()
            } else {
                v.to_lowercase()
            };
        }
        if let Some(v) = bool_param(data, "token_no_default_policy")? {
            self.token_no_default_policy = v;
        }
        self.validate()
    }

    fn validate(&self) -> Result<(), BackendError> {
        let bad = |m: &str| Err(BackendError::InvalidRequest(m.to_owned()));
        if self.token_num_uses < 0 {
            return bad("\"token_num_uses\" cannot be negative");
        }
        if self.token_max_ttl > 0 && self.token_ttl > self.token_max_ttl {
            return bad("\"token_ttl\" cannot be greater than \"token_max_ttl\"");
        }
        if !TOKEN_TYPES.contains(&self.token_type.as_str()) {
            return Err(BackendError::InvalidRequest(format!(
                "invalid \"token_type\" {:?}: use one of {}",
                self.token_type,
                TOKEN_TYPES.join(", ")
            )));
        }
        if self.is_batch() && self.token_period > 0 {
            return bad(
                "batch tokens cannot be periodic: unset \"token_period\" or use service tokens",
            );
        }
        if self.is_batch() && self.token_explicit_max_ttl > 0 {
            return bad(
                "batch tokens cannot have an explicit max TTL: unset \"token_explicit_max_ttl\"",
            );
        }
        cidr::validate("token_bound_cidrs", &self.token_bound_cidrs)
    }

    fn is_batch(&self) -> bool {
        self.token_type == "batch"
    }

    /// Adds the read view of these fields (with the legacy aliases hvac still reads).
    pub fn write_json(&self, out: &mut Map<String, Value>) {
        let fields = [
            ("token_policies", json!(self.token_policies)),
            ("policies", json!(self.token_policies)),
            ("token_ttl", json!(self.token_ttl)),
            ("ttl", json!(self.token_ttl)),
            ("token_max_ttl", json!(self.token_max_ttl)),
            ("max_ttl", json!(self.token_max_ttl)),
            ("token_explicit_max_ttl", json!(self.token_explicit_max_ttl)),
            ("token_period", json!(self.token_period)),
            ("period", json!(self.token_period)),
            ("token_num_uses", json!(self.token_num_uses)),
            ("token_bound_cidrs", json!(self.token_bound_cidrs)),
            ("bound_cidrs", json!(self.token_bound_cidrs)),
            ("token_type", json!(self.token_type)),
            (
                "token_no_default_policy",
                json!(self.token_no_default_policy),
            ),
        ];
        for (k, v) in fields {
            out.insert(k.to_owned(), v);
        }
    }

    /// The token a successful login earns.
    pub fn login_request(
        &self,
        display_name: String,
        metadata: BTreeMap<String, String>,
    ) -> LoginRequest {
        let secs = |s: u64| (s > 0).then(|| Duration::from_secs(s));
        let token_type = match self.token_type.as_str() {
            "service" => Some(TokenType::Service),
            "batch" => Some(TokenType::Batch),
            _ => None,
        };
        LoginRequest {
            policies: self.token_policies.clone(),
            ttl: secs(self.token_ttl),
            max_ttl: secs(self.token_max_ttl),
            explicit_max_ttl: secs(self.token_explicit_max_ttl),
            period: secs(self.token_period),
            num_uses: self.token_num_uses,
            renewable: token_type != Some(TokenType::Batch),
            display_name,
            metadata,
            token_type,
            bound_cidrs: self.token_bound_cidrs.clone(),
            no_default_policy: self.token_no_default_policy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn legacy_aliases_and_loose_forms_are_accepted() {
        // Why: hvac sends `policies="not_root"` and `ttl="10s"` and expects a 10 s token.
        let mut f = TokenFields::default();
        f.update(&obj(json!({"policies": "not_root, Web,web", "ttl": "10s"})))
            .unwrap();
        assert_eq!(f.token_policies, vec!["not_root", "web"]);
        assert_eq!(f.token_ttl, 10);
        let login = f.login_request("x".into(), BTreeMap::new());
        assert_eq!(login.ttl, Some(Duration::from_secs(10)));
        assert!(login.renewable);
    }

    #[test]
    fn token_prefixed_names_win_over_aliases() {
        // Why: a client sending both must get the documented (new) field's value.
        let mut f = TokenFields::default();
        f.update(&obj(json!({"token_ttl": 60, "ttl": 10}))).unwrap();
        assert_eq!(f.token_ttl, 60);
    }

    #[test]
    fn inconsistent_settings_are_refused() {
        // Why: a role that can never issue a valid token must be rejected when written.
        let mut f = TokenFields::default();
        assert!(
            f.update(&obj(json!({"token_ttl": 60, "token_max_ttl": 30})))
                .is_err()
        );
        let mut f = TokenFields::default();
        assert!(f.update(&obj(json!({"token_type": "weird"}))).is_err());
        let mut f = TokenFields::default();
        assert!(f.update(&obj(json!({"token_num_uses": -1}))).is_err());
        let mut f = TokenFields::default();
        assert!(
            f.update(&obj(json!({"token_bound_cidrs": "nope"})))
                .is_err()
        );
        let mut f = TokenFields::default();
        assert!(
            f.update(&obj(json!({"token_type": "batch", "token_period": "1h"})))
                .is_err()
        );
    }

    #[test]
    fn batch_tokens_are_not_renewable() {
        // Why: batch tokens cannot be renewed; promising renewal would mislead clients.
        let mut f = TokenFields::default();
        f.update(&obj(json!({"token_type": "batch"}))).unwrap();
        let login = f.login_request("x".into(), BTreeMap::new());
        assert!(!login.renewable);
        assert_eq!(login.token_type, Some(TokenType::Batch));
    }
}

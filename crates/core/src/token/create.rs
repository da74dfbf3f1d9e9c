//! `auth/token/create`, `create-orphan` and `create/:role`: who may mint which token.
//!
//! This is where privilege could leak: a token must never create a token stronger than
//! itself. Without a role, child policies must be a subset of the caller's; orphans, custom
//! ids and periodic tokens need root or sudo; a role replaces the subset rule by its own
//! allow/deny lists, which an operator set on purpose.

use std::time::Duration;

use serde_json::{Map, Value};

use super::roles::TokenRole;
use super::{IssueRequest, TokenEntry, TokenType};
use crate::params::{bool_param, duration_param, int_param, string_list_param, string_map_param};
use crate::util::str_param;
use crate::{Core, CoreError, Operation, Request, Response};

/// Which create endpoint was called.
pub(crate) enum CreateMode<'a> {
    Plain,
    Orphan,
    Role(&'a str),
}

fn bad(msg: impl Into<String>) -> CoreError {
    CoreError::InvalidRequest(msg.into())
}

/// Vault's display name: `token-<name>` with runs of other characters turned into `-`.
fn display_name(requested: Option<&str>) -> String {
    let Some(name) = requested.filter(|n| !n.is_empty()) else {
        return "token".into();
    };
    let mut out = String::from("token-");
    let mut last_dash = true;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '-' {
            out.push(c);
            last_dash = c == '-';
        } else if !last_dash {
            out.push('-');
            last_dash = true;
        }
    }
    out.trim_end_matches('-').to_owned()
}

fn dur(d: &Map<String, Value>, name: &str) -> Result<Option<u64>, CoreError> {
    Ok(duration_param(d, name)?.filter(|s| *s > 0))
}

fn positive(s: i64) -> Option<u64> {
    (s > 0).then_some(s as u64)
}

/// The policies of the new token, checked against the caller or the role.
fn choose_policies(
    requested: Option<Vec<String>>,
    caller: &TokenEntry,
    role: Option<&TokenRole>,
) -> Result<Vec<String>, CoreError> {
    let is_root = caller.is_root();
    let role_limits = role.filter(|r| {
        !r.allowed_policies.is_empty()
            || !r.allowed_policies_glob.is_empty()
            || !r.disallowed_policies.is_empty()
            || !r.disallowed_policies_glob.is_empty()
    });
    let mut policies = match (requested, role_limits) {
        (Some(p), _) => p,
        (None, Some(r)) if !r.allowed_policies.is_empty() => r.allowed_policies.clone(),
        (None, _) => caller.policies.clone(),
    };
    policies.sort();
    policies.dedup();
    if policies.iter().any(|p| p == "root") && !is_root {
        return Err(bad(
            "root tokens can only be created by a root token: drop \"root\" from policies",
        ));
    }
    if let Some(r) = role_limits {
        // `default` is silently dropped when disallowed, as Vault does.
        policies.retain(|p| p != "default" || r.allows("default"));
        let refused: Vec<&String> = policies.iter().filter(|p| !r.allows(p)).collect();
        if !refused.is_empty() {
            return Err(bad(format!(
                "token policies ({refused:?}) must be subset of the role's allowed policies ({:?}) and not in its disallowed policies",
                r.allowed_policies
            )));
        }
    }
    // Without an allow list on the role, a non-root caller may only hand out policies it
    // holds itself (a role with only a deny list narrows, it never widens).
    let role_allows = role_limits
        .is_some_and(|r| !r.allowed_policies.is_empty() || !r.allowed_policies_glob.is_empty());
    if !is_root && !role_allows {
        let outside = policies
            .iter()
            .any(|p| p != "default" && !caller.policies.contains(p));
        if outside {
            return Err(bad("child policies must be subset of parent"));
        }
    }
    if policies.iter().any(|p| p == "response-wrapping") {
        return Err(bad(
            "the response-wrapping policy is reserved for wrapping tokens",
        ));
    }
    Ok(policies)
}

/// Serves one of the create endpoints for `caller`.
pub(crate) async fn create(
    core: &Core,
    req: &Request,
    caller: &TokenEntry,
    mode: CreateMode<'_>,
) -> Result<Response, CoreError> {
    let d = &req.data;
    if caller.token_type == TokenType::Batch {
        return Err(bad("batch tokens cannot create more tokens"));
    }
    let role = match mode {
        CreateMode::Role(name) => Some(
            core.token_role(name)
                .await?
                .ok_or_else(|| bad(format!("unknown role {name}")))?,
        ),
        _ => None,
    };
    let sudo = caller.is_root()
        || core
            .acl_for(&caller.policies)
            .await?
            .check(Operation::Update, &req.path, d)
            .sudo;

    let id = str_param(d, "id")?.filter(|s| !s.is_empty());
    if let Some(id) = id {
        if !sudo {
            return Err(bad("root or sudo privileges required to specify token id"));
        }
        if id.contains('.') {
            return Err(bad("token IDs can not contain a '.' character"));
        }
    }

    let requested = string_list_param(d, "policies")?;
    let no_default = bool_param(d, "no_default_policy")?.unwrap_or(false)
        || role.as_ref().is_some_and(|r| r.token_no_default_policy);
    let mut policies = choose_policies(requested, caller, role.as_ref())?;
    if no_default {
        policies.retain(|p| p != "default");
    }

    let no_parent = bool_param(d, "no_parent")?.unwrap_or(false);
    if no_parent && !sudo && role.is_none() {
        return Err(bad(
            "root or sudo privileges required to create orphan token",
        ));
    }
    let orphan =
        matches!(mode, CreateMode::Orphan) || no_parent || role.as_ref().is_some_and(|r| r.orphan);

    let mut ttl = dur(d, "ttl")?.or(dur(d, "lease")?);
    let mut explicit = dur(d, "explicit_max_ttl")?;
    let mut period = dur(d, "period")?;
    if period.is_some() && !sudo && role.is_none() {
        return Err(bad(
            "root or sudo privileges required to create periodic token",
        ));
    }
    let mount_max = core.max_ttl_for_path("auth/token/").await;
    let mut max = mount_max;
    if let Some(r) = &role {
        if let Some(p) = positive(r.token_period) {
            period = Some(p);
        }
        if let Some(e) = positive(r.token_explicit_max_ttl) {
            explicit = Some(explicit.map_or(e, |x| x.min(e)));
        }
        if ttl.is_none() {
            ttl = positive(r.token_ttl);
        }
        if r.token_max_ttl > 0 {
            max = max.min(r.token_max_ttl);
        }
    }
    let root_policy = policies.iter().any(|p| p == "root");
    if ttl.is_none() && !root_policy {
        ttl = positive(core.default_ttl_for_path("auth/token/").await.min(max));
    }

    let mut renewable = bool_param(d, "renewable")?.unwrap_or(true);
    if role.as_ref().is_some_and(|r| !r.renewable) {
        renewable = false;
    }
    let mut num_uses = int_param(d, "num_uses")?.unwrap_or(0);
    if num_uses < 0 {
        return Err(bad("number of uses cannot be negative"));
    }
    if let Some(r) = &role
        && r.token_num_uses > 0
        && (num_uses == 0 || num_uses > r.token_num_uses)
    {
        num_uses = r.token_num_uses;
    }

    let requested_type = match str_param(d, "type")? {
        None | Some("") => None,
        Some("service") => Some(TokenType::Service),
        Some("batch") => Some(TokenType::Batch),
        Some(other) => {
            return Err(bad(format!(
                "invalid 'type' value {other:?}: use \"service\" or \"batch\""
            )));
        }
    };
    let token_type = match role.as_ref().map(|r| r.token_type.as_str()) {
        Some("service") => TokenType::Service,
        Some("batch") => TokenType::Batch,
        Some("default-batch") => requested_type.unwrap_or(TokenType::Batch),
        _ => requested_type.unwrap_or(TokenType::Service),
    };

    let meta = string_map_param(d, "meta")?.unwrap_or_default();
    let path = match (&mode, &role) {
        (CreateMode::Role(name), Some(r)) if !r.path_suffix.is_empty() => {
            format!("auth/token/create/{name}/{}", r.path_suffix)
        }
        (CreateMode::Role(name), _) => format!("auth/token/create/{name}"),
        (CreateMode::Orphan, _) => "auth/token/create-orphan".into(),
        (CreateMode::Plain, _) => "auth/token/create".into(),
    };

    let issued = core
        .issue_token(IssueRequest {
            policies,
            ttl: ttl.map(Duration::from_secs),
            max_ttl: positive(max).map(Duration::from_secs),
            explicit_max_ttl: explicit.map(Duration::from_secs),
            period: period.map(Duration::from_secs),
            num_uses,
            renewable,
            display_name: display_name(str_param(d, "display_name")?),
            meta,
            token_type,
            parent: if orphan { None } else { Some(caller.clone()) },
            path,
            no_default_policy: no_default,
            bound_cidrs: role
                .as_ref()
                .map(|r| r.token_bound_cidrs.clone())
                .unwrap_or_default(),
            role: role.as_ref().map(|r| r.name.clone()),
            id: id.map(str::to_owned),
        })
        .await?;
    Ok(Response {
        auth: Some(issued.to_auth()),
        ..Response::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(policies: &[&str]) -> TokenEntry {
        TokenEntry {
            policies: policies.iter().map(|p| p.to_string()).collect(),
            ..TokenEntry::default()
        }
    }

    #[test]
    fn display_names_get_vault_prefix_and_sanitizing() {
        // Why: audit logs and lookups show display names; the CLI expects "token-<name>".
        assert_eq!(display_name(None), "token");
        assert_eq!(display_name(Some("web app!")), "token-web-app");
        assert_eq!(display_name(Some("ci")), "token-ci");
    }

    #[test]
    fn non_root_children_must_stay_within_parent_policies() {
        // Why: the subset rule is what stops a token from minting a stronger token.
        let parent = caller(&["default", "web"]);
        assert!(choose_policies(Some(vec!["web".into()]), &parent, None).is_ok());
        assert!(choose_policies(Some(vec!["admin".into()]), &parent, None).is_err());
        assert!(choose_policies(Some(vec!["root".into()]), &parent, None).is_err());
        assert_eq!(
            choose_policies(None, &parent, None).unwrap(),
            vec!["default".to_owned(), "web".to_owned()]
        );
    }

    #[test]
    fn roles_replace_the_subset_rule() {
        // Why: a role may grant policies its caller lacks, but only those it lists.
        let parent = caller(&["default"]);
        let role = TokenRole {
            allowed_policies: vec!["testpolicy".into()],
            ..TokenRole::default()
        };
        assert_eq!(
            choose_policies(None, &parent, Some(&role)).unwrap(),
            vec!["testpolicy".to_owned()]
        );
        assert!(choose_policies(Some(vec!["other".into()]), &parent, Some(&role)).is_err());
    }
}

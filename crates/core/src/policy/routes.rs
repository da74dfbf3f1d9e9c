//! The policy and capability endpoints of the system backend.
//!
//! Two generations of the policy API (`sys/policy` and `sys/policies/acl`) differ only in
//! field names (`rules` versus `policy`) and list verb; clients such as hvac and the Vault CLI
//! use both, so both share one implementation here. The capability endpoints answer "what
//! may this token do on these paths" with the same ACL the pipeline enforces.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::builtin::{DEFAULT, RESPONSE_WRAPPING, ROOT};
use super::store::canonical_name;
use crate::keys::{TOKEN_ACCESSOR_PREFIX, TOKEN_ID_PREFIX};
use crate::token::TokenEntry;
use crate::{Core, CoreError, Operation, Request, Response};
use strongroom_policy::parse_policy;

/// Which API generation a request used: decides the text field's name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    /// `sys/policy`: text in `rules`.
    Legacy,
    /// `sys/policies/acl`: text in `policy`.
    Acl,
}

/// `sys/policy`, `sys/policy/*`, `sys/policies/acl*`, `sys/capabilities*`.
pub(crate) async fn route(
    core: &Core,
    req: &Request,
    token: Option<&TokenEntry>,
) -> Result<Response, CoreError> {
    let path = req.path.trim_end_matches('/');
    let op = req.operation;
    match path {
        "sys/policy" => match op {
            Operation::Read | Operation::List => list(core, true).await,
            _ => Err(CoreError::UnsupportedOperation),
        },
        "sys/policies/acl" => match op {
            Operation::List => list(core, false).await,
            _ => Err(CoreError::UnsupportedOperation),
        },
        "sys/capabilities" => {
            require_write(op)?;
            let raw = crate::util::str_param(&req.data, "token")?
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| CoreError::InvalidRequest("missing token".into()))?;
            let entry = core
                .lookup_token(raw)
                .await?
                .ok_or_else(|| CoreError::InvalidRequest("invalid token".into()))?;
            capabilities(core, req, &entry).await
        }
        "sys/capabilities-self" => {
            require_write(op)?;
            let entry = token.ok_or(CoreError::PermissionDenied)?;
            capabilities(core, req, entry).await
        }
        "sys/capabilities-accessor" => {
            require_write(op)?;
            let accessor = crate::util::str_param(&req.data, "accessor")?
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| CoreError::InvalidRequest("missing accessor".into()))?;
            let entry = token_by_accessor(core, accessor)
                .await?
                .ok_or_else(|| CoreError::InvalidRequest("invalid accessor".into()))?;
            capabilities(core, req, &entry).await
        }
        _ => {
            if let Some(name) = path.strip_prefix("sys/policy/") {
                one_policy(core, req, name, Api::Legacy).await
            } else if let Some(name) = path.strip_prefix("sys/policies/acl/") {
                one_policy(core, req, name, Api::Acl).await
            } else {
                Err(CoreError::UnsupportedPath(req.path.clone()))
            }
        }
    }
}

fn require_write(op: Operation) -> Result<(), CoreError> {
    match op {
        Operation::Update | Operation::Create => Ok(()),
        _ => Err(CoreError::UnsupportedOperation),
    }
}

/// `GET sys/policy` (`keys` and `policies`) and `LIST sys/policies/acl` (`keys`).
async fn list(core: &Core, legacy: bool) -> Result<Response, CoreError> {
    let names = core.policies.list(&core.barrier).await?;
    let mut data = Map::new();
    data.insert("keys".into(), json!(names));
    if legacy {
        data.insert("policies".into(), json!(names));
    }
    Ok(Response::with_data(data))
}

/// Read, write or delete one named policy.
async fn one_policy(
    core: &Core,
    req: &Request,
    name: &str,
    api: Api,
) -> Result<Response, CoreError> {
    let name = canonical_name(name);
    if name.is_empty() {
        return Err(CoreError::InvalidRequest("missing policy name".into()));
    }
    if name.contains('/') {
        return Err(CoreError::InvalidRequest(format!(
            "invalid policy name \"{name}\": names cannot contain '/'"
        )));
    }
    match req.operation {
        Operation::Read => {
            let policy = core
                .policies
                .get(&core.barrier, &name)
                .await?
                .filter(|p| p.name != RESPONSE_WRAPPING)
                .ok_or(CoreError::NotFound)?;
            let mut data = Map::new();
            data.insert("name".into(), json!(policy.name));
            let field = match api {
                Api::Legacy => "rules",
                Api::Acl => "policy",
            };
            data.insert(field.into(), json!(policy.raw));
            Ok(Response::with_data(data))
        }
        Operation::Update | Operation::Create => {
            if name == ROOT || name == RESPONSE_WRAPPING {
                return Err(CoreError::InvalidRequest(format!(
                    "cannot update \"{name}\" policy"
                )));
            }
            let text = policy_text(&req.data)?;
            core.policies.put(&core.barrier, &name, &text).await?;
            Ok(Response::no_content())
        }
        Operation::Delete => {
            if name == ROOT || name == DEFAULT || name == RESPONSE_WRAPPING {
                return Err(CoreError::InvalidRequest(format!(
                    "cannot delete \"{name}\" policy"
                )));
            }
            core.policies.delete(&core.barrier, &name).await?;
            Ok(Response::no_content())
        }
        _ => Err(CoreError::UnsupportedOperation),
    }
}

/// The policy text from `policy` (or legacy `rules`), base64-decoded when it is base64 of a
/// parseable policy. Validation errors are reported by the store on write.
fn policy_text(data: &Map<String, Value>) -> Result<String, CoreError> {
    let raw = match crate::util::str_param(data, "policy")? {
        Some(p) if !p.is_empty() => p,
        _ => crate::util::str_param(data, "rules")?.unwrap_or_default(),
    };
    if raw.trim().is_empty() {
        return Err(CoreError::InvalidRequest(
            "'policy' parameter not supplied or empty".into(),
        ));
    }
    if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(raw.trim())
        && let Ok(decoded) = String::from_utf8(bytes)
        && !decoded.trim().is_empty()
        && parse_policy(&decoded).is_ok()
    {
        return Ok(decoded);
    }
    Ok(raw.to_owned())
}

/// The capabilities of `entry` on the requested paths, in Vault's response shape.
async fn capabilities(
    core: &Core,
    req: &Request,
    entry: &TokenEntry,
) -> Result<Response, CoreError> {
    let mut paths = crate::params::string_list_param(&req.data, "paths")?.unwrap_or_default();
    if paths.is_empty()
        && let Some(p) = crate::util::str_param(&req.data, "path")?
        && !p.trim().is_empty()
    {
        paths.push(p.trim().to_owned());
    }
    if paths.is_empty() {
        return Err(CoreError::InvalidRequest("missing paths".into()));
    }
    let acl = core.acl_for(&entry.policies).await?;
    let mut data = Map::new();
    for path in &paths {
        let lookup = path.strip_prefix('/').unwrap_or(path);
        data.insert(path.clone(), json!(acl.capabilities(lookup)));
    }
    if let [only] = paths.as_slice()
        && let Some(caps) = data.get(only).cloned()
    {
        data.insert("capabilities".into(), caps);
    }
    Ok(Response::with_data(data))
}

/// Finds a live token by accessor (accessor record -> token hash -> entry).
async fn token_by_accessor(core: &Core, accessor: &str) -> Result<Option<TokenEntry>, CoreError> {
    if accessor.contains('/') || accessor.len() > 256 {
        return Ok(None);
    }
    let Some(hash) = core
        .barrier
        .get(&format!("{TOKEN_ACCESSOR_PREFIX}{accessor}"))
        .await?
    else {
        return Ok(None);
    };
    let Ok(hash) = String::from_utf8(hash) else {
        return Ok(None);
    };
    if hash.contains('/') {
        return Ok(None);
    }
    let Some(raw) = core
        .barrier
        .get(&format!("{TOKEN_ID_PREFIX}{hash}"))
        .await?
    else {
        return Ok(None);
    };
    let entry: TokenEntry = serde_json::from_slice(&raw)
        .map_err(|e| CoreError::Internal(format!("token entry is corrupt: {e}")))?;
    if entry.is_dead(crate::token::now_secs()) {
        return Ok(None);
    }
    Ok(Some(entry))
}

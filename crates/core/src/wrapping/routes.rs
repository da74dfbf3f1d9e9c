//! `sys/wrapping/wrap|unwrap|lookup|rewrap`.
//!
//! `unwrap` and `lookup` are unauthenticated in the pipeline: the wrapping token *is* the
//! credential, checked here (policy `response-wrapping`, live, payload present).

use std::time::Duration;

use serde_json::{Map, json};
use zeroize::Zeroizing;

use super::claim::Claim;
use super::{INVALID_TOKEN, MAX_WRAP_TTL};
use crate::token::{TokenEntry, token_hash};
use crate::{Core, CoreError, Operation, Request, Response};

/// Vault's TTL for `sys/wrapping/wrap` when the client sends no `X-Vault-Wrap-TTL`.
const DEFAULT_WRAP_TTL: Duration = Duration::from_secs(300);

/// `sys/wrapping/wrap|unwrap|lookup|rewrap`.
pub(crate) async fn route(
    core: &Core,
    req: &Request,
    _token: Option<&TokenEntry>,
) -> Result<Response, CoreError> {
    let action = req
        .path
        .strip_prefix("sys/wrapping/")
        .ok_or_else(|| CoreError::UnsupportedPath(req.path.clone()))?;
    let write = matches!(req.operation, Operation::Update | Operation::Create);
    let mut resp = match action {
        "wrap" if write => wrap(core, req).await?,
        "unwrap" if write => unwrap(core, req).await?,
        "lookup" if write || req.operation == Operation::Read => lookup(core, req).await?,
        "rewrap" if write => rewrap(core, req).await?,
        "wrap" | "unwrap" | "lookup" | "rewrap" => return Err(CoreError::UnsupportedOperation),
        _ => return Err(CoreError::UnsupportedPath(req.path.clone())),
    };
    if resp.mount_type.is_empty() {
        resp.mount_type = "system".into();
    }
    Ok(resp)
}

/// `sys/wrapping/wrap`: wraps the request body itself.
async fn wrap(core: &Core, req: &Request) -> Result<Response, CoreError> {
    let ttl = match req.wrap_ttl {
        None => DEFAULT_WRAP_TTL,
        Some(t) if t.is_zero() => DEFAULT_WRAP_TTL,
        Some(t) if t > MAX_WRAP_TTL => {
            return Err(CoreError::InvalidRequest(format!(
                "wrapping TTL must be between 1s and {}h",
                MAX_WRAP_TTL.as_secs() / 3600
            )));
        }
        Some(t) => t,
    };
    let payload = Response {
        data: Some(req.data.clone()),
        mount_type: "system".into(),
        ..Response::default()
    };
    core.wrap_response(req, payload, ttl).await
}

/// `sys/wrapping/unwrap`: hands out the wrapped answer as it was and burns the token.
async fn unwrap(core: &Core, req: &Request) -> Result<Response, CoreError> {
    let token = resolve_activation(core, presented_token(req)?)?;
    let _claim = Claim::take(token_hash(&token))?;
    let opened = core.open_wrapped(&token).await?;
    core.burn_wrapping_token(&token, &opened.entry).await?;
    Ok(Response {
        unwrapped: Some(Box::new(opened.payload.into_response())),
        mount_type: "system".into(),
        ..Response::default()
    })
}

/// `sys/wrapping/lookup`: creation facts, without consuming the token.
async fn lookup(core: &Core, req: &Request) -> Result<Response, CoreError> {
    let token = resolve_activation(core, presented_token(req)?)?;
    let opened = core.open_wrapped(&token).await?;
    let mut data = Map::new();
    data.insert("creation_path".into(), json!(opened.record.creation_path));
    data.insert("creation_time".into(), json!(opened.record.creation_time));
    data.insert("creation_ttl".into(), json!(opened.record.creation_ttl));
    Ok(Response::with_data(data))
}

/// `sys/wrapping/rewrap`: the same payload under a new token; the old one stops working.
async fn rewrap(core: &Core, req: &Request) -> Result<Response, CoreError> {
    let token = presented_token(req)?;
    let _claim = Claim::take(token_hash(&token))?;
    let opened = core.open_wrapped(&token).await?;
    let ttl = Duration::from_secs(opened.record.creation_ttl.max(1) as u64);
    let info = core
        .store_wrapped(
            &opened.record.creation_path,
            ttl,
            &opened.payload,
            opened.record.wrapped_accessor.clone(),
        )
        .await?;
    core.burn_wrapping_token(&token, &opened.entry).await?;
    Ok(Response {
        wrap_info: Some(info),
        ..Response::default()
    })
}

/// A DR activation token (an ES512 JWT signed by this primary) stands for the wrapping token
/// in its `wt` claim; a forged or expired one is refused like any invalid wrapping token.
fn resolve_activation(
    core: &Core,
    token: Zeroizing<String>,
) -> Result<Zeroizing<String>, CoreError> {
    Ok(match core.resolve_activation_token(&token)? {
        Some(inner) => Zeroizing::new(inner),
        None => token,
    })
}

/// The wrapping token: the body's `token`, else the request's own token.
fn presented_token(req: &Request) -> Result<Zeroizing<String>, CoreError> {
    let body = crate::util::str_param(&req.data, "token")?
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let header = req
        .token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    body.or(header)
        .map(|t| Zeroizing::new(t.to_owned()))
        .ok_or_else(|| CoreError::InvalidRequest(INVALID_TOKEN.into()))
}

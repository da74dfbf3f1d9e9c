//! `auth/token/*`: the HTTP face of the token store.
//!
//! Status codes follow Vault exactly because hvac asserts them: an unknown token on `lookup`
//! is 403, an unknown accessor is 400 `invalid accessor`, an empty role list is 404.

use serde_json::{Map, json};

use super::create::{CreateMode, create};
use super::{TokenEntry, TokenType, roles, token_hash};
use crate::params::duration_param;
use crate::util::str_param;
use crate::{Core, CoreError, Operation, Request, Response};

fn invalid_accessor() -> CoreError {
    CoreError::InvalidRequest("invalid accessor".into())
}

/// A required string parameter, taken from the path form (`lookup/<token>`) when present.
fn required(req: &Request, name: &str, from_path: &str) -> Result<String, CoreError> {
    if !from_path.is_empty() {
        // A token in the URL would land in audit logs and proxies in the clear; Vault
        // deprecated these forms too. Accessors are not secret and stay allowed.
        if name == "token" {
            return Err(CoreError::InvalidRequest(
                "tokens in the request path are not accepted: send {\"token\": \"...\"} in the body".into(),
            ));
        }
        return Ok(from_path.to_owned());
    }
    match str_param(&req.data, name)?.map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v.to_owned()),
        _ => Err(CoreError::InvalidRequest(format!(
            "missing \"{name}\": give the {name} to act on"
        ))),
    }
}

/// `auth/token/*`.
pub(crate) async fn route(
    core: &Core,
    req: &Request,
    entry: Option<&TokenEntry>,
    rest: &str,
) -> Result<Response, CoreError> {
    let caller = entry.ok_or(CoreError::PermissionDenied)?;
    let own_token = req.token.as_deref().map(str::trim).unwrap_or_default();
    let (head, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let op = req.operation;
    let write = matches!(op, Operation::Update | Operation::Create);
    let read_or_write = write || op == Operation::Read;

    let mut resp = match head {
        "create" if write && tail.is_empty() => create(core, req, caller, CreateMode::Plain).await,
        "create" if write => create(core, req, caller, CreateMode::Role(tail)).await,
        "create-orphan" if write => create(core, req, caller, CreateMode::Orphan).await,
        "lookup" if read_or_write => {
            let token = required(req, "token", tail)?;
            // Vault answers 403 for a token that does not exist or no longer works.
            let found = core
                .lookup_token(&token)
                .await?
                .ok_or(CoreError::PermissionDenied)?;
            Ok(Response::with_data(found.lookup_data(&token)))
        }
        "lookup-self" if read_or_write => Ok(Response::with_data(caller.lookup_data(own_token))),
        "lookup-accessor" if read_or_write => {
            let accessor = required(req, "accessor", tail)?;
            let found = core
                .token_by_accessor(&accessor)
                .await?
                .ok_or_else(invalid_accessor)?;
            Ok(Response::with_data(found.lookup_data("")))
        }
        "renew" if write => {
            let token = required(req, "token", tail)?;
            if token.starts_with(super::batch::BATCH_PREFIX) {
                return Err(CoreError::InvalidRequest(
                    "batch tokens cannot be renewed".into(),
                ));
            }
            renew(core, req, &token_hash(&token), &token).await
        }
        "renew-self" if write => {
            if caller.token_type == TokenType::Batch {
                return Err(CoreError::InvalidRequest(
                    "batch tokens cannot be renewed".into(),
                ));
            }
            renew(core, req, &caller.id_hash, own_token).await
        }
        "renew-accessor" if write => {
            let accessor = required(req, "accessor", tail)?;
            let found = core
                .token_by_accessor(&accessor)
                .await?
                .ok_or_else(invalid_accessor)?;
            renew(core, req, &found.id_hash, "").await
        }
        "revoke" if write => {
            let token = required(req, "token", tail)?;
            core.revoke_token(&token).await?;
            Ok(Response::no_content())
        }
        "revoke-self" if write => {
            if caller.token_type == TokenType::Batch {
                return Err(CoreError::InvalidRequest(
                    "batch tokens cannot be revoked; they expire or die with their parent".into(),
                ));
            }
            core.revoke_tree_by_hash(&caller.id_hash).await?;
            Ok(Response::no_content())
        }
        "revoke-accessor" if write => {
            let accessor = required(req, "accessor", tail)?;
            let found = core
                .token_by_accessor(&accessor)
                .await?
                .ok_or_else(invalid_accessor)?;
            core.revoke_tree_by_hash(&found.id_hash).await?;
            Ok(Response::no_content())
        }
        "revoke-orphan" if write => {
            let token = required(req, "token", tail)?;
            if token.starts_with(super::batch::BATCH_PREFIX) {
                return Err(CoreError::InvalidRequest(
                    "batch tokens cannot be revoked; they expire or die with their parent".into(),
                ));
            }
            core.revoke_orphan_by_hash(&token_hash(&token)).await?;
            Ok(Response::no_content())
        }
        "roles" if tail.is_empty() && op == Operation::List => roles::list(core).await,
        "roles" if !tail.is_empty() => match op {
            Operation::Read => roles::read(core, tail).await,
            Operation::Create | Operation::Update => roles::write(core, req, tail).await,
            Operation::Delete => roles::delete(core, tail).await,
            _ => Err(CoreError::UnsupportedOperation),
        },
        "accessors" if tail.is_empty() && op == Operation::List => {
            let keys = core
                .barrier
                .list(crate::keys::TOKEN_ACCESSOR_PREFIX)
                .await?;
            if keys.is_empty() {
                return Err(CoreError::NotFound);
            }
            let mut data = Map::new();
            data.insert("keys".into(), json!(keys));
            Ok(Response::with_data(data))
        }
        "tidy" if write => {
            let report = core.tidy_tokens().await?;
            Ok(Response {
                warnings: vec![format!("Tidy operation completed: {report}")],
                ..Response::default()
            })
        }
        "create" | "create-orphan" | "lookup" | "lookup-self" | "lookup-accessor" | "renew"
        | "renew-self" | "renew-accessor" | "revoke" | "revoke-self" | "revoke-accessor"
        | "revoke-orphan" | "roles" | "accessors" | "tidy" => Err(CoreError::UnsupportedOperation),
        _ => Err(CoreError::UnsupportedPath(req.path.clone())),
    }?;
    resp.mount_type = "token".into();
    Ok(resp)
}

/// Renews the token with `hash` and answers with its `auth` block (`client_token` as given).
async fn renew(
    core: &Core,
    req: &Request,
    hash: &str,
    client_token: &str,
) -> Result<Response, CoreError> {
    let increment = duration_param(&req.data, "increment")?;
    let renewed = core.renew_token_by_hash(hash, increment).await?;
    Ok(Response {
        auth: Some(renewed.to_auth(client_token)),
        ..Response::default()
    })
}

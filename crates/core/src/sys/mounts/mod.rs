//! `sys/mounts*`, `sys/auth*`, `sys/remount*`, `sys/internal/ui/mounts*`, `sys/mounts-all/*`.
//!
//! These endpoints are thin: parsing lives in `body`, the table logic in `crate::mounts`,
//! and the visibility rules of the UI listing in `ui`.

mod body;
mod ui;

use serde_json::{Map, Value, json};

use crate::mounts::{normalize_any, normalize_auth_path};
use crate::token::TokenEntry;
use crate::{Core, CoreError, Operation, Request, Response};

/// Warning returned when a tune upgraded a KV mount to version 2.
const UPGRADE_WARNING: &str = "Upgrading from non-versioned to versioned data. This backend \
     will be unavailable for a brief period and will resume service shortly.";

/// Serves the mount-table endpoints.
pub(crate) async fn route(
    core: &Core,
    req: &Request,
    token: Option<&TokenEntry>,
) -> Result<Response, CoreError> {
    let path = req.path.as_str();
    let op = req.operation;
    let mut resp = if path == "sys/mounts" {
        match op {
            Operation::Read => Ok(Response::with_data(core.mounts_json().await)),
            _ => Err(CoreError::UnsupportedOperation),
        }
    } else if path == "sys/auth" {
        match op {
            Operation::Read => Ok(Response::with_data(core.auth_json().await)),
            _ => Err(CoreError::UnsupportedOperation),
        }
    } else if let Some(rest) = path.strip_prefix("sys/mounts/") {
        match rest.strip_suffix("/tune") {
            Some(target) if target.starts_with("auth/") => {
                tune(core, req, &normalize_auth_path(target)?).await
            }
            Some(target) => tune(core, req, &normalize_any(target)?).await,
            None => secrets_mount(core, req, rest).await,
        }
    } else if let Some(rest) = path.strip_prefix("sys/auth/") {
        match rest.strip_suffix("/tune") {
            Some(target) => tune(core, req, &normalize_auth_path(target)?).await,
            None => auth_mount(core, req, rest).await,
        }
    } else if path == "sys/remount" {
        match op {
            Operation::Create | Operation::Update => remount(core, req).await,
            _ => Err(CoreError::UnsupportedOperation),
        }
    } else if let Some(id) = path.strip_prefix("sys/remount/status/") {
        match op {
            Operation::Read => remount_status(core, id).await,
            _ => Err(CoreError::UnsupportedOperation),
        }
    } else if path == "sys/internal/ui/mounts" {
        match op {
            Operation::Read => ui::list(core, token).await,
            _ => Err(CoreError::UnsupportedOperation),
        }
    } else if let Some(p) = path
        .strip_prefix("sys/internal/ui/mounts/")
        .or_else(|| path.strip_prefix("sys/mounts-all/"))
    {
        match op {
            Operation::Read => ui::owning_mount(core, token, p).await,
            _ => Err(CoreError::UnsupportedOperation),
        }
    } else {
        Err(CoreError::UnsupportedPath(req.path.clone()))
    }?;
    if resp.mount_type.is_empty() {
        resp.mount_type = "system".into();
    }
    Ok(resp)
}

/// An entry's JSON as a data object.
fn data_of(value: Value) -> Result<Response, CoreError> {
    match value {
        Value::Object(m) => Ok(Response::with_data(m)),
        _ => Err(CoreError::Internal(
            "mount entry did not encode as an object".into(),
        )),
    }
}

/// `sys/mounts/:path`: read, enable, disable a secrets engine.
async fn secrets_mount(core: &Core, req: &Request, mount: &str) -> Result<Response, CoreError> {
    match req.operation {
        Operation::Read => {
            let want = normalize_any(mount)?;
            let entry = core
                .mount_entry(&want)
                .await
                .filter(|e| !e.is_auth())
                .ok_or_else(|| {
                    CoreError::InvalidRequest(format!("No secret engine mount at {want}"))
                })?;
            data_of(entry.to_json())
        }
        Operation::Create | Operation::Update => {
            core.enable_mount(body::enable_spec(req, mount, false)?)
                .await?;
            Ok(Response::no_content())
        }
        Operation::Delete => {
            // `sys/mounts/auth/...` never disables an auth method: that is `sys/auth`.
            let target = normalize_any(mount)?;
            if !target.starts_with(crate::mounts::AUTH_PREFIX) {
                core.disable_mount(&target).await?;
            }
            Ok(Response::no_content())
        }
        _ => Err(CoreError::UnsupportedOperation),
    }
}

/// `sys/auth/:path`: read, enable, disable an auth method.
async fn auth_mount(core: &Core, req: &Request, mount: &str) -> Result<Response, CoreError> {
    let path = normalize_auth_path(mount)?;
    match req.operation {
        Operation::Read => {
            let entry = core.mount_entry(&path).await.ok_or_else(|| {
                CoreError::InvalidRequest(format!(
                    "No auth engine at {}",
                    path.trim_start_matches("auth/")
                ))
            })?;
            data_of(entry.to_json())
        }
        Operation::Create | Operation::Update => {
            core.enable_mount(body::enable_spec(req, mount, true)?)
                .await?;
            Ok(Response::no_content())
        }
        Operation::Delete => {
            core.disable_mount(&path).await?;
            Ok(Response::no_content())
        }
        _ => Err(CoreError::UnsupportedOperation),
    }
}

/// `.../tune` for the mount at `path` (router form).
async fn tune(core: &Core, req: &Request, path: &str) -> Result<Response, CoreError> {
    match req.operation {
        Operation::Read => {
            let entry = core.mount_entry(path).await.ok_or_else(|| {
                CoreError::InvalidRequest(format!("cannot fetch sysview for path {path:?}"))
            })?;
            let d = core.config.default_ttl().as_secs() as i64;
            let m = core.config.max_ttl().as_secs() as i64;
            Ok(Response::with_data(entry.tune_json(d, m)))
        }
        Operation::Create | Operation::Update => {
            let outcome = core.tune_mount(path, body::tune_spec(req)?).await?;
            if outcome.upgraded_kv {
                return Ok(Response {
                    warnings: vec![UPGRADE_WARNING.into()],
                    ..Response::default()
                });
            }
            Ok(Response::no_content())
        }
        _ => Err(CoreError::UnsupportedOperation),
    }
}

/// `POST sys/remount {from, to}`: moves synchronously and records the result.
async fn remount(core: &Core, req: &Request) -> Result<Response, CoreError> {
    let from = crate::util::str_param(&req.data, "from")?
        .ok_or_else(|| CoreError::InvalidRequest("missing 'from' parameter".into()))?;
    let to = crate::util::str_param(&req.data, "to")?
        .ok_or_else(|| CoreError::InvalidRequest("missing 'to' parameter".into()))?;
    let source = normalize_any(from)?;
    let moved = core.remount(from, to).await?;
    let id = uuid::Uuid::new_v4().to_string();
    let record = json!({"source_mount": source, "target_mount": moved.path, "status": "success"});
    let raw = serde_json::to_vec(&record)
        .map_err(|e| CoreError::Internal(format!("encoding migration status: {e}")))?;
    core.barrier
        .put(
            &format!("{}{id}", crate::keys::MOUNT_MIGRATION_PREFIX),
            &raw,
        )
        .await?;
    let mut data = Map::new();
    data.insert("migration_id".into(), json!(id));
    Ok(Response::with_data(data))
}

/// `GET sys/remount/status/:id`.
async fn remount_status(core: &Core, id: &str) -> Result<Response, CoreError> {
    if id.is_empty() || id.contains('/') {
        return Err(CoreError::InvalidRequest(format!(
            "invalid migration id {id:?}"
        )));
    }
    let raw = core
        .barrier
        .get(&format!("{}{id}", crate::keys::MOUNT_MIGRATION_PREFIX))
        .await?
        .ok_or(CoreError::NotFound)?;
    let info: Value = serde_json::from_slice(&raw)
        .map_err(|e| CoreError::Internal(format!("migration status is corrupt: {e}")))?;
    let mut data = Map::new();
    data.insert("migration_id".into(), json!(id));
    data.insert("migration_info".into(), info);
    Ok(Response::with_data(data))
}

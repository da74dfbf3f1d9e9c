//! `<m>/metadata/:path` and the version operations `delete`, `undelete`, `destroy`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use strongroom_logical::params::{bool_param, duration_param, int_param, string_list_param};
use strongroom_logical::{BackendError, Ctx, Op, Operation, Request, Response};

use super::model::{KeyMetadata, encode, meta_key, now_nanos, version_key};
use super::{load_meta, lock_key, non_negative};

/// Limits on `custom_metadata`, as Vault enforces them.
const MAX_CUSTOM_KEYS: usize = 64;
const MAX_CUSTOM_KEY_LEN: usize = 128;
const MAX_CUSTOM_VALUE_LEN: usize = 512;

/// Serves `metadata/:key` (LIST is handled by the caller).
pub(super) async fn handle(
    ctx: &Ctx<'_>,
    req: &Request,
    key: &str,
) -> Result<Response, BackendError> {
    match req.operation {
        Operation::Read => {
            let meta = load_meta(&ctx.view, key)
                .await?
                .ok_or(BackendError::NotFound)?;
            Ok(Response::with_data(meta.to_json()))
        }
        Operation::Create | Operation::Update => write(ctx, req, key, false).await,
        Operation::Patch => write(ctx, req, key, true).await,
        Operation::Delete => delete_all(ctx, key).await,
        Operation::List => Err(BackendError::UnsupportedOperation),
    }
}

/// Writes key settings; `patch` merges `custom_metadata` instead of replacing it and
/// requires the key to exist.
async fn write(
    ctx: &Ctx<'_>,
    req: &Request,
    key: &str,
    patch: bool,
) -> Result<Response, BackendError> {
    let _guard = lock_key(ctx.mount.uuid, key).await;
    let now = now_nanos();
    let mut meta = match load_meta(&ctx.view, key).await? {
        Some(m) => m,
        None if patch => return Err(BackendError::NotFound),
        None => KeyMetadata::new(now),
    };
    if let Some(n) = int_param(&req.data, "max_versions")? {
        meta.max_versions = non_negative("max_versions", n)?;
    }
    if let Some(b) = bool_param(&req.data, "cas_required")? {
        meta.cas_required = b;
    }
    if let Some(d) = duration_param(&req.data, "delete_version_after")? {
        meta.delete_version_after = d;
    }
    if let Some(custom) = custom_metadata(&req.data)? {
        if !patch {
            meta.custom_metadata.clear();
        }
        for (k, v) in custom {
            match v {
                Some(v) => meta.custom_metadata.insert(k, v),
                None => meta.custom_metadata.remove(&k),
            };
        }
        check_custom(&meta.custom_metadata)?;
    }
    meta.updated_time = now;
    ctx.view.put(&meta_key(key), &encode(&meta)?).await?;
    Ok(Response::no_content())
}

/// Parses `custom_metadata`: string values set a key, `null` (patch) removes it.
fn custom_metadata(
    data: &Map<String, Value>,
) -> Result<Option<BTreeMap<String, Option<String>>>, BackendError> {
    let obj = match data.get("custom_metadata") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(other) => {
            return Err(BackendError::InvalidRequest(format!(
                "invalid value for \"custom_metadata\": expected a map of strings, got {other}"
            )));
        }
    };
    let mut out = BTreeMap::new();
    for (k, v) in obj {
        let v = match v {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => {
                return Err(BackendError::InvalidRequest(format!(
                    "invalid value for custom_metadata key {k:?}: expected a string, got {other}"
                )));
            }
        };
        out.insert(k.clone(), v);
    }
    Ok(Some(out))
}

/// Enforces Vault's size limits on custom metadata.
fn check_custom(custom: &BTreeMap<String, String>) -> Result<(), BackendError> {
    if custom.len() > MAX_CUSTOM_KEYS {
        return Err(BackendError::InvalidRequest(format!(
            "custom_metadata may hold at most {MAX_CUSTOM_KEYS} keys, got {}",
            custom.len()
        )));
    }
    for (k, v) in custom {
        if k.is_empty() || k.len() > MAX_CUSTOM_KEY_LEN {
            return Err(BackendError::InvalidRequest(format!(
                "custom_metadata key {k:?} must be 1 to {MAX_CUSTOM_KEY_LEN} bytes"
            )));
        }
        if v.len() > MAX_CUSTOM_VALUE_LEN {
            return Err(BackendError::InvalidRequest(format!(
                "custom_metadata value of {k:?} is longer than {MAX_CUSTOM_VALUE_LEN} bytes"
            )));
        }
    }
    Ok(())
}

/// `DELETE metadata/:key`: the key, its settings and every version (204 when absent).
async fn delete_all(ctx: &Ctx<'_>, key: &str) -> Result<Response, BackendError> {
    let _guard = lock_key(ctx.mount.uuid, key).await;
    let Some(meta) = load_meta(&ctx.view, key).await? else {
        return Ok(Response::no_content());
    };
    let mut ops: Vec<Op> = meta
        .versions
        .keys()
        .map(|v| Op::Delete {
            key: version_key(key, *v),
        })
        .collect();
    ops.push(Op::Delete { key: meta_key(key) });
    ctx.view.write(ops).await?;
    Ok(Response::no_content())
}

/// The `versions` parameter: a list of version numbers (array or comma-separated).
fn versions_param(data: &Map<String, Value>) -> Result<Vec<u64>, BackendError> {
    let raw = string_list_param(data, "versions")?.unwrap_or_default();
    if raw.is_empty() {
        return Err(BackendError::InvalidRequest(
            "no version number provided".into(),
        ));
    }
    raw.iter()
        .map(|s| {
            s.parse::<u64>().map_err(|_| {
                BackendError::InvalidRequest(format!(
                    "invalid version number {s:?}: versions must be positive integers"
                ))
            })
        })
        .collect()
}

/// `delete/:key`, `undelete/:key`, `destroy/:key` with `versions`. Unknown versions are
/// ignored (204), as in Vault.
pub(super) async fn version_op(
    ctx: &Ctx<'_>,
    req: &Request,
    op: &str,
    key: &str,
) -> Result<Response, BackendError> {
    let versions = versions_param(&req.data)?;
    let _guard = lock_key(ctx.mount.uuid, key).await;
    let Some(mut meta) = load_meta(&ctx.view, key).await? else {
        return Ok(Response::no_content());
    };
    let now = now_nanos();
    let mut ops = Vec::new();
    for v in versions {
        let Some(vm) = meta.versions.get_mut(&v) else {
            continue;
        };
        match op {
            "delete" if !vm.unreadable(now) => vm.deletion_time = Some(now),
            "undelete" if !vm.destroyed => vm.deletion_time = None,
            "destroy" if !vm.destroyed => {
                vm.destroyed = true;
                ops.push(Op::Delete {
                    key: version_key(key, v),
                });
            }
            _ => {}
        }
    }
    meta.updated_time = now;
    ops.push(Op::Put {
        key: meta_key(key),
        value: encode(&meta)?,
    });
    ctx.view.write(ops).await?;
    Ok(Response::no_content())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_accept_arrays_and_strings() {
        // Why: the CLI sends "1,2" while the API clients send [1, 2].
        let a = json!({"versions": [1, 2]});
        let s = json!({"versions": "3,4"});
        assert_eq!(versions_param(a.as_object().unwrap()).unwrap(), [1, 2]);
        assert_eq!(versions_param(s.as_object().unwrap()).unwrap(), [3, 4]);
        assert!(versions_param(&Map::new()).is_err());
        assert!(versions_param(json!({"versions": ["x"]}).as_object().unwrap()).is_err());
    }

    #[test]
    fn custom_metadata_limits_are_enforced() {
        // Why: unbounded metadata would let one key grow its record without limit.
        let mut m = BTreeMap::new();
        m.insert("k".repeat(MAX_CUSTOM_KEY_LEN + 1), "v".into());
        assert!(check_custom(&m).is_err());
        m.clear();
        m.insert("k".into(), "v".repeat(MAX_CUSTOM_VALUE_LEN + 1));
        assert!(check_custom(&m).is_err());
        m.clear();
        m.insert("owner".into(), "jdoe".into());
        assert!(check_custom(&m).is_ok());
    }
}

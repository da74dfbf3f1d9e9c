//! KV version 1: unversioned key/value secrets, one JSON object per key.
//!
//! Shared by `kv` mounts without versioning and by cubbyhole, which has exactly these
//! semantics but keeps its data with the token instead of the mount.

use serde_json::{Map, Value, json};
use strongroom_logical::params::parse_duration;
use strongroom_logical::{BackendError, LeaseInfo, Operation, Request, Response, View};

/// Largest secret accepted, after JSON encoding.
pub(crate) const MAX_SECRET_BYTES: usize = 1024 * 1024;

/// Serves one v1 request on `key` (the path below the mount). `default_ttl` is the advisory
/// lease duration reported on reads when the secret has no `ttl` of its own.
pub(crate) async fn handle(
    view: &View<'_>,
    req: &Request,
    key: &str,
    default_ttl: Option<i64>,
) -> Result<Response, BackendError> {
    match req.operation {
        Operation::List => list_under(view, "", key).await,
        _ if key.is_empty() || key.ends_with('/') => {
            Err(BackendError::UnsupportedPath(req.path.clone()))
        }
        Operation::Read => {
            let raw = view.get(key).await?.ok_or(BackendError::NotFound)?;
            let data: Map<String, Value> = serde_json::from_slice(&raw).map_err(|e| {
                BackendError::Internal(format!("stored secret is not a JSON object: {e}"))
            })?;
            let ttl = data
                .get("ttl")
                .and_then(|v| match v {
                    Value::String(s) => parse_duration(s).map(|d| d as i64),
                    Value::Number(n) => n.as_i64(),
                    _ => None,
                })
                .or(default_ttl);
            let mut resp = Response::with_data(data);
            if let Some(ttl) = ttl.filter(|t| *t > 0) {
                // Advisory only: KV issues no real lease, so the lease id stays empty.
                resp.lease = Some(LeaseInfo {
                    lease_id: String::new(),
                    duration_secs: ttl,
                    renewable: false,
                });
            }
            Ok(resp)
        }
        Operation::Create | Operation::Update => {
            if req.data.is_empty() {
                return Err(BackendError::InvalidRequest("missing data fields".into()));
            }
            if let Some(v) = req.data.get("ttl") {
                let ok = match v {
                    Value::String(s) => parse_duration(s).is_some(),
                    Value::Number(n) => n.as_u64().is_some(),
                    _ => false,
                };
                if !ok {
                    return Err(BackendError::InvalidRequest(format!(
                        "invalid value for \"ttl\": expected a duration, got {v}"
                    )));
                }
            }
            let raw = encode(&req.data)?;
            view.put(key, &raw).await?;
            Ok(Response::no_content())
        }
        Operation::Delete => {
            view.delete(key).await?;
            Ok(Response::no_content())
        }
        Operation::Patch => Err(BackendError::UnsupportedOperation),
    }
}

/// `LIST`: immediate children of `base` + `key`, folders ending in `/`; nothing → 404.
pub(crate) async fn list_under(
    view: &View<'_>,
    base: &str,
    key: &str,
) -> Result<Response, BackendError> {
    let prefix = if key.is_empty() || key.ends_with('/') {
        format!("{base}{key}")
    } else {
        format!("{base}{key}/")
    };
    let mut keys = view.list(&prefix).await?;
    if keys.is_empty() {
        return Err(BackendError::NotFound);
    }
    keys.sort();
    let mut data = Map::new();
    data.insert("keys".into(), json!(keys));
    Ok(Response::with_data(data))
}

/// Encodes a secret, refusing oversized ones.
pub(crate) fn encode(data: &Map<String, Value>) -> Result<Vec<u8>, BackendError> {
    let raw = serde_json::to_vec(data)
        .map_err(|e| BackendError::Internal(format!("encoding secret: {e}")))?;
    if raw.len() > MAX_SECRET_BYTES {
        return Err(BackendError::TooLarge(format!(
            "secret is {} bytes; the limit is {MAX_SECRET_BYTES}",
            raw.len()
        )));
    }
    Ok(raw)
}

//! KV version 1: unversioned key/value secrets.
//!
//! The simplest engine, and the one `server -dev` mounts at `secret/` until KV v2 lands. A
//! secret is a JSON object stored as one barrier value.

use serde_json::{Map, Value, json};

use super::View;
use crate::{CoreError, Operation, Request, Response};

/// Largest secret accepted, after JSON encoding.
const MAX_SECRET_BYTES: usize = 1024 * 1024;

pub(crate) async fn handle(
    view: &View<'_>,
    req: &Request,
    key: &str,
) -> Result<Response, CoreError> {
    match req.operation {
        Operation::List => {
            let prefix = if key.is_empty() || key.ends_with('/') {
                key.to_owned()
            } else {
                format!("{key}/")
            };
            let keys = view.list(&prefix).await?;
            if keys.is_empty() {
                return Err(CoreError::NotFound);
            }
            let mut data = Map::new();
            data.insert("keys".into(), json!(keys));
            Ok(Response::with_data(data))
        }
        _ if key.is_empty() || key.ends_with('/') => {
            Err(CoreError::UnsupportedPath(req.path.clone()))
        }
        Operation::Read => {
            let raw = view.get(key).await?.ok_or(CoreError::NotFound)?;
            let data: Map<String, Value> = serde_json::from_slice(&raw).map_err(|e| {
                CoreError::Internal(format!("stored secret is not a JSON object: {e}"))
            })?;
            Ok(Response::with_data(data))
        }
        Operation::Create | Operation::Update => {
            if req.data.is_empty() {
                return Err(CoreError::InvalidRequest("missing data fields".into()));
            }
            let raw = serde_json::to_vec(&req.data)
                .map_err(|e| CoreError::Internal(format!("encoding secret: {e}")))?;
            if raw.len() > MAX_SECRET_BYTES {
                return Err(CoreError::TooLarge(format!(
                    "secret is {} bytes; the limit is {MAX_SECRET_BYTES}",
                    raw.len()
                )));
            }
            view.put(key, &raw).await?;
            Ok(Response::no_content())
        }
        Operation::Delete => {
            view.delete(key).await?;
            Ok(Response::no_content())
        }
        Operation::Patch => Err(CoreError::UnsupportedOperation),
    }
}

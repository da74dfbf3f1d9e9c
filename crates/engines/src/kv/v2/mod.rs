//! KV version 2: versioned secrets with check-and-set, soft delete and per-key metadata.
//!
//! Every write is a read-modify-write of the key's metadata record, so writers to the same
//! key are serialized by a striped lock; otherwise two concurrent writes could both claim the
//! same version and check-and-set would promise more than it delivers.

mod data;
mod json;
mod metadata;
pub(crate) mod model;

use model::{CONFIG_KEY, KeyMetadata, V2Config, go_duration, load, meta_key};
use serde_json::{Map, Value, json};
use strongroom_logical::{BackendError, Ctx, Operation, Request, Response, View};

/// Warning Vault returns for paths a versioned mount does not serve.
const INVALID_PATH_WARNING: &str = "Invalid path for a versioned K/V secrets engine. See the \
     API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv \
     get' for this operation.";

/// Lock stripes serializing writers of the same key.
const STRIPES: usize = 64;
static LOCKS: [tokio::sync::Mutex<()>; STRIPES] =
    [const { tokio::sync::Mutex::const_new(()) }; STRIPES];

/// Takes the write lock of `key` on mount `uuid`.
async fn lock_key(uuid: &str, key: &str) -> tokio::sync::MutexGuard<'static, ()> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    uuid.hash(&mut h);
    key.hash(&mut h);
    let i = (h.finish() % STRIPES as u64) as usize;
    LOCKS[i].lock().await
}

/// Whether the target of a write exists (ACL create versus update).
pub(crate) async fn exists(view: &View<'_>, rest: &str) -> Result<Option<bool>, BackendError> {
    let key = match rest.split_once('/') {
        Some(("data" | "metadata", key)) if !key.is_empty() => key,
        _ => return Ok(None),
    };
    Ok(Some(view.get(&meta_key(key)).await?.is_some()))
}

/// Serves one request below a v2 mount.
pub(crate) async fn handle(
    ctx: &Ctx<'_>,
    req: &Request,
    rest: &str,
) -> Result<Response, BackendError> {
    let (section, key) = rest.split_once('/').unwrap_or((rest, ""));
    let op = req.operation;
    match (section, op) {
        ("config", _) if key.is_empty() => config(ctx, req).await,
        ("metadata", Operation::List) => super::v1::list_under(&ctx.view, "meta/", key).await,
        (_, _) if key.is_empty() || key.ends_with('/') => invalid_path(),
        ("data", _) => data::handle(ctx, req, key).await,
        ("metadata", _) => metadata::handle(ctx, req, key).await,
        ("delete" | "undelete" | "destroy", Operation::Create | Operation::Update) => {
            metadata::version_op(ctx, req, section, key).await
        }
        ("subkeys", Operation::Read) => data::subkeys(ctx, req, key).await,
        ("delete" | "undelete" | "destroy" | "subkeys", _) => {
            Err(BackendError::UnsupportedOperation)
        }
        _ => invalid_path(),
    }
}

/// 404 carrying Vault's explanation, so `vault read secret/foo` tells the user what to do.
fn invalid_path() -> Result<Response, BackendError> {
    Err(BackendError::NotFoundWith(Box::new(Response {
        warnings: vec![INVALID_PATH_WARNING.into()],
        ..Response::default()
    })))
}

/// Loads the mount settings (defaults when never written).
pub(crate) async fn load_config(view: &View<'_>) -> Result<V2Config, BackendError> {
    Ok(load(view, CONFIG_KEY).await?.unwrap_or_default())
}

/// Loads a key's metadata.
pub(crate) async fn load_meta(
    view: &View<'_>,
    key: &str,
) -> Result<Option<KeyMetadata>, BackendError> {
    load(view, &meta_key(key)).await
}

/// `<m>/config`: GET and POST.
async fn config(ctx: &Ctx<'_>, req: &Request) -> Result<Response, BackendError> {
    use strongroom_logical::params::{bool_param, duration_param, int_param};
    match req.operation {
        Operation::Read => {
            let c = load_config(&ctx.view).await?;
            let mut data = Map::new();
            data.insert("cas_required".into(), json!(c.cas_required));
            data.insert(
                "delete_version_after".into(),
                json!(go_duration(c.delete_version_after)),
            );
            data.insert("max_versions".into(), json!(c.max_versions));
            Ok(Response::with_data(data))
        }
        Operation::Create | Operation::Update => {
            let _guard = lock_key(ctx.mount.uuid, "\0config").await;
            let mut c = load_config(&ctx.view).await?;
            if let Some(n) = int_param(&req.data, "max_versions")? {
                c.max_versions = non_negative("max_versions", n)?;
            }
            if let Some(b) = bool_param(&req.data, "cas_required")? {
                c.cas_required = b;
            }
            if let Some(d) = duration_param(&req.data, "delete_version_after")? {
                c.delete_version_after = d;
            }
            ctx.view.put(CONFIG_KEY, &model::encode(&c)?).await?;
            Ok(Response::no_content())
        }
        _ => Err(BackendError::UnsupportedOperation),
    }
}

/// Refuses negative counts.
pub(crate) fn non_negative(name: &str, n: i64) -> Result<u64, BackendError> {
    u64::try_from(n).map_err(|_| {
        BackendError::InvalidRequest(format!(
            "invalid value for \"{name}\": must not be negative"
        ))
    })
}

/// Reads an optional JSON object parameter (`data`, `options`).
pub(crate) fn object_param<'a>(
    data: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a Map<String, Value>>, BackendError> {
    match data.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(other) => Err(BackendError::InvalidRequest(format!(
            "invalid value for \"{name}\": expected an object, got {other}"
        ))),
    }
}

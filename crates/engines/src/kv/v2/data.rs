//! `<m>/data/:path` and `<m>/subkeys/:path`: reading and writing versions.

use serde_json::{Map, Value};
use strongroom_logical::params::int_param;
use strongroom_logical::{BackendError, Ctx, Op, Operation, Request, Response, View};

use super::json::{merge_patch, subkeys as outline};
use super::model::{
    DEFAULT_MAX_VERSIONS, KeyMetadata, V2Config, VersionMeta, encode, meta_key, now_nanos,
    version_key,
};
use super::{load_config, load_meta, lock_key, non_negative, object_param};

/// Serves `data/:key`.
pub(super) async fn handle(
    ctx: &Ctx<'_>,
    req: &Request,
    key: &str,
) -> Result<Response, BackendError> {
    match req.operation {
        Operation::Read => read(ctx, req, key).await,
        Operation::Create | Operation::Update => write(ctx, req, key, false).await,
        Operation::Patch => write(ctx, req, key, true).await,
        Operation::Delete => soft_delete_latest(ctx, key).await,
        Operation::List => Err(BackendError::UnsupportedOperation),
    }
}

/// The requested version (`?version=N`; absent or 0 = latest) and its state. Missing keys
/// and versions that never existed (or were pruned) are plain 404s.
async fn locate(
    view: &View<'_>,
    req: &Request,
    key: &str,
) -> Result<(KeyMetadata, u64, VersionMeta), BackendError> {
    let wanted = int_param(&req.data, "version")?
        .map(|n| non_negative("version", n))
        .transpose()?
        .unwrap_or(0);
    let meta = load_meta(view, key).await?.ok_or(BackendError::NotFound)?;
    let version = if wanted == 0 {
        meta.current_version
    } else {
        wanted
    };
    let vm = meta
        .versions
        .get(&version)
        .cloned()
        .ok_or(BackendError::NotFound)?;
    Ok((meta, version, vm))
}

/// The 404-with-envelope Vault answers for a deleted or destroyed version.
fn unreadable(field: &str, meta: &KeyMetadata, version: u64, vm: &VersionMeta) -> BackendError {
    let mut data = Map::new();
    data.insert(field.into(), Value::Null);
    data.insert("metadata".into(), meta.version_json(version, vm));
    BackendError::NotFoundWith(Box::new(Response::with_data(data)))
}

/// Loads the data of a readable version.
async fn version_data(
    view: &View<'_>,
    key: &str,
    version: u64,
) -> Result<Map<String, Value>, BackendError> {
    super::model::load(view, &version_key(key, version))
        .await?
        .ok_or_else(|| {
            BackendError::Internal(format!(
                "KV v2 version {version} of {key:?} has metadata but no data"
            ))
        })
}

async fn read(ctx: &Ctx<'_>, req: &Request, key: &str) -> Result<Response, BackendError> {
    let (meta, version, vm) = locate(&ctx.view, req, key).await?;
    if vm.unreadable(now_nanos()) {
        return Err(unreadable("data", &meta, version, &vm));
    }
    let secret = version_data(&ctx.view, key, version).await?;
    let mut data = Map::new();
    data.insert("data".into(), Value::Object(secret));
    data.insert("metadata".into(), meta.version_json(version, &vm));
    Ok(Response::with_data(data))
}

/// `subkeys/:key?version=N&depth=D`.
pub(super) async fn subkeys(
    ctx: &Ctx<'_>,
    req: &Request,
    key: &str,
) -> Result<Response, BackendError> {
    let depth = int_param(&req.data, "depth")?
        .map(|n| non_negative("depth", n))
        .transpose()?
        .unwrap_or(0);
    let (meta, version, vm) = locate(&ctx.view, req, key).await?;
    if vm.unreadable(now_nanos()) {
        return Err(unreadable("subkeys", &meta, version, &vm));
    }
    let secret = version_data(&ctx.view, key, version).await?;
    let mut data = Map::new();
    data.insert("subkeys".into(), Value::Object(outline(&secret, depth)));
    data.insert("metadata".into(), meta.version_json(version, &vm));
    Ok(Response::with_data(data))
}

/// How long new versions live: the shorter of the key's and the mount's non-zero settings.
fn effective_delete_after(meta: &KeyMetadata, cfg: &V2Config) -> u64 {
    match (meta.delete_version_after, cfg.delete_version_after) {
        (0, m) => m,
        (k, 0) => k,
        (k, m) => k.min(m),
    }
}

/// Writes (or, with `patch`, merges into the latest version) a new version.
async fn write(
    ctx: &Ctx<'_>,
    req: &Request,
    key: &str,
    patch: bool,
) -> Result<Response, BackendError> {
    let body = object_param(&req.data, "data")?.ok_or_else(|| {
        BackendError::InvalidRequest("no data provided: send {\"data\": {...}}".into())
    })?;
    let cas = match object_param(&req.data, "options")? {
        Some(opts) => int_param(opts, "cas")?,
        None => None,
    };
    let _guard = lock_key(ctx.mount.uuid, key).await;
    let cfg = load_config(&ctx.view).await?;
    let now = now_nanos();
    let existing = load_meta(&ctx.view, key).await?;
    let secret = if patch {
        let meta = existing.as_ref().ok_or(BackendError::NotFound)?;
        let live = meta
            .versions
            .get(&meta.current_version)
            .is_some_and(|vm| !vm.unreadable(now));
        if !live {
            return Err(BackendError::NotFound);
        }
        let mut merged = version_data(&ctx.view, key, meta.current_version).await?;
        merge_patch(&mut merged, body);
        merged
    } else {
        body.clone()
    };
    let mut meta = existing.unwrap_or_else(|| KeyMetadata::new(now));
    check_and_set(&meta, &cfg, cas)?;
    let raw = crate::kv::v1::encode(&secret)?;

    let version = meta.current_version + 1;
    let delete_after = effective_delete_after(&meta, &cfg);
    let vm = VersionMeta {
        created_time: now,
        deletion_time: (delete_after > 0)
            .then(|| now.saturating_add(delete_after.saturating_mul(1_000_000_000))),
        destroyed: false,
    };
    meta.versions.insert(version, vm.clone());
    meta.current_version = version;
    meta.updated_time = now;
    let mut ops = vec![Op::Put {
        key: version_key(key, version),
        value: raw,
    }];
    ops.extend(prune(&mut meta, &cfg, key));
    ops.push(Op::Put {
        key: meta_key(key),
        value: encode(&meta)?,
    });
    ctx.view.write(ops).await?;
    match meta.version_json(version, &vm) {
        Value::Object(data) => Ok(Response::with_data(data)),
        _ => Err(BackendError::Internal(
            "version metadata did not encode as an object".into(),
        )),
    }
}

/// Enforces `cas` and `cas_required`.
fn check_and_set(meta: &KeyMetadata, cfg: &V2Config, cas: Option<i64>) -> Result<(), BackendError> {
    match cas {
        None if meta.cas_required || cfg.cas_required => Err(BackendError::InvalidRequest(
            "check-and-set parameter required for this call".into(),
        )),
        Some(n) if u64::try_from(n).ok() != Some(meta.current_version) => {
            Err(BackendError::InvalidRequest(
                "check-and-set parameter did not match the current version".into(),
            ))
        }
        _ => Ok(()),
    }
}

/// Drops the oldest versions beyond `max_versions`; returns the deletes of their data.
pub(super) fn prune(meta: &mut KeyMetadata, cfg: &V2Config, key: &str) -> Vec<Op> {
    let max = [meta.max_versions, cfg.max_versions]
        .into_iter()
        .find(|m| *m > 0)
        .unwrap_or(DEFAULT_MAX_VERSIONS);
    let mut ops = Vec::new();
    while meta.versions.len() as u64 > max {
        let Some((old, _)) = meta.versions.pop_first() else {
            break;
        };
        ops.push(Op::Delete {
            key: version_key(key, old),
        });
    }
    if !ops.is_empty() {
        meta.oldest_version = meta.versions.keys().next().copied().unwrap_or(0);
    }
    ops
}

/// `DELETE data/:key`: soft-deletes the latest version (204 even when absent).
async fn soft_delete_latest(ctx: &Ctx<'_>, key: &str) -> Result<Response, BackendError> {
    let _guard = lock_key(ctx.mount.uuid, key).await;
    let Some(mut meta) = load_meta(&ctx.view, key).await? else {
        return Ok(Response::no_content());
    };
    let now = now_nanos();
    let current = meta.current_version;
    if let Some(vm) = meta.versions.get_mut(&current)
        && !vm.unreadable(now)
    {
        vm.deletion_time = Some(now);
        meta.updated_time = now;
        ctx.view.put(&meta_key(key), &encode(&meta)?).await?;
    }
    Ok(Response::no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_rules_match_vault() {
        // Why: check-and-set is what keeps concurrent writers from losing each other's work.
        let mut meta = KeyMetadata::new(1);
        let cfg = V2Config::default();
        assert!(check_and_set(&meta, &cfg, None).is_ok());
        assert!(check_and_set(&meta, &cfg, Some(0)).is_ok());
        meta.current_version = 2;
        assert!(check_and_set(&meta, &cfg, Some(0)).is_err());
        assert!(check_and_set(&meta, &cfg, Some(2)).is_ok());
        meta.cas_required = true;
        match check_and_set(&meta, &cfg, None) {
            Err(BackendError::InvalidRequest(m)) => assert!(m.contains("required")),
            other => panic!("expected cas required, got {other:?}"),
        }
    }

    #[test]
    fn pruning_keeps_the_newest_versions() {
        // Why: max_versions must drop the oldest data and record the new oldest version.
        let mut meta = KeyMetadata::new(1);
        for v in 1..=4 {
            meta.versions.insert(v, VersionMeta::default());
        }
        meta.max_versions = 2;
        let ops = prune(&mut meta, &V2Config::default(), "k");
        assert_eq!(ops.len(), 2);
        assert_eq!(meta.versions.keys().copied().collect::<Vec<_>>(), [3, 4]);
        assert_eq!(meta.oldest_version, 3);
    }

    #[test]
    fn shorter_delete_after_wins() {
        // Why: a key cannot outlive the mount's retention setting.
        let mut meta = KeyMetadata::new(1);
        let mut cfg = V2Config::default();
        assert_eq!(effective_delete_after(&meta, &cfg), 0);
        cfg.delete_version_after = 60;
        assert_eq!(effective_delete_after(&meta, &cfg), 60);
        meta.delete_version_after = 30;
        assert_eq!(effective_delete_after(&meta, &cfg), 30);
        cfg.delete_version_after = 0;
        assert_eq!(effective_delete_after(&meta, &cfg), 30);
    }
}

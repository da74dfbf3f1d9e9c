//! The door from core to the mounted backends: builds each request's [`Ctx`] and nothing
//! else crosses.
//!
//! Backends (in `strongroom-engines`) get views over the barrier, plain mount settings and
//! the caller's token type; they never see [`Core`]. This file is the one place that decides
//! which prefixes those views cover, so what a backend can reach is reviewed here.

use async_trait::async_trait;
use strongroom_barrier::{Barrier, BarrierError, BarrierOp};
use strongroom_logical::{
    Backend, BackendError, Ctx, MountInfo, Op, Store, TokenInfo, TokenType, View,
};

use crate::mounts::MountEntry;
use crate::token::TokenEntry;
use crate::{Core, CoreError, Request, Response};

/// Keys fetched per storage scan while serving [`Store::scan_keys`].
const SCAN_CHUNK: usize = 64;

/// The barrier as a backend's [`Store`]: every view core hands out writes through it.
struct BarrierStore<'a>(&'a Barrier);

/// The same mapping `CoreError::from(BarrierError)` makes, onto the backend error type.
fn store_error(e: BarrierError) -> BackendError {
    match CoreError::from(e) {
        CoreError::Sealed => BackendError::Sealed,
        CoreError::Unavailable(m) => BackendError::Unavailable(m),
        CoreError::TooLarge(m) => BackendError::TooLarge(m),
        CoreError::Internal(m) => BackendError::Internal(m),
        other => BackendError::Internal(other.to_string()),
    }
}

#[async_trait]
impl Store for BarrierStore<'_> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BackendError> {
        self.0.get(key).await.map_err(store_error)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BackendError> {
        self.0.list(prefix).await.map_err(store_error)
    }

    async fn scan_keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, BackendError> {
        if self.0.sealed() {
            return Err(BackendError::Sealed);
        }
        // Keys are stored in the clear. Storage scans return values too, so the page is
        // read in chunks and each chunk's ciphertext dropped: a page of large secrets never
        // sits in memory at once.
        let mut keys: Vec<String> = Vec::new();
        while keys.len() < limit {
            let want = (limit - keys.len()).min(SCAN_CHUNK);
            let cursor = keys.last().map(String::as_str).or(after);
            let chunk = self
                .0
                .storage()
                .scan(prefix, cursor, want)
                .await
                .map_err(|e| store_error(BarrierError::Storage(e)))?;
            let done = chunk.len() < want;
            keys.extend(chunk.into_iter().map(|(k, _)| k));
            if done {
                break;
            }
        }
        Ok(keys)
    }

    async fn write(&self, ops: Vec<Op>) -> Result<(), BackendError> {
        let ops = ops
            .into_iter()
            .map(|op| match op {
                Op::Put { key, value } => BarrierOp::Put { key, value },
                Op::Delete { key } => BarrierOp::Delete { key },
            })
            .collect();
        self.0.write(ops).await.map_err(store_error)
    }
}

/// The backend implementing a mount's type.
pub(crate) fn backend_for(mount: &MountEntry) -> Option<&'static dyn Backend> {
    strongroom_engines::backend_for(&mount.engine)
}

/// The mount as backends see it, with the system default TTL resolved.
fn mount_info<'a>(core: &Core, mount: &'a MountEntry) -> MountInfo<'a> {
    let default_lease_ttl = if mount.config.default_lease_ttl > 0 {
        mount.config.default_lease_ttl
    } else {
        i64::try_from(core.config.default_ttl().as_secs()).unwrap_or(i64::MAX)
    };
    MountInfo {
        path: &mount.path,
        uuid: &mount.uuid,
        kv_version: mount.kv_version(),
        default_lease_ttl,
        max_lease_ttl: mount
            .effective_max_ttl(i64::try_from(core.config.max_ttl().as_secs()).unwrap_or(i64::MAX)),
    }
}

/// The private storage of the calling token, for cubbyhole mounts only: other backends have
/// no business with it, and batch tokens (which are not stored) have none.
fn cubbyhole_view<'a>(
    store: &'a BarrierStore<'a>,
    mount: &MountEntry,
    token: Option<&TokenEntry>,
) -> Option<View<'a>> {
    let token = token?;
    if mount.engine != "cubbyhole" || token.token_type != TokenType::Service {
        return None;
    }
    if token.id_hash.is_empty() {
        return None;
    }
    Some(View::new(
        store,
        crate::keys::cubbyhole_prefix(&token.id_hash),
    ))
}

fn ctx<'a>(
    core: &Core,
    store: &'a BarrierStore<'a>,
    mount: &'a MountEntry,
    token: Option<&TokenEntry>,
) -> Ctx<'a> {
    Ctx {
        mount: mount_info(core, mount),
        token: token.map(|t| TokenInfo {
            token_type: t.token_type,
        }),
        view: View::new(store, mount.data_prefix()),
        local_view: View::new(store, crate::keys::local_prefix(&mount.uuid)),
        cubbyhole: cubbyhole_view(store, mount, token),
    }
}

fn unknown_engine(mount: &MountEntry) -> CoreError {
    CoreError::Internal(format!(
        "mount {} has unknown engine type {}",
        mount.path, mount.engine
    ))
}

/// Asks the backend of `mount` whether `rest` exists (ACL create versus update), before any
/// token is handed over. `None` when the backend makes no distinction.
pub(crate) async fn exists(
    core: &Core,
    mount: &MountEntry,
    rest: &str,
) -> Result<Option<bool>, CoreError> {
    let Some(backend) = backend_for(mount) else {
        return Ok(None);
    };
    let store = BarrierStore(&core.barrier);
    Ok(backend
        .exists(&ctx(core, &store, mount, None), rest)
        .await?)
}

/// Hands a request to the backend of `mount`.
pub(crate) async fn dispatch(
    core: &Core,
    mount: &MountEntry,
    req: &Request,
    rest: &str,
    token: Option<&TokenEntry>,
) -> Result<Response, CoreError> {
    let backend = backend_for(mount).ok_or_else(|| unknown_engine(mount))?;
    let store = BarrierStore(&core.barrier);
    let mut resp = backend
        .handle(&ctx(core, &store, mount, token), req, rest)
        .await?;
    resp.mount_type = mount.engine.clone();
    Ok(resp)
}

/// Migrates the data of `mount` (a KV v1 mount being tuned to version 2) in place.
pub(crate) async fn upgrade_kv_v1_to_v2(core: &Core, mount: &MountEntry) -> Result<(), CoreError> {
    let store = BarrierStore(&core.barrier);
    let view = View::new(&store, mount.data_prefix());
    Ok(strongroom_engines::kv::upgrade_v1_to_v2(&view).await?)
}

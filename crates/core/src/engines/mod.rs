//! Secrets engines and auth methods: each sees only its own mount's slice of the barrier.
//!
//! A backend receives the path below its mount and reads and writes through a [`View`] that
//! prefixes every key with the mount's data prefix, so no backend can touch another mount's
//! data or system keys. Auth methods (userpass, approle) are backends too: a login answers
//! with a [`crate::response::LoginRequest`] and the pipeline issues the token.

mod cubbyhole;
pub(crate) mod kv;
mod view;

pub use view::View;

use async_trait::async_trait;

use crate::mounts::MountEntry;
use crate::token::TokenEntry;
use crate::{Core, CoreError, Operation, Request, Response};

/// What a backend may use while serving one request.
pub(crate) struct Ctx<'a> {
    pub core: &'a Core,
    pub mount: &'a MountEntry,
    /// The mount's own storage.
    pub view: View<'a>,
    /// The caller's token (absent on unauthenticated paths such as logins).
    pub token: Option<&'a TokenEntry>,
}

impl<'a> Ctx<'a> {
    pub fn new(core: &'a Core, mount: &'a MountEntry, token: Option<&'a TokenEntry>) -> Self {
        Ctx {
            core,
            mount,
            view: View::new(&core.barrier, mount.data_prefix()),
            token,
        }
    }
}

/// One kind of mountable backend.
#[async_trait]
pub(crate) trait Backend: Send + Sync {
    /// Paths below the mount that need no token (login endpoints).
    fn unauthenticated(&self, _rest: &str, _op: Operation) -> bool {
        false
    }

    /// Whether the target of a write exists, so the ACL can tell `create` from `update`.
    /// `None` means the backend makes no distinction (treated as `update`).
    async fn exists(&self, _ctx: &Ctx<'_>, _rest: &str) -> Result<Option<bool>, CoreError> {
        Ok(None)
    }

    /// Serves one request.
    async fn handle(&self, ctx: &Ctx<'_>, req: &Request, rest: &str)
    -> Result<Response, CoreError>;
}

/// The backend implementing a mount's type.
pub(crate) fn backend_for(mount: &MountEntry) -> Option<&'static dyn Backend> {
    match mount.engine.as_str() {
        "kv" | "generic" => Some(&kv::Kv),
        "cubbyhole" => Some(&cubbyhole::Cubbyhole),
        "userpass" => Some(&crate::credentials::userpass::Userpass),
        "approle" => Some(&crate::credentials::approle::AppRole),
        _ => None,
    }
}

/// Hands a request to the backend of `mount`.
pub(crate) async fn dispatch(
    core: &Core,
    mount: &MountEntry,
    req: &Request,
    rest: &str,
    token: Option<&TokenEntry>,
) -> Result<Response, CoreError> {
    let backend = backend_for(mount).ok_or_else(|| {
        CoreError::Internal(format!(
            "mount {} has unknown engine type {}",
            mount.path, mount.engine
        ))
    })?;
    let ctx = Ctx::new(core, mount, token);
    let mut resp = backend.handle(&ctx, req, rest).await?;
    resp.mount_type = mount.engine.clone();
    Ok(resp)
}

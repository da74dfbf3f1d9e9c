//! Secrets engines: each sees only its own mount's slice of the barrier.
//!
//! An engine receives the path below its mount and reads and writes through a [`View`] that
//! prefixes every key with the mount's data prefix, so no engine can touch another mount's
//! data or system keys.

mod kv;
mod view;

pub use view::View;

use crate::mounts::MountEntry;
use crate::{Core, CoreError, Request, Response};

/// Hands a request to the engine of `mount`.
pub(crate) async fn dispatch(
    core: &Core,
    mount: &MountEntry,
    req: &Request,
    rest: &str,
) -> Result<Response, CoreError> {
    let view = View::new(&core.barrier, mount.data_prefix());
    let mut resp = match mount.engine.as_str() {
        "kv" => kv::handle(&view, req, rest).await?,
        other => {
            return Err(CoreError::Internal(format!(
                "mount {} has unknown engine type {other}",
                mount.path
            )));
        }
    };
    resp.mount_type = mount.engine.clone();
    Ok(resp)
}

//! The logical part of the system backend (`sys/...` paths that go through the pipeline).
//!
//! Node-state endpoints (init, seal-status, unseal, health, leader, generate-root) are
//! answered by `http` calling `Core` methods directly, before the door, as Vault does; see
//! `routing::table`. Everything else under `sys/` comes through the door to here.

use serde_json::{Map, json};

use crate::policy::AclDecision;
use crate::token::TokenEntry;
use crate::{Core, CoreError, Operation, Request, Response};

mod mounts;
mod node;

pub use node::parse_format as parse_metrics_format;

/// Dispatches a `sys/...` path to the subsystem that owns it.
pub(crate) async fn route(
    core: &Core,
    req: &Request,
    token: Option<&TokenEntry>,
    _decision: &AclDecision,
) -> Result<Response, CoreError> {
    let path = req.path.as_str();
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if under("sys/policy") || under("sys/policies") || path.starts_with("sys/capabilities") {
        return crate::policy::route(core, req, token).await;
    }
    if under("sys/leases") || under("sys/renew") || under("sys/revoke") {
        return crate::expiration::route(core, req, token).await;
    }
    if under("sys/replication") {
        return crate::replication::route(core, req).await;
    }
    if under("sys/wrapping") {
        return crate::wrapping::route(core, req, token).await;
    }
    if under("sys/rekey") {
        return crate::rekey::route(core, req).await;
    }
    if under("sys/audit") || under("sys/audit-hash") {
        return crate::audit::route(core, req, token).await;
    }
    if under("sys/mounts")
        || under("sys/auth")
        || under("sys/remount")
        || under("sys/internal/ui/mounts")
        || under("sys/mounts-all")
    {
        return mounts::route(core, req, token).await;
    }
    if let Some(result) = crate::ha::routes::route(core, req).await {
        return result;
    }
    if let Some(result) = node::route(core, req).await {
        return result;
    }
    let mut resp = match (path, req.operation) {
        ("sys/rotate", Operation::Update | Operation::Create) => {
            core.barrier.rotate().await?;
            Ok(Response::no_content())
        }
        ("sys/key-status", Operation::Read) => {
            let ks = core.barrier.key_status()?;
            let mut data = Map::new();
            data.insert("term".into(), json!(ks.term));
            data.insert(
                "install_time".into(),
                json!(crate::util::rfc3339(ks.install_time, false)),
            );
            data.insert("encryptions".into(), json!(ks.encryptions));
            Ok(Response::with_data(data))
        }
        ("sys/rotate" | "sys/key-status", _) => Err(CoreError::UnsupportedOperation),
        _ => Err(CoreError::UnsupportedPath(req.path.clone())),
    }?;
    if resp.mount_type.is_empty() {
        resp.mount_type = "system".into();
    }
    Ok(resp)
}

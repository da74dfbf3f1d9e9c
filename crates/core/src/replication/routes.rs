//! Dispatch of `sys/replication/*`.
//!
//! Which paths exist and which verbs they take, in one table; the auth class of each path
//! (token, sudo, unauthenticated DR-op) is declared in `routing.rs`, and DR-op paths check
//! their `dr_operation_token` in their handlers.

use strongroom_replication::ReplicationKind;

use crate::{Core, CoreError, Operation, Request, Response};

const DR: ReplicationKind = ReplicationKind::Dr;
const PERF: ReplicationKind = ReplicationKind::Performance;

/// `sys/replication/...`.
pub(crate) async fn route(core: &Core, req: &Request) -> Result<Response, CoreError> {
    let path = req.path.trim_end_matches('/');
    let Some(rest) = path.strip_prefix("sys/replication/") else {
        return Err(CoreError::UnsupportedPath(req.path.clone()));
    };
    let op = req.operation;
    let write = matches!(op, Operation::Update | Operation::Create);
    let read = op == Operation::Read;
    let mut resp = match rest {
        "status" if read => core.replication_status_response(),
        "dr/status" if read => Response::with_data(core.repl_status(DR)),
        "performance/status" if read => Response::with_data(core.repl_status(PERF)),
        "dr/primary/enable" if write => core.primary_enable(DR, req).await?,
        "dr/primary/demote" if write => core.dr_primary_demote().await?,
        "dr/primary/disable" if write => core.primary_disable(DR).await?,
        "dr/primary/secondary-token" if write => core.primary_secondary_token(DR, req).await?,
        "dr/primary/revoke-secondary" if write => core.primary_revoke(DR, req).await?,
        "dr/secondary/enable" if write => core.secondary_enable(DR, req).await?,
        "dr/secondary/promote" if write => core.dr_secondary_promote(req).await?,
        "dr/secondary/disable" if write => core.secondary_disable(DR, req).await?,
        "dr/secondary/update-primary" if write => core.secondary_update_primary(DR, req).await?,
        "dr/secondary/recover" if write => {
            core.authorize_dr_op(req).await?;
            core.dr_recover().await?
        }
        "dr/secondary/reindex" if write => {
            core.authorize_dr_op(req).await?;
            core.dr_reindex().await?
        }
        "dr/secondary/operation-token/delete" if write => {
            core.authorize_dr_op(req).await?;
            core.op_token_delete(&req.data).await?
        }
        "dr/secondary/generate-operation-token/attempt" => {
            require_dr_secondary(core)?;
            match op {
                Operation::Read => core.op_token_status().await?,
                Operation::Update | Operation::Create => core.op_token_start(&req.data).await?,
                Operation::Delete => core.op_token_cancel(),
                _ => return Err(CoreError::UnsupportedOperation),
            }
        }
        "dr/secondary/generate-operation-token/update" if write => {
            require_dr_secondary(core)?;
            core.op_token_update(&req.data).await?
        }
        "dr/secondary/generate-public-key" if write => {
            Response::with_data(core.generate_public_key(DR)?)
        }
        _ if rest.starts_with("performance/")
            || rest.starts_with("primary/")
            || rest.starts_with("secondary/") =>
        {
            let rest = rest.strip_prefix("performance/").unwrap_or(rest);
            perf_route(core, req, rest).await?
        }
        "recover" if write => core.dr_recover().await?,
        "reindex" if write => core.dr_reindex().await?,
        "status"
        | "dr/status"
        | "performance/status"
        | "dr/primary/enable"
        | "dr/primary/demote"
        | "dr/primary/disable"
        | "dr/primary/secondary-token"
        | "dr/primary/revoke-secondary"
        | "dr/secondary/enable"
        | "dr/secondary/promote"
        | "dr/secondary/disable"
        | "dr/secondary/update-primary"
        | "dr/secondary/recover"
        | "dr/secondary/reindex"
        | "dr/secondary/operation-token/delete"
        | "dr/secondary/generate-operation-token/update"
        | "dr/secondary/generate-public-key"
        | "recover"
        | "reindex" => return Err(CoreError::UnsupportedOperation),
        _ => return Err(CoreError::UnsupportedPath(req.path.clone())),
    };
    if resp.mount_type.is_empty() {
        resp.mount_type = "system".into();
    }
    Ok(resp)
}

/// `sys/replication/performance/...` below `performance/` (and the legacy un-typed paths).
async fn perf_route(core: &Core, req: &Request, rest: &str) -> Result<Response, CoreError> {
    let op = req.operation;
    let write = matches!(op, Operation::Update | Operation::Create);
    let read = op == Operation::Read;
    if let Some(id) = rest.strip_prefix("primary/paths-filter/") {
        return match op {
            Operation::Read => core.paths_filter_read(id),
            Operation::Update | Operation::Create => core.paths_filter_write(id, req).await,
            Operation::Delete => core.paths_filter_delete(id).await,
            _ => Err(CoreError::UnsupportedOperation),
        };
    }
    if let Some(id) = rest.strip_prefix("primary/dynamic-filter/") {
        return if read {
            core.primary_dynamic_filter(id).await
        } else {
            Err(CoreError::UnsupportedOperation)
        };
    }
    if let Some(id) = rest.strip_prefix("secondary/dynamic-filter/") {
        return if read {
            core.secondary_dynamic_filter(id)
        } else {
            Err(CoreError::UnsupportedOperation)
        };
    }
    match rest {
        "primary/enable" if write => core.primary_enable(PERF, req).await,
        "primary/demote" if write => core.perf_primary_demote().await,
        "primary/disable" if write => core.primary_disable(PERF).await,
        "primary/secondary-token" if write => core.primary_secondary_token(PERF, req).await,
        "primary/revoke-secondary" if write => core.primary_revoke(PERF, req).await,
        "secondary/generate-public-key" if write => {
            Ok(Response::with_data(core.generate_public_key(PERF)?))
        }
        "secondary/enable" if write => core.secondary_enable(PERF, req).await,
        "secondary/promote" if write => core.perf_secondary_promote(req).await,
        "secondary/disable" if write => core.secondary_disable(PERF, req).await,
        "secondary/update-primary" if write => core.secondary_update_primary(PERF, req).await,
        "primary/enable"
        | "primary/demote"
        | "primary/disable"
        | "primary/secondary-token"
        | "primary/revoke-secondary"
        | "secondary/generate-public-key"
        | "secondary/enable"
        | "secondary/promote"
        | "secondary/disable"
        | "secondary/update-primary" => Err(CoreError::UnsupportedOperation),
        _ => Err(CoreError::UnsupportedPath(req.path.clone())),
    }
}

fn require_dr_secondary(core: &Core) -> Result<(), CoreError> {
    if core.replication.is_dr_secondary() {
        Ok(())
    } else {
        Err(CoreError::InvalidRequest("Not a DR secondary.".into()))
    }
}

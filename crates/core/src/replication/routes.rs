//! Dispatch of `sys/replication/*`.
//!
//! Which paths exist and which verbs they take, in one table; the auth class of each path
//! (token, sudo, unauthenticated DR-op) is declared in `routing.rs`, and DR-op paths check
//! their `dr_operation_token` in their handlers.

use crate::{Core, CoreError, Operation, Request, Response};

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
        "dr/status" if read => Response::with_data(core.dr_status()),
        "performance/status" if read => Core::performance_status_response(),
        "dr/primary/enable" if write => core.dr_primary_enable(req).await?,
        "dr/primary/demote" if write => core.dr_primary_demote().await?,
        "dr/primary/disable" if write => core.dr_primary_disable().await?,
        "dr/primary/secondary-token" if write => core.dr_primary_secondary_token(req).await?,
        "dr/primary/revoke-secondary" if write => core.dr_primary_revoke(req).await?,
        "dr/secondary/enable" if write => core.dr_secondary_enable(req).await?,
        "dr/secondary/promote" if write => core.dr_secondary_promote(req).await?,
        "dr/secondary/disable" if write => core.dr_secondary_disable(req).await?,
        "dr/secondary/update-primary" if write => core.dr_secondary_update_primary(req).await?,
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
            Response::with_data(core.dr_generate_public_key()?)
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
        _ if rest.starts_with("performance/")
            || rest.starts_with("primary/")
            || rest.starts_with("secondary/") =>
        {
            return Err(CoreError::InvalidRequest(
                "performance replication is not supported by this server; use the sys/replication/dr/ paths".into(),
            ));
        }
        _ => return Err(CoreError::UnsupportedPath(req.path.clone())),
    };
    if resp.mount_type.is_empty() {
        resp.mount_type = "system".into();
    }
    Ok(resp)
}

fn require_dr_secondary(core: &Core) -> Result<(), CoreError> {
    if core.replication.is_dr_secondary() {
        Ok(())
    } else {
        Err(CoreError::InvalidRequest("Not a DR secondary.".into()))
    }
}

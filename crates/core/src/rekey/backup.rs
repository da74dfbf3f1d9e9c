//! `sys/rekey/backup`: the PGP-encrypted new shares kept by a rekey with `backup=true`.
//!
//! A logical endpoint (token, `sudo`, audited), unlike the rest of `sys/rekey`: reading the
//! backup reveals only ciphertexts, but deleting it is irreversible, so it is root-protected
//! as in Vault. The record lives inside the barrier.

use serde_json::Value;
use strongroom_api::RekeyBackup;

use crate::{Core, CoreError, Operation, Request, Response};

/// Dispatches `sys/rekey/*` logical paths (only `backup`).
pub(crate) async fn route(core: &Core, req: &Request) -> Result<Response, CoreError> {
    if req.path.trim_end_matches('/') != "sys/rekey/backup" {
        return Err(CoreError::UnsupportedPath(req.path.clone()));
    }
    match req.operation {
        Operation::Read => {
            let raw = core
                .barrier
                .get(crate::keys::REKEY_BACKUP)
                .await?
                .ok_or_else(|| CoreError::InvalidRequest("no backed-up keys found".into()))?;
            let backup: RekeyBackup = serde_json::from_slice(&raw).map_err(|e| {
                CoreError::Internal(format!("the stored key backup is corrupt: {e}"))
            })?;
            match serde_json::to_value(backup) {
                Ok(Value::Object(data)) => Ok(Response {
                    mount_type: "system".into(),
                    ..Response::with_data(data)
                }),
                _ => Err(CoreError::Internal("encoding the key backup failed".into())),
            }
        }
        Operation::Delete => {
            core.barrier.delete(crate::keys::REKEY_BACKUP).await?;
            Ok(Response::no_content())
        }
        _ => Err(CoreError::UnsupportedOperation),
    }
}

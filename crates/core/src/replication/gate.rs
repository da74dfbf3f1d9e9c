//! The DR secondary gate and DR operation authorization.
//!
//! A DR secondary holds a byte-for-byte copy of its primary, including tokens, but must not
//! serve it: it answers only status, seal and DR operation paths. DR operations cannot use
//! the normal token check (the secondary does not run its own policies for clients), so they
//! prove authority with a DR operation token: one generated here from the unseal key shares,
//! or any replicated token whose replicated policy grants the path (a batch token from the
//! primary, or the primary's admin token, so the failover runbook needs no extra secret).

use serde_json::Map;

use super::op_token::op_token_key;
use crate::{Core, CoreError, Operation, Request, Response};

/// The 400 every refused path gets on a DR secondary (Vault's text).
pub(crate) const DISABLED_ON_SECONDARY: &str = "path disabled in replication DR secondary mode";

/// Paths a DR secondary serves through the logical pipeline.
fn allowed_on_secondary(path: &str) -> bool {
    matches!(
        path,
        "sys/replication/status"
            | "sys/replication/dr/status"
            | "sys/replication/performance/status"
            | "sys/replication/recover"
            | "sys/replication/reindex"
            | "sys/storage/raft/configuration"
    ) || path.starts_with("sys/replication/dr/secondary/")
}

impl Core {
    /// The early check of the pipeline: refuses what a DR secondary must not serve, and
    /// serves the raft configuration to DR operation tokens (the normal token check cannot
    /// run there). `Ok(None)` lets the request continue.
    pub(crate) async fn dr_gate(&self, req: &Request) -> Result<Option<Response>, CoreError> {
        if !self.replication.is_dr_secondary() {
            return Ok(None);
        }
        let path = req.path.trim_end_matches('/');
        if !allowed_on_secondary(path) {
            return Err(CoreError::InvalidRequest(DISABLED_ON_SECONDARY.into()));
        }
        if path == "sys/storage/raft/configuration" {
            if req.operation != Operation::Read {
                return Err(CoreError::UnsupportedOperation);
            }
            self.authorize_dr_op(req).await?;
            let resp =
                crate::sys::route(self, req, None, &crate::policy::AclDecision::default()).await?;
            return Ok(Some(resp));
        }
        Ok(None)
    }

    /// Refuses node-state operations that would write (root generation) on a DR secondary,
    /// with the same 400 as the door's gate.
    pub(crate) fn refuse_on_dr_secondary(&self) -> Result<(), CoreError> {
        if self.replication.is_dr_secondary() {
            return Err(CoreError::InvalidRequest(DISABLED_ON_SECONDARY.into()));
        }
        Ok(())
    }

    /// Checks the caller's DR operation token for `req.path` (body `dr_operation_token`,
    /// else `X-Vault-Token`).
    pub(crate) async fn authorize_dr_op(&self, req: &Request) -> Result<(), CoreError> {
        let body = crate::util::str_param(&req.data, "dr_operation_token")?
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let header = req
            .token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let candidates: Vec<&str> = body.into_iter().chain(header).collect();
        if candidates.is_empty() {
            return Err(CoreError::InvalidRequest(
                "DR operation token was not provided".into(),
            ));
        }
        // Replicated data changed underneath: the keyring may have rotated, policies changed.
        self.barrier.reload_keyring().await?;
        self.policies.clear();
        for token in candidates {
            if self.dr_op_token_grants(token, req).await? {
                return Ok(());
            }
        }
        Err(CoreError::PermissionDenied)
    }

    async fn dr_op_token_grants(&self, token: &str, req: &Request) -> Result<bool, CoreError> {
        // Generated DR operation tokens are stored by hash only, as cluster-local records.
        if self.storage.get(&op_token_key(token)).await?.is_some() {
            return Ok(true);
        }
        let Some(entry) = self.lookup_token(token).await? else {
            return Ok(false);
        };
        // A use-limited token would be spent by a path that cannot count uses here.
        if entry.num_uses != 0 {
            return Ok(false);
        }
        // A token bound to networks authorizes only from those networks, as everywhere else.
        if !entry.bound_cidrs.is_empty()
            && !req.client_addr.is_some_and(|a| {
                entry
                    .bound_cidrs
                    .iter()
                    .any(|c| crate::util::cidr_contains(c, a.ip()))
            })
        {
            return Ok(false);
        }
        let acl = self.acl_for(&entry.policies).await?;
        let path = req.path.trim_end_matches('/');
        let op = match req.operation {
            Operation::Read => Operation::Read,
            _ => Operation::Update,
        };
        Ok(acl.check(op, path, &Map::new()).allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_status_and_dr_operation_paths_pass_the_gate() {
        // Why: a DR secondary must never serve replicated secrets or accept writes.
        assert!(allowed_on_secondary("sys/replication/dr/status"));
        assert!(allowed_on_secondary("sys/replication/dr/secondary/promote"));
        assert!(allowed_on_secondary("sys/storage/raft/configuration"));
        assert!(!allowed_on_secondary("secret/data/x"));
        assert!(!allowed_on_secondary("sys/mounts"));
        assert!(!allowed_on_secondary("auth/token/lookup-self"));
        assert!(!allowed_on_secondary("sys/replication/dr/primary/enable"));
    }
}

//! The trait every mountable secrets engine and auth method implements.

use async_trait::async_trait;

use crate::{BackendError, Ctx, Operation, Request, Response};

/// One kind of mountable backend. Auth methods are backends too: a login answers with a
/// [`crate::LoginRequest`] in [`Response::login`] and core issues the token.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Paths below the mount that need no token (login endpoints).
    fn unauthenticated(&self, _rest: &str, _op: Operation) -> bool {
        false
    }

    /// Whether the target of a write exists, so the ACL can tell `create` from `update`.
    /// `None` means the backend makes no distinction (treated as `update`).
    async fn exists(&self, _ctx: &Ctx<'_>, _rest: &str) -> Result<Option<bool>, BackendError> {
        Ok(None)
    }

    /// Serves one request; `rest` is the path below the mount.
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        req: &Request,
        rest: &str,
    ) -> Result<Response, BackendError>;
}

//! Cubbyhole: per-token private key/value storage, destroyed with its token.
//!
//! The data lives under the token's own prefix (`sys/token/cubbyhole/<token hash>/`), not
//! under the mount, so revoking a token deletes its cubbyhole with the rest of the token's
//! records and no token can ever address another token's cubbyhole: the prefix comes from the
//! authenticated token, never from the request path.

use async_trait::async_trait;

use super::{Backend, Ctx, View};
use crate::token::TokenType;
use crate::{CoreError, Request, Response};

/// The cubbyhole backend (always mounted at `cubbyhole/`).
pub(crate) struct Cubbyhole;

/// The calling token's private view.
fn token_view<'a>(ctx: &Ctx<'a>) -> Result<View<'a>, CoreError> {
    let token = ctx.token.ok_or(CoreError::PermissionDenied)?;
    if token.token_type == TokenType::Batch {
        return Err(CoreError::InvalidRequest(
            "cubbyhole operations are only supported by \"service\" type tokens".into(),
        ));
    }
    if token.id_hash.is_empty() {
        return Err(CoreError::PermissionDenied);
    }
    Ok(View::new(
        &ctx.core.barrier,
        crate::keys::cubbyhole_prefix(&token.id_hash),
    ))
}

#[async_trait]
impl Backend for Cubbyhole {
    async fn exists(&self, ctx: &Ctx<'_>, rest: &str) -> Result<Option<bool>, CoreError> {
        // The pipeline asks before it hands over the token; without one there is nothing to
        // look at, and the default policy grants create and update alike.
        if ctx.token.is_none() || rest.is_empty() || rest.ends_with('/') {
            return Ok(None);
        }
        Ok(Some(token_view(ctx)?.get(rest).await?.is_some()))
    }

    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        req: &Request,
        rest: &str,
    ) -> Result<Response, CoreError> {
        let view = token_view(ctx)?;
        super::kv::v1::handle(&view, req, rest, None).await
    }
}

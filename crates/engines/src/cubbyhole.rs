//! Cubbyhole: per-token private key/value storage, destroyed with its token.
//!
//! The data lives under the token's own prefix, not under the mount: core hands this backend
//! a view of the calling token's cubbyhole (`Ctx::cubbyhole`), so revoking a token deletes
//! its cubbyhole with the rest of the token's records and no token can ever address another
//! token's cubbyhole: the prefix comes from the authenticated token, never from the request
//! path.

use async_trait::async_trait;
use strongroom_logical::{
    Backend, BackendError, Ctx, Request, Response, TokenInfo, TokenType, View,
};

/// The cubbyhole backend (always mounted at `cubbyhole/`).
pub(crate) struct Cubbyhole;

/// The calling token's private view.
fn token_view<'c, 'a>(ctx: &'c Ctx<'a>) -> Result<&'c View<'a>, BackendError> {
    let Some(TokenInfo { token_type }) = ctx.token else {
        return Err(BackendError::PermissionDenied);
    };
    if token_type == TokenType::Batch {
        return Err(BackendError::InvalidRequest(
            "cubbyhole operations are only supported by \"service\" type tokens".into(),
        ));
    }
    ctx.cubbyhole.as_ref().ok_or(BackendError::PermissionDenied)
}

#[async_trait]
impl Backend for Cubbyhole {
    async fn exists(&self, ctx: &Ctx<'_>, rest: &str) -> Result<Option<bool>, BackendError> {
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
    ) -> Result<Response, BackendError> {
        let view = token_view(ctx)?;
        crate::kv::v1::handle(view, req, rest, None).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use strongroom_logical::{MemStore, Operation};

    use super::*;
    use crate::test_support::{Fixture, req};

    fn service() -> Option<TokenInfo> {
        Some(TokenInfo {
            token_type: TokenType::Service,
        })
    }

    #[tokio::test]
    async fn data_goes_to_the_token_view_not_the_mount() {
        // Why: a cubbyhole belongs to its token; the mount's own prefix must stay empty.
        let fx = Fixture::kv(1);
        let token_store = MemStore::default();
        let mut ctx = fx.ctx();
        ctx.token = service();
        ctx.cubbyhole = Some(View::new(&token_store, "cubby/t1/".into()));
        let write = req(Operation::Update, "cubbyhole/k", json!({"v": 1}));

        Cubbyhole.handle(&ctx, &write, "k").await.unwrap();
        let read = Cubbyhole
            .handle(&ctx, &req(Operation::Read, "cubbyhole/k", json!({})), "k")
            .await
            .unwrap();

        assert_eq!(read.data.unwrap()["v"], json!(1));
        assert_eq!(token_store.keys(), ["cubby/t1/k"]);
        assert!(fx.store.keys().is_empty());
    }

    #[tokio::test]
    async fn batch_tokens_and_missing_views_are_refused() {
        // Why: batch tokens have no cubbyhole, and without a view there is nothing to serve.
        let fx = Fixture::kv(1);
        let mut ctx = fx.ctx();
        let read = req(Operation::Read, "cubbyhole/k", json!({}));
        ctx.token = Some(TokenInfo {
            token_type: TokenType::Batch,
        });
        let batch = Cubbyhole.handle(&ctx, &read, "k").await;
        ctx.token = service();
        let no_view = Cubbyhole.handle(&ctx, &read, "k").await;
        ctx.token = None;
        let no_token = Cubbyhole.handle(&ctx, &read, "k").await;

        match batch {
            Err(BackendError::InvalidRequest(m)) => assert!(m.contains("\"service\" type")),
            other => panic!("expected a batch-token refusal, got {other:?}"),
        }
        assert!(matches!(no_view, Err(BackendError::PermissionDenied)));
        assert!(matches!(no_token, Err(BackendError::PermissionDenied)));
    }
}

//! The KV secrets engine, version 1 (plain) or 2 (versioned), chosen per mount by
//! `options.version`.
//!
//! Both versions share one backend type because a mount can be upgraded in place (tune
//! `options.version=2`), after which the same mount must start speaking v2.

mod upgrade;
pub(crate) mod v1;
mod v2;

use async_trait::async_trait;
use strongroom_logical::{Backend, BackendError, Ctx, Request, Response};

pub use upgrade::upgrade_v1_to_v2;

/// The KV engine.
pub(crate) struct Kv;

#[async_trait]
impl Backend for Kv {
    async fn exists(&self, ctx: &Ctx<'_>, rest: &str) -> Result<Option<bool>, BackendError> {
        if ctx.mount.kv_version == 2 {
            return v2::exists(&ctx.view, rest).await;
        }
        if rest.is_empty() || rest.ends_with('/') {
            return Ok(None);
        }
        Ok(Some(ctx.view.get(rest).await?.is_some()))
    }

    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        req: &Request,
        rest: &str,
    ) -> Result<Response, BackendError> {
        if ctx.mount.kv_version == 2 {
            return v2::handle(ctx, req, rest).await;
        }
        let max_ttl = ctx.mount.max_lease_ttl;
        let default_ttl = ctx.mount.default_lease_ttl.min(max_ttl);
        let mut resp = v1::handle(&ctx.view, req, rest, Some(default_ttl)).await?;
        if let Some(lease) = resp.lease.as_mut().filter(|l| l.duration_secs > max_ttl) {
            resp.warnings.push(format!(
                "TTL of {}s exceeded the effective max_ttl of {max_ttl}s; TTL value is capped accordingly",
                lease.duration_secs
            ));
            lease.duration_secs = max_ttl;
        }
        Ok(resp)
    }
}

//! Replication as core sees it, DR and performance: modes, the `sys/replication/*`
//! endpoints, activation tokens, the DR secondary gate, DR operation tokens, performance
//! path filters and the forwarding of a performance secondary's writes.
//!
//! Storage records and ships the changes (WAL and merkle index) and the replication crate
//! moves them between clusters; this module decides *what a cluster is* in a replication
//! set and enforces what follows from it: a primary mints activation tokens and serves its
//! secondaries, a secondary serves nothing but status and DR operations, and mode changes
//! (enable, promote, demote, update-primary, disable) reconfigure storage, barrier, caches
//! and the network side together.

mod bundle;
mod config;
mod filter;
mod forwarding;
#[cfg(test)]
mod fuzz_activation;
mod gate;
mod hooks;
mod op_token;
mod primary;
mod pubkey;
mod registry;
mod routes;
mod secondary;
mod state;
mod status;
mod topology;

use std::time::SystemTime;

use serde_json::{Map, Value};
use strongroom_replication::activation::jwt;

pub use config::ReplicationMode;
pub(crate) use filter::visible as mount_visible;
pub(crate) use forwarding::forwarded_identity;
pub use forwarding::{ForwardedIdentity, PrimaryRoute, serve_as_forwarded};
pub(crate) use routes::route;
pub(crate) use state::ReplicationState;

use crate::{Core, CoreError, Response};

/// Unix milliseconds now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Unix seconds now.
pub(crate) fn now_secs() -> i64 {
    (now_ms() / 1000) as i64
}

/// A string parameter, owned.
fn string_param(data: &Map<String, Value>, name: &str) -> Result<Option<String>, CoreError> {
    Ok(crate::util::str_param(data, name)?.map(str::to_owned))
}

/// A warnings-only 200 (Vault's answer to mode changes).
fn warning(text: &str) -> Response {
    Response {
        warnings: vec![text.to_owned()],
        ..Response::default()
    }
}

impl Core {
    /// Age of the newest primary canary applied here, for `sys/health` (secondaries, DR
    /// first, with at least one canary applied; `None` otherwise).
    pub(crate) fn replication_canary_age_ms(&self) -> Option<i64> {
        let set = if self.replication.is_dr_secondary() {
            &self.replication
        } else if self.perf.is_dr_secondary() {
            &self.perf
        } else {
            return None;
        };
        match set.canary_age_ms() {
            0 => None,
            age => Some(i64::try_from(age).unwrap_or(i64::MAX)),
        }
    }

    /// Resolves an activation JWT presented to `sys/wrapping/unwrap` to the wrapping token it
    /// carries, after checking our signature and its expiry. Any other token passes through.
    pub(crate) fn resolve_activation_token(
        &self,
        token: &str,
    ) -> Result<Option<String>, CoreError> {
        if !jwt::looks_like_jwt(token) {
            return Ok(None);
        }
        let invalid = || CoreError::InvalidRequest(crate::wrapping::INVALID_TOKEN.into());
        // Signed by the DR or the performance primary of this cluster, whichever it is.
        let mut refused = None;
        for kind in [
            strongroom_replication::ReplicationKind::Dr,
            strongroom_replication::ReplicationKind::Performance,
        ] {
            let Some(key) = self.activation_signing_key(kind) else {
                continue;
            };
            match jwt::verify(&key, token, now_secs()) {
                Ok(claims) => return Ok(Some(claims.wt)),
                Err(e) => refused = Some(e),
            }
        }
        if let Some(e) = refused {
            tracing::info!(reason = %e, "activation token refused");
        }
        Err(invalid())
    }
}

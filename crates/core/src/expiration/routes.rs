//! `sys/leases/*` and the legacy `sys/renew`, `sys/revoke*` paths.
//!
//! Only service tokens hold leases today (KV has no dynamic secrets), but the endpoints work
//! on any lease so operators can inspect and revoke by prefix, e.g. everything an auth mount
//! issued.

use serde_json::{Map, Value, json};

use super::{LeaseEntry, lease_key};
use crate::params::{bool_param, duration_param};
use crate::token::{TokenEntry, now_secs, rfc3339_secs};
use crate::util::str_param;
use crate::{CoreError, LeaseInfo, Operation, Request, Response};

use crate::Core;

/// `sys/leases/*` (and the legacy `sys/renew`, `sys/revoke`).
pub(crate) async fn route(
    core: &Core,
    req: &Request,
    _token: Option<&TokenEntry>,
) -> Result<Response, CoreError> {
    let path = req.path.as_str();
    let rest = path
        .strip_prefix("sys/leases/")
        .map(str::to_owned)
        .or_else(|| path.strip_prefix("sys/").map(str::to_owned))
        .unwrap_or_default();
    let (action, arg) = match rest.split_once('/') {
        Some((a, b)) => (a, b),
        None => (rest.as_str(), ""),
    };
    let write = matches!(req.operation, Operation::Update | Operation::Create);
    let mut resp = match (action, req.operation) {
        ("lookup", Operation::List) => list(core, arg).await,
        ("lookup", _) if write && arg.is_empty() => lookup(core, req).await,
        ("renew", _) if write => renew(core, req, arg).await,
        ("revoke", _) if write => {
            let id = lease_id_param(req, arg)?;
            core.revoke_lease(&id).await?;
            Ok(Response::no_content())
        }
        ("revoke-prefix" | "revoke-force", _) if write && arg.trim_matches('/').is_empty() => {
            Err(CoreError::InvalidRequest(
                "a non-empty lease prefix is required, e.g. sys/leases/revoke-prefix/auth/userpass/".into(),
            ))
        }
        ("revoke-prefix", _) if write => {
            let _sync = bool_param(&req.data, "sync")?;
            core.revoke_leases_under(arg).await?;
            Ok(Response::no_content())
        }
        ("revoke-force", _) if write => {
            core.revoke_leases_forced(arg).await?;
            Ok(Response::no_content())
        }
        ("tidy", _) if write => {
            let removed = core.tidy_leases(super::SCAN_PAGE).await?;
            Ok(Response {
                warnings: vec![format!(
                    "Tidy operation completed; removed {removed} dangling lease records"
                )],
                ..Response::default()
            })
        }
        ("lookup" | "renew" | "revoke" | "revoke-prefix" | "revoke-force" | "tidy", _) => {
            Err(CoreError::UnsupportedOperation)
        }
        _ => Err(CoreError::UnsupportedPath(req.path.clone())),
    }?;
    resp.mount_type = "system".into();
    Ok(resp)
}

/// The lease id from the body, or from the path form (`sys/leases/revoke/<id>`).
fn lease_id_param(req: &Request, from_path: &str) -> Result<String, CoreError> {
    let id = match str_param(&req.data, "lease_id")? {
        Some(id) if !id.trim().is_empty() => id.trim().to_owned(),
        _ => from_path.trim().to_owned(),
    };
    if id.is_empty() {
        return Err(CoreError::InvalidRequest(
            "missing \"lease_id\": give the id of the lease".into(),
        ));
    }
    Ok(id)
}

async fn lookup(core: &Core, req: &Request) -> Result<Response, CoreError> {
    let id = lease_id_param(req, "")?;
    let lease = core
        .read_lease(&id)
        .await?
        .ok_or_else(|| CoreError::InvalidRequest("invalid lease".into()))?;
    Ok(Response::with_data(lookup_data(&lease)))
}

fn lookup_data(lease: &LeaseEntry) -> Map<String, Value> {
    let now = now_secs();
    let mut data = Map::new();
    data.insert("id".into(), json!(lease.lease_id));
    data.insert("issue_time".into(), json!(rfc3339_secs(lease.issue_time)));
    data.insert("expire_time".into(), json!(rfc3339_secs(lease.expire_time)));
    let renewal = lease.last_renewal.map(rfc3339_secs);
    data.insert("last_renewal".into(), json!(renewal));
    data.insert("last_renewal_time".into(), json!(renewal));
    data.insert("renewable".into(), json!(lease.renewable));
    data.insert("ttl".into(), json!((lease.expire_time - now).max(0)));
    data
}

async fn list(core: &Core, prefix: &str) -> Result<Response, CoreError> {
    let keys = core.barrier.list(&lease_key(prefix)).await?;
    if keys.is_empty() {
        return Err(CoreError::NotFound);
    }
    let mut data = Map::new();
    data.insert("keys".into(), json!(keys));
    Ok(Response::with_data(data))
}

async fn renew(core: &Core, req: &Request, arg: &str) -> Result<Response, CoreError> {
    let id = lease_id_param(req, arg)?;
    let increment = duration_param(&req.data, "increment")?;
    let _guard = core.expiration.token_update.lock().await;
    let mut lease = core
        .read_lease(&id)
        .await?
        .ok_or_else(|| CoreError::InvalidRequest("lease not found".into()))?;
    if lease.token_hash.is_some() {
        return Err(CoreError::InvalidRequest(
            "tokens cannot be renewed through sys/leases/renew; use auth/token/renew, \
             auth/token/renew-self or auth/token/renew-accessor"
                .into(),
        ));
    }
    let now = now_secs();
    if !lease.renewable || lease.expire_time <= now {
        return Err(CoreError::InvalidRequest(
            "lease is not renewable or has expired".into(),
        ));
    }
    let max = core.config.max_ttl().as_secs() as i64;
    let ttl = increment
        .map(|i| i as i64)
        .unwrap_or(lease.expire_time - lease.issue_time)
        .min(lease.issue_time + max - now)
        .max(0);
    lease.expire_time = now + ttl;
    lease.last_renewal = Some(now);
    core.barrier
        .write(vec![Core::lease_put_op(&lease)?])
        .await?;
    core.expiration.schedule(&lease.lease_id, lease.expire_time);
    Ok(Response {
        lease: Some(LeaseInfo {
            lease_id: lease.lease_id.clone(),
            duration_secs: ttl,
            renewable: lease.renewable,
        }),
        ..Response::default()
    })
}

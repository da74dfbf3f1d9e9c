//! AppRole login: role ID (and usually a secret ID) in, a [`strongroom_logical::LoginRequest`] out.
//!
//! Every refusal gives the same 400 `invalid role or secret ID`, whether the role ID is
//! unknown, the secret ID wrong, spent or expired, or the client outside a CIDR block, so a
//! caller learns nothing about which half of the credential was right.

use std::collections::BTreeMap;
use std::time::SystemTime;

use strongroom_logical::params::str_param;
use strongroom_logical::{BackendError, Ctx, Request, Response, cidr};
use subtle::ConstantTimeEq;

use super::role::by_role_id;
use super::secret_id::SecretIds;
use super::{STATE_LOCK, hmac_key, mac};

/// The one answer to every failed login.
const INVALID_LOGIN: &str = "invalid role or secret ID";

fn invalid() -> BackendError {
    BackendError::InvalidRequest(INVALID_LOGIN.into())
}

pub(super) async fn login(ctx: &Ctx<'_>, req: &Request) -> Result<Response, BackendError> {
    let role_id = str_param(&req.data, "role_id")?
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| BackendError::InvalidRequest("missing role_id".into()))?;
    let secret_id = str_param(&req.data, "secret_id")?.filter(|s| !s.is_empty());
    let key = hmac_key(ctx).await?;

    let role = by_role_id(ctx, &key, role_id).await?.ok_or_else(invalid)?;
    // The index is keyed by HMAC; confirm the stored role ID itself, in constant time.
    if !bool::from(role.role_id.as_bytes().ct_eq(role_id.as_bytes())) {
        return Err(invalid());
    }
    if !cidr::allows(&role.secret_id_bound_cidrs, req.client_addr) {
        return Err(invalid());
    }

    let mut metadata = BTreeMap::new();
    let mut token_bound_cidrs = role.token.token_bound_cidrs.clone();
    if role.bind_secret_id {
        let secret_id = secret_id.ok_or_else(invalid)?;
        let hmac = mac(&key, secret_id)?;
        let ids = SecretIds::new(ctx, &role);
        // Check and spend under the lock: two logins racing for the last use cannot both win.
        let _guard = STATE_LOCK.lock().await;
        let entry = ids.get(&hmac).await?.ok_or_else(invalid)?;
        if entry.expired(SystemTime::now()) {
            ids.remove(&entry).await?;
            return Err(invalid());
        }
        if !cidr::allows(&entry.cidr_list, req.client_addr) {
            return Err(invalid());
        }
        if !entry.token_bound_cidrs.is_empty() {
            token_bound_cidrs = entry.token_bound_cidrs.clone();
        }
        if !cidr::allows(&token_bound_cidrs, req.client_addr) {
            return Err(invalid());
        }
        ids.spend(&entry).await?;
        metadata = entry.metadata;
    } else if !cidr::allows(&token_bound_cidrs, req.client_addr) {
        return Err(invalid());
    }

    metadata.insert("role_name".to_owned(), role.name.clone());
    let mut login = role.token.login_request("approle".to_owned(), metadata);
    login.bound_cidrs = token_bound_cidrs;
    Ok(Response {
        login: Some(login),
        ..Response::default()
    })
}

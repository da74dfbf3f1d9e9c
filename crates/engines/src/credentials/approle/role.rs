//! AppRole roles: what a machine may log in as, and the role-ID index that finds them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, json};
use strongroom_logical::params::{
    bool_param, duration_param, int_param, str_param, string_list_param,
};
use strongroom_logical::{BackendError, Ctx, Op, Request, Response, cidr};

use super::{STATE_LOCK, decode, encode, hmac_key, mac, secret_id};
use crate::credentials::token_fields::TokenFields;

/// Prefix of role records in the mount view.
const ROLE_PREFIX: &str = "role/";
/// Prefix of the role-ID index (`role_id/<hmac of role ID>` → role name).
const ROLE_ID_PREFIX: &str = "role_id/";

/// One stored role.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct RoleEntry {
    pub name: String,
    /// The role ID itself; also indexed by its HMAC for login.
    pub role_id: String,
    pub bind_secret_id: bool,
    pub secret_id_bound_cidrs: Vec<String>,
    pub secret_id_num_uses: i64,
    /// Seconds; 0 = secret IDs never expire.
    pub secret_id_ttl: u64,
    /// Keep this role's secret IDs in cluster-local storage (never replicated).
    pub local_secret_ids: bool,
    #[serde(flatten)]
    pub token: TokenFields,
}

impl RoleEntry {
    fn new(name: &str) -> Self {
        RoleEntry {
            name: name.to_owned(),
            role_id: uuid::Uuid::new_v4().to_string(),
            bind_secret_id: true,
            secret_id_bound_cidrs: Vec::new(),
            secret_id_num_uses: 0,
            secret_id_ttl: 0,
            local_secret_ids: false,
            token: TokenFields::default(),
        }
    }
}

/// The storage key of a role, relative to the mount view.
fn role_key(name: &str) -> String {
    format!("{ROLE_PREFIX}{name}")
}

/// The key of a role-ID index entry, relative to the mount view.
fn role_id_index(role_id_mac: &str) -> String {
    format!("{ROLE_ID_PREFIX}{role_id_mac}")
}

pub(super) async fn load(ctx: &Ctx<'_>, name: &str) -> Result<Option<RoleEntry>, BackendError> {
    match ctx.view.get(&role_key(name)).await? {
        None => Ok(None),
        Some(raw) => decode(&raw, "approle role record").map(Some),
    }
}

/// Loads a role that must exist for the request to make sense.
pub(super) async fn require(ctx: &Ctx<'_>, name: &str) -> Result<RoleEntry, BackendError> {
    load(ctx, name)
        .await?
        .ok_or_else(|| BackendError::InvalidRequest(format!("role {name:?} does not exist")))
}

/// Finds the role whose role ID is `role_id` (via the HMAC index).
pub(super) async fn by_role_id(
    ctx: &Ctx<'_>,
    key: &[u8],
    role_id: &str,
) -> Result<Option<RoleEntry>, BackendError> {
    let Some(raw) = ctx.view.get(&role_id_index(&mac(key, role_id)?)).await? else {
        return Ok(None);
    };
    let name: String = decode(&raw, "approle role-ID index")?;
    load(ctx, &name).await
}

/// Writes `role`, moving its role-ID index from `old_role_id` when it changed. Call with
/// [`STATE_LOCK`] held.
async fn store(
    ctx: &Ctx<'_>,
    key: &[u8],
    role: &RoleEntry,
    old_role_id: Option<&str>,
) -> Result<(), BackendError> {
    let new_mac = mac(key, &role.role_id)?;
    let mut ops = Vec::new();
    if old_role_id != Some(role.role_id.as_str()) {
        if let Some(raw) = ctx.view.get(&role_id_index(&new_mac)).await? {
            let owner: String = decode(&raw, "approle role-ID index")?;
            if owner != role.name {
                return Err(BackendError::InvalidRequest(
                    "role_id is already in use by another role: choose a different role_id".into(),
                ));
            }
        }
        if let Some(old) = old_role_id {
            ops.push(Op::Delete {
                key: role_id_index(&mac(key, old)?),
            });
        }
        ops.push(Op::Put {
            key: role_id_index(&new_mac),
            value: encode(&role.name, "approle role-ID index")?,
        });
    }
    ops.push(Op::Put {
        key: role_key(&role.name),
        value: encode(role, "approle role record")?,
    });
    ctx.view.write(ops).await
}

pub(super) async fn list(ctx: &Ctx<'_>) -> Result<Response, BackendError> {
    let keys = ctx.view.list(ROLE_PREFIX).await?;
    if keys.is_empty() {
        return Err(BackendError::NotFound);
    }
    let mut data = Map::new();
    data.insert("keys".into(), json!(keys));
    Ok(Response::with_data(data))
}

pub(super) async fn read(ctx: &Ctx<'_>, name: &str) -> Result<Response, BackendError> {
    let role = load(ctx, name).await?.ok_or(BackendError::NotFound)?;
    let mut data = Map::new();
    role.token.write_json(&mut data);
    data.insert("bind_secret_id".into(), json!(role.bind_secret_id));
    data.insert("local_secret_ids".into(), json!(role.local_secret_ids));
    data.insert(
        "secret_id_bound_cidrs".into(),
        json!(role.secret_id_bound_cidrs),
    );
    data.insert("secret_id_num_uses".into(), json!(role.secret_id_num_uses));
    data.insert("secret_id_ttl".into(), json!(role.secret_id_ttl));
    Ok(Response::with_data(data))
}

/// Applies the role parameters present in `req` to `role` and validates the result.
fn apply(role: &mut RoleEntry, req: &Request, creating: bool) -> Result<(), BackendError> {
    let d = &req.data;
    if let Some(v) = bool_param(d, "bind_secret_id")? {
        role.bind_secret_id = v;
    }
    if let Some(v) = string_list_param(d, "secret_id_bound_cidrs")? {
        cidr::validate("secret_id_bound_cidrs", &v)?;
        role.secret_id_bound_cidrs = v;
    }
    if let Some(v) = int_param(d, "secret_id_num_uses")? {
        if v < 0 {
            return Err(BackendError::InvalidRequest(
                "\"secret_id_num_uses\" cannot be negative".into(),
            ));
        }
        role.secret_id_num_uses = v;
    }
    if let Some(v) = duration_param(d, "secret_id_ttl")? {
        role.secret_id_ttl = v;
    }
    if let Some(v) = bool_param(d, "local_secret_ids")? {
        if !creating && v != role.local_secret_ids {
            return Err(BackendError::InvalidRequest(
                "\"local_secret_ids\" can only be set when the role is created".into(),
            ));
        }
        role.local_secret_ids = v;
    }
    if let Some(v) = str_param(d, "role_id")? {
        if v.trim().is_empty() {
            return Err(BackendError::InvalidRequest(
                "role_id must not be empty".into(),
            ));
        }
        role.role_id = v.trim().to_owned();
    }
    role.token.update(d)?;
    if !role.bind_secret_id
        && role.secret_id_bound_cidrs.is_empty()
        && role.token.token_bound_cidrs.is_empty()
    {
        return Err(BackendError::InvalidRequest(
            "at least one constraint must be enabled on the role: set bind_secret_id, \
             secret_id_bound_cidrs or token_bound_cidrs"
                .into(),
        ));
    }
    Ok(())
}

pub(super) async fn write(
    ctx: &Ctx<'_>,
    req: &Request,
    name: &str,
) -> Result<Response, BackendError> {
    let key = hmac_key(ctx).await?;
    let _guard = STATE_LOCK.lock().await;
    let existing = load(ctx, name).await?;
    let old_role_id = existing.as_ref().map(|r| r.role_id.clone());
    let creating = existing.is_none();
    let mut role = existing.unwrap_or_else(|| RoleEntry::new(name));
    apply(&mut role, req, creating)?;
    store(ctx, &key, &role, old_role_id.as_deref()).await?;
    Ok(Response::no_content())
}

pub(super) async fn delete(ctx: &Ctx<'_>, name: &str) -> Result<Response, BackendError> {
    let key = hmac_key(ctx).await?;
    let _guard = STATE_LOCK.lock().await;
    let Some(role) = load(ctx, name).await? else {
        return Ok(Response::no_content());
    };
    // The role, its index entry and all its secret IDs (which may live in the mount's
    // local view) go in one batch: no secret ID outlives its role.
    let mut batch = secret_id::delete_all(ctx, &role).await?;
    batch.delete(&ctx.view, &role_id_index(&mac(&key, &role.role_id)?))?;
    batch.delete(&ctx.view, &role_key(name))?;
    ctx.view.commit(batch).await?;
    Ok(Response::no_content())
}

pub(super) async fn read_role_id(ctx: &Ctx<'_>, name: &str) -> Result<Response, BackendError> {
    let role = load(ctx, name).await?.ok_or(BackendError::NotFound)?;
    let mut data = Map::new();
    data.insert("role_id".into(), json!(role.role_id));
    Ok(Response::with_data(data))
}

pub(super) async fn write_role_id(
    ctx: &Ctx<'_>,
    req: &Request,
    name: &str,
) -> Result<Response, BackendError> {
    let role_id = str_param(&req.data, "role_id")?
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| BackendError::InvalidRequest("missing role_id".into()))?
        .to_owned();
    let key = hmac_key(ctx).await?;
    let _guard = STATE_LOCK.lock().await;
    let mut role = require(ctx, name).await?;
    let old = role.role_id.clone();
    role.role_id = role_id;
    store(ctx, &key, &role, Some(&old)).await?;
    Ok(Response::no_content())
}

//! AppRole secret IDs: issuing, looking up, destroying and spending them.
//!
//! A secret ID is stored under the HMAC of its value, with an accessor index beside it so
//! operators can manage it without ever seeing the secret again. Roles with
//! `local_secret_ids` keep both in the cluster-local keyspace so they never replicate.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use strongroom_logical::params::{
    duration_param, int_param, str_param, string_list_param, string_map_param,
};
use strongroom_logical::time::rfc3339;
use strongroom_logical::{BackendError, Batch, Ctx, Op, Request, Response, View, cidr};
use subtle::ConstantTimeEq;

use super::role::{RoleEntry, require};
use super::{STATE_LOCK, decode, encode, hmac_key, mac};

/// One issued secret ID (never the secret itself).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct SecretIdEntry {
    /// HMAC of the secret ID: equal to the storage key's last segment.
    pub secret_id_hmac: String,
    pub accessor: String,
    /// Remaining uses; 0 = unlimited.
    pub num_uses: i64,
    /// Seconds the secret ID lives; 0 = forever.
    pub ttl: u64,
    pub creation_time: SystemTime,
    pub expiration_time: Option<SystemTime>,
    pub last_updated_time: SystemTime,
    pub metadata: BTreeMap<String, String>,
    pub cidr_list: Vec<String>,
    pub token_bound_cidrs: Vec<String>,
}

impl SecretIdEntry {
    /// Whether the secret ID's TTL has run out at `now`.
    pub fn expired(&self, now: SystemTime) -> bool {
        self.expiration_time.is_some_and(|t| now >= t)
    }

    fn to_json(&self) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert("cidr_list".into(), json!(self.cidr_list));
        data.insert(
            "creation_time".into(),
            json!(rfc3339(self.creation_time, false)),
        );
        data.insert(
            "expiration_time".into(),
            json!(match self.expiration_time {
                Some(t) => rfc3339(t, false),
                None => rfc3339(SystemTime::UNIX_EPOCH, true),
            }),
        );
        data.insert(
            "last_updated_time".into(),
            json!(rfc3339(self.last_updated_time, false)),
        );
        data.insert("metadata".into(), json!(self.metadata));
        data.insert("secret_id_accessor".into(), json!(self.accessor));
        data.insert("secret_id_num_uses".into(), json!(self.num_uses));
        data.insert("secret_id_ttl".into(), json!(self.ttl));
        data.insert("token_bound_cidrs".into(), json!(self.token_bound_cidrs));
        data
    }
}

/// Where one role's secret IDs live: the mount's view, or its local view for roles with
/// `local_secret_ids`, with keys relative to it.
pub(super) struct SecretIds<'a> {
    view: &'a View<'a>,
    role: String,
}

impl<'a> SecretIds<'a> {
    pub fn new(ctx: &'a Ctx<'a>, role: &RoleEntry) -> Self {
        let view = if role.local_secret_ids {
            &ctx.local_view
        } else {
            &ctx.view
        };
        SecretIds {
            view,
            role: role.name.clone(),
        }
    }

    fn entries_prefix(&self) -> String {
        format!("secret_id/{}/", self.role)
    }

    fn entry_key(&self, hmac: &str) -> String {
        format!("{}{hmac}", self.entries_prefix())
    }

    fn accessor_prefix(&self) -> String {
        format!("accessor/{}/", self.role)
    }

    fn accessor_key(&self, accessor: &str) -> String {
        format!("{}{accessor}", self.accessor_prefix())
    }

    /// The entry stored under `hmac`, checked to really be that secret ID.
    pub async fn get(&self, hmac: &str) -> Result<Option<SecretIdEntry>, BackendError> {
        let Some(raw) = self.view.get(&self.entry_key(hmac)).await? else {
            return Ok(None);
        };
        let entry: SecretIdEntry = decode(&raw, "approle secret-ID record")?;
        let same: bool = entry
            .secret_id_hmac
            .as_bytes()
            .ct_eq(hmac.as_bytes())
            .into();
        Ok(same.then_some(entry))
    }

    /// Resolves an accessor to its secret ID's HMAC and entry.
    async fn by_accessor(&self, accessor: &str) -> Result<Option<SecretIdEntry>, BackendError> {
        if accessor.is_empty() || accessor.contains('/') || accessor.contains("..") {
            return Ok(None);
        }
        let Some(raw) = self.view.get(&self.accessor_key(accessor)).await? else {
            return Ok(None);
        };
        let hmac: String = decode(&raw, "approle secret-ID accessor")?;
        self.get(&hmac).await
    }

    fn put_ops(&self, entry: &SecretIdEntry) -> Result<Vec<Op>, BackendError> {
        Ok(vec![
            Op::Put {
                key: self.entry_key(&entry.secret_id_hmac),
                value: encode(entry, "approle secret-ID record")?,
            },
            Op::Put {
                key: self.accessor_key(&entry.accessor),
                value: encode(&entry.secret_id_hmac, "approle secret-ID accessor")?,
            },
        ])
    }

    fn delete_ops(&self, entry: &SecretIdEntry) -> Vec<Op> {
        vec![
            Op::Delete {
                key: self.entry_key(&entry.secret_id_hmac),
            },
            Op::Delete {
                key: self.accessor_key(&entry.accessor),
            },
        ]
    }

    pub async fn insert(&self, entry: &SecretIdEntry) -> Result<(), BackendError> {
        self.view.write(self.put_ops(entry)?).await
    }

    pub async fn remove(&self, entry: &SecretIdEntry) -> Result<(), BackendError> {
        self.view.write(self.delete_ops(entry)).await
    }

    /// Spends one use of `entry` (deleting it on its last use) in one batch.
    pub async fn spend(&self, entry: &SecretIdEntry) -> Result<(), BackendError> {
        match entry.num_uses {
            0 => Ok(()),
            1 => self.remove(entry).await,
            n => {
                let mut next = entry.clone();
                next.num_uses = n - 1;
                next.last_updated_time = SystemTime::now();
                self.insert(&next).await
            }
        }
    }

    pub async fn accessors(&self) -> Result<Vec<String>, BackendError> {
        self.view.list(&self.accessor_prefix()).await
    }
}

/// A batch deleting every secret ID of `role` (for role deletion), to be committed with the
/// role's own records.
pub(super) async fn delete_all(ctx: &Ctx<'_>, role: &RoleEntry) -> Result<Batch, BackendError> {
    let ids = SecretIds::new(ctx, role);
    let mut batch = Batch::new();
    for accessor in ids.accessors().await? {
        batch.delete(ids.view, &ids.accessor_key(&accessor))?;
    }
    for hmac in ids.view.list(&ids.entries_prefix()).await? {
        batch.delete(ids.view, &ids.entry_key(&hmac))?;
    }
    Ok(batch)
}

/// Parses `metadata`: a JSON string holding a string map (what the API documents), or a map.
fn metadata_param(data: &Map<String, Value>) -> Result<BTreeMap<String, String>, BackendError> {
    match data.get("metadata") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(BTreeMap::new()),
        Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| {
            BackendError::InvalidRequest(format!(
                "invalid \"metadata\": expected a JSON object of strings: {e}"
            ))
        }),
        Some(_) => Ok(string_map_param(data, "metadata")?.unwrap_or_default()),
    }
}

/// Reads the secret ID's use count and TTL, bounded by the role's own limits.
fn limits(data: &Map<String, Value>, role: &RoleEntry) -> Result<(i64, u64), BackendError> {
    let num_uses = match int_param(data, "num_uses")? {
        None => role.secret_id_num_uses,
        Some(n) if n < 0 => {
            return Err(BackendError::InvalidRequest(
                "\"num_uses\" cannot be negative".into(),
            ));
        }
        Some(n) => n,
    };
    if role.secret_id_num_uses > 0 && (num_uses == 0 || num_uses > role.secret_id_num_uses) {
        return Err(BackendError::InvalidRequest(format!(
            "\"num_uses\" cannot be higher than the role's secret_id_num_uses ({})",
            role.secret_id_num_uses
        )));
    }
    let ttl = duration_param(data, "ttl")?.unwrap_or(role.secret_id_ttl);
    if role.secret_id_ttl > 0 && (ttl == 0 || ttl > role.secret_id_ttl) {
        return Err(BackendError::InvalidRequest(format!(
            "\"ttl\" cannot be longer than the role's secret_id_ttl ({}s)",
            role.secret_id_ttl
        )));
    }
    Ok((num_uses, ttl))
}

/// Reads a CIDR list parameter that must narrow the role's corresponding list.
fn narrowing_cidrs(
    data: &Map<String, Value>,
    name: &str,
    role_list: &[String],
    role_field: &str,
) -> Result<Vec<String>, BackendError> {
    let list = string_list_param(data, name)?.unwrap_or_default();
    cidr::validate(name, &list)?;
    if !cidr::is_subset(&list, role_list) {
        return Err(BackendError::InvalidRequest(format!(
            "\"{name}\" must be a subset of the role's {role_field}"
        )));
    }
    Ok(list)
}

/// `role/:name/secret-id` (generated) and `role/:name/custom-secret-id` (caller's value).
pub(super) async fn generate(
    ctx: &Ctx<'_>,
    req: &Request,
    name: &str,
    custom: bool,
) -> Result<Response, BackendError> {
    let role = require(ctx, name).await?;
    if !role.bind_secret_id {
        return Err(BackendError::InvalidRequest(
            "bind_secret_id is not set on the role: its logins do not use secret IDs".into(),
        ));
    }
    let secret_id = if custom {
        str_param(&req.data, "secret_id")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| BackendError::InvalidRequest("missing secret_id".into()))?
            .to_owned()
    } else {
        uuid::Uuid::new_v4().to_string()
    };
    let metadata = metadata_param(&req.data)?;
    let cidr_list = narrowing_cidrs(
        &req.data,
        "cidr_list",
        &role.secret_id_bound_cidrs,
        "secret_id_bound_cidrs",
    )?;
    let token_bound_cidrs = narrowing_cidrs(
        &req.data,
        "token_bound_cidrs",
        &role.token.token_bound_cidrs,
        "token_bound_cidrs",
    )?;
    let (num_uses, ttl) = limits(&req.data, &role)?;
    let key = hmac_key(ctx).await?;
    let now = SystemTime::now();
    let entry =
        SecretIdEntry {
            secret_id_hmac: mac(&key, &secret_id)?,
            accessor: uuid::Uuid::new_v4().to_string(),
            num_uses,
            ttl,
            creation_time: now,
            expiration_time: if ttl > 0 {
                Some(now.checked_add(Duration::from_secs(ttl)).ok_or_else(|| {
                    BackendError::InvalidRequest("secret_id ttl is too large".into())
                })?)
            } else {
                None
            },
            last_updated_time: now,
            metadata,
            cidr_list,
            token_bound_cidrs,
        };
    let ids = SecretIds::new(ctx, &role);
    {
        let _guard = STATE_LOCK.lock().await;
        if ids.get(&entry.secret_id_hmac).await?.is_some() {
            return Err(BackendError::InvalidRequest(
                "this secret ID is already registered: choose a different secret_id".into(),
            ));
        }
        ids.insert(&entry).await?;
    }
    let mut data = Map::new();
    data.insert("secret_id".into(), json!(secret_id));
    data.insert("secret_id_accessor".into(), json!(entry.accessor));
    data.insert("secret_id_ttl".into(), json!(ttl));
    data.insert("secret_id_num_uses".into(), json!(num_uses));
    Ok(Response::with_data(data))
}

pub(super) async fn list(ctx: &Ctx<'_>, name: &str) -> Result<Response, BackendError> {
    let role = require(ctx, name).await?;
    let keys = SecretIds::new(ctx, &role).accessors().await?;
    if keys.is_empty() {
        return Err(BackendError::NotFound);
    }
    let mut data = Map::new();
    data.insert("keys".into(), json!(keys));
    Ok(Response::with_data(data))
}

/// Finds the live entry for the `secret_id` parameter; expired entries are removed.
async fn find(
    ctx: &Ctx<'_>,
    req: &Request,
    role: &RoleEntry,
) -> Result<Option<SecretIdEntry>, BackendError> {
    let secret_id = str_param(&req.data, "secret_id")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| BackendError::InvalidRequest("missing secret_id".into()))?;
    let key = hmac_key(ctx).await?;
    let ids = SecretIds::new(ctx, role);
    live(&ids, ids.get(&mac(&key, secret_id)?).await?).await
}

/// Drops (and deletes) an entry whose TTL has passed.
async fn live(
    ids: &SecretIds<'_>,
    entry: Option<SecretIdEntry>,
) -> Result<Option<SecretIdEntry>, BackendError> {
    match entry {
        Some(e) if e.expired(SystemTime::now()) => {
            ids.remove(&e).await?;
            Ok(None)
        }
        other => Ok(other),
    }
}

fn accessor_param(req: &Request) -> Result<&str, BackendError> {
    str_param(&req.data, "secret_id_accessor")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| BackendError::InvalidRequest("missing secret_id_accessor".into()))
}

fn unknown_accessor(accessor: &str) -> BackendError {
    BackendError::InvalidRequest(format!(
        "failed to find accessor entry for secret_id_accessor: {accessor:?}"
    ))
}

/// `secret-id/lookup`: an unknown secret ID answers 204, as Vault does.
pub(super) async fn lookup(
    ctx: &Ctx<'_>,
    req: &Request,
    name: &str,
) -> Result<Response, BackendError> {
    let role = require(ctx, name).await?;
    Ok(match find(ctx, req, &role).await? {
        Some(e) => Response::with_data(e.to_json()),
        None => Response::no_content(),
    })
}

pub(super) async fn destroy(
    ctx: &Ctx<'_>,
    req: &Request,
    name: &str,
) -> Result<Response, BackendError> {
    let role = require(ctx, name).await?;
    let _guard = STATE_LOCK.lock().await;
    if let Some(e) = find(ctx, req, &role).await? {
        SecretIds::new(ctx, &role).remove(&e).await?;
    }
    Ok(Response::no_content())
}

pub(super) async fn lookup_accessor(
    ctx: &Ctx<'_>,
    req: &Request,
    name: &str,
) -> Result<Response, BackendError> {
    let role = require(ctx, name).await?;
    let accessor = accessor_param(req)?;
    let ids = SecretIds::new(ctx, &role);
    match live(&ids, ids.by_accessor(accessor).await?).await? {
        Some(e) => Ok(Response::with_data(e.to_json())),
        None => Err(unknown_accessor(accessor)),
    }
}

pub(super) async fn destroy_accessor(
    ctx: &Ctx<'_>,
    req: &Request,
    name: &str,
) -> Result<Response, BackendError> {
    let role = require(ctx, name).await?;
    let accessor = accessor_param(req)?;
    let ids = SecretIds::new(ctx, &role);
    let _guard = STATE_LOCK.lock().await;
    let entry = ids
        .by_accessor(accessor)
        .await?
        .ok_or_else(|| unknown_accessor(accessor))?;
    ids.remove(&entry).await?;
    Ok(Response::no_content())
}

//! The `approle` auth method: machines log in with a role ID and a secret ID.
//!
//! Role IDs and secret IDs are only ever stored as HMAC-SHA256 digests under a random key
//! kept in the mount's own storage, so a storage dump (or a snapshot) cannot be replayed as
//! credentials. Every mutation of secret-ID state happens under one lock and is written as a
//! single barrier batch, so a limited-use secret ID can never be spent twice.

mod login;
mod role;
mod secret_id;
#[cfg(test)]
mod tests;

use std::sync::LazyLock;

use async_trait::async_trait;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;
use strongroom_logical::{Backend, BackendError, Ctx, Operation, Request, Response};
use tokio::sync::Mutex;
use zeroize::Zeroizing;

/// Storage key (in the mount view) of the HMAC key for role and secret IDs.
const HMAC_KEY: &str = "hmac_key";
const HMAC_KEY_LEN: usize = 32;

/// Serializes read-modify-write cycles on approle state (role-ID index, secret-ID use
/// counts). Only the active node writes, so a process-wide lock is enough.
static STATE_LOCK: LazyLock<Mutex<()>> = LazyLock::new(|| Mutex::new(()));

/// Serializes creation of a mount's HMAC key.
static KEY_LOCK: LazyLock<Mutex<()>> = LazyLock::new(|| Mutex::new(()));

pub(crate) struct AppRole;

/// The mount's HMAC key, created on first use.
async fn hmac_key(ctx: &Ctx<'_>) -> Result<Zeroizing<Vec<u8>>, BackendError> {
    if let Some(k) = ctx.view.get(HMAC_KEY).await? {
        return Ok(Zeroizing::new(k));
    }
    let _guard = KEY_LOCK.lock().await;
    if let Some(k) = ctx.view.get(HMAC_KEY).await? {
        return Ok(Zeroizing::new(k));
    }
    let mut key = Zeroizing::new(vec![0u8; HMAC_KEY_LEN]);
    getrandom::fill(key.as_mut_slice())
        .map_err(|e| BackendError::Internal(format!("OS RNG failed: {e}")))?;
    ctx.view.put(HMAC_KEY, &key).await?;
    Ok(key)
}

/// Hex HMAC-SHA256 of `input` under `key`: the storage identity of a role or secret ID.
fn mac(key: &[u8], input: &str) -> Result<String, BackendError> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .map_err(|e| BackendError::Internal(format!("approle HMAC key is unusable: {e}")))?;
    m.update(input.as_bytes());
    Ok(hex::encode(m.finalize().into_bytes()))
}

/// Validates and normalizes a role name (lower-cased, one path segment).
fn role_name(raw: &str) -> Result<String, BackendError> {
    let name = raw.trim().to_lowercase();
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(BackendError::InvalidRequest(format!(
            "invalid role name {raw:?}: use a non-empty name without '/'"
        )));
    }
    Ok(name)
}

fn decode<T: DeserializeOwned>(raw: &[u8], what: &str) -> Result<T, BackendError> {
    serde_json::from_slice(raw)
        .map_err(|e| BackendError::Internal(format!("{what} is corrupt: {e}")))
}

fn encode<T: Serialize>(value: &T, what: &str) -> Result<Vec<u8>, BackendError> {
    serde_json::to_vec(value)
        .map_err(|e| BackendError::Internal(format!("encoding {what} failed: {e}")))
}

#[async_trait]
impl Backend for AppRole {
    fn unauthenticated(&self, rest: &str, op: Operation) -> bool {
        rest.trim_end_matches('/') == "login" && matches!(op, Operation::Update | Operation::Create)
    }

    async fn exists(&self, ctx: &Ctx<'_>, rest: &str) -> Result<Option<bool>, BackendError> {
        let parts: Vec<&str> = rest.trim_matches('/').split('/').collect();
        match parts.as_slice() {
            ["role", raw] => match role_name(raw) {
                Ok(name) => Ok(Some(role::load(ctx, &name).await?.is_some())),
                Err(_) => Ok(None),
            },
            _ => Ok(None),
        }
    }

    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        req: &Request,
        rest: &str,
    ) -> Result<Response, BackendError> {
        use Operation::*;
        let parts: Vec<&str> = rest.trim_matches('/').split('/').collect();
        match (parts.as_slice(), req.operation) {
            (["login"], Create | Update) => login::login(ctx, req).await,
            (["role"], List) => role::list(ctx).await,
            (["role", raw], op) => {
                let name = role_name(raw)?;
                match op {
                    Read => role::read(ctx, &name).await,
                    Create | Update => role::write(ctx, req, &name).await,
                    Delete => role::delete(ctx, &name).await,
                    _ => Err(BackendError::UnsupportedOperation),
                }
            }
            (["role", raw, "role-id"], Read) => role::read_role_id(ctx, &role_name(raw)?).await,
            (["role", raw, "role-id"], Create | Update) => {
                role::write_role_id(ctx, req, &role_name(raw)?).await
            }
            (["role", raw, "secret-id"], List) => secret_id::list(ctx, &role_name(raw)?).await,
            (["role", raw, "secret-id"], Create | Update) => {
                secret_id::generate(ctx, req, &role_name(raw)?, false).await
            }
            (["role", raw, "custom-secret-id"], Create | Update) => {
                secret_id::generate(ctx, req, &role_name(raw)?, true).await
            }
            (["role", raw, "secret-id", "lookup"], Create | Update) => {
                secret_id::lookup(ctx, req, &role_name(raw)?).await
            }
            (["role", raw, "secret-id", "destroy"], Create | Update | Delete) => {
                secret_id::destroy(ctx, req, &role_name(raw)?).await
            }
            (["role", raw, "secret-id-accessor", "lookup"], Create | Update) => {
                secret_id::lookup_accessor(ctx, req, &role_name(raw)?).await
            }
            (["role", raw, "secret-id-accessor", "destroy"], Create | Update | Delete) => {
                secret_id::destroy_accessor(ctx, req, &role_name(raw)?).await
            }
            (
                ["login"]
                | ["role"]
                | ["role", _, "role-id" | "secret-id" | "custom-secret-id"]
                | [
                    "role",
                    _,
                    "secret-id" | "secret-id-accessor",
                    "lookup" | "destroy",
                ],
                _,
            ) => Err(BackendError::UnsupportedOperation),
            _ => Err(BackendError::UnsupportedPath(req.path.clone())),
        }
    }
}

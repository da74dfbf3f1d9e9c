//! The minimal token store: root tokens, looked up by hash.
//!
//! Tokens are never stored or logged in the clear: the storage key is the SHA-256 of the token,
//! so a lookup costs the same whatever the presented token shares with a real one, and a dump
//! of storage (already barrier-encrypted) does not even reveal token hashes. Full service and
//! batch tokens, TTLs and policies arrive with the token milestone; this module is where they
//! plug in.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::{Core, CoreError, Request, Response};

const TOKEN_ID_PREFIX: &str = "sys/token/id/";
const TOKEN_ACCESSOR_PREFIX: &str = "sys/token/accessor/";
/// Longest token we bother hashing; anything longer cannot be ours.
const MAX_TOKEN_LEN: usize = 512;

/// What the store knows about one token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenEntry {
    pub accessor: String,
    pub policies: Vec<String>,
    pub creation_time: i64,
    pub display_name: String,
    pub path: String,
}

impl TokenEntry {
    /// Whether this token carries the root policy.
    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }
}

fn token_key(token: &str) -> String {
    format!(
        "{TOKEN_ID_PREFIX}{}",
        hex::encode(Sha256::digest(token.as_bytes()))
    )
}

impl Core {
    /// Resolves a client token to its entry; unknown or missing tokens are `PermissionDenied`.
    pub(crate) async fn authenticate(&self, token: Option<&str>) -> Result<TokenEntry, CoreError> {
        let token = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(CoreError::PermissionDenied)?;
        if token.len() > MAX_TOKEN_LEN {
            return Err(CoreError::PermissionDenied);
        }
        let raw = self
            .barrier
            .get(&token_key(token))
            .await?
            .ok_or(CoreError::PermissionDenied)?;
        serde_json::from_slice(&raw)
            .map_err(|e| CoreError::Internal(format!("token entry is corrupt: {e}")))
    }

    /// Creates a root token, with the given id (dev mode, generate-root) or a fresh one.
    pub(crate) async fn create_root_token(&self, id: Option<&str>) -> Result<String, CoreError> {
        let token = match id {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => format!("hvs.{}", crate::util::random_base62(24)?),
        };
        let accessor = crate::util::random_base62(24)?;
        let entry = TokenEntry {
            accessor: accessor.clone(),
            policies: vec!["root".into()],
            creation_time: now_secs(),
            display_name: "root".into(),
            path: "auth/token/root".into(),
        };
        let raw = serde_json::to_vec(&entry)
            .map_err(|e| CoreError::Internal(format!("encoding token: {e}")))?;
        let key = token_key(&token);
        self.barrier
            .write(vec![
                strongroom_barrier::BarrierOp::Put {
                    key: key.clone(),
                    value: raw,
                },
                strongroom_barrier::BarrierOp::Put {
                    key: format!("{TOKEN_ACCESSOR_PREFIX}{accessor}"),
                    value: key.into_bytes(),
                },
            ])
            .await?;
        Ok(token)
    }

    /// Removes a token and its accessor.
    pub(crate) async fn revoke_token(&self, token: &str) -> Result<(), CoreError> {
        let key = token_key(token);
        let Some(raw) = self.barrier.get(&key).await? else {
            return Ok(());
        };
        let entry: TokenEntry = serde_json::from_slice(&raw)
            .map_err(|e| CoreError::Internal(format!("token entry is corrupt: {e}")))?;
        self.barrier
            .write(vec![
                strongroom_barrier::BarrierOp::Delete { key },
                strongroom_barrier::BarrierOp::Delete {
                    key: format!("{TOKEN_ACCESSOR_PREFIX}{}", entry.accessor),
                },
            ])
            .await?;
        Ok(())
    }
}

/// `auth/token/*` paths available before the full token store exists.
pub(crate) async fn route(
    core: &Core,
    req: &Request,
    entry: &TokenEntry,
    rest: &str,
) -> Result<Response, CoreError> {
    match rest {
        "lookup-self" => {
            let mut data = Map::new();
            data.insert("accessor".into(), json!(entry.accessor));
            data.insert("creation_time".into(), json!(entry.creation_time));
            data.insert("creation_ttl".into(), json!(0));
            data.insert("display_name".into(), json!(entry.display_name));
            data.insert("entity_id".into(), json!(""));
            data.insert("expire_time".into(), Value::Null);
            data.insert("explicit_max_ttl".into(), json!(0));
            data.insert("id".into(), json!(req.token.clone().unwrap_or_default()));
            data.insert("meta".into(), Value::Null);
            data.insert("num_uses".into(), json!(0));
            data.insert("orphan".into(), json!(true));
            data.insert("path".into(), json!(entry.path));
            data.insert("policies".into(), json!(entry.policies));
            data.insert("renewable".into(), json!(false));
            data.insert("ttl".into(), json!(0));
            data.insert("type".into(), json!("service"));
            let _ = core;
            Ok(Response {
                mount_type: "token".into(),
                ..Response::with_data(data)
            })
        }
        "revoke-self" => {
            if let Some(t) = req.token.as_deref() {
                core.revoke_token(t).await?;
            }
            Ok(Response::no_content())
        }
        _ => Err(CoreError::UnsupportedPath(req.path.clone())),
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

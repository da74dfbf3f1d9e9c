//! `sys/internal/ui/mounts` and the KV preflight (`.../mounts/:path`, `sys/mounts-all/:path`).
//!
//! The preflight tells the CLI whether a path is KV v1 or v2, so it must work for any token
//! that can use the mount, yet never let a token discover mounts it cannot use: unknown
//! paths and inaccessible mounts both answer 403, as in Vault.

use serde_json::{Map, Value, json};

use crate::mounts::MountEntry;
use crate::token::TokenEntry;
use crate::{Core, CoreError, Response};

/// Whether the token's policies grant anything on the mount at all.
///
/// The ACL exposes per-path capabilities only, so this probes the mount root and the paths
/// a KV client would use below it (including the one asked about).
async fn has_access(
    core: &Core,
    token: &TokenEntry,
    mount: &MountEntry,
    asked: Option<&str>,
) -> Result<bool, CoreError> {
    if token.is_root() {
        return Ok(true);
    }
    let acl = core.acl_for(&token.policies).await?;
    let base = mount.path.as_str();
    let mut probes = vec![
        base.to_owned(),
        format!("{base}data/"),
        format!("{base}metadata/"),
    ];
    if let Some(p) = asked {
        probes.push(p.to_owned());
        if let Some(rest) = p.strip_prefix(base) {
            probes.push(format!("{base}data/{rest}"));
            probes.push(format!("{base}metadata/{rest}"));
        }
    }
    Ok(probes
        .iter()
        .any(|p| acl.capabilities(p).iter().any(|c| c.as_str() != "deny")))
}

/// `GET sys/internal/ui/mounts`: mounts marked `unauth`, plus those the token can use.
pub(super) async fn list(core: &Core, token: Option<&TokenEntry>) -> Result<Response, CoreError> {
    let entries = core.mounts.read().await.entries.clone();
    let mut secret = Map::new();
    let mut auth = Map::new();
    for e in &entries {
        if e.engine == "token" && token.is_none() {
            continue;
        }
        let full = match token {
            Some(t) => has_access(core, t, e, None).await?,
            None => false,
        };
        let shown = if full {
            e.to_json()
        } else if e.config.listing_visibility == "unauth" {
            json!({"type": e.engine, "description": e.description, "options": e.options_json()})
        } else {
            continue;
        };
        if e.is_auth() {
            auth.insert(e.listing_path().to_owned(), shown);
        } else {
            secret.insert(e.path.clone(), shown);
        }
    }
    let mut data = Map::new();
    data.insert("secret".into(), Value::Object(secret));
    data.insert("auth".into(), Value::Object(auth));
    Ok(Response::with_data(data))
}

/// `GET sys/internal/ui/mounts/:path`: the mount owning `path`, with `path` added.
pub(super) async fn owning_mount(
    core: &Core,
    token: Option<&TokenEntry>,
    path: &str,
) -> Result<Response, CoreError> {
    let token = token.ok_or(CoreError::PermissionDenied)?;
    let path = path.trim_start_matches('/');
    let (entry, _) = core
        .resolve_mount(path)
        .await
        .ok_or(CoreError::PermissionDenied)?;
    if !has_access(core, token, &entry, Some(path)).await? {
        return Err(CoreError::PermissionDenied);
    }
    let mut data = match entry.to_json() {
        Value::Object(m) => m,
        _ => {
            return Err(CoreError::Internal(
                "mount entry did not encode as an object".into(),
            ));
        }
    };
    data.insert("path".into(), json!(entry.path));
    Ok(Response::with_data(data))
}

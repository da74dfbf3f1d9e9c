//! The `userpass` auth method: people log in with a name and a password.
//!
//! Passwords are stored only as argon2id PHC strings and checked by the argon2 crate (which
//! compares in constant time). A failed login gives the same answer, after about the same
//! work, whether the user exists or not, so the endpoint cannot be used to discover names.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use strongroom_logical::params::{str_param, string_list_param};
use strongroom_logical::{Backend, BackendError, Ctx, Operation, Request, Response, cidr};
use zeroize::Zeroizing;

use super::token_fields::{TokenFields, sanitize_policies};
use password::{hash_password, verify_password};

mod password;
#[cfg(test)]
mod tests;

/// Storage prefix of user records inside the mount's view.
const USER_PREFIX: &str = "user/";

/// The one answer to every failed login.
const INVALID_LOGIN: &str = "invalid username or password";

/// A stored user. The password exists only as its argon2id hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserEntry {
    password_hash: String,
    #[serde(flatten)]
    token: TokenFields,
}

pub(crate) struct Userpass;

/// Validates and normalizes a username (lower-cased, one path segment).
fn username(raw: &str) -> Result<String, BackendError> {
    let name = raw.trim().to_lowercase();
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(BackendError::InvalidRequest(format!(
            "invalid username {raw:?}: use a non-empty name without '/'"
        )));
    }
    Ok(name)
}

/// Takes the `password` parameter into zeroizing memory.
fn password_param(data: &Map<String, Value>) -> Result<Option<Zeroizing<String>>, BackendError> {
    Ok(str_param(data, "password")?
        .filter(|p| !p.is_empty())
        .map(|p| Zeroizing::new(p.to_owned())))
}

async fn load(ctx: &Ctx<'_>, name: &str) -> Result<Option<UserEntry>, BackendError> {
    match ctx.view.get(&format!("{USER_PREFIX}{name}")).await? {
        None => Ok(None),
        Some(raw) => serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| BackendError::Internal(format!("user record {name:?} is corrupt: {e}"))),
    }
}

async fn save(ctx: &Ctx<'_>, name: &str, user: &UserEntry) -> Result<(), BackendError> {
    let raw = serde_json::to_vec(user)
        .map_err(|e| BackendError::Internal(format!("encoding user record failed: {e}")))?;
    ctx.view.put(&format!("{USER_PREFIX}{name}"), &raw).await
}

async fn require(ctx: &Ctx<'_>, name: &str) -> Result<UserEntry, BackendError> {
    load(ctx, name)
        .await?
        .ok_or_else(|| BackendError::InvalidRequest(format!("username {name:?} does not exist")))
}

impl Userpass {
    async fn list(&self, ctx: &Ctx<'_>) -> Result<Response, BackendError> {
        let keys = ctx.view.list(USER_PREFIX).await?;
        if keys.is_empty() {
            return Err(BackendError::NotFound);
        }
        let mut data = Map::new();
        data.insert("keys".into(), json!(keys));
        Ok(Response::with_data(data))
    }

    async fn read(&self, ctx: &Ctx<'_>, name: &str) -> Result<Response, BackendError> {
        let user = load(ctx, name).await?.ok_or(BackendError::NotFound)?;
        let mut data = Map::new();
        user.token.write_json(&mut data);
        Ok(Response::with_data(data))
    }

    async fn write(
        &self,
        ctx: &Ctx<'_>,
        req: &Request,
        name: &str,
    ) -> Result<Response, BackendError> {
        if str_param(&req.data, "password_hash")?.is_some() {
            return Err(BackendError::InvalidRequest(
                "\"password_hash\" (bcrypt import) is not supported: send \"password\" instead"
                    .into(),
            ));
        }
        let password = password_param(&req.data)?;
        let existing = load(ctx, name).await?;
        let mut token = existing
            .as_ref()
            .map(|u| u.token.clone())
            .unwrap_or_default();
        token.update(&req.data)?;
        let password_hash = match (password, existing) {
            (Some(p), _) => hash_password(p).await?,
            (None, Some(u)) => u.password_hash,
            (None, None) => return Err(BackendError::InvalidRequest("missing password".into())),
        };
        save(
            ctx,
            name,
            &UserEntry {
                password_hash,
                token,
            },
        )
        .await?;
        Ok(Response::no_content())
    }

    async fn set_password(
        &self,
        ctx: &Ctx<'_>,
        req: &Request,
        name: &str,
    ) -> Result<Response, BackendError> {
        let password = password_param(&req.data)?
            .ok_or_else(|| BackendError::InvalidRequest("missing password".into()))?;
        let mut user = require(ctx, name).await?;
        user.password_hash = hash_password(password).await?;
        save(ctx, name, &user).await?;
        Ok(Response::no_content())
    }

    async fn set_policies(
        &self,
        ctx: &Ctx<'_>,
        req: &Request,
        name: &str,
    ) -> Result<Response, BackendError> {
        let policies = match string_list_param(&req.data, "token_policies")? {
            Some(p) => p,
            None => string_list_param(&req.data, "policies")?
                .ok_or_else(|| BackendError::InvalidRequest("missing token_policies".into()))?,
        };
        let mut user = require(ctx, name).await?;
        user.token.token_policies = sanitize_policies(policies);
        save(ctx, name, &user).await?;
        Ok(Response::no_content())
    }

    async fn login(
        &self,
        ctx: &Ctx<'_>,
        req: &Request,
        raw: &str,
    ) -> Result<Response, BackendError> {
        let invalid = || BackendError::InvalidRequest(INVALID_LOGIN.into());
        let password = password_param(&req.data)?
            .ok_or_else(|| BackendError::InvalidRequest("missing password".into()))?;
        // A malformed name cannot exist; still pay for one verification before refusing.
        let name = username(raw).ok();
        let user = match &name {
            Some(n) => load(ctx, n).await?,
            None => None,
        };
        let ok = verify_password(password, user.as_ref().map(|u| u.password_hash.clone())).await?;
        let (Some(name), Some(user), true) = (name, user, ok) else {
            return Err(invalid());
        };
        if !cidr::allows(&user.token.token_bound_cidrs, req.client_addr) {
            return Err(invalid());
        }
        let mount = ctx
            .mount
            .path
            .trim_start_matches("auth/")
            .trim_matches('/')
            .replace('/', "-");
        let metadata = BTreeMap::from([("username".to_owned(), name.clone())]);
        let login = user
            .token
            .login_request(format!("{mount}-{name}"), metadata);
        Ok(Response {
            login: Some(login),
            ..Response::default()
        })
    }
}

#[async_trait]
impl Backend for Userpass {
    fn unauthenticated(&self, rest: &str, op: Operation) -> bool {
        rest.starts_with("login/") && matches!(op, Operation::Update | Operation::Create)
    }

    async fn exists(&self, ctx: &Ctx<'_>, rest: &str) -> Result<Option<bool>, BackendError> {
        let parts: Vec<&str> = rest.trim_matches('/').split('/').collect();
        match parts.as_slice() {
            ["users", raw] => match username(raw) {
                Ok(name) => Ok(Some(load(ctx, &name).await?.is_some())),
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
            (["users"], List) => self.list(ctx).await,
            (["users", raw], op) => {
                let name = username(raw)?;
                match op {
                    Read => self.read(ctx, &name).await,
                    Create | Update => self.write(ctx, req, &name).await,
                    Delete => {
                        ctx.view.delete(&format!("{USER_PREFIX}{name}")).await?;
                        Ok(Response::no_content())
                    }
                    _ => Err(BackendError::UnsupportedOperation),
                }
            }
            (["users", raw, "password"], Create | Update) => {
                self.set_password(ctx, req, &username(raw)?).await
            }
            (["users", raw, "policies"], Create | Update) => {
                self.set_policies(ctx, req, &username(raw)?).await
            }
            (["login", raw], Create | Update) => self.login(ctx, req, raw).await,
            (["users"] | ["users", _, "password" | "policies"] | ["login", _], _) => {
                Err(BackendError::UnsupportedOperation)
            }
            _ => Err(BackendError::UnsupportedPath(req.path.clone())),
        }
    }
}

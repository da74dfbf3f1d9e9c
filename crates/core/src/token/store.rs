//! Token records in storage: issue, look up, count uses, renew, revoke.
//!
//! Layout (all barrier-encrypted, see `keys`): the entry under `sys/token/id/<hash>`, the
//! accessor under `sys/token/accessor/<accessor>` (value: the hash), the parent/child index
//! under `sys/token/parent/<parent hash>/<child hash>`, and, for tokens that expire, a lease
//! record that the expiration manager schedules. A token and its index entries are written
//! and deleted in one atomic batch, so a crash never leaves a token without its lease.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use strongroom_barrier::BarrierOp;

use super::{IssueRequest, IssuedToken, TokenEntry, TokenType, now_secs, token_hash};
use crate::expiration::{LeaseEntry, lease_key};
use crate::keys::{TOKEN_ACCESSOR_PREFIX, TOKEN_ID_PREFIX, TOKEN_PARENT_PREFIX, cubbyhole_prefix};
use crate::{Core, CoreError};

/// Longest token we bother hashing; anything longer cannot be ours.
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Most tokens one revocation walks; a larger tree is revoked over several calls.
const MAX_TREE: usize = 100_000;

fn id_key(hash: &str) -> String {
    format!("{TOKEN_ID_PREFIX}{hash}")
}

fn accessor_key(accessor: &str) -> String {
    format!("{TOKEN_ACCESSOR_PREFIX}{accessor}")
}

fn parent_key(parent: &str, child: &str) -> String {
    format!("{TOKEN_PARENT_PREFIX}{parent}/{child}")
}

fn encode(entry: &TokenEntry) -> Result<Vec<u8>, CoreError> {
    serde_json::to_vec(entry).map_err(|e| CoreError::Internal(format!("encoding token: {e}")))
}

/// Accessors are base62; anything else cannot name a token (and must not shape a key).
pub(crate) fn valid_accessor(accessor: &str) -> bool {
    !accessor.is_empty()
        && accessor.len() <= 128
        && accessor.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn secs(d: Option<Duration>) -> i64 {
    d.map(|d| d.as_secs().min(i64::MAX as u64) as i64)
        .unwrap_or(0)
}

/// Expiry for a TTL granted now, rounded up so a token never lives less than its TTL.
fn expiry(ttl: i64) -> Option<i64> {
    if ttl <= 0 {
        return None;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let round_up = i64::from(now.subsec_nanos() > 0);
    Some(now.as_secs() as i64 + round_up + ttl)
}

impl Core {
    /// Looks a token up; `None` if unknown, expired, used up, or (batch) its parent is gone.
    pub(crate) async fn lookup_token(&self, token: &str) -> Result<Option<TokenEntry>, CoreError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Ok(None);
        }
        let now = now_secs();
        if token.starts_with(super::batch::BATCH_PREFIX) {
            let Some(entry) = self.decode_batch_token(token).await? else {
                return Ok(None);
            };
            if entry.is_dead(now) {
                return Ok(None);
            }
            if let Some(parent) = &entry.parent_hash {
                let alive = self
                    .token_entry_by_hash(parent)
                    .await?
                    .is_some_and(|p| !p.is_dead(now));
                if !alive {
                    return Ok(None);
                }
            }
            return Ok(Some(entry));
        }
        Ok(self
            .token_entry_by_hash(&token_hash(token))
            .await?
            .filter(|e| !e.is_dead(now)))
    }

    /// The stored entry for a token hash, dead or alive.
    pub(crate) async fn token_entry_by_hash(
        &self,
        hash: &str,
    ) -> Result<Option<TokenEntry>, CoreError> {
        let Some(raw) = self.barrier.get(&id_key(hash)).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| CoreError::Internal(format!("token entry is corrupt: {e}")))
    }

    /// The live entry behind an accessor; `None` if unknown, expired or used up.
    pub(crate) async fn token_by_accessor(
        &self,
        accessor: &str,
    ) -> Result<Option<TokenEntry>, CoreError> {
        if !valid_accessor(accessor) {
            return Ok(None);
        }
        let Some(raw) = self.barrier.get(&accessor_key(accessor)).await? else {
            return Ok(None);
        };
        let hash = String::from_utf8(raw)
            .map_err(|_| CoreError::Internal("accessor record is corrupt".into()))?;
        let now = now_secs();
        Ok(self
            .token_entry_by_hash(&hash)
            .await?
            .filter(|e| !e.is_dead(now)))
    }

    /// Counts one use of a limited-use token. The use that spends the last one still succeeds;
    /// the token is then unusable at once and revoked by the expiration manager right after.
    pub(crate) async fn consume_token_use(
        &self,
        token: &str,
        entry: &TokenEntry,
    ) -> Result<(), CoreError> {
        if entry.num_uses == 0 || entry.token_type == TokenType::Batch {
            return Ok(());
        }
        let _guard = self.expiration.token_update.lock().await;
        let now = now_secs();
        let mut current = self
            .token_entry_by_hash(&token_hash(token))
            .await?
            .filter(|e| !e.is_dead(now))
            .ok_or(CoreError::PermissionDenied)?;
        if current.num_uses == 0 {
            return Ok(());
        }
        current.num_uses -= 1;
        let mut ops = Vec::with_capacity(2);
        let mut schedule = None;
        if current.num_uses == 0 {
            current.num_uses = -1;
            let lease = LeaseEntry {
                lease_id: current.lease_id(),
                token_hash: Some(current.id_hash.clone()),
                issue_time: current.creation_time,
                expire_time: now,
                last_renewal: current.last_renewal_time,
                renewable: false,
            };
            ops.push(Core::lease_put_op(&lease)?);
            schedule = Some(lease.lease_id);
        }
        ops.push(BarrierOp::Put {
            key: id_key(&current.id_hash),
            value: encode(&current)?,
        });
        self.barrier.write(ops).await?;
        if let Some(lease_id) = schedule {
            self.expiration.schedule(&lease_id, now);
        }
        Ok(())
    }

    /// Creates and stores a token (batch tokens are sealed, not stored). Applies the TTL
    /// rules: a period replaces the TTL; the TTL is capped by `max_ttl`, the system maximum
    /// and `explicit_max_ttl`; a root-policy token without a TTL never expires.
    pub(crate) async fn issue_token(&self, req: IssueRequest) -> Result<IssuedToken, CoreError> {
        let mut policies = req.policies.clone();
        let root_policy = policies.iter().any(|p| p == "root");
        if !req.no_default_policy && !root_policy && !policies.iter().any(|p| p == "default") {
            policies.push("default".into());
        }
        policies.sort();
        policies.dedup();

        let system_max = secs(Some(self.config.max_ttl()));
        let max = match secs(req.max_ttl) {
            0 => system_max,
            m => m.min(system_max),
        };
        let explicit = secs(req.explicit_max_ttl);
        let period = secs(req.period);
        let mut ttl = if period > 0 {
            period
        } else {
            match secs(req.ttl) {
                0 if root_policy && req.ttl.is_none() => explicit,
                0 => secs(Some(self.config.default_ttl())).min(max),
                t => t.min(max),
            }
        };
        if explicit > 0 && (ttl == 0 || ttl > explicit) {
            ttl = explicit;
        }
        if req.num_uses < 0 {
            return Err(CoreError::InvalidRequest(
                "number of uses cannot be negative".into(),
            ));
        }

        let now = now_secs();
        let mut entry = TokenEntry {
            id_hash: String::new(),
            accessor: String::new(),
            parent_hash: req.parent.as_ref().map(|p| p.id_hash.clone()),
            policies,
            path: req.path,
            meta: req.meta,
            display_name: req.display_name,
            num_uses: req.num_uses,
            creation_time: now,
            ttl,
            explicit_max_ttl: explicit,
            period,
            renewable: req.renewable && ttl > 0,
            expire_time: expiry(ttl),
            token_type: req.token_type,
            orphan: req.parent.is_none(),
            role: req.role,
            bound_cidrs: req.bound_cidrs,
            entity_id: String::new(),
            last_renewal_time: None,
        };

        if req
            .parent
            .as_ref()
            .is_some_and(|p| p.token_type == TokenType::Batch)
        {
            return Err(CoreError::InvalidRequest(
                "batch tokens cannot create more tokens".into(),
            ));
        }
        if req.token_type == TokenType::Batch {
            if root_policy {
                return Err(CoreError::InvalidRequest(
                    "batch tokens cannot carry the root policy".into(),
                ));
            }
            if period > 0 || entry.num_uses > 0 || req.id.is_some() {
                return Err(CoreError::InvalidRequest(
                    "batch tokens cannot be periodic, have limited uses or a custom id".into(),
                ));
            }
            entry.renewable = false;
            entry.explicit_max_ttl = 0;
            let token = self.encode_batch_token(&entry)?;
            entry.id_hash = token_hash(&token);
            return Ok(IssuedToken {
                token: zeroize::Zeroizing::new(token),
                entry,
            });
        }

        let token = match req.id {
            Some(id) if !id.is_empty() => id,
            _ => format!("hvs.{}", crate::util::random_base62(24)?),
        };
        entry.id_hash = token_hash(&token);
        if self.barrier.get(&id_key(&entry.id_hash)).await?.is_some() {
            return Err(CoreError::InvalidRequest(
                "a token with that id already exists; choose another id".into(),
            ));
        }
        entry.accessor = crate::util::random_base62(24)?;

        let mut ops = vec![
            BarrierOp::Put {
                key: id_key(&entry.id_hash),
                value: encode(&entry)?,
            },
            BarrierOp::Put {
                key: accessor_key(&entry.accessor),
                value: entry.id_hash.clone().into_bytes(),
            },
        ];
        if let Some(parent) = &entry.parent_hash {
            ops.push(BarrierOp::Put {
                key: parent_key(parent, &entry.id_hash),
                value: Vec::new(),
            });
        }
        let lease = entry.expire_time.map(|expire_time| LeaseEntry {
            lease_id: entry.lease_id(),
            token_hash: Some(entry.id_hash.clone()),
            issue_time: now,
            expire_time,
            last_renewal: None,
            renewable: entry.renewable,
        });
        if let Some(lease) = &lease {
            ops.push(Core::lease_put_op(lease)?);
        }
        self.barrier.write(ops).await?;
        if let Some(lease) = lease {
            self.expiration.schedule(&lease.lease_id, lease.expire_time);
        }
        Ok(IssuedToken {
            token: zeroize::Zeroizing::new(token),
            entry,
        })
    }

    /// Creates a root token, with the given id (dev mode, generate-root) or a fresh one.
    pub(crate) async fn create_root_token(&self, id: Option<&str>) -> Result<String, CoreError> {
        let issued = self
            .issue_token(IssueRequest {
                policies: vec!["root".into()],
                display_name: "root".into(),
                path: "auth/token/root".into(),
                no_default_policy: true,
                id: id.map(str::to_owned),
                ..IssueRequest::default()
            })
            .await?;
        Ok(issued.token.to_string())
    }

    /// Revokes a token and all its descendants. Unknown tokens are a no-op; batch tokens
    /// cannot be revoked on their own.
    pub(crate) async fn revoke_token(&self, token: &str) -> Result<(), CoreError> {
        if token.starts_with(super::batch::BATCH_PREFIX) {
            return Err(CoreError::InvalidRequest(
                "batch tokens cannot be revoked; they expire or die with their parent".into(),
            ));
        }
        self.revoke_tree_by_hash(&token_hash(token)).await
    }

    /// Revokes the token with hash `hash` and every token below it, leaves first, so an
    /// interrupted revocation never leaves a child whose parent is already gone.
    pub(crate) async fn revoke_tree_by_hash(&self, hash: &str) -> Result<(), CoreError> {
        let mut order: Vec<(String, Option<String>)> = Vec::new();
        let mut stack = vec![(hash.to_owned(), None::<String>)];
        while let Some((h, parent)) = stack.pop() {
            if order.len() >= MAX_TREE {
                return Err(CoreError::Internal(format!(
                    "token tree has more than {MAX_TREE} descendants; revoke subtrees first"
                )));
            }
            for child in self
                .barrier
                .list(&format!("{TOKEN_PARENT_PREFIX}{h}/"))
                .await?
            {
                let child = child.trim_end_matches('/').to_owned();
                if !child.is_empty() {
                    stack.push((child, Some(h.clone())));
                }
            }
            order.push((h, parent));
        }
        for (h, parent) in order.iter().rev() {
            self.revoke_one(h, parent.as_deref()).await?;
        }
        Ok(())
    }

    /// Revokes one token without its children, which become orphans.
    pub(crate) async fn revoke_orphan_by_hash(&self, hash: &str) -> Result<(), CoreError> {
        let children = self
            .barrier
            .list(&format!("{TOKEN_PARENT_PREFIX}{hash}/"))
            .await?;
        for child in children {
            let child = child.trim_end_matches('/');
            let _guard = self.expiration.token_update.lock().await;
            let mut ops = vec![BarrierOp::Delete {
                key: parent_key(hash, child),
            }];
            if let Some(mut entry) = self.token_entry_by_hash(child).await? {
                entry.parent_hash = None;
                entry.orphan = true;
                ops.push(BarrierOp::Put {
                    key: id_key(child),
                    value: encode(&entry)?,
                });
            }
            self.barrier.write(ops).await?;
        }
        self.revoke_one(hash, None).await
    }

    /// Deletes one token: entry, accessor, index entry, lease, then its cubbyhole.
    async fn revoke_one(&self, hash: &str, parent_hint: Option<&str>) -> Result<(), CoreError> {
        // Serialized with use counting and renewal, which read-modify-write the entry: a
        // revocation can never be undone by a concurrent write-back.
        let _guard = self.expiration.token_update.lock().await;
        let entry = self.token_entry_by_hash(hash).await?;
        let mut ops = vec![BarrierOp::Delete { key: id_key(hash) }];
        let mut lease_id = None;
        if let Some(parent) = parent_hint {
            ops.push(BarrierOp::Delete {
                key: parent_key(parent, hash),
            });
        }
        if let Some(entry) = &entry {
            if !entry.accessor.is_empty() {
                ops.push(BarrierOp::Delete {
                    key: accessor_key(&entry.accessor),
                });
            }
            if let Some(parent) = entry
                .parent_hash
                .as_deref()
                .filter(|p| Some(*p) != parent_hint)
            {
                ops.push(BarrierOp::Delete {
                    key: parent_key(parent, hash),
                });
            }
            let id = entry.lease_id();
            ops.push(BarrierOp::Delete {
                key: lease_key(&id),
            });
            lease_id = Some(id);
        }
        self.barrier.write(ops).await?;
        if let Some(id) = lease_id {
            self.expiration.unschedule(&id);
        }
        self.delete_prefix(&cubbyhole_prefix(hash)).await?;
        Ok(())
    }

    /// Renews a service token by `increment` (or its current TTL); periodic tokens reset to
    /// their period. Returns the updated entry.
    pub(crate) async fn renew_token_by_hash(
        &self,
        hash: &str,
        increment: Option<u64>,
    ) -> Result<TokenEntry, CoreError> {
        let _guard = self.expiration.token_update.lock().await;
        let now = now_secs();
        let mut entry = self
            .token_entry_by_hash(hash)
            .await?
            .filter(|e| !e.is_dead(now))
            .ok_or(CoreError::PermissionDenied)?;
        self.renew_entry(&mut entry, increment, now).await?;
        Ok(entry)
    }

    async fn renew_entry(
        &self,
        entry: &mut TokenEntry,
        increment: Option<u64>,
        now: i64,
    ) -> Result<(), CoreError> {
        if entry.token_type == TokenType::Batch {
            return Err(CoreError::InvalidRequest(
                "batch tokens cannot be renewed".into(),
            ));
        }
        if !entry.renewable || entry.expire_time.is_none() {
            return Err(CoreError::InvalidRequest("lease is not renewable".into()));
        }
        let mut ttl = if entry.period > 0 {
            entry.period
        } else {
            let max = self.max_ttl_for_path(&entry.path).await;
            let wanted = increment
                .filter(|i| *i > 0)
                .map(|i| i.min(i64::MAX as u64) as i64)
                .unwrap_or(entry.ttl);
            wanted.min(entry.creation_time + max - now)
        };
        if entry.explicit_max_ttl > 0 {
            ttl = ttl.min(entry.creation_time + entry.explicit_max_ttl - now);
        }
        if ttl <= 0 {
            return Err(CoreError::InvalidRequest(
                "token has reached its maximum TTL and cannot be renewed; create a new token"
                    .into(),
            ));
        }
        entry.ttl = ttl;
        entry.expire_time = Some(now + ttl);
        entry.last_renewal_time = Some(now);
        let lease = LeaseEntry {
            lease_id: entry.lease_id(),
            token_hash: Some(entry.id_hash.clone()),
            issue_time: entry.creation_time,
            expire_time: now + ttl,
            last_renewal: Some(now),
            renewable: true,
        };
        self.barrier
            .write(vec![
                BarrierOp::Put {
                    key: id_key(&entry.id_hash),
                    value: encode(entry)?,
                },
                Core::lease_put_op(&lease)?,
            ])
            .await?;
        self.expiration.schedule(&lease.lease_id, lease.expire_time);
        Ok(())
    }

    /// The maximum TTL for tokens issued at `path`: its mount's `max_lease_ttl` when set,
    /// never above the system maximum.
    pub(crate) async fn max_ttl_for_path(&self, path: &str) -> i64 {
        let system = secs(Some(self.config.max_ttl()));
        match self.resolve_mount(path).await {
            Some((mount, _)) => mount.effective_max_ttl(system),
            None => system,
        }
    }

    /// The default TTL for tokens issued at `path`: its mount's `default_lease_ttl` when set,
    /// else the system default.
    pub(crate) async fn default_ttl_for_path(&self, path: &str) -> i64 {
        let system = secs(Some(self.config.default_ttl()));
        match self.resolve_mount(path).await {
            Some((mount, _)) if mount.config.default_lease_ttl > 0 => {
                mount.config.default_lease_ttl
            }
            _ => system,
        }
    }
}

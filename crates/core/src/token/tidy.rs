//! `auth/token/tidy`: repairs the token store's indexes after crashes or partial failures.
//!
//! Token writes are atomic, but revocation of a tree and cubbyhole cleanup span several
//! writes; an interruption can leave accessors or parent-index entries pointing nowhere, or a
//! child whose parent is gone. Tidy finds those and finishes the job, in bounded pages.

use strongroom_barrier::BarrierOp;

use super::{TokenEntry, now_secs};
use crate::keys::{TOKEN_ACCESSOR_PREFIX, TOKEN_ID_PREFIX, TOKEN_PARENT_PREFIX};
use crate::{Core, CoreError};

const PAGE: usize = 512;

impl Core {
    /// Runs every tidy pass and returns a one-line summary.
    pub(crate) async fn tidy_tokens(&self) -> Result<String, CoreError> {
        let accessors = self.tidy_accessors().await?;
        let (dangling, orphaned) = self.tidy_parent_index().await?;
        let expired = self.tidy_expired().await?;
        Ok(format!(
            "removed {accessors} stale accessors and {dangling} dangling parent links; \
             revoked {orphaned} tokens whose parent was gone and {expired} expired tokens"
        ))
    }

    async fn tidy_accessors(&self) -> Result<usize, CoreError> {
        let mut removed = 0;
        for accessor in self.barrier.list(TOKEN_ACCESSOR_PREFIX).await? {
            let key = format!("{TOKEN_ACCESSOR_PREFIX}{accessor}");
            let Some(raw) = self.barrier.get(&key).await? else {
                continue;
            };
            let hash = String::from_utf8_lossy(&raw).into_owned();
            if self.token_entry_by_hash(&hash).await?.is_none() {
                self.barrier.delete(&key).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn tidy_parent_index(&self) -> Result<(usize, usize), CoreError> {
        let (mut dangling, mut orphaned) = (0, 0);
        for parent in self.barrier.list(TOKEN_PARENT_PREFIX).await? {
            let parent = parent.trim_end_matches('/');
            let parent_alive = self.token_entry_by_hash(parent).await?.is_some();
            let children = self
                .barrier
                .list(&format!("{TOKEN_PARENT_PREFIX}{parent}/"))
                .await?;
            for child in children {
                let child = child.trim_end_matches('/');
                if self.token_entry_by_hash(child).await?.is_none() {
                    self.barrier
                        .write(vec![BarrierOp::Delete {
                            key: format!("{TOKEN_PARENT_PREFIX}{parent}/{child}"),
                        }])
                        .await?;
                    dangling += 1;
                } else if !parent_alive {
                    // A child must not outlive its parent: finish the interrupted revocation.
                    self.revoke_tree_by_hash(child).await?;
                    self.barrier
                        .delete(&format!("{TOKEN_PARENT_PREFIX}{parent}/{child}"))
                        .await?;
                    orphaned += 1;
                }
            }
        }
        Ok((dangling, orphaned))
    }

    async fn tidy_expired(&self) -> Result<usize, CoreError> {
        let now = now_secs();
        let mut dead = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .storage
                .scan(TOKEN_ID_PREFIX, after.as_deref(), PAGE)
                .await?;
            let full = page.len() == PAGE;
            for (key, sealed) in page {
                let plain = self.barrier.decrypt_value(&key, &sealed)?;
                if let Ok(entry) = serde_json::from_slice::<TokenEntry>(&plain)
                    && entry.is_dead(now)
                {
                    dead.push(entry.id_hash);
                }
                after = Some(key);
            }
            if !full {
                break;
            }
        }
        for hash in &dead {
            self.revoke_tree_by_hash(hash).await?;
        }
        Ok(dead.len())
    }
}

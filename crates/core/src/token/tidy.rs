//! `auth/token/tidy`: repairs the token store's indexes after crashes or partial failures.
//!
//! Token writes are atomic, but revocation of a tree and cubbyhole cleanup span several
//! writes; an interruption can leave accessors or parent-index entries pointing nowhere, or a
//! child whose parent is gone. Tidy finds those and finishes the job, in bounded pages.

use strongroom_barrier::BarrierOp;

use super::{TokenEntry, now_secs};
use crate::keys::{TOKEN_ACCESSOR_PREFIX, TOKEN_ID_PREFIX, TOKEN_PARENT_PREFIX};
use crate::{Core, CoreError};

/// Records read per storage page.
const PAGE: usize = 512;

impl Core {
    /// Runs every tidy pass and returns a one-line summary.
    pub(crate) async fn tidy_tokens(&self) -> Result<String, CoreError> {
        self.tidy_tokens_paged(PAGE).await
    }

    /// [`Core::tidy_tokens`], reading `page` records at a time.
    pub(crate) async fn tidy_tokens_paged(&self, page: usize) -> Result<String, CoreError> {
        let page = page.max(1);
        let accessors = self.tidy_accessors(page).await?;
        let (dangling, orphaned) = self.tidy_parent_index(page).await?;
        let expired = self.tidy_expired(page).await?;
        Ok(format!(
            "removed {accessors} stale accessors and {dangling} dangling parent links; \
             revoked {orphaned} tokens whose parent was gone and {expired} expired tokens"
        ))
    }

    /// Storage records under `prefix` after `after`, at most `page`; the key to continue
    /// from is the last one returned while pages come back full.
    async fn tidy_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        page: usize,
    ) -> Result<(Vec<(String, Vec<u8>)>, bool), CoreError> {
        let records = self.storage.scan(prefix, after, page).await?;
        let more = records.len() == page;
        Ok((records, more))
    }

    async fn tidy_accessors(&self, page: usize) -> Result<usize, CoreError> {
        let mut removed = 0;
        let mut after: Option<String> = None;
        loop {
            let (records, more) = self
                .tidy_page(TOKEN_ACCESSOR_PREFIX, after.as_deref(), page)
                .await?;
            for (key, sealed) in records {
                let raw = self.barrier.decrypt_value(&key, &sealed)?;
                let hash = String::from_utf8_lossy(&raw).into_owned();
                if self.token_entry_by_hash(&hash).await?.is_none() {
                    self.barrier.delete(&key).await?;
                    removed += 1;
                }
                after = Some(key);
            }
            if !more {
                return Ok(removed);
            }
        }
    }

    /// Walks the parent index (`<parent>/<child>` keys, in order), one page at a time.
    async fn tidy_parent_index(&self, page: usize) -> Result<(usize, usize), CoreError> {
        let (mut dangling, mut orphaned) = (0, 0);
        let mut after: Option<String> = None;
        // The parent of the previous key and whether it is alive: children of one parent are
        // adjacent, so each parent is looked up once.
        let mut current: Option<(String, bool)> = None;
        loop {
            let (records, more) = self
                .tidy_page(TOKEN_PARENT_PREFIX, after.as_deref(), page)
                .await?;
            for (key, _) in records {
                let link = key.strip_prefix(TOKEN_PARENT_PREFIX).unwrap_or(&key);
                if let Some((parent, child)) = link.split_once('/') {
                    let child = child.trim_end_matches('/');
                    let parent_alive = match &current {
                        Some((p, alive)) if p == parent => *alive,
                        _ => {
                            let alive = self.token_entry_by_hash(parent).await?.is_some();
                            current = Some((parent.to_owned(), alive));
                            alive
                        }
                    };
                    if self.token_entry_by_hash(child).await?.is_none() {
                        self.barrier
                            .write(vec![BarrierOp::Delete { key: key.clone() }])
                            .await?;
                        dangling += 1;
                    } else if !parent_alive {
                        // A child must not outlive its parent: finish the interrupted
                        // revocation.
                        self.revoke_tree_by_hash(child).await?;
                        self.barrier.delete(&key).await?;
                        orphaned += 1;
                    }
                }
                after = Some(key);
            }
            if !more {
                return Ok((dangling, orphaned));
            }
        }
    }

    /// Revokes expired tokens page by page (a revocation only deletes records, so walking on
    /// after the last key seen stays correct).
    async fn tidy_expired(&self, page: usize) -> Result<usize, CoreError> {
        let now = now_secs();
        let mut revoked = 0;
        let mut after: Option<String> = None;
        loop {
            let (records, more) = self
                .tidy_page(TOKEN_ID_PREFIX, after.as_deref(), page)
                .await?;
            let mut dead = Vec::new();
            for (key, sealed) in records {
                let plain = self.barrier.decrypt_value(&key, &sealed)?;
                if let Ok(entry) = serde_json::from_slice::<TokenEntry>(&plain)
                    && entry.is_dead(now)
                {
                    dead.push(entry.id_hash);
                }
                after = Some(key);
            }
            for hash in &dead {
                self.revoke_tree_by_hash(hash).await?;
            }
            revoked += dead.len();
            if !more {
                return Ok(revoked);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::Operation;
    use crate::test_support::{call, create_tokens, lose_token_records, unsealed_core};

    #[tokio::test]
    async fn tidy_repairs_indexes_across_pages() {
        // Why: accessors and parent links are walked a page at a time; stale ones on every
        // page must go, and live tokens' ones stay.
        let (core, root) = unsealed_core().await;
        let tokens = create_tokens(&core, &root, 6, None).await;
        // An interrupted revocation: five token records gone, the rest left behind.
        lose_token_records(&core, &tokens[..5]).await;

        let report = core.tidy_tokens_paged(2).await.unwrap();
        let again = core.tidy_tokens_paged(2).await.unwrap();

        assert!(
            report.starts_with("removed 5 stale accessors and 5 dangling parent links"),
            "{report}"
        );
        assert!(
            again.starts_with("removed 0 stale accessors and 0 dangling"),
            "{again}"
        );
        let lookup = call(
            &core,
            &tokens[5],
            Operation::Read,
            "auth/token/lookup-self",
            json!({}),
        )
        .await;
        assert!(lookup.data.is_some());
    }
}

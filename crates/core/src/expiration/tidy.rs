//! `sys/leases/tidy`: drops token lease records whose token no longer exists.
//!
//! An interrupted revocation can delete a token but leave its lease record, which the timer
//! would otherwise keep scheduling. Tidy walks every lease record, a page at a time, so a store
//! with millions of leases never holds more than one page in memory.

use super::{lease_key, lease_root};
use crate::{Core, CoreError};

impl Core {
    /// Removes the lease records of tokens that are gone, reading `page` records at a time;
    /// returns how many were removed.
    pub(crate) async fn tidy_leases(&self, page: usize) -> Result<usize, CoreError> {
        let mut removed = 0;
        let mut after: Option<String> = None;
        loop {
            let batch = self
                .lease_page(&lease_root(), after.as_deref(), page)
                .await?;
            for lease in batch.leases {
                let Some(hash) = &lease.token_hash else {
                    continue;
                };
                if self.token_entry_by_hash(hash).await?.is_none() {
                    self.barrier.delete(&lease_key(&lease.lease_id)).await?;
                    self.expiration.unschedule(&lease.lease_id);
                    removed += 1;
                }
            }
            match batch.next {
                Some(next) => after = Some(next),
                None => return Ok(removed),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support::{create_tokens, lose_token_records, unsealed_core};
    use crate::token::token_hash;

    #[tokio::test]
    async fn tidy_walks_every_page_of_leases() {
        // Why: tidy reads leases a page at a time; records on later pages must be tidied too,
        // and live tokens' leases kept.
        let (core, root) = unsealed_core().await;
        let tokens = create_tokens(&core, &root, 7, Some("1h")).await;
        // An interrupted revocation: five token records gone, the rest left behind.
        lose_token_records(&core, &tokens[..5]).await;

        let removed = core.tidy_leases(2).await.unwrap();

        let left = core
            .lease_page(&super::lease_root(), None, 100)
            .await
            .unwrap();
        assert_eq!(removed, 5);
        assert_eq!(left.leases.len(), 2);
        assert!(left.next.is_none());
        let kept: Vec<_> = left
            .leases
            .iter()
            .filter_map(|l| l.token_hash.clone())
            .collect();
        assert!(tokens[5..].iter().all(|t| kept.contains(&token_hash(t))));
    }

    #[tokio::test]
    async fn lease_pages_end_with_no_next_key() {
        // Why: a caller walks pages until `next` is `None`; a full last page must still end.
        let (core, root) = unsealed_core().await;
        create_tokens(&core, &root, 4, Some("1h")).await;

        let first = core
            .lease_page(&super::lease_root(), None, 2)
            .await
            .unwrap();
        let second = core
            .lease_page(&super::lease_root(), first.next.as_deref(), 2)
            .await
            .unwrap();
        let third = core
            .lease_page(&super::lease_root(), second.next.as_deref(), 2)
            .await
            .unwrap();

        assert_eq!((first.leases.len(), second.leases.len()), (2, 2));
        assert!(first.next.is_some() && second.next.is_some());
        assert!(third.leases.is_empty() && third.next.is_none());
    }
}

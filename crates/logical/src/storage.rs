//! The storage a backend's views write through, as a small object-safe trait.
//!
//! Core implements [`Store`] with the encryption barrier; tests implement it with a map. The
//! trait is here, not in the barrier crate, so that backends depend on an interface they can
//! be handed rather than on the thing that holds the keys.

use async_trait::async_trait;

use crate::{BackendError, Op};

/// Ordered key/value storage with atomic batches, keys absolute.
#[async_trait]
pub trait Store: Send + Sync {
    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BackendError>;

    /// The immediate children of `prefix` (folders end in `/`), in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, BackendError>;

    /// At most `limit` keys starting with `prefix`, in key order, strictly after `after`
    /// when given: the bounded walk over a whole subtree.
    async fn scan_keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, BackendError>;

    /// Applies `ops` (absolute keys) atomically, in order.
    async fn write(&self, ops: Vec<Op>) -> Result<(), BackendError>;
}

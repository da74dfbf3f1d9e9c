//! The storage a backend's views write through, as a small object-safe trait.
//!
//! Core implements [`Store`] with the encryption barrier; tests implement it with a map. The
//! trait is here, not in the barrier crate, so that backends depend on an interface they can
//! be handed rather than on the thing that holds the keys.

use std::fmt;

use async_trait::async_trait;

use crate::BackendError;

/// One change in an atomic batch, with an absolute key. Only [`crate::View`] builds these
/// for backends, so a backend cannot name a key outside its views.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreOp {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

impl fmt::Debug for StoreOp {
    /// Values are plaintext secrets: only their length is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreOp::Put { key, value } => f
                .debug_struct("Put")
                .field("key", key)
                .field("value_len", &value.len())
                .finish(),
            StoreOp::Delete { key } => f.debug_struct("Delete").field("key", key).finish(),
        }
    }
}

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

    /// Applies `ops` atomically, in order.
    async fn write(&self, ops: Vec<StoreOp>) -> Result<(), BackendError>;
}

//! A storage view limited to one key prefix: the only storage handle a backend gets.
//!
//! Backends get views instead of storage so that a bug or a crafted path in one backend
//! cannot read or overwrite another mount's data or the system's own records: every key a
//! view touches is its prefix plus a relative key, and `..` segments are refused.

use crate::{BackendError, Store};

/// One change in an atomic write. Keys are relative to whatever applies it: a [`View`]
/// (what backends hold) prefixes them, so a backend cannot name an absolute key; a [`Store`]
/// (what core implements) takes them as they are.
#[derive(Clone, PartialEq, Eq)]
pub enum Op {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

impl std::fmt::Debug for Op {
    /// Values are plaintext secrets: only their length is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Put { key, value } => f
                .debug_struct("Put")
                .field("key", key)
                .field("value_len", &value.len())
                .finish(),
            Op::Delete { key } => f.debug_struct("Delete").field("key", key).finish(),
        }
    }
}

/// An atomic batch spanning several views of one store (a mount's replicated and local
/// data, say). Built only through views, so every key in it is inside one of them.
#[derive(Debug, Default)]
pub struct Batch {
    ops: Vec<Op>,
}

impl Batch {
    pub fn new() -> Self {
        Batch::default()
    }

    /// Adds a put of `key` (relative to `view`).
    pub fn put(&mut self, view: &View<'_>, key: &str, value: Vec<u8>) -> Result<(), BackendError> {
        self.ops.push(Op::Put {
            key: view.full(key)?,
            value,
        });
        Ok(())
    }

    /// Adds a delete of `key` (relative to `view`).
    pub fn delete(&mut self, view: &View<'_>, key: &str) -> Result<(), BackendError> {
        self.ops.push(Op::Delete {
            key: view.full(key)?,
        });
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Storage below one prefix; every key is relative to it.
pub struct View<'a> {
    store: &'a dyn Store,
    prefix: String,
}

impl<'a> View<'a> {
    /// A view of `store` below `prefix` (which should end in `/`). Core builds these.
    pub fn new(store: &'a dyn Store, prefix: String) -> Self {
        View { store, prefix }
    }

    fn full(&self, key: &str) -> Result<String, BackendError> {
        if key.split('/').any(|seg| seg == "..") {
            return Err(BackendError::InvalidRequest(format!(
                "invalid path {key:?}"
            )));
        }
        Ok(format!("{}{key}", self.prefix))
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BackendError> {
        self.store.get(&self.full(key)?).await
    }

    pub async fn put(&self, key: &str, value: &[u8]) -> Result<(), BackendError> {
        self.write(vec![Op::Put {
            key: key.to_owned(),
            value: value.to_vec(),
        }])
        .await
    }

    pub async fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.write(vec![Op::Delete {
            key: key.to_owned(),
        }])
        .await
    }

    /// The immediate children of `prefix` (relative), folders ending in `/`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BackendError> {
        self.store.list(&self.full(prefix)?).await
    }

    /// At most `limit` keys below `prefix` (relative, like the answer), in key order,
    /// strictly after `after`: one page of a walk over a whole subtree.
    pub async fn scan_keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, BackendError> {
        let after = after.map(|a| self.full(a)).transpose()?;
        let keys = self
            .store
            .scan_keys(&self.full(prefix)?, after.as_deref(), limit)
            .await?;
        Ok(keys
            .into_iter()
            .filter_map(|k| k.strip_prefix(&self.prefix).map(str::to_owned))
            .collect())
    }

    /// Applies several puts and deletes atomically, keys relative to this view.
    pub async fn write(&self, ops: Vec<Op>) -> Result<(), BackendError> {
        let mut batch = Batch::new();
        for op in ops {
            match op {
                Op::Put { key, value } => batch.put(self, &key, value)?,
                Op::Delete { key } => batch.delete(self, &key)?,
            }
        }
        self.commit(batch).await
    }

    /// Applies a batch built over this view and its siblings (views of the same store)
    /// atomically.
    pub async fn commit(&self, batch: Batch) -> Result<(), BackendError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.store.write(batch.ops).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemStore;

    #[tokio::test]
    async fn views_stay_inside_their_prefix() {
        // Why: a crafted `..` segment must not let a backend reach another prefix.
        let store = MemStore::default();
        let view = View::new(&store, "logical/a/".into());
        view.put("x/y", b"1").await.unwrap();

        let escape = view.put("../b/x", b"2").await;

        assert!(matches!(escape, Err(BackendError::InvalidRequest(_))));
        assert_eq!(store.keys(), ["logical/a/x/y"]);
        assert_eq!(view.list("").await.unwrap(), ["x/"]);
        assert_eq!(view.scan_keys("", None, 10).await.unwrap(), ["x/y"]);
    }

    #[tokio::test]
    async fn a_batch_spans_views_of_one_store_in_one_write() {
        // Why: approle deletes a role (mount view) and its local secret IDs (local view)
        // together, so no secret ID outlives its role.
        let store = MemStore::default();
        let shared = View::new(&store, "auth/u/".into());
        let local = View::new(&store, "local/u/".into());
        shared.put("role/r", b"r").await.unwrap();
        local.put("secret_id/r/h", b"s").await.unwrap();

        let mut batch = Batch::new();
        batch.delete(&shared, "role/r").unwrap();
        batch.delete(&local, "secret_id/r/h").unwrap();
        assert!(batch.delete(&local, "../../sys/x").is_err());
        shared.commit(batch).await.unwrap();

        assert!(store.keys().is_empty());
        assert_eq!(store.largest_write(), 2);
    }

    #[tokio::test]
    async fn scans_page_with_relative_cursors() {
        // Why: paged walks resume after the last key of the previous page.
        let store = MemStore::default();
        let view = View::new(&store, "p/".into());
        for k in ["a", "b", "c"] {
            view.put(k, b"v").await.unwrap();
        }

        let first = view.scan_keys("", None, 2).await.unwrap();
        let second = view.scan_keys("", Some("b"), 2).await.unwrap();

        assert_eq!(first, ["a", "b"]);
        assert_eq!(second, ["c"]);
    }
}

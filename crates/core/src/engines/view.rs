//! A barrier view limited to one key prefix.
//!
//! Engines get a view instead of the barrier so that a bug or a crafted path in one engine
//! cannot read or overwrite another mount's data or the system's own records.

use strongroom_barrier::{Barrier, BarrierOp};

use crate::CoreError;

/// The only storage handle an engine gets: every key is relative to the mount's prefix.
pub struct View<'a> {
    barrier: &'a Barrier,
    prefix: String,
}

impl<'a> View<'a> {
    pub fn new(barrier: &'a Barrier, prefix: String) -> Self {
        View { barrier, prefix }
    }

    fn full(&self, key: &str) -> Result<String, CoreError> {
        if key.split('/').any(|seg| seg == "..") {
            return Err(CoreError::InvalidRequest(format!("invalid path {key:?}")));
        }
        Ok(format!("{}{key}", self.prefix))
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CoreError> {
        Ok(self.barrier.get(&self.full(key)?).await?)
    }

    pub async fn put(&self, key: &str, value: &[u8]) -> Result<(), CoreError> {
        Ok(self.barrier.put(&self.full(key)?, value).await?)
    }

    pub async fn delete(&self, key: &str) -> Result<(), CoreError> {
        Ok(self.barrier.delete(&self.full(key)?).await?)
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, CoreError> {
        Ok(self.barrier.list(&self.full(prefix)?).await?)
    }

    /// Applies several puts and deletes atomically, keys relative to the view.
    pub async fn write(&self, ops: Vec<BarrierOp>) -> Result<(), CoreError> {
        let ops = ops
            .into_iter()
            .map(|op| match op {
                BarrierOp::Put { key, value } => Ok(BarrierOp::Put {
                    key: self.full(&key)?,
                    value,
                }),
                BarrierOp::Delete { key } => Ok(BarrierOp::Delete {
                    key: self.full(&key)?,
                }),
            })
            .collect::<Result<Vec<_>, CoreError>>()?;
        Ok(self.barrier.write(ops).await?)
    }
}

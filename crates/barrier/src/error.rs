//! Barrier errors, typed so that core can map each case to the right Vault answer: a sealed
//! barrier is a 503, a wrong key is a 400 "invalid key", corruption is a 500.

use strongroom_storage::StorageError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BarrierError {
    /// The keyring is not in memory: unseal first.
    #[error("Vault is sealed")]
    Sealed,
    /// The unseal key (or the combined shares) does not open the stored root key, or the root
    /// key does not open the stored keyring.
    #[error("invalid key: the unseal key or key shares do not decrypt the stored root key")]
    InvalidKey,
    /// `initialize` was called on storage that already holds a keyring.
    #[error("Vault is already initialized")]
    AlreadyInitialized,
    /// The storage holds no keyring or root key yet: initialize first.
    #[error("Vault is not initialized")]
    NotInitialized,
    /// Stored bytes fail to parse or authenticate: the data is damaged, foreign, or was moved
    /// to another key.
    #[error("barrier data is corrupt: {0}")]
    Corrupt(String),
    /// A key share is malformed (wrong length, duplicate) or the share set is unusable.
    #[error("invalid key share: {0}")]
    InvalidShare(String),
    /// A seal configuration was rejected; the message is Vault's wording.
    #[error("invalid seal configuration: {0}")]
    InvalidSealConfig(String),
    /// The operating system's random number generator failed; no key material was produced.
    #[error("system random number generator failed: {0}")]
    Random(String),
    /// The storage backend failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

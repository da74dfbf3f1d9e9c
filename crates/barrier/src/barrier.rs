//! The security barrier: the only place where stored data exists in plaintext.
//!
//! Everything above reads and writes through [`Barrier`], which encrypts each value with the
//! active keyring term, bound to its storage key, before it reaches storage (and so the Raft
//! log, snapshots and replication streams). While sealed the keyring is not in memory and
//! every data operation answers [`BarrierError::Sealed`].

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use strongroom_storage::{Op, Storage};
use tokio::sync::Mutex;

use crate::envelope::{self, KEY_LEN, OpenError};
use crate::keyring::{KeyStatus, Keyring};
use crate::seal::{KEYRING_PATH, ROOT_KEY_PATH, SEAL_CONFIG_PATH};
use crate::{BarrierError, RootKey, SealConfig, UnsealKey};

/// One mutation of an atomic [`Barrier::write`] batch, in plaintext.
#[derive(Clone, PartialEq, Eq)]
pub enum BarrierOp {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

impl fmt::Debug for BarrierOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BarrierOp::Put { key, value } => f
                .debug_struct("Put")
                .field("key", key)
                .field("value_len", &value.len())
                .finish(),
            BarrierOp::Delete { key } => f.debug_struct("Delete").field("key", key).finish(),
        }
    }
}

/// Encrypting view of a [`Storage`], sealed until [`Barrier::unseal`] succeeds.
pub struct Barrier {
    storage: Arc<dyn Storage>,
    keyring: RwLock<Option<Keyring>>,
    /// Serializes the operations that replace the keyring (initialize, unseal, seal, rotate,
    /// reload, rekey) so that storage and memory never disagree about the active term.
    admin: Mutex<()>,
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("sealed", &self.sealed())
            .finish_non_exhaustive()
    }
}

impl Barrier {
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Barrier {
            storage,
            keyring: RwLock::new(None),
            admin: Mutex::new(()),
        }
    }

    /// The raw storage underneath (ciphertext and plaintext bootstrap records only).
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// True once [`Barrier::initialize`] has stored a keyring.
    pub async fn initialized(&self) -> Result<bool, BarrierError> {
        Ok(self.storage.get(KEYRING_PATH).await?.is_some())
    }

    /// Creates the term-1 keyring under `root_key` and stores `root_key` under `unseal_key`,
    /// in one atomic write. The barrier stays sealed.
    pub async fn initialize(
        &self,
        unseal_key: &UnsealKey,
        root_key: &RootKey,
    ) -> Result<(), BarrierError> {
        let _admin = self.admin.lock().await;
        if self.storage.get(KEYRING_PATH).await?.is_some()
            || self.storage.get(ROOT_KEY_PATH).await?.is_some()
        {
            return Err(BarrierError::AlreadyInitialized);
        }
        let keyring = Keyring::new(root_key.clone())?;
        let ops = vec![
            Op::Put {
                key: ROOT_KEY_PATH.to_owned(),
                value: seal_root_key(unseal_key, root_key)?,
            },
            Op::Put {
                key: KEYRING_PATH.to_owned(),
                value: keyring.to_stored()?,
            },
        ];
        self.storage.write(ops).await?;
        Ok(())
    }

    /// Opens the root key with `unseal_key` and the keyring with the root key. A wrong key
    /// gives [`BarrierError::InvalidKey`] and leaves the barrier sealed. Unsealing an unsealed
    /// barrier succeeds without checking the key.
    pub async fn unseal(&self, unseal_key: &UnsealKey) -> Result<(), BarrierError> {
        let _admin = self.admin.lock().await;
        if !self.sealed() {
            return Ok(());
        }
        let root_key = self.open_root_key(unseal_key).await?;
        let stored = self
            .storage
            .get(KEYRING_PATH)
            .await?
            .ok_or(BarrierError::NotInitialized)?;
        let keyring = Keyring::from_stored(root_key, &stored).map_err(|e| match e {
            BarrierError::InvalidKey => {
                BarrierError::Corrupt("the stored keyring does not open with the root key".into())
            }
            other => other,
        })?;
        *self.write_guard() = Some(keyring);
        Ok(())
    }

    /// Opens the stored keyring with an already-known root key, replacing any keyring in
    /// memory. A DR secondary uses this when it adopts its primary's keyring: the root key
    /// arrives in the activation bundle, while the stored root key stays sealed under the
    /// primary's unseal key (so after a restart the secondary unseals with the primary's
    /// shares). A root key that does not open the stored keyring leaves the barrier unchanged.
    pub async fn unseal_with_root_key(&self, root_key: &RootKey) -> Result<(), BarrierError> {
        let _admin = self.admin.lock().await;
        let stored = self
            .storage
            .get(KEYRING_PATH)
            .await?
            .ok_or(BarrierError::NotInitialized)?;
        let keyring = Keyring::from_stored(root_key.clone(), &stored)?;
        *self.write_guard() = Some(keyring);
        Ok(())
    }

    /// A copy of the in-memory root key; sealed barriers have none. Only the replication
    /// activation bundle needs it (a DR secondary must open the same keyring).
    pub fn root_key(&self) -> Result<RootKey, BarrierError> {
        self.with_keyring(|k| Ok(k.root_key().clone()))
    }

    /// Checks `unseal_key` against the stored root key without unsealing (generate-root and
    /// rekey verify the operators' shares this way).
    pub async fn verify_unseal_key(&self, unseal_key: &UnsealKey) -> Result<(), BarrierError> {
        self.open_root_key(unseal_key).await.map(drop)
    }

    /// Re-encrypts the root key under `new_unseal_key` (rekey) and records how the new key
    /// is shared, together with `also` (encrypted like any barrier write), in one atomic
    /// storage write: a crash leaves either the old key and configuration or the new ones.
    /// Requires an unsealed barrier.
    pub async fn rekey(
        &self,
        new_unseal_key: &UnsealKey,
        config: &SealConfig,
        also: Vec<BarrierOp>,
    ) -> Result<(), BarrierError> {
        config.validate()?;
        let _admin = self.admin.lock().await;
        let ops = self.with_keyring(|k| {
            let mut ops = vec![
                Op::Put {
                    key: ROOT_KEY_PATH.to_owned(),
                    value: seal_root_key(new_unseal_key, k.root_key())?,
                },
                Op::Put {
                    key: SEAL_CONFIG_PATH.to_owned(),
                    value: config.to_stored()?,
                },
            ];
            for op in also {
                ops.push(match op {
                    BarrierOp::Put { key, value } => Op::Put {
                        value: k.encrypt(&key, &value)?,
                        key,
                    },
                    BarrierOp::Delete { key } => Op::Delete { key },
                });
            }
            Ok(ops)
        })?;
        self.storage.write(ops).await?;
        Ok(())
    }

    /// Forgets the keyring and root key (their bytes are wiped as they drop).
    pub async fn seal(&self) {
        let _admin = self.admin.lock().await;
        self.write_guard().take();
    }

    pub fn sealed(&self) -> bool {
        self.read_guard().is_none()
    }

    /// Reads and decrypts one value.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BarrierError> {
        self.check_unsealed()?;
        let Some(sealed) = self.storage.get(key).await? else {
            return Ok(None);
        };
        // A standby serving reads holds a copy of the keyring: a value written after the
        // active node rotated names a term that copy lacks, so re-read the keyring (it is
        // already in storage: the rotation was applied before the value) and try once more.
        if self.with_keyring(|k| Ok(k.lacks_term_of(&sealed)))? {
            self.reload_keyring().await?;
        }
        let mut plain = self.with_keyring(|k| k.decrypt(key, &sealed))?;
        Ok(Some(std::mem::take(&mut *plain)))
    }

    /// Encrypts with the active term and writes one value.
    pub async fn put(&self, key: &str, value: &[u8]) -> Result<(), BarrierError> {
        let sealed = self.with_keyring(|k| k.encrypt(key, value))?;
        self.storage.put(key, sealed).await?;
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> Result<(), BarrierError> {
        self.check_unsealed()?;
        self.storage.delete(key).await?;
        Ok(())
    }

    /// Lists the immediate children of `prefix` (keys are not encrypted).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        self.check_unsealed()?;
        Ok(self.storage.list(prefix).await?)
    }

    /// Applies `ops` atomically, encrypting every put.
    pub async fn write(&self, ops: Vec<BarrierOp>) -> Result<(), BarrierError> {
        let sealed_ops = self.with_keyring(|k| {
            ops.into_iter()
                .map(|op| match op {
                    BarrierOp::Put { key, value } => {
                        let value = k.encrypt(&key, &value)?;
                        Ok(Op::Put { key, value })
                    }
                    BarrierOp::Delete { key } => Ok(Op::Delete { key }),
                })
                .collect::<Result<Vec<_>, BarrierError>>()
        })?;
        self.storage.write(sealed_ops).await?;
        Ok(())
    }

    /// Adds a fresh term, makes it active and persists the keyring. Older terms stay to
    /// decrypt older values.
    pub async fn rotate(&self) -> Result<KeyStatus, BarrierError> {
        let _admin = self.admin.lock().await;
        let rotated = self.with_keyring(Keyring::rotated)?;
        self.storage.put(KEYRING_PATH, rotated.to_stored()?).await?;
        let status = rotated.status();
        *self.write_guard() = Some(rotated);
        Ok(status)
    }

    pub fn key_status(&self) -> Result<KeyStatus, BarrierError> {
        self.with_keyring(|k| Ok(k.status()))
    }

    /// Encrypts bytes that are not stored through the barrier (e.g. a snapshot's checksum
    /// file), in the stored-value format, bound to `aad`.
    pub fn encrypt_value(&self, aad: &str, plaintext: &[u8]) -> Result<Vec<u8>, BarrierError> {
        self.with_keyring(|k| k.encrypt(aad, plaintext))
    }

    /// Reverses [`Barrier::encrypt_value`]; a different `aad` fails as corrupt.
    pub fn decrypt_value(&self, aad: &str, ciphertext: &[u8]) -> Result<Vec<u8>, BarrierError> {
        let mut plain = self.with_keyring(|k| k.decrypt(aad, ciphertext))?;
        Ok(std::mem::take(&mut *plain))
    }

    /// [`Barrier::decrypt_value`] for values minted on another node (batch tokens): when
    /// `ciphertext` names a key term a few rotations past this copy of the keyring, re-reads
    /// the keyring once first, as [`Barrier::get`] does (the value comes from a client here,
    /// so a made-up far-future term does not cost a re-read).
    pub async fn decrypt_value_current(
        &self,
        aad: &str,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, BarrierError> {
        if self.with_keyring(|k| Ok(k.lags_term_of(ciphertext)))? {
            self.reload_keyring().await?;
        }
        self.decrypt_value(aad, ciphertext)
    }

    /// Re-reads the keyring from storage with the in-memory root key, after storage was
    /// replaced underneath (snapshot restore, replication bootstrap) or another node rotated.
    pub async fn reload_keyring(&self) -> Result<(), BarrierError> {
        let _admin = self.admin.lock().await;
        let root_key = self.with_keyring(|k| Ok(k.root_key().clone()))?;
        let stored = self
            .storage
            .get(KEYRING_PATH)
            .await?
            .ok_or(BarrierError::NotInitialized)?;
        let keyring = Keyring::from_stored(root_key, &stored)?;
        *self.write_guard() = Some(keyring);
        Ok(())
    }

    /// Whether `stored_keyring` (the raw `core/keyring` value of some other key/value set)
    /// opens with this barrier's root key. False when sealed.
    pub fn keyring_opens(&self, stored_keyring: &[u8]) -> bool {
        match self.read_guard().as_ref() {
            Some(k) => Keyring::from_stored(k.root_key().clone(), stored_keyring).is_ok(),
            None => false,
        }
    }

    async fn open_root_key(&self, unseal_key: &UnsealKey) -> Result<RootKey, BarrierError> {
        let stored = self
            .storage
            .get(ROOT_KEY_PATH)
            .await?
            .ok_or(BarrierError::NotInitialized)?;
        let cipher = envelope::cipher(unseal_key.bytes());
        let plain =
            envelope::open(&cipher, ROOT_KEY_PATH.as_bytes(), &stored).map_err(|e| match e {
                OpenError::Malformed(err) => err,
                OpenError::Unauthentic => BarrierError::InvalidKey,
            })?;
        if plain.len() != KEY_LEN {
            return Err(BarrierError::Corrupt(
                "stored root key has the wrong length".into(),
            ));
        }
        RootKey::from_bytes(&plain)
    }

    fn check_unsealed(&self) -> Result<(), BarrierError> {
        self.with_keyring(|_| Ok(()))
    }

    fn with_keyring<T>(
        &self,
        f: impl FnOnce(&Keyring) -> Result<T, BarrierError>,
    ) -> Result<T, BarrierError> {
        match self.read_guard().as_ref() {
            Some(keyring) => f(keyring),
            None => Err(BarrierError::Sealed),
        }
    }

    // A panic while holding the lock cannot leave a half-built keyring (replacements are
    // single assignments), so a poisoned lock is still safe to use.
    fn read_guard(&self) -> RwLockReadGuard<'_, Option<Keyring>> {
        self.keyring.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_guard(&self) -> std::sync::RwLockWriteGuard<'_, Option<Keyring>> {
        self.keyring.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The root key as stored: encrypted under the unseal key, bound to its path.
fn seal_root_key(unseal_key: &UnsealKey, root_key: &RootKey) -> Result<Vec<u8>, BarrierError> {
    let cipher = envelope::cipher(unseal_key.bytes());
    envelope::seal(&cipher, 0, ROOT_KEY_PATH.as_bytes(), root_key.bytes())
}

#[cfg(test)]
mod tests;

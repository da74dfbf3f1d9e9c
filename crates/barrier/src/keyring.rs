//! The set of data-encryption keys ("terms"), kept so that rotation never needs a rewrite of
//! stored data: new writes use the active term, old values still name the term that opens
//! them. The keyring is itself stored encrypted under the root key.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use aes_gcm::Aes256Gcm;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::envelope::{self, KEY_LEN, OpenError};
use crate::seal::KEYRING_PATH;
use crate::{BarrierError, RootKey};

/// The active encryption key's identity, for `sys/key-status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    pub term: u32,
    pub install_time: SystemTime,
    /// Values encrypted with this term by this process since it was installed or unsealed.
    pub encryptions: u64,
}

/// One data-encryption key with its ready-made cipher.
#[derive(Clone)]
struct Term {
    key: Zeroizing<[u8; KEY_LEN]>,
    cipher: Aes256Gcm,
    install_time: SystemTime,
}

impl Term {
    fn new(key: Zeroizing<[u8; KEY_LEN]>, install_time: SystemTime) -> Self {
        let cipher = envelope::cipher(&key);
        Term {
            key,
            cipher,
            install_time,
        }
    }
}

/// The in-memory keyring of an unsealed barrier, with the root key that protects it.
pub(crate) struct Keyring {
    root_key: RootKey,
    terms: BTreeMap<u32, Term>,
    active: u32,
    encryptions: AtomicU64,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("terms", &self.terms.keys().collect::<Vec<_>>())
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

/// Serialized form; the key strings are wiped when it is dropped.
#[derive(Serialize, Deserialize)]
struct StoredKeyring {
    active_term: u32,
    terms: Vec<StoredTerm>,
}

#[derive(Serialize, Deserialize)]
struct StoredTerm {
    term: u32,
    key: String,
    install_time: SystemTime,
}

impl Drop for StoredTerm {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl Keyring {
    /// A keyring holding term 1 with a fresh random key.
    pub(crate) fn new(root_key: RootKey) -> Result<Self, BarrierError> {
        let term = Term::new(envelope::random_key()?, SystemTime::now());
        Ok(Keyring {
            root_key,
            terms: BTreeMap::from([(1, term)]),
            active: 1,
            encryptions: AtomicU64::new(0),
        })
    }

    pub(crate) fn root_key(&self) -> &RootKey {
        &self.root_key
    }

    /// A copy of this keyring with one more term, made active.
    pub(crate) fn rotated(&self) -> Result<Self, BarrierError> {
        let next = self
            .active
            .checked_add(1)
            .ok_or_else(|| BarrierError::Corrupt("keyring term counter is exhausted".into()))?;
        let mut terms = self.terms.clone();
        terms.insert(next, Term::new(envelope::random_key()?, SystemTime::now()));
        Ok(Keyring {
            root_key: self.root_key.clone(),
            terms,
            active: next,
            encryptions: AtomicU64::new(0),
        })
    }

    pub(crate) fn status(&self) -> KeyStatus {
        let install_time = self
            .terms
            .get(&self.active)
            .map_or(SystemTime::UNIX_EPOCH, |t| t.install_time);
        KeyStatus {
            term: self.active,
            install_time,
            encryptions: self.encryptions.load(Ordering::Relaxed),
        }
    }

    /// Encrypts with the active term, bound to `aad`.
    pub(crate) fn encrypt(&self, aad: &str, plaintext: &[u8]) -> Result<Vec<u8>, BarrierError> {
        let term = self
            .terms
            .get(&self.active)
            .ok_or_else(|| BarrierError::Corrupt("active keyring term is missing".into()))?;
        let sealed = envelope::seal(&term.cipher, self.active, aad.as_bytes(), plaintext)?;
        self.encryptions.fetch_add(1, Ordering::Relaxed);
        Ok(sealed)
    }

    /// Whether `ciphertext` names a term this keyring does not hold (written after a rotation
    /// this copy of the keyring has not seen).
    pub(crate) fn lacks_term_of(&self, ciphertext: &[u8]) -> bool {
        envelope::term_of(ciphertext).is_ok_and(|term| !self.terms.contains_key(&term))
    }

    /// Whether `ciphertext` names a term just past the newest this copy holds: what another
    /// node's recent rotations produce. A term far beyond it is not worth re-reading the
    /// keyring for; such a value comes from a forger (e.g. a made-up batch token).
    pub(crate) fn lags_term_of(&self, ciphertext: &[u8]) -> bool {
        /// Rotations another node may be ahead of this copy by.
        const ROTATIONS_AHEAD: u32 = 16;
        let newest = self
            .terms
            .keys()
            .next_back()
            .copied()
            .unwrap_or(self.active);
        envelope::term_of(ciphertext)
            .is_ok_and(|term| term > newest && term <= newest.saturating_add(ROTATIONS_AHEAD))
    }

    /// Decrypts with whichever term the value names; any failure means the bytes are damaged,
    /// foreign, or were moved from another `aad`.
    pub(crate) fn decrypt(
        &self,
        aad: &str,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, BarrierError> {
        let term = envelope::term_of(ciphertext)?;
        let key = self.terms.get(&term).ok_or_else(|| {
            BarrierError::Corrupt(format!("value at {aad} names unknown key term {term}"))
        })?;
        envelope::open(&key.cipher, aad.as_bytes(), ciphertext).map_err(|e| match e {
            OpenError::Malformed(err) => err,
            OpenError::Unauthentic => {
                BarrierError::Corrupt(format!("value at {aad} failed authentication"))
            }
        })
    }

    /// The keyring as stored: JSON encrypted under the root key.
    pub(crate) fn to_stored(&self) -> Result<Vec<u8>, BarrierError> {
        let stored = StoredKeyring {
            active_term: self.active,
            terms: self
                .terms
                .iter()
                .map(|(&term, t)| StoredTerm {
                    term,
                    key: STANDARD.encode(t.key.as_slice()),
                    install_time: t.install_time,
                })
                .collect(),
        };
        let json = Zeroizing::new(
            serde_json::to_vec(&stored)
                .map_err(|e| BarrierError::Corrupt(format!("serializing the keyring: {e}")))?,
        );
        let cipher = envelope::cipher(self.root_key.bytes());
        envelope::seal(&cipher, 0, KEYRING_PATH.as_bytes(), &json)
    }

    /// Opens a stored keyring with `root_key`: [`BarrierError::InvalidKey`] when the root key
    /// does not authenticate it, [`BarrierError::Corrupt`] when it opens but does not parse.
    pub(crate) fn from_stored(root_key: RootKey, stored: &[u8]) -> Result<Self, BarrierError> {
        let cipher = envelope::cipher(root_key.bytes());
        let json =
            envelope::open(&cipher, KEYRING_PATH.as_bytes(), stored).map_err(|e| match e {
                OpenError::Malformed(err) => err,
                OpenError::Unauthentic => BarrierError::InvalidKey,
            })?;
        let parsed: StoredKeyring = serde_json::from_slice(&json)
            .map_err(|e| BarrierError::Corrupt(format!("keyring does not parse: {e}")))?;
        let mut terms = BTreeMap::new();
        for t in &parsed.terms {
            let raw = Zeroizing::new(STANDARD.decode(&t.key).map_err(|_| {
                BarrierError::Corrupt(format!("keyring term {} key is not base64", t.term))
            })?);
            if raw.len() != KEY_LEN || t.term == 0 {
                return Err(BarrierError::Corrupt(format!(
                    "keyring term {} is malformed",
                    t.term
                )));
            }
            let mut key = Zeroizing::new([0u8; KEY_LEN]);
            key.copy_from_slice(&raw);
            if terms
                .insert(t.term, Term::new(key, t.install_time))
                .is_some()
            {
                return Err(BarrierError::Corrupt(format!(
                    "keyring holds term {} twice",
                    t.term
                )));
            }
        }
        if !terms.contains_key(&parsed.active_term) {
            return Err(BarrierError::Corrupt(format!(
                "keyring active term {} has no key",
                parsed.active_term
            )));
        }
        Ok(Keyring {
            root_key,
            terms,
            active: parsed.active_term,
            encryptions: AtomicU64::new(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_keyring_round_trips_and_hides_keys() {
        // Why: a restart must recover every term, and the stored form must not leak them.
        let root = RootKey::generate().unwrap();
        let ring = Keyring::new(root.clone()).unwrap().rotated().unwrap();
        let stored = ring.to_stored().unwrap();
        let encoded = STANDARD.encode(*ring.terms[&1].key);
        assert!(!String::from_utf8_lossy(&stored).contains(&encoded));

        let back = Keyring::from_stored(root, &stored).unwrap();
        assert_eq!(back.active, 2);
        assert_eq!(back.terms.len(), 2);
        assert_eq!(*back.terms[&1].key, *ring.terms[&1].key);
    }

    #[test]
    fn wrong_root_key_is_invalid_key() {
        // Why: unseal maps this to "invalid key"; it must not look like corruption.
        let ring = Keyring::new(RootKey::generate().unwrap()).unwrap();
        let stored = ring.to_stored().unwrap();
        let other = RootKey::generate().unwrap();
        assert!(matches!(
            Keyring::from_stored(other, &stored),
            Err(BarrierError::InvalidKey)
        ));
    }
}

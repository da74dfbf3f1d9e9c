//! The secrets that lock the barrier and the plaintext record of how they are shared.
//!
//! Two keys stand between storage and plaintext: the unseal key (never stored; operators hold
//! it as Shamir shares) encrypts the root key, and the root key encrypts the keyring. Keeping
//! them as distinct types stops one from being passed where the other is meant, and keeps
//! their bytes out of logs and freed memory.

use std::fmt;

use serde::{Deserialize, Serialize};
use strongroom_storage::Storage;
use zeroize::Zeroizing;

use crate::BarrierError;
use crate::envelope::{KEY_LEN, random_key};

/// Storage key of the plaintext [`SealConfig`].
pub const SEAL_CONFIG_PATH: &str = "core/seal-config";
/// Storage key of the root key, encrypted under the unseal key.
pub const ROOT_KEY_PATH: &str = "core/root-key";
/// Storage key of the keyring, encrypted under the root key.
pub const KEYRING_PATH: &str = "core/keyring";

/// How the unseal key is split: stored in plaintext so that `sys/seal-status` can report
/// `t` and `n` while sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealConfig {
    /// Always `"shamir"` for now.
    #[serde(rename = "type")]
    pub seal_type: String,
    pub secret_shares: u32,
    pub secret_threshold: u32,
}

impl SealConfig {
    /// A Shamir configuration with `shares` shares, any `threshold` of which unseal.
    pub fn shamir(secret_shares: u32, secret_threshold: u32) -> Self {
        SealConfig {
            seal_type: "shamir".to_owned(),
            secret_shares,
            secret_threshold,
        }
    }

    /// Checks the share counts, with Vault's wording so that clients see familiar errors.
    pub fn validate(&self) -> Result<(), BarrierError> {
        let (shares, threshold) = (self.secret_shares, self.secret_threshold);
        let problem = if shares < 1 {
            "shares must be at least one"
        } else if threshold < 1 {
            "threshold must be at least one"
        } else if shares > 1 && threshold == 1 {
            "threshold must be greater than one for multiple shares"
        } else if shares > 255 {
            "shares must be less than 256"
        } else if threshold > 255 {
            "threshold must be less than 256"
        } else if threshold > shares {
            "threshold cannot be larger than shares"
        } else if self.seal_type != "shamir" {
            "unsupported seal type"
        } else {
            return Ok(());
        };
        Err(BarrierError::InvalidSealConfig(problem.to_owned()))
    }

    /// Reads the configuration, `None` before initialization.
    pub async fn load(storage: &dyn Storage) -> Result<Option<SealConfig>, BarrierError> {
        let Some(raw) = storage.get(SEAL_CONFIG_PATH).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| BarrierError::Corrupt(format!("{SEAL_CONFIG_PATH} does not parse: {e}")))
    }

    /// Writes the configuration (plaintext: it holds no secret).
    pub async fn save(&self, storage: &dyn Storage) -> Result<(), BarrierError> {
        storage.put(SEAL_CONFIG_PATH, self.to_stored()?).await?;
        Ok(())
    }

    /// The stored form at [`SEAL_CONFIG_PATH`].
    pub(crate) fn to_stored(&self) -> Result<Vec<u8>, BarrierError> {
        serde_json::to_vec(self)
            .map_err(|e| BarrierError::Corrupt(format!("seal configuration: {e}")))
    }
}

macro_rules! secret_key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(Zeroizing<[u8; KEY_LEN]>);

        impl $name {
            /// A fresh random key from the operating system's RNG.
            pub fn generate() -> Result<Self, BarrierError> {
                random_key().map($name)
            }

            /// Wraps existing key bytes, which must be exactly 32 long.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, BarrierError> {
                if bytes.len() != KEY_LEN {
                    return Err(BarrierError::InvalidShare(format!(
                        "key is {} bytes, expected {KEY_LEN}",
                        bytes.len()
                    )));
                }
                let mut key = Zeroizing::new([0u8; KEY_LEN]);
                key.copy_from_slice(bytes);
                Ok($name(key))
            }

            pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
                &self.0
            }

            /// The key bytes, for the few callers that must move a key between processes
            /// (the replication activation bundle). Copies must be zeroized by the caller.
            pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

secret_key!(
    /// The key that encrypts the keyring. Lives in memory only while unsealed.
    RootKey
);
secret_key!(
    /// The key that encrypts the root key; operators hold it as Shamir shares.
    UnsealKey
);

#[cfg(test)]
mod tests {
    use super::*;
    use strongroom_storage::InmemStorage;

    fn rejects(shares: u32, threshold: u32, message: &str) {
        let err = SealConfig::shamir(shares, threshold)
            .validate()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("invalid seal configuration: {message}")
        );
    }

    #[test]
    fn validate_uses_vaults_messages() {
        // Why: sys/init must answer 400 with the same text Vault clients expect.
        rejects(3, 5, "threshold cannot be larger than shares");
        rejects(
            3,
            1,
            "threshold must be greater than one for multiple shares",
        );
        rejects(256, 3, "shares must be less than 256");
        rejects(0, 0, "shares must be at least one");
        assert!(SealConfig::shamir(1, 1).validate().is_ok());
        assert!(SealConfig::shamir(5, 3).validate().is_ok());
        assert!(SealConfig::shamir(255, 255).validate().is_ok());
    }

    #[tokio::test]
    async fn seal_config_round_trips_through_storage() {
        // Why: seal-status reads t/n from this record while the barrier is sealed.
        let storage = InmemStorage::new();
        assert_eq!(SealConfig::load(&storage).await.unwrap(), None);
        let config = SealConfig::shamir(5, 3);
        config.save(&storage).await.unwrap();
        assert_eq!(SealConfig::load(&storage).await.unwrap(), Some(config));
    }

    #[test]
    fn keys_check_length_and_never_print() {
        // Why: a truncated key must be refused, and key bytes must never reach a log line.
        assert!(matches!(
            UnsealKey::from_bytes(&[1u8; 31]),
            Err(BarrierError::InvalidShare(_))
        ));
        let key = RootKey::from_bytes(&[0xAB; 32]).unwrap();
        let printed = format!("{key:?}");
        assert_eq!(printed, "RootKey(<redacted>)");
    }
}

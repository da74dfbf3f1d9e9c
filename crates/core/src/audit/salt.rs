//! The per-device HMAC key that turns sensitive strings into comparable, irreversible values.
//!
//! Operators must be able to answer "did this token/secret appear in the log?" without the log
//! itself holding the secret: they hash a candidate through `sys/audit-hash` and grep. That
//! needs a keyed hash (a plain SHA-256 of a low-entropy secret is brute-forceable), with a key
//! that lives only behind the barrier.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::CoreError;

/// Length of a freshly generated salt.
pub(super) const SALT_LEN: usize = 32;

/// Prefix of every hashed value in the log.
pub(super) const HASH_PREFIX: &str = "hmac-sha256:";

/// A device's HMAC key (zeroized on drop).
pub(super) struct Salt {
    key: Zeroizing<Vec<u8>>,
}

impl Salt {
    /// A new random salt.
    pub(super) fn generate() -> Result<Salt, CoreError> {
        let mut key = Zeroizing::new(vec![0u8; SALT_LEN]);
        getrandom::fill(key.as_mut_slice()).map_err(|e| {
            CoreError::Internal(format!("OS RNG failed generating an audit salt: {e}"))
        })?;
        Ok(Salt { key })
    }

    /// A salt read back from storage.
    pub(super) fn from_bytes(bytes: Vec<u8>) -> Result<Salt, CoreError> {
        let key = Zeroizing::new(bytes);
        if key.is_empty() {
            return Err(CoreError::Internal(
                "stored audit salt is empty; disable and re-enable the device".into(),
            ));
        }
        Ok(Salt { key })
    }

    /// The raw key, for persisting.
    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.key
    }

    /// `hmac-sha256:<hex>` of `value`.
    pub(super) fn hash(&self, value: &str) -> String {
        // HMAC accepts keys of any length, so construction cannot fail for our non-empty key;
        // fall back to an unkeyed marker rather than ever returning the input.
        match <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key) {
            Ok(mut mac) => {
                mac.update(value.as_bytes());
                format!("{HASH_PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
            }
            Err(_) => format!("{HASH_PREFIX}unavailable"),
        }
    }
}

/// How one device renders sensitive strings.
pub(super) struct Hasher<'a> {
    /// `None` = `log_raw`: everything in clear.
    pub salt: Option<&'a Salt>,
    pub hmac_accessor: bool,
}

impl Hasher<'_> {
    /// A secret string (token, data value).
    pub(super) fn secret(&self, value: &str) -> String {
        match self.salt {
            Some(s) if !value.is_empty() => s.hash(value),
            _ => value.to_owned(),
        }
    }

    /// An accessor: hashed unless the device was enabled with `hmac_accessor=false`.
    pub(super) fn accessor(&self, value: &str) -> String {
        if self.hmac_accessor {
            self.secret(value)
        } else {
            value.to_owned()
        }
    }

    /// Every string inside `value` hashed, except under map keys listed in `clear_keys`.
    pub(super) fn data(&self, value: &Value, clear_keys: &[String]) -> Value {
        match value {
            Value::String(s) => Value::String(self.secret(s)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.data(v, clear_keys)).collect())
            }
            Value::Object(map) => Value::Object(self.map(map, clear_keys)),
            other => other.clone(),
        }
    }

    /// [`Hasher::data`] for an object.
    pub(super) fn map(
        &self,
        map: &Map<String, Value>,
        clear_keys: &[String],
    ) -> Map<String, Value> {
        map.iter()
            .map(|(k, v)| {
                let v = if clear_keys.iter().any(|c| c == k) {
                    v.clone()
                } else {
                    self.data(v, clear_keys)
                };
                (k.clone(), v)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hash_is_keyed_and_stable() {
        // Why: audit-hash lookups only work if the same salt gives the same hash, and a
        // different device's salt must not.
        let a = Salt::generate().unwrap();
        let b = Salt::generate().unwrap();
        assert_eq!(a.hash("s3cret"), a.hash("s3cret"));
        assert_ne!(a.hash("s3cret"), b.hash("s3cret"));
        assert!(a.hash("s3cret").starts_with(HASH_PREFIX));
        assert_eq!(a.hash("s3cret").len(), HASH_PREFIX.len() + 64);
    }

    #[test]
    fn data_hashes_nested_strings_only() {
        // Why: secrets hide at any depth; numbers and bools stay readable for operators.
        let salt = Salt::generate().unwrap();
        let h = Hasher {
            salt: Some(&salt),
            hmac_accessor: true,
        };
        let v = json!({"data": {"pw": "hunter2", "n": 3, "on": true, "l": ["x"]}, "keep": "me"});
        let out = h.data(&v, &["keep".to_owned()]);
        assert_eq!(out["data"]["pw"], json!(salt.hash("hunter2")));
        assert_eq!(out["data"]["n"], json!(3));
        assert_eq!(out["data"]["on"], json!(true));
        assert_eq!(out["data"]["l"][0], json!(salt.hash("x")));
        assert_eq!(out["keep"], json!("me"));
    }

    #[test]
    fn raw_and_clear_accessor_modes() {
        // Why: log_raw and hmac_accessor=false are explicit operator choices and must hold.
        let salt = Salt::generate().unwrap();
        let raw = Hasher {
            salt: None,
            hmac_accessor: true,
        };
        assert_eq!(raw.secret("tok"), "tok");
        let clear_acc = Hasher {
            salt: Some(&salt),
            hmac_accessor: false,
        };
        assert_eq!(clear_acc.accessor("acc"), "acc");
        assert_eq!(clear_acc.secret("tok"), salt.hash("tok"));
    }
}

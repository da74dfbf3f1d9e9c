//! The activation bundle: everything a new secondary (DR or performance) needs from its
//! primary.
//!
//! It travels once, inside a single-use wrapping token, from the primary's API to the
//! secondary's `enable` call. Besides the replication identity (client certificate issued by
//! the primary's CA) it carries the primary's root key and raw keyring records, because a DR
//! secondary must be able to decrypt the ciphertext it receives and, after a restart, unseal
//! with the primary's key shares.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use strongroom_barrier::{KEYRING_PATH, ROOT_KEY_PATH, RootKey, SEAL_CONFIG_PATH};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::CoreError;

/// Storage records copied verbatim from the primary (raw: already ciphertext or sealed).
pub(crate) const BOOTSTRAP_KEYS: [&str; 3] = [SEAL_CONFIG_PATH, ROOT_KEY_PATH, KEYRING_PATH];

#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub(crate) struct ActivationBundle {
    /// `dr` or `performance` (absent in bundles of releases before performance replication:
    /// DR).
    #[serde(default)]
    pub kind: String,
    pub cluster_id: String,
    pub secondary_id: String,
    pub primary_api_addr: String,
    pub primary_cluster_addrs: Vec<String>,
    /// The CA that signed the primary's cluster server certificate and our client certificate.
    pub ca_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
    pub root_key_b64: String,
    /// Storage key -> raw value (base64) of [`BOOTSTRAP_KEYS`]: ciphertext and the root
    /// key sealed under the unseal key, so not secret in itself.
    #[zeroize(skip)]
    pub stored: BTreeMap<String, String>,
}

impl ActivationBundle {
    /// The bundle as the `data` of the wrapped response.
    pub fn to_data(&self) -> Result<Map<String, Value>, CoreError> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(CoreError::Internal(
                "encoding the activation bundle failed".into(),
            )),
        }
    }

    /// Parses and checks an unwrapped bundle.
    pub fn from_data(data: Value) -> Result<Self, CoreError> {
        let bundle: ActivationBundle = serde_json::from_value(data).map_err(|e| {
            CoreError::InvalidRequest(format!(
                "the unwrapped activation token does not hold a DR activation bundle ({e}); was it issued by sys/replication/dr/primary/secondary-token?"
            ))
        })?;
        if bundle.cluster_id.is_empty()
            || bundle.secondary_id.is_empty()
            || bundle.primary_cluster_addrs.is_empty()
        {
            return Err(CoreError::InvalidRequest(
                "the activation bundle is incomplete (cluster id, secondary id or primary cluster address missing)".into(),
            ));
        }
        Ok(bundle)
    }

    /// The primary's root key.
    pub fn root_key(&self) -> Result<RootKey, CoreError> {
        let bytes = Zeroizing::new(STANDARD.decode(&self.root_key_b64).map_err(|_| {
            CoreError::InvalidRequest("the activation bundle's root key is not base64".into())
        })?);
        RootKey::from_bytes(&bytes).map_err(|e| {
            CoreError::InvalidRequest(format!("the activation bundle's root key is unusable: {e}"))
        })
    }

    /// The raw bootstrap records, decoded; all three must be present.
    pub fn stored_records(&self) -> Result<Vec<(String, Vec<u8>)>, CoreError> {
        BOOTSTRAP_KEYS
            .iter()
            .map(|key| {
                let value = self
                    .stored
                    .get(*key)
                    .and_then(|v| STANDARD.decode(v).ok())
                    .ok_or_else(|| {
                        CoreError::InvalidRequest(format!(
                            "the activation bundle lacks the primary's {key} record"
                        ))
                    })?;
                Ok(((*key).to_owned(), value))
            })
            .collect()
    }
}

/// A bundle with placeholder values, for tests of the bundle and its token forms.
#[cfg(test)]
pub(crate) fn test_bundle(cluster_id: &str) -> ActivationBundle {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    ActivationBundle {
        kind: "dr".into(),
        cluster_id: cluster_id.into(),
        secondary_id: "s".into(),
        primary_api_addr: "https://p:8200".into(),
        primary_cluster_addrs: vec!["https://p:8201".into()],
        ca_pem: "ca".into(),
        client_cert_pem: "cert".into(),
        client_key_pem: "key".into(),
        root_key_b64: STANDARD.encode([7u8; 32]),
        stored: BOOTSTRAP_KEYS
            .iter()
            .map(|k| ((*k).to_owned(), STANDARD.encode(k.as_bytes())))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ActivationBundle {
        test_bundle("c")
    }

    #[test]
    fn bundle_round_trips_through_response_data() {
        // Why: the secondary must read exactly what the primary wrapped.
        let bundle = sample();

        let back = ActivationBundle::from_data(Value::Object(bundle.to_data().unwrap())).unwrap();

        assert_eq!(back.secondary_id, "s");
        assert_eq!(back.stored_records().unwrap().len(), 3);
        assert!(back.root_key().is_ok());
    }

    #[test]
    fn incomplete_bundles_are_refused_before_anything_is_wiped() {
        // Why: enable wipes the secondary; a bundle missing the keyring would brick it.
        let mut no_keyring = sample();
        no_keyring.stored.remove(KEYRING_PATH);
        let mut no_addr = sample();
        no_addr.primary_cluster_addrs.clear();

        assert!(no_keyring.stored_records().is_err());
        assert!(ActivationBundle::from_data(Value::Object(no_addr.to_data().unwrap())).is_err());
        assert!(ActivationBundle::from_data(serde_json::json!({"k": 1})).is_err());
    }
}

//! Wire types of `sys/rekey/*`: replacing the unseal key shares with a new set.
//!
//! Field names, JSON types and which fields may be omitted follow Vault's answers exactly
//! (`pgp_fingerprints` is `null` without PGP keys; `verification_nonce` is left out when no
//! verification is pending), so the Vault CLI, hvac and our own CLI read them alike.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::sys::null_default;

/// `PUT sys/rekey/init` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RekeyInitRequest {
    #[serde(default, deserialize_with = "null_default")]
    pub secret_shares: u32,
    #[serde(default, deserialize_with = "null_default")]
    pub secret_threshold: u32,
    /// Base64 binary OpenPGP public keys, one per new share, in share order.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub pgp_keys: Vec<String>,
    /// Keep the PGP-encrypted new shares in storage (`sys/rekey/backup`).
    #[serde(default, deserialize_with = "null_default")]
    pub backup: bool,
    /// Install the new key only after a threshold of the new shares is given back.
    #[serde(default, deserialize_with = "null_default")]
    pub require_verification: bool,
}

/// `GET|PUT sys/rekey/init`, and `PUT sys/rekey/update` before the threshold is reached.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RekeyStatus {
    pub nonce: String,
    pub started: bool,
    /// Threshold of the new shares (0 when no rekey is started).
    pub t: u32,
    /// Number of new shares (0 when no rekey is started).
    pub n: u32,
    /// Current shares submitted so far.
    pub progress: u32,
    /// Current shares needed (the current seal's threshold).
    pub required: u32,
    #[serde(default)]
    pub pgp_fingerprints: Option<Vec<String>>,
    pub backup: bool,
    pub verification_required: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub verification_nonce: String,
}

/// `PUT sys/rekey/update` and `PUT sys/rekey/verify` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RekeyUpdateRequest {
    #[serde(default, deserialize_with = "null_default")]
    pub key: String,
    #[serde(default, deserialize_with = "null_default")]
    pub nonce: String,
}

/// `PUT sys/rekey/update` once the threshold of current shares is reached: the new shares.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RekeyUpdateResponse {
    pub nonce: String,
    pub complete: bool,
    /// Hex shares, or hex PGP ciphertexts when PGP keys were given.
    pub keys: Vec<String>,
    /// The same in standard base64.
    pub keys_base64: Vec<String>,
    #[serde(default)]
    pub pgp_fingerprints: Option<Vec<String>>,
    pub backup: bool,
    pub verification_required: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub verification_nonce: String,
}

/// What `PUT sys/rekey/update` answers: progress, or the new shares. `complete` is present
/// only in the second, which is how a reader tells them apart.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum RekeyUpdateAnswer {
    Complete(RekeyUpdateResponse),
    Progress(RekeyStatus),
}

/// `GET|DELETE sys/rekey/verify`, and `PUT sys/rekey/verify` before the threshold.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RekeyVerificationStatus {
    pub nonce: String,
    pub started: bool,
    pub t: u32,
    pub n: u32,
    pub progress: u32,
}

/// `PUT sys/rekey/verify` once the threshold of new shares is reached.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RekeyVerificationComplete {
    pub nonce: String,
    pub complete: bool,
}

/// What `PUT sys/rekey/verify` answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum RekeyVerifyAnswer {
    Complete(RekeyVerificationComplete),
    Progress(RekeyVerificationStatus),
}

/// `data` of `GET sys/rekey/backup`: the PGP-encrypted shares by key fingerprint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RekeyBackup {
    pub nonce: String,
    pub keys: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub keys_base64: BTreeMap<String, Vec<String>>,
}

/// Optional `DELETE sys/rekey/init` body: when given, the nonce must match the attempt.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RekeyCancelRequest {
    #[serde(default, deserialize_with = "null_default")]
    pub nonce: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_answers_are_told_apart_by_complete() {
        // Why: the CLI must know whether the answer carries the new shares.
        let progress = r#"{"nonce":"n","started":true,"t":3,"n":5,"progress":1,"required":1,"pgp_fingerprints":null,"backup":false,"verification_required":false}"#;
        let done = r#"{"nonce":"n","complete":true,"keys":["aa"],"keys_base64":["qg=="],"pgp_fingerprints":null,"backup":false,"verification_required":false}"#;

        let p: RekeyUpdateAnswer = serde_json::from_str(progress).unwrap();
        let d: RekeyUpdateAnswer = serde_json::from_str(done).unwrap();

        assert!(matches!(p, RekeyUpdateAnswer::Progress(s) if s.progress == 1));
        assert!(matches!(d, RekeyUpdateAnswer::Complete(r) if r.keys == ["aa"]));
    }

    #[test]
    fn status_shape_is_vaults() {
        // Why: hvac reads `pgp_fingerprints` as null and `verification_nonce` only when set.
        let v = serde_json::to_value(RekeyStatus::default()).unwrap();

        assert_eq!(v["pgp_fingerprints"], serde_json::Value::Null);
        assert!(v.get("verification_nonce").is_none());
        assert_eq!(v.as_object().unwrap().len(), 9);
    }
}

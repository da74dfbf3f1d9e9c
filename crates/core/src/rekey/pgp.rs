//! OpenPGP encryption of new key shares (and of the initial root token) to operators' keys.
//!
//! Vault lets the initiator name one OpenPGP public key per share, so that each operator's
//! share leaves the server readable only by that operator. Keys arrive as base64 of the
//! binary transferable public key (an ASCII-armored key inside the base64 is accepted too);
//! shares are encrypted as Vault does, as the hex text of the share, so that what `gpg -d`
//! prints can be typed into `operator unseal` as is. Fingerprints are lower-case hex.

use base64::Engine as _;
use pgp::composed::{Deserializable, MessageBuilder, SignedPublicKey};
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::types::KeyDetails;
use thiserror::Error;

use crate::CoreError;

/// Why a PGP key could not be used.
#[derive(Debug, Error)]
pub enum PgpError {
    #[error("PGP key {index} is not valid base64: pass base64 of the binary public key")]
    NotBase64 { index: usize },
    #[error("PGP key {index} is not an OpenPGP public key: {reason}")]
    NotAKey { index: usize, reason: String },
    #[error(
        "PGP key {index} ({fingerprint}) has no key usable for encryption: add an encryption subkey"
    )]
    NoEncryptionKey { index: usize, fingerprint: String },
    #[error("encrypting to PGP key {fingerprint} failed: {reason}")]
    Encrypt { fingerprint: String, reason: String },
}

impl From<PgpError> for CoreError {
    fn from(e: PgpError) -> Self {
        match e {
            PgpError::Encrypt { .. } => CoreError::Internal(e.to_string()),
            _ => CoreError::InvalidRequest(e.to_string()),
        }
    }
}

/// One operator's public key, checked and ready to encrypt to.
pub(crate) struct PgpRecipient {
    key: SignedPublicKey,
    fingerprint: String,
    /// Index into `key.public_subkeys` of the encryption subkey; `None` = the primary key.
    subkey: Option<usize>,
}

impl PgpRecipient {
    /// Parses the `index`-th key of a request (base64 of a binary or armored public key).
    pub(crate) fn parse(encoded: &str, index: usize) -> Result<Self, PgpError> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| PgpError::NotBase64 { index })?;
        let not_a_key = |e: pgp::errors::Error| PgpError::NotAKey {
            index,
            reason: e.to_string(),
        };
        let (key, _) = SignedPublicKey::from_reader_single(raw.as_slice()).map_err(not_a_key)?;
        key.verify_bindings().map_err(not_a_key)?;
        let fingerprint = key.fingerprint().to_string();
        let subkey = key.public_subkeys.iter().position(|s| {
            s.key.algorithm().can_encrypt()
                && s.signatures.iter().any(|sig| {
                    let flags = sig.key_flags();
                    flags.encrypt_comms() || flags.encrypt_storage()
                })
        });
        if subkey.is_none() && !key.primary_key.algorithm().can_encrypt() {
            return Err(PgpError::NoEncryptionKey { index, fingerprint });
        }
        Ok(PgpRecipient {
            key,
            fingerprint,
            subkey,
        })
    }

    /// Parses every key of a request, in order.
    pub(crate) fn parse_all(encoded: &[String]) -> Result<Vec<Self>, PgpError> {
        encoded
            .iter()
            .enumerate()
            .map(|(i, k)| Self::parse(k, i))
            .collect()
    }

    /// The primary key's fingerprint, lower-case hex (what Vault reports).
    pub(crate) fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// A binary OpenPGP message (SEIPD v1, AES-256) that only this key's owner can read.
    pub(crate) fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, PgpError> {
        let failed = |e: pgp::errors::Error| PgpError::Encrypt {
            fingerprint: self.fingerprint.clone(),
            reason: e.to_string(),
        };
        let mut rng = rand08::rngs::OsRng;
        let mut builder = MessageBuilder::from_reader("", plaintext)
            .seipd_v1(&mut rng, SymmetricKeyAlgorithm::AES256);
        match self.subkey.and_then(|i| self.key.public_subkeys.get(i)) {
            Some(sub) => builder.encrypt_to_key(&mut rng, sub),
            None => builder.encrypt_to_key(&mut rng, &self.key),
        }
        .map_err(failed)?;
        builder.to_vec(rng).map_err(failed)
    }
}

#[cfg(test)]
pub(crate) mod test_keys {
    //! Key pairs for tests, generated on the fly (Curve25519: fast even unoptimized).

    use pgp::composed::{
        EncryptionCaps, KeyType, Message, SecretKeyParamsBuilder, SignedSecretKey,
        SubkeyParamsBuilder,
    };
    use pgp::crypto::ecc_curve::ECCCurve;
    use pgp::ser::Serialize as _;

    use super::*;

    /// A new secret key and the base64 of its binary public key (a `pgp_keys` entry).
    pub(crate) fn generate(uid: &str) -> (SignedSecretKey, String) {
        let mut sub = SubkeyParamsBuilder::default();
        sub.key_type(KeyType::ECDH(ECCCurve::Curve25519Legacy))
            .can_encrypt(EncryptionCaps::All);
        let mut params = SecretKeyParamsBuilder::default();
        params
            .key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(true)
            .primary_user_id(uid.into())
            .subkeys(vec![sub.build().unwrap()]);
        let secret = params
            .build()
            .unwrap()
            .generate(rand08::rngs::OsRng)
            .unwrap();
        let public = SignedPublicKey::from(secret.clone());
        let encoded = base64::engine::general_purpose::STANDARD.encode(public.to_bytes().unwrap());
        (secret, encoded)
    }

    /// Decrypts a binary message with `secret`.
    pub(crate) fn decrypt(secret: &SignedSecretKey, message: &[u8]) -> Vec<u8> {
        let mut plain = Message::from_bytes(message)
            .unwrap()
            .decrypt(&"".into(), secret)
            .unwrap();
        plain.as_data_vec().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_encrypted_to_a_key_decrypts_only_with_that_key() {
        // Why: the point of pgp_keys is that only the named operator can read the share.
        let (alice, alice_pub) = test_keys::generate("alice");
        let (bob, _) = test_keys::generate("bob");
        let recipient = PgpRecipient::parse(&alice_pub, 0).unwrap();

        let message = recipient.encrypt(b"00ff").unwrap();

        assert_eq!(test_keys::decrypt(&alice, &message), b"00ff");
        assert_eq!(recipient.fingerprint(), alice.fingerprint().to_string());
        assert_eq!(recipient.fingerprint().len(), 40);
        let wrong = pgp::composed::Message::from_bytes(message.as_slice())
            .unwrap()
            .decrypt(&"".into(), &bob);
        assert!(wrong.is_err());
    }

    #[test]
    fn garbage_keys_are_refused_with_their_position() {
        // Why: the operator must learn which of several keys is wrong.
        let not_b64 = PgpRecipient::parse("%%%", 2);
        let not_key = PgpRecipient::parse("aGVsbG8=", 1);

        assert!(matches!(not_b64, Err(PgpError::NotBase64 { index: 2 })));
        assert!(matches!(not_key, Err(PgpError::NotAKey { index: 1, .. })));
    }
}

//! How new unseal key shares leave the server: plain, or encrypted to operators' PGP keys.
//!
//! Shared by `sys/init` and `sys/rekey` so that both answer in the same form: `keys` in hex
//! and `keys_base64` in base64, each either the share itself or the binary PGP message
//! that holds the share's hex text.

use std::collections::BTreeMap;

use base64::Engine as _;
use strongroom_api::RekeyBackup;
use zeroize::Zeroizing;

use super::pgp::{PgpError, PgpRecipient};

/// The shares as the answer lists them, and (with PGP) the same ciphertexts by fingerprint.
#[derive(Default)]
pub(crate) struct IssuedShares {
    pub keys: Vec<String>,
    pub keys_base64: Vec<String>,
    /// Fingerprint -> (hex, base64) ciphertexts, in share order; empty without PGP.
    by_fingerprint: BTreeMap<String, (Vec<String>, Vec<String>)>,
}

impl IssuedShares {
    /// Encodes `shares`, encrypting share `i` to `recipients[i]` when recipients are given
    /// (the caller checked there is one per share).
    pub(crate) fn issue(
        shares: &[Zeroizing<Vec<u8>>],
        recipients: &[PgpRecipient],
    ) -> Result<Self, PgpError> {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let mut out = IssuedShares::default();
        if recipients.is_empty() {
            out.keys = shares.iter().map(|s| hex::encode(s.as_slice())).collect();
            out.keys_base64 = shares.iter().map(|s| b64(s)).collect();
            return Ok(out);
        }
        for (share, recipient) in shares.iter().zip(recipients) {
            let text = Zeroizing::new(hex::encode(share.as_slice()));
            let sealed = recipient.encrypt(text.as_bytes())?;
            let (hex_sealed, b64_sealed) = (hex::encode(&sealed), b64(&sealed));
            let entry = out
                .by_fingerprint
                .entry(recipient.fingerprint().to_owned())
                .or_default();
            entry.0.push(hex_sealed.clone());
            entry.1.push(b64_sealed.clone());
            out.keys.push(hex_sealed);
            out.keys_base64.push(b64_sealed);
        }
        Ok(out)
    }

    /// The record `sys/rekey/backup` serves, for the rekey with `nonce`.
    pub(crate) fn backup(&self, nonce: &str) -> RekeyBackup {
        RekeyBackup {
            nonce: nonce.to_owned(),
            keys: self
                .by_fingerprint
                .iter()
                .map(|(fp, (hex, _))| (fp.clone(), hex.clone()))
                .collect(),
            keys_base64: self
                .by_fingerprint
                .iter()
                .map(|(fp, (_, b64))| (fp.clone(), b64.clone()))
                .collect(),
        }
    }
}

impl Drop for IssuedShares {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.keys);
        zeroize::Zeroize::zeroize(&mut self.keys_base64);
    }
}

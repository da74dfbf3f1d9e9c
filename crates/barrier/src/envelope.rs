//! The one ciphertext format of the barrier, shared by stored values, the keyring (under the
//! root key) and the root key (under the unseal key), so that there is a single parser to get
//! right. Layout: `[version 0x01][term u32 BE][12-byte nonce][AES-256-GCM ciphertext + tag]`.
//! The term says which keyring key opened the value, so old values stay readable after a
//! rotation; the AAD (the storage key or a caller-chosen purpose) binds a ciphertext to its
//! place, so moving it elsewhere makes it fail to authenticate.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key};
use zeroize::Zeroizing;

use crate::BarrierError;

/// The only envelope version written and accepted.
pub(crate) const VERSION: u8 = 1;
/// Length of every AES-256 key the barrier handles.
pub(crate) const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

/// Fills `buf` from the operating system's RNG.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), BarrierError> {
    getrandom::fill(buf).map_err(|e| BarrierError::Random(e.to_string()))
}

/// A fresh random 32-byte key, zeroized on drop.
pub(crate) fn random_key() -> Result<Zeroizing<[u8; KEY_LEN]>, BarrierError> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    fill_random(key.as_mut_slice())?;
    Ok(key)
}

/// Builds the AES-256-GCM cipher for `key` (the cipher zeroizes its key schedule on drop).
pub(crate) fn cipher(key: &[u8; KEY_LEN]) -> Aes256Gcm {
    let key: &Key<Aes256Gcm> = key.into();
    Aes256Gcm::new(key)
}

/// Encrypts `plaintext` under `cipher`, labelled with `term` and bound to `aad`.
pub(crate) fn seal(
    cipher: &Aes256Gcm,
    term: u32,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, BarrierError> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let body = cipher
        .encrypt(
            (&nonce).into(),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| BarrierError::Corrupt("value too large to encrypt".into()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.push(VERSION);
    out.extend_from_slice(&term.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Reads the term an envelope was sealed with, rejecting unknown versions and short input.
pub(crate) fn term_of(data: &[u8]) -> Result<u32, BarrierError> {
    if data.len() < HEADER_LEN + TAG_LEN {
        return Err(BarrierError::Corrupt(format!(
            "ciphertext is {} bytes, shorter than the {} byte minimum",
            data.len(),
            HEADER_LEN + TAG_LEN
        )));
    }
    if data[0] != VERSION {
        return Err(BarrierError::Corrupt(format!(
            "unknown ciphertext version {}",
            data[0]
        )));
    }
    let mut term = [0u8; 4];
    term.copy_from_slice(&data[1..5]);
    Ok(u32::from_be_bytes(term))
}

/// Why an envelope did not open; callers decide whether that means a wrong key or corruption.
pub(crate) enum OpenError {
    /// The header is malformed (see the message).
    Malformed(BarrierError),
    /// The tag did not verify: wrong key, wrong AAD, or tampered bytes.
    Unauthentic,
}

/// Decrypts an envelope with `cipher` after checking its header; the caller has already
/// picked `cipher` from [`term_of`].
pub(crate) fn open(
    cipher: &Aes256Gcm,
    aad: &[u8],
    data: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    term_of(data).map_err(OpenError::Malformed)?;
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&data[5..HEADER_LEN]);
    cipher
        .decrypt(
            (&nonce).into(),
            Payload {
                msg: &data[HEADER_LEN..],
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| OpenError::Unauthentic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_carries_version_and_term() {
        // Why: the term in the header is how old values find their key after a rotation.
        let c = cipher(&[7u8; KEY_LEN]);
        let sealed = seal(&c, 0x0102_0304, b"aad", b"hello").unwrap();
        assert_eq!(&sealed[..5], &[VERSION, 1, 2, 3, 4]);
        assert_eq!(sealed.len(), HEADER_LEN + 5 + TAG_LEN);
        assert_eq!(term_of(&sealed).unwrap(), 0x0102_0304);
        assert_eq!(open(&c, b"aad", &sealed).ok().unwrap().as_slice(), b"hello");
    }

    #[test]
    fn tampering_and_short_input_are_rejected() {
        // Why: every flipped bit must fail authentication rather than yield altered plaintext.
        let c = cipher(&[7u8; KEY_LEN]);
        let mut sealed = seal(&c, 1, b"aad", b"hello").unwrap();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(matches!(
            open(&c, b"aad", &sealed),
            Err(OpenError::Unauthentic)
        ));
        assert!(matches!(
            open(&c, b"aad", &sealed[..10]),
            Err(OpenError::Malformed(_))
        ));
        sealed[0] = 9;
        assert!(matches!(term_of(&sealed), Err(BarrierError::Corrupt(_))));
    }
}

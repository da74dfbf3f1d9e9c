//! ES512 JSON Web Tokens: the activation token a primary hands to a new DR secondary.
//!
//! Vault's activation tokens are compact JWS over P-521 (ES512) whose claims name the
//! primary's API address and carry the real wrapping token (`wt`). The secondary reads the
//! claims without being able to check the signature (it has no key yet) to learn where to
//! unwrap; the primary verifies its own signature when the token comes back, so a forged or
//! altered token cannot reach the wrapped bundle. JWS is small enough to encode by hand here,
//! which avoids a JWT library (none in our stack supports ES512 on ring).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p521::ecdsa::signature::{Signer, Verifier};
use p521::ecdsa::{Signature, SigningKey};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

/// Length of a P-521 private scalar in bytes.
const SCALAR_LEN: usize = 66;
/// The only header we issue and accept.
const HEADER_JSON: &str = r#"{"alg":"ES512","typ":"JWT"}"#;
/// Longest activation token we try to parse (a real one is well under 1 KiB).
const MAX_JWT_LEN: usize = 8 * 1024;

/// Why a presented JWT was refused. Callers answer every case with the same client error,
/// so the variants exist for logs and tests only.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("not a compact JWS")]
    Malformed,
    #[error("unsupported JWS header")]
    Header,
    #[error("signature does not verify")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("signing key unusable: {0}")]
    Key(String),
}

/// The claims of an activation token (Vault's names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationClaims {
    /// The primary's API address, where the secondary unwraps.
    pub addr: String,
    /// Unix seconds.
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The real wrapping token.
    pub wt: String,
}

/// Whether `token` has the shape of a compact JWS (three base64url parts, JSON header).
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.split('.').count() == 3 && token.len() <= MAX_JWT_LEN
}

/// A fresh P-521 private scalar from the OS RNG, as 66 big-endian bytes.
pub fn generate_key() -> Result<Zeroizing<Vec<u8>>, JwtError> {
    // The group order is just below 2^521: masking the top byte to one bit and retrying the
    // rare out-of-range draw gives a uniform scalar.
    for _ in 0..64 {
        let mut bytes = Zeroizing::new(vec![0u8; SCALAR_LEN]);
        getrandom::fill(&mut bytes).map_err(|e| JwtError::Key(format!("OS RNG failed: {e}")))?;
        bytes[0] &= 0x01;
        if SigningKey::from_slice(&bytes).is_ok() {
            return Ok(bytes);
        }
    }
    Err(JwtError::Key("no valid scalar drawn".into()))
}

fn signing_key(key: &[u8]) -> Result<SigningKey, JwtError> {
    SigningKey::from_slice(key).map_err(|_| JwtError::Key("not a P-521 private scalar".into()))
}

/// Signs `claims` with `key` (see [`generate_key`]).
pub fn sign(key: &[u8], claims: &ActivationClaims) -> Result<String, JwtError> {
    let key = signing_key(key)?;
    let payload =
        serde_json::to_vec(claims).map_err(|e| JwtError::Key(format!("encoding claims: {e}")))?;
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER_JSON),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature: Signature = key.sign(signing_input.as_bytes());
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    ))
}

/// Splits a compact JWS and parses header and claims, without checking the signature.
fn parts(token: &str) -> Result<(&str, ActivationClaims, Vec<u8>), JwtError> {
    if token.len() > MAX_JWT_LEN {
        return Err(JwtError::Malformed);
    }
    let mut it = token.split('.');
    let (Some(h), Some(c), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(JwtError::Malformed);
    };
    let header: serde_json::Value = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(JwtError::Malformed)?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("ES512") {
        return Err(JwtError::Header);
    }
    let claims: ActivationClaims = URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(JwtError::Malformed)?;
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
    let signing_input_len = h.len() + 1 + c.len();
    Ok((&token[..signing_input_len], claims, sig))
}

/// Reads the claims without verifying (the secondary side: it only needs `addr`).
pub fn decode_unverified(token: &str) -> Result<ActivationClaims, JwtError> {
    parts(token).map(|(_, claims, _)| claims)
}

/// Verifies the signature with `key` and the expiry against `now` (unix seconds).
pub fn verify(key: &[u8], token: &str, now: i64) -> Result<ActivationClaims, JwtError> {
    let (signing_input, claims, sig) = parts(token)?;
    let signature = Signature::from_slice(&sig).map_err(|_| JwtError::Signature)?;
    signing_key(key)?
        .verifying_key()
        .verify(signing_input.as_bytes(), &signature)
        .map_err(|_| JwtError::Signature)?;
    if claims.exp <= now {
        return Err(JwtError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> ActivationClaims {
        ActivationClaims {
            addr: "https://primary:8200".into(),
            exp,
            iat: exp - 1800,
            jti: "id-1".into(),
            kind: "wrapping".into(),
            wt: "hvs.wrapped".into(),
        }
    }

    #[test]
    fn a_signed_token_verifies_and_carries_its_claims() {
        // Why: the primary must accept its own activation token and read back `wt`.
        let key = generate_key().unwrap();
        let token = sign(&key, &claims(2_000)).unwrap();

        let got = verify(&key, &token, 1_000).unwrap();

        assert!(looks_like_jwt(&token));
        assert!(token.starts_with("eyJhbGciOiJFUzUxMiIsInR5cCI6IkpXVCJ9."));
        assert_eq!(got, claims(2_000));
        assert_eq!(
            decode_unverified(&token).unwrap().addr,
            "https://primary:8200"
        );
    }

    #[test]
    fn tampered_foreign_and_expired_tokens_are_refused() {
        // Why: a changed `wt`, another cluster's key or a stale token must never unwrap.
        let key = generate_key().unwrap();
        let other = generate_key().unwrap();
        let token = sign(&key, &claims(2_000)).unwrap();
        let mut forged = claims(2_000);
        forged.wt = "hvs.other".into();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let pieces: Vec<&str> = token.split('.').collect();
        let tampered = format!("{}.{}.{}", pieces[0], forged_payload, pieces[2]);

        assert_eq!(verify(&key, &tampered, 1_000), Err(JwtError::Signature));
        assert_eq!(verify(&other, &token, 1_000), Err(JwtError::Signature));
        assert_eq!(verify(&key, &token, 2_000), Err(JwtError::Expired));
        assert_eq!(verify(&key, "a.b", 0), Err(JwtError::Malformed));
    }
}

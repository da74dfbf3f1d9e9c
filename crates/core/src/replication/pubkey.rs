//! Public-key activation: an activation token that needs no API call to the primary.
//!
//! The secondary generates an X25519 key pair (`dr/secondary/generate-public-key`) and keeps
//! the private half in memory; the primary encrypts the bootstrap bundle to the public half
//! (`secondary-token secondary_public_key=...` answers `data.token`); `secondary/enable`
//! decrypts it locally, so only the cluster port must be reachable. The token is useless to
//! anyone but the holder of that private key, which is consumed by its first use.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::{aead, agreement, digest, rand};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::bundle::ActivationBundle;
use crate::util::lock;
use crate::{Core, CoreError};

/// Prefix of encrypted activation tokens (JWT-wrapped ones start with `eyJ`).
pub(crate) const TOKEN_PREFIX: &str = "srdr1.";

#[derive(Serialize, Deserialize)]
struct Envelope {
    /// The primary's ephemeral public key.
    epk: String,
    /// The secondary's public key this token is for.
    spk: String,
    nonce: String,
    ct: String,
    /// Unix seconds after which the token is refused.
    exp: i64,
}

fn bad(msg: &str) -> CoreError {
    CoreError::InvalidRequest(format!("the activation token is not valid: {msg}"))
}

/// AES-256-GCM key from the X25519 shared secret, bound to both public keys.
fn derive_key(shared: &[u8], epk: &[u8], spk: &[u8]) -> Vec<u8> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"strongroom/dr-activation/v1");
    ctx.update(shared);
    ctx.update(epk);
    ctx.update(spk);
    ctx.finish().as_ref().to_vec()
}

fn aad(exp: i64) -> String {
    format!("strongroom/dr-activation/v1/exp/{exp}")
}

impl Core {
    /// `{dr,performance}/secondary/generate-public-key`: a fresh key pair, pending for that
    /// kind's enable; the public half is returned.
    pub(super) fn generate_public_key(
        &self,
        kind: strongroom_replication::ReplicationKind,
    ) -> Result<Map<String, Value>, CoreError> {
        let rng = rand::SystemRandom::new();
        let sk = agreement::EphemeralPrivateKey::generate(&agreement::X25519, &rng)
            .map_err(|_| CoreError::Internal("generating an X25519 key failed".into()))?;
        let pk = sk
            .compute_public_key()
            .map_err(|_| CoreError::Internal("computing the public key failed".into()))?;
        *lock(&self.repl(kind).activation_key) = Some(sk);
        let mut data = Map::new();
        data.insert(
            "secondary_public_key".into(),
            Value::String(B64.encode(pk.as_ref())),
        );
        Ok(data)
    }
}

/// Encrypts `bundle` to `secondary_public_key` (primary side); the token expires at `exp`.
pub(super) fn seal_bundle(
    bundle: &ActivationBundle,
    secondary_public_key: &str,
    exp: i64,
) -> Result<String, CoreError> {
    let spk = B64.decode(secondary_public_key.trim()).map_err(|_| {
        CoreError::InvalidRequest("secondary_public_key is not valid base64url".into())
    })?;
    if spk.len() != 32 {
        return Err(CoreError::InvalidRequest(
            "secondary_public_key must be the 32-byte X25519 key from dr/secondary/generate-public-key".into(),
        ));
    }
    let plain = serde_json::to_vec(&Value::Object(bundle.to_data()?))
        .map_err(|e| CoreError::Internal(format!("encoding the bundle: {e}")))?;
    let rng = rand::SystemRandom::new();
    let esk = agreement::EphemeralPrivateKey::generate(&agreement::X25519, &rng)
        .map_err(|_| CoreError::Internal("generating an X25519 key failed".into()))?;
    let epk = esk
        .compute_public_key()
        .map_err(|_| CoreError::Internal("computing the public key failed".into()))?
        .as_ref()
        .to_vec();
    let key = agreement::agree_ephemeral(
        esk,
        &agreement::UnparsedPublicKey::new(&agreement::X25519, &spk),
        |shared| derive_key(shared, &epk, &spk),
    )
    .map_err(|_| {
        CoreError::InvalidRequest("secondary_public_key is not a valid X25519 key".into())
    })?;
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).map_err(|e| CoreError::Internal(format!("OS RNG failed: {e}")))?;
    let sealing = aead::LessSafeKey::new(
        aead::UnboundKey::new(&aead::AES_256_GCM, &key)
            .map_err(|_| CoreError::Internal("building the AEAD key failed".into()))?,
    );
    let mut ct = plain;
    sealing
        .seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(aad(exp).as_bytes()),
            &mut ct,
        )
        .map_err(|_| CoreError::Internal("encrypting the bundle failed".into()))?;
    let env = Envelope {
        epk: B64.encode(&epk),
        spk: B64.encode(&spk),
        nonce: B64.encode(nonce),
        ct: B64.encode(&ct),
        exp,
    };
    let json = serde_json::to_vec(&env)
        .map_err(|e| CoreError::Internal(format!("encoding the token: {e}")))?;
    Ok(format!("{TOKEN_PREFIX}{}", B64.encode(json)))
}

impl Core {
    /// Decrypts an encrypted activation token with the pending key (secondary side). The key
    /// is consumed whatever the outcome, so a token can be tried once.
    pub(super) fn open_bundle(
        &self,
        kind: strongroom_replication::ReplicationKind,
        token: &str,
        now: i64,
    ) -> Result<ActivationBundle, CoreError> {
        let body = token
            .strip_prefix(TOKEN_PREFIX)
            .ok_or_else(|| bad("unknown format"))?;
        let raw = B64.decode(body.trim()).map_err(|_| bad("not base64url"))?;
        let env: Envelope = serde_json::from_slice(&raw).map_err(|_| bad("malformed"))?;
        if env.exp < now {
            return Err(bad("it has expired; mint a new one on the primary"));
        }
        let Some(sk) = lock(&self.repl(kind).activation_key).take() else {
            return Err(bad(&format!(
                "this cluster has no pending key: run sys/replication/{}/secondary/generate-public-key and mint a token for that key",
                kind.as_str()
            )));
        };
        let epk = B64.decode(&env.epk).map_err(|_| bad("malformed key"))?;
        let spk = B64.decode(&env.spk).map_err(|_| bad("malformed key"))?;
        let own = sk.compute_public_key().map_err(|_| bad("key error"))?;
        if own.as_ref() != spk.as_slice() {
            return Err(bad("it was encrypted to another cluster's public key"));
        }
        let key = agreement::agree_ephemeral(
            sk,
            &agreement::UnparsedPublicKey::new(&agreement::X25519, &epk),
            |shared| derive_key(shared, &epk, &spk),
        )
        .map_err(|_| bad("key agreement failed"))?;
        let nonce: [u8; 12] = B64
            .decode(&env.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| bad("malformed nonce"))?;
        let mut ct = B64
            .decode(&env.ct)
            .map_err(|_| bad("malformed ciphertext"))?;
        let opening = aead::LessSafeKey::new(
            aead::UnboundKey::new(&aead::AES_256_GCM, &key).map_err(|_| bad("key error"))?,
        );
        let plain = opening
            .open_in_place(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(aad(env.exp).as_bytes()),
                &mut ct,
            )
            .map_err(|_| bad("it does not decrypt with this cluster's key"))?;
        let data: Value = serde_json::from_slice(plain).map_err(|_| bad("malformed bundle"))?;
        ActivationBundle::from_data(data)
    }
}

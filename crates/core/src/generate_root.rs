//! `sys/generate-root/*`: minting a new root token from unseal key shares.
//!
//! The operators prove possession of a threshold of shares; the new token is never sent in the
//! clear but XORed with a one-time pad (the OTP) that only the initiating operator holds, so
//! the operators who submit shares never see the token.

use base64::Engine as _;
use strongroom_api::{GenerateRootStartRequest, GenerateRootStatus, GenerateRootUpdateRequest};
use strongroom_barrier::{SealConfig, combine_shares};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::seal::decode_share;
use crate::util::lock;
use crate::{Core, CoreError};

/// Length of the OTP and of the generated root token (`hvs.` + 24 characters).
pub const OTP_LENGTH: usize = 28;

/// One attempt in progress.
pub(crate) struct GenerateRootAttempt {
    nonce: String,
    otp: Zeroizing<String>,
    /// Whether the server generated the OTP (it is shown once, in the start response).
    shares: Vec<Zeroizing<Vec<u8>>>,
}

/// XORs a token with an OTP of the same length and encodes it as unpadded base64.
pub fn encode_token(token: &str, otp: &str) -> Result<String, CoreError> {
    if token.len() != otp.len() {
        return Err(CoreError::Internal("token and OTP lengths differ".into()));
    }
    let x: Vec<u8> = token.bytes().zip(otp.bytes()).map(|(a, b)| a ^ b).collect();
    Ok(base64::engine::general_purpose::STANDARD_NO_PAD.encode(x))
}

impl Core {
    async fn generate_root_required(&self) -> Result<u32, CoreError> {
        Ok(SealConfig::load(self.storage.as_ref())
            .await?
            .map(|c| c.secret_threshold)
            .unwrap_or(0))
    }

    /// `GET sys/generate-root/attempt`.
    pub async fn generate_root_status(&self) -> Result<GenerateRootStatus, CoreError> {
        let required = self.generate_root_required().await?;
        let g = lock(&self.seal_state.generate_root);
        Ok(match g.as_ref() {
            Some(a) => GenerateRootStatus {
                started: true,
                nonce: a.nonce.clone(),
                progress: a.shares.len() as u32,
                required,
                otp_length: OTP_LENGTH as u32,
                ..GenerateRootStatus::default()
            },
            None => GenerateRootStatus {
                required,
                otp_length: OTP_LENGTH as u32,
                ..GenerateRootStatus::default()
            },
        })
    }

    /// `PUT sys/generate-root/attempt`.
    pub async fn generate_root_start(
        &self,
        req: GenerateRootStartRequest,
    ) -> Result<GenerateRootStatus, CoreError> {
        if self.barrier.sealed() {
            return Err(CoreError::Sealed);
        }
        // A DR secondary mints no local tokens: the write would fork its replicated WAL.
        self.refuse_on_dr_secondary()?;
        if !req.pgp_key.is_empty() {
            return Err(CoreError::InvalidRequest(
                "PGP-encrypted root tokens are not supported; omit pgp_key".into(),
            ));
        }
        let (otp, generated) = if req.otp.is_empty() {
            (
                Zeroizing::new(crate::util::random_base62(OTP_LENGTH)?),
                true,
            )
        } else if req.otp.len() != OTP_LENGTH {
            return Err(CoreError::InvalidRequest(format!(
                "OTP string is wrong length: expected {OTP_LENGTH} characters"
            )));
        } else {
            (Zeroizing::new(req.otp.clone()), false)
        };
        {
            let mut g = lock(&self.seal_state.generate_root);
            if g.is_some() {
                return Err(CoreError::InvalidRequest(
                    "root generation already in progress".into(),
                ));
            }
            *g = Some(GenerateRootAttempt {
                nonce: uuid::Uuid::new_v4().to_string(),
                otp: otp.clone(),
                shares: Vec::new(),
            });
        }
        let mut status = self.generate_root_status().await?;
        if generated {
            status.otp = otp.to_string();
        }
        Ok(status)
    }

    /// `DELETE sys/generate-root/attempt`.
    pub fn generate_root_cancel(&self) {
        *lock(&self.seal_state.generate_root) = None;
    }

    /// `PUT sys/generate-root/update`: adds one share; on the last one mints the token.
    pub async fn generate_root_update(
        &self,
        req: GenerateRootUpdateRequest,
    ) -> Result<GenerateRootStatus, CoreError> {
        if self.barrier.sealed() {
            return Err(CoreError::Sealed);
        }
        self.refuse_on_dr_secondary()?;
        if req.key.is_empty() {
            return Err(CoreError::InvalidRequest("missing key".into()));
        }
        if req.nonce.is_empty() {
            return Err(CoreError::InvalidRequest("missing nonce".into()));
        }
        let share = decode_share(&req.key)?;
        let required = self.generate_root_required().await?;
        let (shares, otp, nonce) = {
            let mut g = lock(&self.seal_state.generate_root);
            let Some(a) = g.as_mut() else {
                return Err(CoreError::InvalidRequest(
                    "no root generation in progress".into(),
                ));
            };
            if !bool::from(a.nonce.as_bytes().ct_eq(req.nonce.as_bytes())) {
                return Err(CoreError::InvalidRequest(format!(
                    "incorrect nonce supplied; nonce for this root generation operation is {}",
                    a.nonce
                )));
            }
            if a.shares
                .iter()
                .any(|s| bool::from(s.as_slice().ct_eq(share.as_slice())))
            {
                return Err(CoreError::InvalidRequest(
                    "given key has already been provided during this generation operation".into(),
                ));
            }
            a.shares.push(share);
            if (a.shares.len() as u32) < required {
                let progress = a.shares.len() as u32;
                return Ok(GenerateRootStatus {
                    started: true,
                    nonce: a.nonce.clone(),
                    progress,
                    required,
                    otp_length: OTP_LENGTH as u32,
                    ..GenerateRootStatus::default()
                });
            }
            let a = g
                .take()
                .ok_or_else(|| CoreError::Internal("attempt vanished".into()))?;
            (a.shares, a.otp, a.nonce)
        };
        let key = combine_shares(&shares).map_err(|_| {
            CoreError::InvalidRequest("unable to combine the provided key shares".into())
        })?;
        match self.barrier.verify_unseal_key(&key).await {
            Ok(()) => {}
            Err(strongroom_barrier::BarrierError::InvalidKey) => {
                return Err(CoreError::InvalidRequest(
                    "the provided key shares do not match this cluster's unseal key; the attempt was cancelled".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        let token = Zeroizing::new(format!(
            "hvs.{}",
            crate::util::random_base62(OTP_LENGTH - 4)?
        ));
        self.create_root_token(Some(&token)).await?;
        let encoded = encode_token(&token, &otp)?;
        Ok(GenerateRootStatus {
            started: true,
            nonce,
            progress: required,
            required,
            encoded_token: encoded.clone(),
            encoded_root_token: encoded,
            otp_length: OTP_LENGTH as u32,
            complete: true,
            ..GenerateRootStatus::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_matches_vaults_published_vector() {
        // Why: `vault operator generate-root -decode` must decode our encoded tokens.
        let enc = encode_token(
            "hvs.KpZdMAs4pVtcWfgVgqXFeEGM",
            "WC4gXgKrEUZIRDxHRNTiiUIf9GO8",
        )
        .unwrap();
        assert_eq!(enc, "PzVHSRMXERYIFCl9IhIMKwUoMz8OJBEgXAIIdQ");
    }
}

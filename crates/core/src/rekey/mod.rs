//! `sys/rekey/*`: replacing the unseal key and its shares while the server is unsealed.
//!
//! Rekeying proves possession of a threshold of the current shares, generates a new unseal
//! key, splits it (optionally encrypting each share to an operator's PGP key), and
//! re-encrypts the root key under it; the root key and keyring, and so all data, are
//! untouched. The root key, the new seal configuration and the optional backup are written
//! in one atomic storage write. With `require_verification` the new key is installed only
//! after a threshold of the *new* shares has been given back, so a mistyped or lost share
//! cannot lock the operators out. Like Vault, init/update/verify need no token (the shares
//! are the credential) and `sys/rekey/backup` needs `sudo`.
//!
//! `attempt` holds the state machine, `pgp` the encryption to operators' keys, `shares`
//! the answer's encoding; this file does the IO and the cryptography between the steps.

mod attempt;
mod backup;
pub(crate) mod pgp;
pub(crate) mod shares;

pub(crate) use attempt::RekeyAttempt;
pub(crate) use backup::route;

use strongroom_api::{
    RekeyBackup, RekeyCancelRequest, RekeyInitRequest, RekeyStatus, RekeyUpdateAnswer,
    RekeyUpdateRequest, RekeyUpdateResponse, RekeyVerificationComplete, RekeyVerificationStatus,
    RekeyVerifyAnswer,
};
use strongroom_barrier::{
    BarrierError, BarrierOp, SealConfig, UnsealKey, combine_shares, split_unseal_key,
};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use self::attempt::{Collected, RekeyError};
use self::pgp::PgpRecipient;
use self::shares::IssuedShares;
use crate::seal::decode_share;
use crate::util::lock;
use crate::{Core, CoreError};

/// What the current-share phase hands to the key generation step.
struct Plan {
    nonce: String,
    config: SealConfig,
    pgp_keys: Vec<String>,
    backup: bool,
    verification_required: bool,
    fingerprints: Option<Vec<String>>,
}

impl Core {
    /// Rekeying needs an unsealed primary: a DR secondary must not fork its replicated keys.
    fn rekey_gate(&self) -> Result<(), CoreError> {
        if self.barrier.sealed() {
            return Err(CoreError::Sealed);
        }
        self.refuse_on_dr_secondary()
    }

    /// The current seal configuration (its threshold is what `update` needs).
    async fn current_seal_config(&self) -> Result<SealConfig, CoreError> {
        SealConfig::load(self.storage.as_ref())
            .await?
            .ok_or_else(|| CoreError::Internal("seal configuration missing from storage".into()))
    }

    /// `GET sys/rekey/init`.
    pub async fn rekey_status(&self) -> Result<RekeyStatus, CoreError> {
        self.rekey_gate()?;
        let required = self.current_seal_config().await?.secret_threshold;
        Ok(match lock(&self.seal_state.rekey).as_ref() {
            Some(a) => a.status(required),
            None => RekeyStatus {
                required,
                ..RekeyStatus::default()
            },
        })
    }

    /// `PUT sys/rekey/init`: starts an attempt with the new share counts.
    pub async fn rekey_start(&self, req: RekeyInitRequest) -> Result<RekeyStatus, CoreError> {
        self.rekey_gate()?;
        let config = SealConfig::shamir(req.secret_shares, req.secret_threshold);
        config
            .validate()
            .map_err(|e| CoreError::InvalidRequest(e.to_string()))?;
        if !req.pgp_keys.is_empty() && req.pgp_keys.len() != req.secret_shares as usize {
            return Err(CoreError::InvalidRequest(format!(
                "incorrect number of PGP keys for rekey: {} keys for {} shares; give one per share",
                req.pgp_keys.len(),
                req.secret_shares
            )));
        }
        if req.backup && req.pgp_keys.is_empty() {
            return Err(CoreError::InvalidRequest(
                "cannot request a backup of the new keys without providing PGP keys for encryption"
                    .into(),
            ));
        }
        let recipients = PgpRecipient::parse_all(&req.pgp_keys)?;
        let pgp = req
            .pgp_keys
            .iter()
            .cloned()
            .zip(recipients.iter().map(|r| r.fingerprint().to_owned()))
            .collect();
        let _guard = self.seal_state.transition.lock().await;
        self.rekey_gate()?; // a seal may have won the race for the lock
        {
            let mut slot = lock(&self.seal_state.rekey);
            if slot.is_some() {
                return Err(RekeyError::AlreadyStarted.into());
            }
            *slot = Some(RekeyAttempt::new(
                uuid::Uuid::new_v4().to_string(),
                config,
                pgp,
                req.backup,
                req.require_verification,
            ));
        }
        drop(_guard);
        self.rekey_status().await
    }

    /// `DELETE sys/rekey/init`: drops the attempt (and any new key awaiting verification).
    /// A nonce, when given, must be the attempt's.
    pub async fn rekey_cancel(&self, req: RekeyCancelRequest) -> Result<(), CoreError> {
        self.rekey_gate()?;
        let _guard = self.seal_state.transition.lock().await;
        let mut slot = lock(&self.seal_state.rekey);
        if let Some(a) = slot.as_ref()
            && !req.nonce.is_empty()
        {
            a.check_nonce(&req.nonce)?;
        }
        *slot = None;
        Ok(())
    }

    /// `PUT sys/rekey/update`: adds one current share; at the threshold makes the new shares
    /// (and installs them unless verification is required).
    pub async fn rekey_update(
        &self,
        req: RekeyUpdateRequest,
    ) -> Result<RekeyUpdateAnswer, CoreError> {
        self.rekey_gate()?;
        let (share, nonce) = share_and_nonce(&req)?;
        let _guard = self.seal_state.transition.lock().await;
        let required = self.current_seal_config().await?.secret_threshold;
        let (shares, plan) = {
            let mut slot = lock(&self.seal_state.rekey);
            let a = slot.as_mut().ok_or(RekeyError::NotStarted)?;
            match a.add_current_share(nonce, share, required)? {
                Collected::Progress => return Ok(RekeyUpdateAnswer::Progress(a.status(required))),
                Collected::Ready(shares) => (shares, plan_of(a)),
            }
        };
        self.check_current_shares(&shares, &plan.nonce).await?;
        let new_key = UnsealKey::generate()?;
        let new_shares = split_unseal_key(
            &new_key,
            plan.config.secret_shares,
            plan.config.secret_threshold,
        )?;
        let recipients = PgpRecipient::parse_all(&plan.pgp_keys)?;
        let mut issued = IssuedShares::issue(&new_shares, &recipients)?;
        let backup = plan.backup.then(|| issued.backup(&plan.nonce));
        let mut answer = RekeyUpdateResponse {
            nonce: plan.nonce.clone(),
            complete: true,
            keys: std::mem::take(&mut issued.keys),
            keys_base64: std::mem::take(&mut issued.keys_base64),
            pgp_fingerprints: plan.fingerprints.clone(),
            backup: plan.backup,
            verification_required: plan.verification_required,
            verification_nonce: String::new(),
        };
        if plan.verification_required {
            let mut slot = lock(&self.seal_state.rekey);
            let a = slot.as_mut().ok_or(RekeyError::NotStarted)?;
            let v_nonce = uuid::Uuid::new_v4().to_string();
            answer.verification_nonce = a.begin_verification(v_nonce, new_key, backup);
            return Ok(RekeyUpdateAnswer::Complete(answer));
        }
        self.install_rekey(&new_key, &plan.config, backup).await?;
        tracing::info!(
            shares = plan.config.secret_shares,
            threshold = plan.config.secret_threshold,
            "unseal key rekeyed"
        );
        Ok(RekeyUpdateAnswer::Complete(answer))
    }

    /// Checks that the collected current shares open the root key. On failure the attempt
    /// stays (same nonce) with no progress, and the stored key is untouched.
    async fn check_current_shares(
        &self,
        shares: &[Zeroizing<Vec<u8>>],
        nonce: &str,
    ) -> Result<(), CoreError> {
        let refused = || {
            CoreError::InvalidRequest(format!(
                "the provided unseal keys do not open this cluster's root key: rekey progress \
                 was reset and nothing was changed; submit the current shares again with nonce {nonce}"
            ))
        };
        let key = combine_shares(shares).map_err(|_| refused())?;
        match self.barrier.verify_unseal_key(&key).await {
            Ok(()) => Ok(()),
            Err(BarrierError::InvalidKey) => Err(refused()),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the new key, configuration and backup at once, then forgets the attempt.
    async fn install_rekey(
        &self,
        new_key: &UnsealKey,
        config: &SealConfig,
        backup: Option<RekeyBackup>,
    ) -> Result<(), CoreError> {
        let also = match backup {
            Some(b) => vec![BarrierOp::Put {
                key: crate::keys::REKEY_BACKUP.into(),
                value: serde_json::to_vec(&b)
                    .map_err(|e| CoreError::Internal(format!("encoding the key backup: {e}")))?,
            }],
            None => Vec::new(),
        };
        self.barrier.rekey(new_key, config, also).await?;
        *lock(&self.seal_state.rekey) = None;
        Ok(())
    }

    /// `GET sys/rekey/verify`.
    pub async fn rekey_verify_status(&self) -> Result<RekeyVerificationStatus, CoreError> {
        self.rekey_gate()?;
        let slot = lock(&self.seal_state.rekey);
        let a = slot.as_ref().ok_or(RekeyError::NotStarted)?;
        Ok(a.verification_status()?)
    }

    /// `DELETE sys/rekey/verify`: drops the new shares given so far, under a new nonce.
    pub async fn rekey_verify_restart(&self) -> Result<RekeyVerificationStatus, CoreError> {
        self.rekey_gate()?;
        let _guard = self.seal_state.transition.lock().await;
        let mut slot = lock(&self.seal_state.rekey);
        let a = slot.as_mut().ok_or(RekeyError::NotStarted)?;
        a.restart_verification(uuid::Uuid::new_v4().to_string())?;
        Ok(a.verification_status()?)
    }

    /// `PUT sys/rekey/verify`: adds one new share; at the new threshold checks them against
    /// the new key and installs it.
    pub async fn rekey_verify_update(
        &self,
        req: RekeyUpdateRequest,
    ) -> Result<RekeyVerifyAnswer, CoreError> {
        self.rekey_gate()?;
        let (share, nonce) = share_and_nonce(&req)?;
        let _guard = self.seal_state.transition.lock().await;
        let (shares, new_key, config, backup, v_nonce) = {
            let mut slot = lock(&self.seal_state.rekey);
            let a = slot.as_mut().ok_or(RekeyError::NotStarted)?;
            match a.add_new_share(nonce, share)? {
                Collected::Progress => {
                    return Ok(RekeyVerifyAnswer::Progress(a.verification_status()?));
                }
                Collected::Ready(shares) => {
                    let v = a.verification()?;
                    let pending = (v.new_key.clone(), v.backup.clone(), v.nonce.clone());
                    (shares, pending.0, a.config.clone(), pending.1, pending.2)
                }
            }
        };
        let matches = combine_shares(&shares)
            .is_ok_and(|k| bool::from(k.expose_secret().ct_eq(new_key.expose_secret())));
        if !matches {
            return Err(CoreError::InvalidRequest(format!(
                "the provided keys do not combine to the new unseal key: verification progress \
                 was reset and the current key is still in use; submit the new shares again \
                 with verification nonce {v_nonce}"
            )));
        }
        self.install_rekey(&new_key, &config, backup).await?;
        tracing::info!(
            shares = config.secret_shares,
            threshold = config.secret_threshold,
            "unseal key rekeyed after verification"
        );
        Ok(RekeyVerifyAnswer::Complete(RekeyVerificationComplete {
            nonce: v_nonce,
            complete: true,
        }))
    }
}

/// The decoded share and the nonce of an update or verify body, both required.
fn share_and_nonce(req: &RekeyUpdateRequest) -> Result<(Zeroizing<Vec<u8>>, &str), CoreError> {
    if req.key.is_empty() {
        return Err(CoreError::InvalidRequest("missing key".into()));
    }
    if req.nonce.is_empty() {
        return Err(CoreError::InvalidRequest("missing nonce".into()));
    }
    Ok((decode_share(&req.key)?, req.nonce.as_str()))
}

fn plan_of(a: &RekeyAttempt) -> Plan {
    Plan {
        nonce: a.nonce.clone(),
        config: a.config.clone(),
        pgp_keys: a.pgp_keys.clone(),
        backup: a.backup,
        verification_required: a.verification_required,
        fingerprints: a.fingerprints(),
    }
}

#[cfg(test)]
mod tests;

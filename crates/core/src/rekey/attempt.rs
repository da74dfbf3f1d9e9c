//! The rekey attempt as a state machine, with no IO and no cryptography.
//!
//! A rekey passes through two collecting phases, each guarded by its own nonce so that a
//! share sent for an older attempt (or a restarted verification) can never count towards
//! the current one: first a threshold of the *current* shares, then, when verification is
//! required, a threshold of the *new* shares. The caller does the cryptography between the
//! phases; this type only decides what counts, what resets and what the status shows.

use strongroom_api::{RekeyBackup, RekeyStatus, RekeyVerificationStatus};
use strongroom_barrier::{SealConfig, UnsealKey};
use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::CoreError;

/// Why a rekey step was refused. Nothing is lost by any of them: progress is unchanged.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RekeyError {
    #[error("no rekey in progress: start one with sys/rekey/init")]
    NotStarted,
    #[error("rekey already in progress: cancel it first (DELETE sys/rekey/init)")]
    AlreadyStarted,
    #[error("incorrect nonce supplied; nonce for this rekey operation is {expected}")]
    WrongNonce { expected: String },
    #[error("given key has already been provided during this rekey operation")]
    DuplicateShare,
    #[error(
        "the new key shares were already generated; give them to sys/rekey/verify with the verification nonce, or cancel"
    )]
    AwaitingVerification,
    #[error("no rekey verification in progress: this rekey does not require verification")]
    NoVerification,
    #[error(
        "no rekey verification in progress: submit the current shares to sys/rekey/update first"
    )]
    VerificationNotStarted,
    #[error("incorrect nonce supplied; nonce for this verification operation is {expected}")]
    WrongVerificationNonce { expected: String },
}

impl From<RekeyError> for CoreError {
    fn from(e: RekeyError) -> Self {
        CoreError::InvalidRequest(e.to_string())
    }
}

/// What one submitted share achieved.
pub(crate) enum Collected {
    /// More shares are needed.
    Progress,
    /// The threshold was reached: the shares, handed over (the attempt holds none now).
    Ready(Vec<Zeroizing<Vec<u8>>>),
}

/// The new key, generated but not installed until enough of its shares come back.
pub(crate) struct Verification {
    pub nonce: String,
    pub new_key: UnsealKey,
    /// The backup record to write with the new key, when `backup` was asked for.
    pub backup: Option<RekeyBackup>,
    shares: Vec<Zeroizing<Vec<u8>>>,
}

/// One rekey, from `sys/rekey/init` until the new key is installed or the attempt cancelled.
pub(crate) struct RekeyAttempt {
    pub nonce: String,
    /// How the new key will be shared.
    pub config: SealConfig,
    /// One fingerprint per new share when the shares are PGP-encrypted.
    pub pgp_fingerprints: Vec<String>,
    /// The base64 PGP keys themselves, parsed again when the shares are made.
    pub pgp_keys: Vec<String>,
    pub backup: bool,
    pub verification_required: bool,
    /// Current shares submitted so far.
    shares: Vec<Zeroizing<Vec<u8>>>,
    verification: Option<Verification>,
}

impl RekeyAttempt {
    /// A new attempt; `config` must already be validated.
    pub(crate) fn new(
        nonce: String,
        config: SealConfig,
        pgp: Vec<(String, String)>,
        backup: bool,
        verification_required: bool,
    ) -> Self {
        let (pgp_keys, pgp_fingerprints) = pgp.into_iter().unzip();
        RekeyAttempt {
            nonce,
            config,
            pgp_fingerprints,
            pgp_keys,
            backup,
            verification_required,
            shares: Vec::new(),
            verification: None,
        }
    }

    /// `GET sys/rekey/init` for this attempt; `required` is the current threshold.
    pub(crate) fn status(&self, required: u32) -> RekeyStatus {
        RekeyStatus {
            nonce: self.nonce.clone(),
            started: true,
            t: self.config.secret_threshold,
            n: self.config.secret_shares,
            progress: self.shares.len() as u32,
            required,
            pgp_fingerprints: self.fingerprints(),
            backup: self.backup,
            verification_required: self.verification_required,
            verification_nonce: self
                .verification
                .as_ref()
                .map(|v| v.nonce.clone())
                .unwrap_or_default(),
        }
    }

    /// The fingerprints as Vault shows them: `null` without PGP keys.
    pub(crate) fn fingerprints(&self) -> Option<Vec<String>> {
        (!self.pgp_fingerprints.is_empty()).then(|| self.pgp_fingerprints.clone())
    }

    /// Checks `nonce` (constant time) against this attempt's.
    pub(crate) fn check_nonce(&self, nonce: &str) -> Result<(), RekeyError> {
        if bool::from(self.nonce.as_bytes().ct_eq(nonce.as_bytes())) {
            Ok(())
        } else {
            Err(RekeyError::WrongNonce {
                expected: self.nonce.clone(),
            })
        }
    }

    /// Adds one current share; at `required` shares hands them all over.
    pub(crate) fn add_current_share(
        &mut self,
        nonce: &str,
        share: Zeroizing<Vec<u8>>,
        required: u32,
    ) -> Result<Collected, RekeyError> {
        self.check_nonce(nonce)?;
        if self.verification.is_some() {
            return Err(RekeyError::AwaitingVerification);
        }
        collect(&mut self.shares, share, required)
    }

    /// Records the generated new key; returns the verification nonce.
    pub(crate) fn begin_verification(
        &mut self,
        nonce: String,
        new_key: UnsealKey,
        backup: Option<RekeyBackup>,
    ) -> String {
        self.verification = Some(Verification {
            nonce: nonce.clone(),
            new_key,
            backup,
            shares: Vec::new(),
        });
        nonce
    }

    /// The pending verification, if the new key was generated and awaits its shares.
    pub(crate) fn verification(&self) -> Result<&Verification, RekeyError> {
        if !self.verification_required {
            return Err(RekeyError::NoVerification);
        }
        self.verification
            .as_ref()
            .ok_or(RekeyError::VerificationNotStarted)
    }

    /// `GET sys/rekey/verify` for this attempt.
    pub(crate) fn verification_status(&self) -> Result<RekeyVerificationStatus, RekeyError> {
        let v = self.verification()?;
        Ok(RekeyVerificationStatus {
            nonce: v.nonce.clone(),
            started: true,
            t: self.config.secret_threshold,
            n: self.config.secret_shares,
            progress: v.shares.len() as u32,
        })
    }

    /// Adds one new share; at the new threshold hands them all over.
    pub(crate) fn add_new_share(
        &mut self,
        nonce: &str,
        share: Zeroizing<Vec<u8>>,
    ) -> Result<Collected, RekeyError> {
        let threshold = self.config.secret_threshold;
        self.verification()?;
        let v = self
            .verification
            .as_mut()
            .ok_or(RekeyError::VerificationNotStarted)?;
        if !bool::from(v.nonce.as_bytes().ct_eq(nonce.as_bytes())) {
            return Err(RekeyError::WrongVerificationNonce {
                expected: v.nonce.clone(),
            });
        }
        collect(&mut v.shares, share, threshold)
    }

    /// Drops the new shares given so far and changes the verification nonce.
    pub(crate) fn restart_verification(&mut self, nonce: String) -> Result<(), RekeyError> {
        self.verification()?;
        if let Some(v) = self.verification.as_mut() {
            v.nonce = nonce;
            v.shares.clear();
        }
        Ok(())
    }
}

/// Adds `share` to `held` unless it is already there; hands all over at `required`.
fn collect(
    held: &mut Vec<Zeroizing<Vec<u8>>>,
    share: Zeroizing<Vec<u8>>,
    required: u32,
) -> Result<Collected, RekeyError> {
    if held
        .iter()
        .any(|s| bool::from(s.as_slice().ct_eq(share.as_slice())))
    {
        return Err(RekeyError::DuplicateShare);
    }
    held.push(share);
    if (held.len() as u32) < required {
        return Ok(Collected::Progress);
    }
    Ok(Collected::Ready(std::mem::take(held)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(verify: bool) -> RekeyAttempt {
        RekeyAttempt::new(
            "n1".into(),
            SealConfig::shamir(3, 2),
            Vec::new(),
            false,
            verify,
        )
    }

    fn share(b: u8) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(vec![b; 33])
    }

    #[test]
    fn current_shares_count_until_the_threshold_then_reset() {
        // Why: progress must reach exactly the current threshold and start over after.
        let mut a = attempt(false);

        let first = a.add_current_share("n1", share(1), 2).unwrap();
        let dup = a.add_current_share("n1", share(1), 2);
        let second = a.add_current_share("n1", share(2), 2).unwrap();

        assert!(matches!(first, Collected::Progress));
        assert!(matches!(dup, Err(RekeyError::DuplicateShare)));
        assert!(matches!(second, Collected::Ready(s) if s.len() == 2));
        assert_eq!(a.status(2).progress, 0);
    }

    #[test]
    fn a_wrong_nonce_counts_nothing() {
        // Why: a share sent for an older attempt must not move this one.
        let mut a = attempt(false);
        a.add_current_share("n1", share(1), 3).unwrap();

        let r = a.add_current_share("old", share(2), 3);

        assert_eq!(
            r.err(),
            Some(RekeyError::WrongNonce {
                expected: "n1".into()
            })
        );
        assert_eq!(a.status(3).progress, 1);
    }

    #[test]
    fn verification_has_its_own_nonce_and_restart_clears_progress() {
        // Why: new shares go only to the verification nonce; DELETE verify starts over.
        let mut a = attempt(true);
        assert_eq!(
            a.verification_status().err(),
            Some(RekeyError::VerificationNotStarted)
        );
        a.begin_verification("v1".into(), UnsealKey::generate().unwrap(), None);

        let refused = a.add_current_share("n1", share(1), 1);
        let wrong = a.add_new_share("n1", share(1));
        a.add_new_share("v1", share(1)).unwrap();
        a.restart_verification("v2".into()).unwrap();

        assert!(matches!(refused, Err(RekeyError::AwaitingVerification)));
        assert!(matches!(
            wrong,
            Err(RekeyError::WrongVerificationNonce { .. })
        ));
        let status = a.verification_status().unwrap();
        assert_eq!((status.nonce.as_str(), status.progress), ("v2", 0));
        assert_eq!(a.status(1).verification_nonce, "v2");
        assert!(matches!(
            a.add_new_share("v2", share(1)).unwrap(),
            Collected::Progress
        ));
        assert!(matches!(
            a.add_new_share("v2", share(2)).unwrap(),
            Collected::Ready(_)
        ));
    }

    #[test]
    fn verification_is_refused_when_not_required() {
        // Why: sys/rekey/verify must say clearly that this rekey has no verification step.
        let a = attempt(false);

        assert_eq!(
            a.verification_status().err(),
            Some(RekeyError::NoVerification)
        );
    }
}

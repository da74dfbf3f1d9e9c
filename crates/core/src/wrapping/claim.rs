//! In-process exclusion for consuming a wrapping token.
//!
//! Unwrap and rewrap read the payload and then revoke the token; two concurrent calls could
//! both read before either revokes, handing the secret out twice. A claim on the token's hash
//! makes the read-then-revoke sequence exclusive. Token hashes are unique across cores, so one
//! process-wide set is correct even when several cores share a process (tests).

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::CoreError;

static CLAIMED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Holds a token hash exclusively until dropped.
pub(super) struct Claim {
    hash: String,
}

impl Claim {
    /// Claims `hash`; a token already being consumed is reported as invalid, exactly like a
    /// consumed one.
    pub(super) fn take(hash: String) -> Result<Claim, CoreError> {
        let mut set = crate::util::lock(&CLAIMED);
        if !set.insert(hash.clone()) {
            return Err(CoreError::InvalidRequest(super::INVALID_TOKEN.into()));
        }
        Ok(Claim { hash })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        crate::util::lock(&CLAIMED).remove(&self.hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_can_be_claimed_once_at_a_time() {
        // Why: the second of two racing unwraps must be refused, then the claim must free up.
        let first = Claim::take("wrap-claim-test".into()).unwrap();
        assert!(Claim::take("wrap-claim-test".into()).is_err());
        drop(first);
        assert!(Claim::take("wrap-claim-test".into()).is_ok());
    }
}

//! The two-phase join's challenge: proof that a joining node holds the cluster's unseal key.
//!
//! A node that asks to join receives nothing of the cluster's data until it answers a
//! challenge. The active node encrypts a random nonce under its in-memory root key; the joiner
//! gets that ciphertext together with the stored root-key record (the root key sealed under the
//! unseal key, which without the unseal key is worth nothing) and can only recover the nonce
//! once its operators have given it the cluster's unseal shares. Knowing an address, or holding
//! a certificate the API listener accepts, is therefore not enough to join, which is the
//! property Vault's challenge gives; binding the ciphertext to the joiner's node id keeps one
//! node's challenge from answering for another.

use zeroize::Zeroizing;

use crate::envelope::KEY_LEN;
use crate::envelope::{self, OpenError};
use crate::seal::{ROOT_KEY_PATH, RootKey, UnsealKey};
use crate::{Barrier, BarrierError};

/// Bytes of the random nonce inside a challenge.
pub const CHALLENGE_NONCE_LEN: usize = 32;

/// What the active node sends a joiner in the first phase.
pub struct JoinChallenge {
    /// The nonce, kept by the active node to check the answer against.
    pub nonce: Zeroizing<Vec<u8>>,
    /// The nonce encrypted under the root key, bound to the joiner's node id.
    pub challenge: Vec<u8>,
    /// The stored root-key record (sealed under the unseal key).
    pub sealed_root_key: Vec<u8>,
}

fn challenge_aad(server_id: &str) -> Vec<u8> {
    format!("strongroom raft join challenge\n{server_id}").into_bytes()
}

impl Barrier {
    /// Phase one, on the active node: a fresh challenge for `server_id`. Requires an unsealed
    /// barrier.
    pub async fn join_challenge(&self, server_id: &str) -> Result<JoinChallenge, BarrierError> {
        let root = self.root_key()?;
        let sealed_root_key = self
            .storage()
            .get(ROOT_KEY_PATH)
            .await?
            .ok_or(BarrierError::NotInitialized)?;
        let mut nonce = Zeroizing::new(vec![0u8; CHALLENGE_NONCE_LEN]);
        envelope::fill_random(&mut nonce)?;
        let cipher = envelope::cipher(root.bytes());
        let challenge = envelope::seal(&cipher, 0, &challenge_aad(server_id), &nonce)?;
        Ok(JoinChallenge {
            nonce,
            challenge,
            sealed_root_key,
        })
    }
}

/// Phase two, on the joining node: recovers the nonce with the unseal key its operators gave
/// it. A wrong key gives [`BarrierError::InvalidKey`]; a challenge made for another node id
/// or tampered with gives [`BarrierError::Corrupt`].
pub fn answer_join_challenge(
    unseal_key: &UnsealKey,
    sealed_root_key: &[u8],
    challenge: &[u8],
    server_id: &str,
) -> Result<Zeroizing<Vec<u8>>, BarrierError> {
    let cipher = envelope::cipher(unseal_key.bytes());
    let root =
        envelope::open(&cipher, ROOT_KEY_PATH.as_bytes(), sealed_root_key).map_err(
            |e| match e {
                OpenError::Malformed(err) => err,
                OpenError::Unauthentic => BarrierError::InvalidKey,
            },
        )?;
    if root.len() != KEY_LEN {
        return Err(BarrierError::Corrupt(
            "the cluster's root key record has the wrong length".into(),
        ));
    }
    let root = RootKey::from_bytes(&root)?;
    let cipher = envelope::cipher(root.bytes());
    envelope::open(&cipher, &challenge_aad(server_id), challenge).map_err(|e| match e {
        OpenError::Malformed(err) => err,
        OpenError::Unauthentic => BarrierError::Corrupt(
            "the join challenge does not open with the cluster's root key: it was made for another node id or altered".into(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use strongroom_storage::InmemStorage;

    use super::*;

    async fn unsealed() -> (Barrier, UnsealKey) {
        let barrier = Barrier::new(Arc::new(InmemStorage::new()));
        let key = UnsealKey::generate().unwrap();
        barrier
            .initialize(&key, &RootKey::generate().unwrap())
            .await
            .unwrap();
        barrier.unseal(&key).await.unwrap();
        (barrier, key)
    }

    #[tokio::test]
    async fn only_the_unseal_key_answers_the_challenge() {
        // Set up: an unsealed cluster issues a challenge for node-2.
        let (barrier, key) = unsealed().await;
        let c = barrier.join_challenge("node-2").await.unwrap();

        // Act and assert: the right key recovers the nonce, a stranger's key cannot, and the
        // challenge does not answer for another node id.
        let answer =
            answer_join_challenge(&key, &c.sealed_root_key, &c.challenge, "node-2").unwrap();
        assert_eq!(answer.as_slice(), c.nonce.as_slice());
        let stranger = UnsealKey::generate().unwrap();
        assert!(matches!(
            answer_join_challenge(&stranger, &c.sealed_root_key, &c.challenge, "node-2"),
            Err(BarrierError::InvalidKey)
        ));
        assert!(matches!(
            answer_join_challenge(&key, &c.sealed_root_key, &c.challenge, "node-3"),
            Err(BarrierError::Corrupt(_))
        ));
    }
}

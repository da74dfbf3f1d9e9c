//! The encryption barrier between Strongroom's logic and its storage.
//!
//! This crate exists so that exactly one component handles plaintext and key material: it
//! owns the keyring (AES-256-GCM terms), the root key that protects the keyring, the unseal key
//! that protects the root key, and the Shamir sharing of the unseal key. Storage, Raft,
//! snapshots and replication only ever see what this crate hands them.

#![forbid(unsafe_code)]

mod barrier;
mod envelope;
mod error;
mod join;
mod keyring;
mod seal;
mod shamir;

pub use barrier::{Barrier, BarrierOp};
pub use error::BarrierError;
pub use join::{CHALLENGE_NONCE_LEN, JoinChallenge, answer_join_challenge};
pub use keyring::KeyStatus;
pub use seal::{KEYRING_PATH, ROOT_KEY_PATH, RootKey, SEAL_CONFIG_PATH, SealConfig, UnsealKey};
pub use shamir::{combine_shares, split_unseal_key};

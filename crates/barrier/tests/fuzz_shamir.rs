//! Fuzz target for combining unseal key shares.
//!
//! Shares come from operators (and, through `sys/unseal`, from anyone who reaches the API),
//! so combining must refuse malformed sets with [`BarrierError::InvalidShare`] and never
//! panic, while every threshold-sized subset of a real split still rebuilds the key.
//! `PROPTEST_CASES` raises the case count (256 by default).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use strongroom_barrier::{BarrierError, UnsealKey, combine_shares, split_unseal_key};
use strongroom_fuzz::{config, mutate, mutations};
use zeroize::Zeroizing;

fn assert_invalid_share(err: &BarrierError) {
    assert!(
        matches!(err, BarrierError::InvalidShare(m) if !m.trim().is_empty()),
        "{err:?}"
    );
}

/// A split of a fresh key with `shares`/`threshold`, and the key's bytes.
fn split(shares: u32, threshold: u32) -> (Vec<Zeroizing<Vec<u8>>>, [u8; 32]) {
    let key = UnsealKey::generate().unwrap();
    let parts = split_unseal_key(&key, shares, threshold).unwrap();
    (parts, *key.expose_secret())
}

fn shape() -> impl Strategy<Value = (u32, u32)> {
    (2u32..10).prop_flat_map(|n| (Just(n), 2..=n))
}

proptest! {
    #![proptest_config(config(256))]

    /// Why: any set of byte strings, of any lengths, is a possible submission.
    #[test]
    fn fuzz_shamir_random_shares(
        shares in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..8),
    ) {
        let shares: Vec<Zeroizing<Vec<u8>>> = shares.into_iter().map(Zeroizing::new).collect();
        if let Err(e) = combine_shares(&shares) {
            assert_invalid_share(&e);
        }
    }

    /// Why: well-formed (33-byte) shares with any points, including zero and repeats.
    #[test]
    fn fuzz_shamir_well_formed_garbage(shares in prop::collection::vec(any::<[u8; 33]>(), 1..8)) {
        let shares: Vec<Zeroizing<Vec<u8>>> =
            shares.iter().map(|s| Zeroizing::new(s.to_vec())).collect();
        if let Err(e) = combine_shares(&shares) {
            assert_invalid_share(&e);
        }
    }

    /// Why: any `threshold` shares of a real split rebuild the key, in any order.
    #[test]
    fn fuzz_shamir_real_subsets_rebuild(
        (shares, threshold) in shape(),
        pick in any::<prop::sample::Index>(),
        order in any::<u64>(),
    ) {
        let (parts, key) = split(shares, threshold);
        let start = pick.index(parts.len());
        let mut subset: Vec<Zeroizing<Vec<u8>>> = (0..threshold as usize)
            .map(|i| parts[(start + i) % parts.len()].clone())
            .collect();
        subset.rotate_left((order % u64::from(threshold)) as usize);

        let rebuilt = combine_shares(&subset).unwrap();

        prop_assert_eq!(rebuilt.expose_secret(), &key);
    }

    /// Why: a damaged share must be refused or give a wrong key (each key byte is a
    /// linear function of every share's byte with a non-zero weight), never a panic.
    #[test]
    fn fuzz_shamir_damaged_share(
        (shares, threshold) in shape(),
        which in any::<prop::sample::Index>(),
        edits in mutations(3),
    ) {
        let (parts, key) = split(shares, threshold);
        let mut subset: Vec<Zeroizing<Vec<u8>>> = parts[..threshold as usize].to_vec();
        let i = which.index(subset.len());
        let damaged = mutate(subset[i].to_vec(), &edits);
        let unchanged = damaged == *subset[i];
        subset[i] = Zeroizing::new(damaged);

        match combine_shares(&subset) {
            Ok(got) if unchanged => prop_assert_eq!(got.expose_secret(), &key),
            Ok(got) => prop_assert_ne!(got.expose_secret(), &key),
            Err(e) => assert_invalid_share(&e),
        }
    }
}

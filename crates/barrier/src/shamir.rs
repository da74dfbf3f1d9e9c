//! Splitting the unseal key among operators so that no single person can unseal alone.
//!
//! Shares use Vault's byte layout, `[y_1 .. y_32, x]` (the evaluation point LAST), over
//! GF(2^8) with the AES polynomial 0x11B, so `vault operator unseal` users see familiar
//! 33-byte shares; the arithmetic itself is vsss-rs's constant-time `Gf256` (which uses
//! `[x, y..]` internally; we move the x byte). Points are 1..=n rather than Vault's random
//! points, which reveals nothing about the key. Combining fewer shares than the threshold
//! yields wrong bytes without error (inherent to Shamir): the caller detects it when the
//! result fails to decrypt the root key.

use getrandom::SysRng;
use getrandom::rand_core::UnwrapErr;
use vsss_rs::Gf256;
use zeroize::Zeroizing;

use crate::envelope::{KEY_LEN, fill_random};
use crate::{BarrierError, SealConfig, UnsealKey};

const SHARE_LEN: usize = KEY_LEN + 1;

/// Splits `key` into `shares` shares, any `threshold` of which rebuild it. With one share,
/// the share is the key itself (as in Vault).
pub fn split_unseal_key(
    key: &UnsealKey,
    shares: u32,
    threshold: u32,
) -> Result<Vec<Zeroizing<Vec<u8>>>, BarrierError> {
    SealConfig::shamir(shares, threshold).validate()?;
    if shares == 1 {
        return Ok(vec![Zeroizing::new(key.bytes().to_vec())]);
    }
    // vsss-rs wants an infallible RNG; probe the OS RNG first so that a broken one is an
    // error here rather than a panic inside the split.
    fill_random(&mut [0u8; 1])?;
    let raw = Zeroizing::new(
        Gf256::split_bytes(
            threshold as usize,
            shares as usize,
            key.bytes(),
            UnwrapErr(SysRng),
        )
        .map_err(|e| BarrierError::InvalidShare(format!("splitting the unseal key: {e:?}")))?,
    );
    Ok(raw
        .iter()
        .map(|share| {
            let mut vault_layout = Zeroizing::new(share.clone());
            vault_layout.rotate_left(1);
            vault_layout
        })
        .collect())
}

/// Rebuilds the unseal key from shares in Vault's layout. One 32-byte share is the key
/// itself. Refuses malformed and duplicate shares; a wrong or short set gives a wrong key.
pub fn combine_shares(shares: &[Zeroizing<Vec<u8>>]) -> Result<UnsealKey, BarrierError> {
    match shares {
        [] => Err(BarrierError::InvalidShare(
            "no key shares were given".into(),
        )),
        [single] if single.len() == KEY_LEN => UnsealKey::from_bytes(single),
        _ => {
            let mut xs = Vec::with_capacity(shares.len());
            let mut vsss_layout: Zeroizing<Vec<Vec<u8>>> = Zeroizing::new(Vec::new());
            for share in shares {
                if share.len() != SHARE_LEN {
                    return Err(BarrierError::InvalidShare(format!(
                        "a key share is {} bytes, expected {SHARE_LEN}",
                        share.len()
                    )));
                }
                let x = share[KEY_LEN];
                if x == 0 || xs.contains(&x) {
                    return Err(BarrierError::InvalidShare(
                        "the same key share was given twice or is malformed".into(),
                    ));
                }
                xs.push(x);
                let mut s = share.to_vec();
                s.rotate_right(1);
                vsss_layout.push(s);
            }
            let key =
                Zeroizing::new(Gf256::combine_bytes(&*vsss_layout).map_err(|e| {
                    BarrierError::InvalidShare(format!("combining key shares: {e:?}"))
                })?);
            UnsealKey::from_bytes(&key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Independent GF(2^8) multiply (AES polynomial), to build shares without vsss-rs.
    fn gmul(mut a: u8, mut b: u8) -> u8 {
        let mut p = 0u8;
        while b != 0 {
            if b & 1 != 0 {
                p ^= a;
            }
            let carry = a & 0x80 != 0;
            a <<= 1;
            if carry {
                a ^= 0x1B;
            }
            b >>= 1;
        }
        p
    }

    fn subsets(n: usize) -> impl Iterator<Item = Vec<usize>> {
        (1u32..(1 << n)).map(move |mask| (0..n).filter(|i| mask & (1 << i) != 0).collect())
    }

    #[test]
    fn any_threshold_subset_rebuilds_the_key() {
        // Why: operators may bring any `threshold` of their shares, in any order.
        let key = UnsealKey::generate().unwrap();
        let shares = split_unseal_key(&key, 5, 3).unwrap();
        assert!(shares.iter().all(|s| s.len() == SHARE_LEN));
        for subset in subsets(5) {
            let mut chosen: Vec<_> = subset.iter().map(|&i| shares[i].clone()).collect();
            chosen.reverse();
            let same = match combine_shares(&chosen) {
                Ok(combined) => combined.bytes() == key.bytes(),
                Err(BarrierError::InvalidShare(_)) if subset.len() == 1 => false,
                Err(e) => panic!("subset {subset:?}: {e}"),
            };
            assert_eq!(same, subset.len() >= 3, "subset {subset:?}");
        }
    }

    #[test]
    fn single_share_is_the_key_itself() {
        // Why: Vault hands out the raw key when shares == 1, and unseal must accept it back.
        let key = UnsealKey::generate().unwrap();
        let shares = split_unseal_key(&key, 1, 1).unwrap();
        assert_eq!(shares[0].as_slice(), key.bytes());
        assert_eq!(combine_shares(&shares).unwrap().bytes(), key.bytes());
    }

    #[test]
    fn vault_layout_shares_from_independent_math_combine() {
        // Why: proves the [y.., x] layout and field match Vault's, using hand-built shares at
        // arbitrary points rather than our own split.
        assert_eq!(gmul(0x57, 0x83), 0xC1); // FIPS-197 worked example
        let secret: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37) ^ 0x5A).collect();
        let slope: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(91) ^ 0xC3).collect();
        let share_at = |x: u8| {
            let mut s: Vec<u8> = secret
                .iter()
                .zip(&slope)
                .map(|(&c0, &c1)| c0 ^ gmul(c1, x))
                .collect();
            s.push(x);
            Zeroizing::new(s)
        };
        let combined = combine_shares(&[share_at(0x2A), share_at(0xC7)]).unwrap();
        assert_eq!(combined.bytes().as_slice(), secret.as_slice());
    }

    #[test]
    fn malformed_and_duplicate_shares_are_refused() {
        // Why: a repeated share must be an error, not a silently wrong key.
        let key = UnsealKey::generate().unwrap();
        let shares = split_unseal_key(&key, 3, 2).unwrap();
        let dup = [shares[0].clone(), shares[0].clone()];
        assert!(matches!(
            combine_shares(&dup),
            Err(BarrierError::InvalidShare(_))
        ));
        let short = [shares[0].clone(), Zeroizing::new(vec![1u8; 10])];
        assert!(matches!(
            combine_shares(&short),
            Err(BarrierError::InvalidShare(_))
        ));
        assert!(matches!(
            combine_shares(&[]),
            Err(BarrierError::InvalidShare(_))
        ));
        assert!(matches!(
            split_unseal_key(&key, 3, 4),
            Err(BarrierError::InvalidSealConfig(_))
        ));
    }
}

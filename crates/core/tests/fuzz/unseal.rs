//! Fuzz target: `sys/unseal` with garbage and with damaged key shares.
//!
//! Unseal is unauthenticated: anyone who reaches the API may submit keys. Properties: no
//! submission panics; every refusal is a client error with a message; nothing unseals but
//! the real shares or damage to enough of them that cancels out (Shamir is linear);
//! and after any garbage, a reset followed by the real shares still unseals (an attacker
//! cannot lock operators out by submitting bad shares).

use proptest::prelude::*;
use strongroom_api::UnsealRequest;
use strongroom_fuzz::{config, mutate, mutations};

use crate::support::{assert_client_refusal, bounded, initialized};

/// One submission: a real share damaged, or text of any shape.
#[derive(Debug, Clone)]
enum Garbage {
    /// Share `index` (mod the share count) with `edits`, encoded as hex or base64.
    Damaged {
        index: usize,
        edits: Vec<strongroom_fuzz::Mutation>,
        base64: bool,
    },
    Text(String),
    Reset,
}

fn garbage() -> impl Strategy<Value = Garbage> {
    prop_oneof![
        4 => (any::<usize>(), mutations(3), any::<bool>())
            .prop_map(|(index, edits, base64)| Garbage::Damaged { index, edits, base64 }),
        2 => prop_oneof![".{0,70}", "[0-9a-f]{64,68}", "[A-Za-z0-9+/]{43,46}=?"].prop_map(Garbage::Text),
        1 => Just(Garbage::Reset),
    ]
}

proptest! {
    #![proptest_config(config(64))]

    /// Why: bad shares from anyone must neither crash, unseal, nor block the real shares.
    #[test]
    fn fuzz_unseal_garbage_keys(
        (shares, threshold) in (2u32..6).prop_flat_map(|n| (Just(n), 2..=n)),
        submissions in prop::collection::vec(garbage(), 1..8),
    ) {
        use base64::Engine as _;
        let rt = strongroom_fuzz::runtime().unwrap();
        rt.block_on(async {
            let (core, keys, _) = initialized(shares, threshold).await;
            let real: Vec<Vec<u8>> = keys.iter().map(|k| hex::decode(k).unwrap()).collect();
            // Shamir interpolation is linear: damage to several real shares can cancel out
            // (flip bit 0 of byte k in share 1 and bit 1 of byte k in share 2 of a 2-of-2
            // split, and the secret comes out intact). Only input derived from real shares
            // can do that, so the property is: nothing else ever unseals.
            let mut damaged_since_reset = 0u32;
            for g in &submissions {
                match g {
                    Garbage::Reset => damaged_since_reset = 0,
                    Garbage::Damaged { .. } => damaged_since_reset += 1,
                    Garbage::Text(_) => {}
                }
                let req = match g {
                    Garbage::Reset => UnsealRequest { reset: true, ..Default::default() },
                    Garbage::Damaged { index, edits, base64 } => {
                        let bytes = mutate(real[index % real.len()].clone(), edits);
                        if real.contains(&bytes) {
                            continue; // an edit that undid itself is a real share, not garbage
                        }
                        let key = if *base64 {
                            base64::engine::general_purpose::STANDARD.encode(&bytes)
                        } else {
                            hex::encode(&bytes)
                        };
                        UnsealRequest { key: Some(key), ..Default::default() }
                    }
                    Garbage::Text(t) => {
                        if keys.contains(t) {
                            continue;
                        }
                        UnsealRequest { key: Some(t.clone()), ..Default::default() }
                    }
                };
                match bounded("an unseal", core.unseal(req)).await {
                    Ok(status) => assert!(
                        status.sealed || damaged_since_reset >= threshold,
                        "garbage unsealed the core: {g:?}"
                    ),
                    Err(e) => assert_client_refusal(&e, g),
                }
            }

            bounded("a reset", core.unseal(UnsealRequest { reset: true, ..Default::default() })).await.unwrap();
            let mut sealed = true;
            for key in keys.iter().take(threshold as usize) {
                sealed = bounded("an unseal", core.unseal(UnsealRequest { key: Some(key.clone()), ..Default::default() }))
                    .await
                    .unwrap()
                    .sealed;
            }
            assert!(!sealed, "the real shares no longer unseal after garbage");
        });
    }
}

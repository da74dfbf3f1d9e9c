//! Fuzz target for activation tokens: the ES512 JWT form, the public-key (`srdr1.`) form and
//! the bundle inside both.
//!
//! An activation token is pasted by an operator into a secondary and, in JWT form, presented
//! back to the primary's unwrap endpoint by anyone who can reach it. Damaged or forged tokens
//! must be refused with an error and never panic, and a token that is accepted must carry
//! exactly what was signed or sealed. The decoding functions are reached through their
//! module paths only, so moving them to another crate is a change of the `use` lines below.
//! `PROPTEST_CASES` raises the case count (128 by default).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use serde_json::{Map, Value};
use strongroom_fuzz::{config, mutate, mutations};
use strongroom_storage::InmemStorage;

use super::bundle::ActivationBundle;
use super::pubkey::seal_bundle;
use crate::{Core, CoreConfig};
use strongroom_replication::activation::jwt::{
    ActivationClaims, decode_unverified, generate_key, looks_like_jwt, sign, verify,
};

const NOW: i64 = 1_000_000;

fn claims(wt: String, exp: i64) -> ActivationClaims {
    ActivationClaims {
        addr: "https://primary:8200".into(),
        exp,
        iat: exp - 1800,
        jti: "jti-1".into(),
        kind: "wrapping".into(),
        wt,
    }
}

fn bundle(cluster_id: String) -> ActivationBundle {
    super::bundle::test_bundle(&cluster_id)
}

/// Checks every accessor of a bundle that was accepted; each may refuse, none may panic.
fn use_bundle(b: &ActivationBundle) {
    if let Err(e) = b.root_key() {
        assert!(!e.to_string().is_empty());
    }
    if let Err(e) = b.stored_records() {
        assert!(!e.to_string().is_empty());
    }
}

/// JSON trees shaped like a bundle: the real field names with values of any type.
fn bundle_like() -> impl Strategy<Value = Value> {
    const FIELDS: &[&str] = &[
        "cluster_id",
        "secondary_id",
        "primary_api_addr",
        "primary_cluster_addrs",
        "ca_pem",
        "client_cert_pem",
        "client_key_pem",
        "root_key_b64",
        "stored",
        "core/keyring",
        "core/root-key",
        "core/seal-config",
        "extra",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[A-Za-z0-9+/=]{0,48}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 12, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..12).prop_map(|kv| {
                let map: Map<String, Value> =
                    kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                Value::Object(map)
            }),
        ]
    })
}

proptest! {
    #![proptest_config(config(128))]

    /// Why: a damaged or forged JWT must never verify with other claims than were signed.
    #[test]
    fn fuzz_activation_jwt_mutated(
        wt in "[a-z.]{1,40}",
        exp in (NOW + 1)..(NOW + 100_000),
        edits in mutations(4),
    ) {
        let key = generate_key().unwrap();
        let original = claims(wt, exp);
        let token = sign(&key, &original).unwrap();
        let damaged = String::from_utf8_lossy(&mutate(token.into_bytes(), &edits)).into_owned();

        let _ = looks_like_jwt(&damaged);
        match decode_unverified(&damaged) {
            Ok(_) => {}
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        match verify(&key, &damaged, NOW) {
            Ok(got) => prop_assert_eq!(got, original),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// Why: three base64url parts of anything, including valid JSON of the wrong shape.
    #[test]
    fn fuzz_activation_jwt_parts(
        header in prop_oneof![Just(r#"{"alg":"ES512"}"#.to_owned()), ".{0,40}"],
        payload in prop_oneof![
            Just(r#"{"addr":"a","exp":1,"iat":0,"jti":"j","type":"t","wt":"w"}"#.to_owned()),
            ".{0,80}"
        ],
        sig in prop::collection::vec(any::<u8>(), 0..140),
    ) {
        let key = generate_key().unwrap();
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(sig)
        );
        let _ = decode_unverified(&token);
        prop_assert!(verify(&key, &token, 0).is_err(), "an unsigned token verified");
    }

    /// Why: an `srdr1.` token is decrypted locally on the secondary; damage must be refused
    /// and an accepted token must hold exactly the bundle that was sealed.
    #[test]
    fn fuzz_activation_sealed_bundle_mutated(
        cluster_id in "[a-z0-9]{1,12}",
        edits in mutations(4),
    ) {
        let core = Core::new(CoreConfig::default(), Arc::new(InmemStorage::new()));
        let public = core
            .generate_public_key(strongroom_replication::ReplicationKind::Dr)
            .unwrap();
        let spk = public["secondary_public_key"].as_str().unwrap().to_owned();
        let token = seal_bundle(&bundle(cluster_id.clone()), &spk, NOW + 60).unwrap();
        let damaged = String::from_utf8_lossy(&mutate(token.into_bytes(), &edits)).into_owned();

        match core.open_bundle(strongroom_replication::ReplicationKind::Dr, &damaged, NOW) {
            Ok(b) => {
                prop_assert_eq!(&b.cluster_id, &cluster_id);
                use_bundle(&b);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// Why: the unwrapped data is whatever the primary (or an impostor) answered.
    #[test]
    fn fuzz_activation_bundle_data(data in bundle_like()) {
        match ActivationBundle::from_data(data) {
            Ok(b) => use_bundle(&b),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

//! Fuzz target: batch tokens, damaged or made up, presented to the pipeline.
//!
//! A batch token is barrier ciphertext in base64url behind `hvb.`; the pipeline decodes and
//! decrypts whatever a client sends in `X-Vault-Token`. Properties: a damaged token is
//! refused as permission denied (never an internal error, never a panic), and a token that
//! is still accepted is byte-for-byte the one issued.

use proptest::prelude::*;
use serde_json::json;
use strongroom_core::{CoreError, Operation, Request};
use strongroom_fuzz::{config, mutate, mutations};

use crate::support::{assert_client_refusal, bounded, unsealed};

proptest! {
    #![proptest_config(config(128))]

    /// Why: the token header is the first thing the pipeline reads from a client.
    #[test]
    fn fuzz_batch_token_mutated(edits in mutations(4), via_body in any::<bool>()) {
        let rt = strongroom_fuzz::runtime().unwrap();
        rt.block_on(async {
            let (core, root) = unsealed().await;
            let issued = core
                .handle(
                    Request::new(Operation::Update, "auth/token/create")
                        .with_token(root.clone())
                        .with_data(json!({"type": "batch", "policies": ["default"], "ttl": "1h"}).as_object().cloned().unwrap()),
                )
                .await
                .unwrap();
            let token = issued.auth.unwrap().client_token;
            assert!(token.starts_with("hvb."));
            let damaged = String::from_utf8_lossy(&mutate(token.clone().into_bytes(), &edits)).into_owned();

            let got = if via_body {
                let body = json!({ "token": damaged }).as_object().cloned().unwrap();
                core.handle(Request::new(Operation::Update, "auth/token/lookup").with_token(root).with_data(body))
            } else {
                core.handle(Request::new(Operation::Read, "auth/token/lookup-self").with_token(damaged.clone()))
            };
            match bounded("a batch token lookup", got).await {
                Ok(_) => assert_eq!(damaged, token, "a damaged batch token was accepted"),
                Err(e) => {
                    assert_client_refusal(&e, &damaged);
                    if !via_body {
                        assert!(matches!(e, CoreError::PermissionDenied), "{e:?}");
                    }
                }
            }
        });
    }

    /// Why: `hvb.` followed by anything, including valid base64url of random bytes.
    #[test]
    fn fuzz_batch_token_made_up(raw in prop::collection::vec(any::<u8>(), 0..200), text in ".{0,40}") {
        use base64::Engine as _;
        let rt = strongroom_fuzz::runtime().unwrap();
        rt.block_on(async {
            let (core, _) = unsealed().await;
            for token in [
                format!("hvb.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw)),
                format!("hvb.{text}"),
            ] {
                let req = Request::new(Operation::Read, "auth/token/lookup-self").with_token(token.clone());
                match bounded("a batch token lookup", core.handle(req)).await {
                    Ok(_) => panic!("a made-up batch token was accepted: {token}"),
                    Err(e) => {
                        assert_client_refusal(&e, &token);
                        assert!(matches!(e, CoreError::PermissionDenied), "{e:?}");
                    }
                }
            }
        });
    }
}

//! Rekey flows through `Core`, over memory storage: what operators see and what unseals.

use std::sync::Arc;

use base64::Engine as _;
use pgp::types::KeyDetails as _;
use serde_json::{Map, Value, json};
use strongroom_api::{
    InitRequest, RekeyCancelRequest, RekeyInitRequest, RekeyUpdateAnswer, RekeyUpdateRequest,
    RekeyUpdateResponse, RekeyVerifyAnswer, UnsealRequest,
};
use strongroom_storage::InmemStorage;

use super::pgp::test_keys;
use crate::{Core, CoreConfig, CoreError, Operation, Request};

/// A dev-style core: one share (the key itself), unsealed. Returns the key and root token.
async fn dev_core() -> (Arc<Core>, String, String) {
    let core = Core::new(CoreConfig::default(), Arc::new(InmemStorage::new()));
    let (key, root) = core.dev_bootstrap(None).await.unwrap();
    (core, key, root)
}

/// A core initialized with `n` shares and threshold `t`, unsealed. Returns the shares.
async fn shamir_core(n: u32, t: u32) -> (Arc<Core>, Vec<String>) {
    let core = Core::new(CoreConfig::default(), Arc::new(InmemStorage::new()));
    let init = core
        .init(InitRequest {
            secret_shares: n,
            secret_threshold: t,
            ..InitRequest::default()
        })
        .await
        .unwrap();
    assert!(
        !unseal(&core, &init.keys_base64[..t as usize])
            .await
            .unwrap()
    );
    (core, init.keys_base64)
}

/// Submits `keys` to sys/unseal in order; Ok(sealed) after the last.
async fn unseal(core: &Core, keys: &[String]) -> Result<bool, CoreError> {
    let mut sealed = true;
    for k in keys {
        sealed = core
            .unseal(UnsealRequest {
                key: Some(k.clone()),
                ..UnsealRequest::default()
            })
            .await?
            .sealed;
    }
    Ok(sealed)
}

async fn reset_unseal(core: &Core) {
    core.unseal(UnsealRequest {
        reset: true,
        ..UnsealRequest::default()
    })
    .await
    .unwrap();
}

async fn start(core: &Core, req: RekeyInitRequest) -> String {
    core.rekey_start(req).await.unwrap().nonce
}

fn counts(n: u32, t: u32) -> RekeyInitRequest {
    RekeyInitRequest {
        secret_shares: n,
        secret_threshold: t,
        ..RekeyInitRequest::default()
    }
}

async fn update(core: &Core, nonce: &str, key: &str) -> Result<RekeyUpdateAnswer, CoreError> {
    core.rekey_update(RekeyUpdateRequest {
        key: key.into(),
        nonce: nonce.into(),
    })
    .await
}

/// Submits the current `keys`; the last answer must carry the new shares.
async fn complete(core: &Core, nonce: &str, keys: &[String]) -> RekeyUpdateResponse {
    let mut last = None;
    for k in keys {
        last = Some(update(core, nonce, k).await.unwrap());
    }
    match last {
        Some(RekeyUpdateAnswer::Complete(r)) => r,
        other => panic!("expected the new shares, got {other:?}"),
    }
}

async fn verify(core: &Core, nonce: &str, key: &str) -> Result<RekeyVerifyAnswer, CoreError> {
    core.rekey_verify_update(RekeyUpdateRequest {
        key: key.into(),
        nonce: nonce.into(),
    })
    .await
}

async fn logical(
    core: &Core,
    token: &str,
    op: Operation,
    path: &str,
    body: Value,
) -> Result<Option<Map<String, Value>>, CoreError> {
    let data = body.as_object().cloned().unwrap_or_default();
    let resp = core
        .handle(Request::new(op, path).with_token(token).with_data(data))
        .await?;
    Ok(resp.data)
}

#[tokio::test]
async fn rekey_from_one_share_to_three_of_five_then_only_new_shares_unseal() {
    // Why: the issue's client rekeys a dev-style single key into a real 3-of-5 split.
    let (core, old_key, _) = dev_core().await;
    let nonce = start(&core, counts(5, 3)).await;
    let status = core.rekey_status().await.unwrap();

    let done = complete(&core, &nonce, std::slice::from_ref(&old_key)).await;
    core.seal_internal().await;
    let old = unseal(
        &core,
        &[
            old_key.clone(),
            done.keys_base64[0].clone(),
            done.keys_base64[1].clone(),
        ],
    )
    .await;
    reset_unseal(&core).await;
    let new = unseal(&core, &done.keys[2..5]).await.unwrap();

    assert!(status.started && status.t == 3 && status.n == 5 && status.required == 1);
    assert_eq!(status.pgp_fingerprints, None);
    assert!(done.complete && !done.verification_required);
    assert_eq!((done.keys.len(), done.keys_base64.len()), (5, 5));
    assert!(matches!(old, Err(CoreError::InvalidRequest(_))), "{old:?}");
    assert!(!new, "three new shares unseal");
    let seal = core.seal_status().await.unwrap();
    assert_eq!((seal.t, seal.n), (3, 5));
    assert!(
        !core.rekey_status().await.unwrap().started,
        "the attempt is over"
    );
}

#[tokio::test]
async fn pgp_encrypted_shares_decrypt_with_the_matching_keys_and_unseal() {
    // Why: each operator must be able to read only their own share, and it must unseal.
    let (core, old_key, root) = dev_core().await;
    let (alice, alice_pub) = test_keys::generate("alice");
    let (bob, bob_pub) = test_keys::generate("bob");
    let nonce = start(
        &core,
        RekeyInitRequest {
            pgp_keys: vec![alice_pub, bob_pub],
            backup: true,
            ..counts(2, 2)
        },
    )
    .await;

    let done = complete(&core, &nonce, &[old_key]).await;
    let b64 = base64::engine::general_purpose::STANDARD;
    let plain: Vec<String> = [&alice, &bob]
        .iter()
        .zip(&done.keys_base64)
        .map(|(sk, ct)| {
            String::from_utf8(test_keys::decrypt(sk, &b64.decode(ct).unwrap())).unwrap()
        })
        .collect();
    let backup = logical(&core, &root, Operation::Read, "sys/rekey/backup", json!({})).await;
    core.seal_internal().await;
    let sealed = unseal(&core, &plain).await.unwrap();

    let fps = done.pgp_fingerprints.clone().unwrap();
    assert_eq!(fps[0], alice.fingerprint().to_string());
    assert_eq!(fps[1], bob.fingerprint().to_string());
    assert!(
        plain
            .iter()
            .all(|p| p.len() == 66 && hex::decode(p).is_ok()),
        "hex share text"
    );
    assert!(!sealed, "decrypted shares unseal");
    let backup = backup.unwrap().unwrap();
    assert_eq!(backup["nonce"], json!(nonce));
    assert_eq!(backup["keys"][&fps[0]], json!([done.keys[0]]));
    assert_eq!(backup["keys_base64"][&fps[1]], json!([done.keys_base64[1]]));
}

#[tokio::test]
async fn backup_read_and_delete_need_sudo() {
    // Why: sys/rekey/backup is root-protected in Vault; read+delete without sudo is refused.
    let (core, old_key, root) = dev_core().await;
    let (_, key) = test_keys::generate("ops");
    let nonce = start(
        &core,
        RekeyInitRequest {
            pgp_keys: vec![key],
            backup: true,
            ..counts(1, 1)
        },
    )
    .await;
    complete(&core, &nonce, &[old_key]).await;
    let rules = r#"path "sys/rekey/backup" { capabilities = ["read", "delete"] }"#;
    logical(
        &core,
        &root,
        Operation::Update,
        "sys/policies/acl/backup",
        json!({"policy": rules}),
    )
    .await
    .unwrap();
    let created = core
        .handle(
            Request::new(Operation::Update, "auth/token/create")
                .with_token(&root)
                .with_data(
                    json!({"policies": ["backup"]})
                        .as_object()
                        .cloned()
                        .unwrap(),
                ),
        )
        .await
        .unwrap();
    let weak = created.auth.unwrap().client_token;

    let weak_read = logical(&core, &weak, Operation::Read, "sys/rekey/backup", json!({})).await;
    let weak_delete = logical(
        &core,
        &weak,
        Operation::Delete,
        "sys/rekey/backup",
        json!({}),
    )
    .await;
    let root_read = logical(&core, &root, Operation::Read, "sys/rekey/backup", json!({})).await;
    let root_delete = logical(
        &core,
        &root,
        Operation::Delete,
        "sys/rekey/backup",
        json!({}),
    )
    .await;
    let after = logical(&core, &root, Operation::Read, "sys/rekey/backup", json!({})).await;

    assert!(
        matches!(weak_read, Err(CoreError::PermissionDenied)),
        "{weak_read:?}"
    );
    assert!(matches!(weak_delete, Err(CoreError::PermissionDenied)));
    assert_eq!(
        root_read.unwrap().unwrap()["keys"]
            .as_object()
            .unwrap()
            .len(),
        1
    );
    assert!(root_delete.is_ok());
    assert!(matches!(after, Err(CoreError::InvalidRequest(m)) if m == "no backed-up keys found"));
}

#[tokio::test]
async fn with_verification_the_new_key_is_installed_only_after_new_shares_return() {
    // Why: a mistyped or lost new share must not lock the operators out.
    let (core, old_key, _) = dev_core().await;
    let nonce = start(
        &core,
        RekeyInitRequest {
            require_verification: true,
            ..counts(3, 2)
        },
    )
    .await;
    let done = complete(&core, &nonce, std::slice::from_ref(&old_key)).await;
    let v1 = done.verification_nonce.clone();

    let before = core.rekey_verify_status().await.unwrap();
    let old_still_works = core
        .barrier
        .verify_unseal_key(
            &strongroom_barrier::UnsealKey::from_bytes(
                &base64::engine::general_purpose::STANDARD
                    .decode(&old_key)
                    .unwrap(),
            )
            .unwrap(),
        )
        .await;
    let wrong_nonce = verify(&core, &nonce, &done.keys[0]).await;
    verify(&core, &v1, &done.keys[0]).await.unwrap();
    let restarted = core.rekey_verify_restart().await.unwrap();
    verify(&core, &restarted.nonce, &done.keys[0])
        .await
        .unwrap();
    let bogus = verify(&core, &restarted.nonce, &"ab".repeat(33)).await;
    let after_bogus = core.rekey_verify_status().await.unwrap();
    let first = verify(&core, &restarted.nonce, &done.keys[1])
        .await
        .unwrap();
    let last = verify(&core, &restarted.nonce, &done.keys[2])
        .await
        .unwrap();
    core.seal_internal().await;
    let old = unseal(&core, &[old_key.clone(), done.keys[0].clone()]).await;
    reset_unseal(&core).await;
    let new = unseal(&core, &done.keys[0..2]).await.unwrap();

    assert!(done.verification_required && !v1.is_empty());
    assert_eq!(
        (before.nonce.as_str(), before.progress, before.t, before.n),
        (v1.as_str(), 0, 2, 3)
    );
    assert!(old_still_works.is_ok(), "not installed before verification");
    assert!(matches!(wrong_nonce, Err(CoreError::InvalidRequest(m)) if m.contains("verification")));
    assert_ne!(restarted.nonce, v1, "DELETE verify changes the nonce");
    assert_eq!(restarted.progress, 0);
    assert!(
        matches!(&bogus, Err(CoreError::InvalidRequest(m)) if m.contains("do not combine to the new unseal key")),
        "{bogus:?}"
    );
    assert_eq!(after_bogus.progress, 0, "a failed verification starts over");
    assert_eq!(after_bogus.nonce, restarted.nonce, "under the same nonce");
    assert!(matches!(first, RekeyVerifyAnswer::Progress(p) if p.progress == 1));
    assert!(
        matches!(last, RekeyVerifyAnswer::Complete(c) if c.complete && c.nonce == restarted.nonce)
    );
    assert!(
        matches!(old, Err(CoreError::InvalidRequest(_))),
        "old key refused: {old:?}"
    );
    assert!(!new);
}

#[tokio::test]
async fn bad_nonce_and_wrong_shares_are_refused_and_lose_nothing() {
    // Why: a typo must give a clear error and leave the old shares working.
    let (core, old) = shamir_core(3, 2).await;
    let (_, foreign) = shamir_core(3, 2).await;
    let nonce = start(&core, counts(5, 3)).await;

    let bad_nonce = update(&core, "not-the-nonce", &old[0]).await;
    let progress = core.rekey_status().await.unwrap().progress;
    update(&core, &nonce, &old[0]).await.unwrap();
    let duplicate = update(&core, &nonce, &old[0]).await;
    let wrong = update(&core, &nonce, &foreign[1]).await;
    let after = core.rekey_status().await.unwrap();
    let second_start = core.rekey_start(counts(2, 2)).await;
    let wrong_cancel = core
        .rekey_cancel(RekeyCancelRequest {
            nonce: "nope".into(),
        })
        .await;
    core.seal_internal().await;
    let sealed = unseal(&core, &old[1..3]).await.unwrap();

    assert!(
        matches!(&bad_nonce, Err(CoreError::InvalidRequest(m)) if m.contains(&nonce)),
        "{bad_nonce:?}"
    );
    assert_eq!(progress, 0);
    assert!(
        matches!(duplicate, Err(CoreError::InvalidRequest(m)) if m.contains("already been provided"))
    );
    assert!(
        matches!(&wrong, Err(CoreError::InvalidRequest(m)) if m.contains("do not open")),
        "{wrong:?}"
    );
    assert!(
        after.started && after.progress == 0 && after.nonce == nonce,
        "attempt kept"
    );
    assert!(
        matches!(second_start, Err(CoreError::InvalidRequest(m)) if m.contains("already in progress"))
    );
    assert!(wrong_cancel.is_err());
    assert!(!sealed, "old shares still unseal");
    assert_eq!(core.seal_status().await.unwrap().n, 3);
}

#[tokio::test]
async fn requests_are_checked_before_anything_starts() {
    // Why: a bad request must be refused up front with a message saying what to fix.
    let (core, _, _) = dev_core().await;
    let (_, key) = test_keys::generate("ops");

    let too_few_keys = core
        .rekey_start(RekeyInitRequest {
            pgp_keys: vec![key],
            ..counts(3, 2)
        })
        .await;
    let backup_without_pgp = core
        .rekey_start(RekeyInitRequest {
            backup: true,
            ..counts(3, 2)
        })
        .await;
    let threshold = core.rekey_start(counts(2, 3)).await;
    let not_a_key = core
        .rekey_start(RekeyInitRequest {
            pgp_keys: vec!["aGVsbG8=".into()],
            ..counts(1, 1)
        })
        .await;
    let no_attempt = update(&core, "n", &"00".repeat(33)).await;
    let no_verify = core.rekey_verify_status().await;
    core.seal_internal().await;
    let sealed = core.rekey_status().await;

    assert!(msg(too_few_keys).contains("incorrect number of PGP keys"));
    assert!(msg(backup_without_pgp).contains("without providing PGP keys"));
    assert!(msg(threshold).contains("threshold cannot be larger than shares"));
    assert!(msg(not_a_key).contains("PGP key 0 is not an OpenPGP public key"));
    assert!(msg(no_attempt).contains("no rekey in progress"));
    assert!(msg(no_verify).contains("no rekey in progress"));
    assert!(matches!(sealed, Err(CoreError::Sealed)));
}

/// The message of a 400, or a description of what came instead.
fn msg<T>(r: Result<T, CoreError>) -> String {
    match r {
        Err(CoreError::InvalidRequest(m)) => m,
        Err(e) => format!("other error: {e}"),
        Ok(_) => "accepted".to_string(),
    }
}

#[tokio::test]
async fn init_with_pgp_keys_encrypts_the_shares_and_root_token() {
    // Why: `operator init -pgp-keys` hands each operator a share only they can read.
    let core = Core::new(CoreConfig::default(), Arc::new(InmemStorage::new()));
    let (alice, alice_pub) = test_keys::generate("alice");
    let (bob, bob_pub) = test_keys::generate("bob");
    let (admin, admin_pub) = test_keys::generate("admin");

    let init = core
        .init(InitRequest {
            secret_shares: 2,
            secret_threshold: 2,
            pgp_keys: vec![alice_pub, bob_pub],
            root_token_pgp_key: admin_pub,
            ..InitRequest::default()
        })
        .await
        .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let open =
        |sk, ct: &str| String::from_utf8(test_keys::decrypt(sk, &b64.decode(ct).unwrap())).unwrap();
    let shares = vec![
        open(&alice, &init.keys_base64[0]),
        open(&bob, &init.keys_base64[1]),
    ];
    let token = open(&admin, &init.root_token);
    let sealed = unseal(&core, &shares).await.unwrap();
    let lookup = logical(
        &core,
        &token,
        Operation::Read,
        "auth/token/lookup-self",
        json!({}),
    )
    .await;

    assert_eq!(
        hex::decode(&init.keys[0]).unwrap(),
        b64.decode(&init.keys_base64[0]).unwrap()
    );
    assert!(!sealed);
    assert!(lookup.is_ok(), "the decrypted root token works: {lookup:?}");
}

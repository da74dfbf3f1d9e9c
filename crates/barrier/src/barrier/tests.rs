//! Barrier behaviour against in-memory storage.

use std::sync::Arc;

use strongroom_storage::InmemStorage;

use super::*;
use crate::{combine_shares, split_unseal_key};

struct Fixture {
    storage: Arc<InmemStorage>,
    barrier: Barrier,
    unseal_key: UnsealKey,
}

/// An initialized and unsealed barrier over fresh memory storage.
async fn unsealed() -> Fixture {
    let storage = Arc::new(InmemStorage::new());
    let barrier = Barrier::new(storage.clone());
    let unseal_key = UnsealKey::generate().unwrap();
    barrier
        .initialize(&unseal_key, &RootKey::generate().unwrap())
        .await
        .unwrap();
    barrier.unseal(&unseal_key).await.unwrap();
    Fixture {
        storage,
        barrier,
        unseal_key,
    }
}

async fn raw(storage: &InmemStorage, key: &str) -> Vec<u8> {
    storage.get(key).await.unwrap().unwrap()
}

fn term_in(ciphertext: &[u8]) -> u32 {
    u32::from_be_bytes([ciphertext[1], ciphertext[2], ciphertext[3], ciphertext[4]])
}

#[tokio::test]
async fn initialize_leaves_barrier_sealed_and_refuses_twice() {
    // Why: Vault's init returns keys but stays sealed, and a second init must not wipe keys.
    let storage = Arc::new(InmemStorage::new());
    let barrier = Barrier::new(storage);
    assert!(!barrier.initialized().await.unwrap());
    let unseal_key = UnsealKey::generate().unwrap();
    let root_key = RootKey::generate().unwrap();

    barrier.initialize(&unseal_key, &root_key).await.unwrap();

    assert!(barrier.initialized().await.unwrap());
    assert!(barrier.sealed());
    assert!(matches!(
        barrier.initialize(&unseal_key, &root_key).await,
        Err(BarrierError::AlreadyInitialized)
    ));
}

#[tokio::test]
async fn round_trip_and_storage_holds_only_ciphertext() {
    // Why: the core invariant: storage (and everything fed from it) never sees plaintext.
    let f = unsealed().await;
    let secret = b"correct horse battery staple";

    f.barrier.put("secret/a", secret).await.unwrap();
    f.barrier
        .write(vec![
            BarrierOp::Put {
                key: "secret/b".into(),
                value: secret.to_vec(),
            },
            BarrierOp::Delete {
                key: "secret/missing".into(),
            },
        ])
        .await
        .unwrap();

    assert_eq!(f.barrier.get("secret/a").await.unwrap().unwrap(), secret);
    assert_eq!(f.barrier.get("secret/b").await.unwrap().unwrap(), secret);
    assert_eq!(f.barrier.get("secret/none").await.unwrap(), None);
    assert_eq!(f.barrier.list("secret/").await.unwrap(), vec!["a", "b"]);
    let everything = f.storage.scan("", None, usize::MAX).await.unwrap();
    assert!(everything.len() >= 4);
    for (key, value) in everything {
        let leaked = value.windows(secret.len()).any(|w| w == secret);
        assert!(!leaked, "plaintext found under {key}");
    }
    f.barrier.delete("secret/a").await.unwrap();
    assert_eq!(f.barrier.get("secret/a").await.unwrap(), None);
}

#[tokio::test]
async fn ciphertext_moved_to_another_key_fails() {
    // Why: someone with storage access must not swap values between paths (e.g. policies).
    let f = unsealed().await;
    f.barrier
        .put("sys/policy/admin", b"allow all")
        .await
        .unwrap();
    let moved = raw(&f.storage, "sys/policy/admin").await;

    f.storage.put("sys/policy/default", moved).await.unwrap();

    assert!(matches!(
        f.barrier.get("sys/policy/default").await,
        Err(BarrierError::Corrupt(_))
    ));
}

#[tokio::test]
async fn sealed_barrier_refuses_data_operations() {
    // Why: after seal, nothing may be read or written until the operators unseal again.
    let f = unsealed().await;
    f.barrier.put("k", b"v").await.unwrap();

    f.barrier.seal().await;

    assert!(f.barrier.sealed());
    assert!(matches!(
        f.barrier.get("k").await,
        Err(BarrierError::Sealed)
    ));
    assert!(matches!(
        f.barrier.put("k", b"w").await,
        Err(BarrierError::Sealed)
    ));
    assert!(matches!(
        f.barrier.delete("k").await,
        Err(BarrierError::Sealed)
    ));
    assert!(matches!(
        f.barrier.list("").await,
        Err(BarrierError::Sealed)
    ));
    assert!(matches!(f.barrier.key_status(), Err(BarrierError::Sealed)));
    assert!(matches!(
        f.barrier.encrypt_value("x", b"y"),
        Err(BarrierError::Sealed)
    ));
    f.barrier.unseal(&f.unseal_key).await.unwrap();
    assert_eq!(f.barrier.get("k").await.unwrap().unwrap(), b"v");
}

#[tokio::test]
async fn wrong_unseal_key_is_invalid_and_stays_sealed() {
    // Why: a wrong key must be reported as such, never panic nor half-unseal.
    let f = unsealed().await;
    f.barrier.seal().await;

    let wrong = UnsealKey::generate().unwrap();
    assert!(matches!(
        f.barrier.unseal(&wrong).await,
        Err(BarrierError::InvalidKey)
    ));
    assert!(f.barrier.sealed());
    assert!(matches!(
        f.barrier.verify_unseal_key(&wrong).await,
        Err(BarrierError::InvalidKey)
    ));
    f.barrier.verify_unseal_key(&f.unseal_key).await.unwrap();
}

#[tokio::test]
async fn unseal_before_initialize_is_not_initialized() {
    // Why: seal-status/unseal on a fresh server must say "not initialized", not "bad key".
    let barrier = Barrier::new(Arc::new(InmemStorage::new()));
    let key = UnsealKey::generate().unwrap();
    assert!(matches!(
        barrier.unseal(&key).await,
        Err(BarrierError::NotInitialized)
    ));
}

#[tokio::test]
async fn shares_below_threshold_do_not_unseal() {
    // Why: Shamir cannot detect a short share set itself; the barrier must reject the result.
    let storage = Arc::new(InmemStorage::new());
    let barrier = Barrier::new(storage);
    let unseal_key = UnsealKey::generate().unwrap();
    barrier
        .initialize(&unseal_key, &RootKey::generate().unwrap())
        .await
        .unwrap();
    let shares = split_unseal_key(&unseal_key, 5, 3).unwrap();

    let too_few = combine_shares(&shares[1..3]).unwrap();
    assert!(matches!(
        barrier.unseal(&too_few).await,
        Err(BarrierError::InvalidKey)
    ));
    assert!(barrier.sealed());

    let enough = combine_shares(&shares[2..5]).unwrap();
    barrier.unseal(&enough).await.unwrap();
    assert!(!barrier.sealed());
}

#[tokio::test]
async fn rotate_keeps_old_values_and_writes_with_new_term() {
    // Why: rotation must never strand existing data, and new data must use the new key.
    let f = unsealed().await;
    f.barrier.put("old", b"before").await.unwrap();
    assert_eq!(term_in(&raw(&f.storage, "old").await), 1);

    let status = f.barrier.rotate().await.unwrap();
    f.barrier.put("new", b"after").await.unwrap();

    assert_eq!(status.term, 2);
    assert_eq!(term_in(&raw(&f.storage, "new").await), 2);
    assert_eq!(f.barrier.get("old").await.unwrap().unwrap(), b"before");
    let after = f.barrier.key_status().unwrap();
    assert_eq!((after.term, after.encryptions), (2, 1));

    // The rotation was persisted: a fresh unseal still reads both values.
    f.barrier.seal().await;
    f.barrier.unseal(&f.unseal_key).await.unwrap();
    assert_eq!(f.barrier.key_status().unwrap().term, 2);
    assert_eq!(f.barrier.get("old").await.unwrap().unwrap(), b"before");
    assert_eq!(f.barrier.get("new").await.unwrap().unwrap(), b"after");
}

#[tokio::test]
async fn encrypt_value_is_bound_to_its_aad() {
    // Why: a sealed snapshot checksum file must not be accepted for another purpose.
    let f = unsealed().await;
    let sealed = f
        .barrier
        .encrypt_value("snapshot/SHA256SUMS", b"sums")
        .unwrap();

    assert_eq!(
        f.barrier
            .decrypt_value("snapshot/SHA256SUMS", &sealed)
            .unwrap(),
        b"sums"
    );
    assert!(matches!(
        f.barrier.decrypt_value("other", &sealed),
        Err(BarrierError::Corrupt(_))
    ));
}

#[tokio::test]
async fn keyring_opens_only_for_our_root_key() {
    // Why: snapshot restore must refuse a snapshot from another cluster's root key.
    let ours = unsealed().await;
    let foreign = unsealed().await;
    let our_ring = raw(&ours.storage, KEYRING_PATH).await;
    let foreign_ring = raw(&foreign.storage, KEYRING_PATH).await;

    assert!(ours.barrier.keyring_opens(&our_ring));
    assert!(!ours.barrier.keyring_opens(&foreign_ring));
    assert!(!ours.barrier.keyring_opens(b"garbage"));
}

/// Two unsealed barriers over one storage, as two nodes of a cluster see it.
async fn two_nodes() -> (Arc<InmemStorage>, Barrier, Barrier) {
    let storage = Arc::new(InmemStorage::new());
    let a = Barrier::new(storage.clone());
    let b = Barrier::new(storage.clone());
    let unseal_key = UnsealKey::generate().unwrap();
    a.initialize(&unseal_key, &RootKey::generate().unwrap())
        .await
        .unwrap();
    a.unseal(&unseal_key).await.unwrap();
    b.unseal(&unseal_key).await.unwrap();
    (storage, a, b)
}

#[tokio::test]
async fn a_value_sealed_after_a_rotation_elsewhere_opens_with_decrypt_value_current() {
    // Why: a batch token minted on the active node after a rotation must work on a standby
    // serving reads at once, not only after its follower re-read the keyring.
    let (_, a, b) = two_nodes().await;
    a.rotate().await.unwrap();

    let sealed = a.encrypt_value("batch", b"token body").unwrap();

    assert!(
        b.decrypt_value("batch", &sealed).is_err(),
        "b lacks the new term"
    );
    assert_eq!(
        b.decrypt_value_current("batch", &sealed).await.unwrap(),
        b"token body"
    );
    assert_eq!(b.key_status().unwrap().term, 2);
}

#[tokio::test]
async fn reload_picks_up_a_keyring_rotated_elsewhere() {
    // Why: after a snapshot restore or a rotation on another node, memory must follow storage.
    let (storage, a, b) = two_nodes().await;

    a.rotate().await.unwrap();
    a.put("k", b"v").await.unwrap();
    assert_eq!(b.key_status().unwrap().term, 1);
    // A value under a term b lacks makes b re-read the keyring (a standby serving reads).
    assert_eq!(b.get("k").await.unwrap().unwrap(), b"v");
    assert_eq!(b.key_status().unwrap().term, 2);
    a.rotate().await.unwrap();
    b.reload_keyring().await.unwrap();

    assert_eq!(b.key_status().unwrap().term, 3);
    let foreign = unsealed().await;
    let foreign_ring = raw(&foreign.storage, KEYRING_PATH).await;
    storage.put(KEYRING_PATH, foreign_ring).await.unwrap();
    assert!(matches!(
        b.reload_keyring().await,
        Err(BarrierError::InvalidKey)
    ));
}

#[tokio::test]
async fn rekey_changes_the_unseal_key() {
    // Why: after rekey the old shares must stop working and the new ones must unseal.
    let f = unsealed().await;
    let new_key = UnsealKey::generate().unwrap();

    let also = vec![BarrierOp::Put {
        key: "core/backup".into(),
        value: b"kept".to_vec(),
    }];

    f.barrier
        .rekey(&new_key, &SealConfig::shamir(5, 3), also)
        .await
        .unwrap();
    f.barrier.seal().await;

    assert!(matches!(
        f.barrier.unseal(&f.unseal_key).await,
        Err(BarrierError::InvalidKey)
    ));
    f.barrier.unseal(&new_key).await.unwrap();
    let config = SealConfig::load(f.storage.as_ref()).await.unwrap();
    assert_eq!(config, Some(SealConfig::shamir(5, 3)));
    assert_eq!(
        f.barrier.get("core/backup").await.unwrap().unwrap(),
        b"kept"
    );
}

#[tokio::test]
async fn rekey_with_a_bad_configuration_changes_nothing() {
    // Why: a refused rekey must leave the old key working.
    let f = unsealed().await;
    let new_key = UnsealKey::generate().unwrap();

    let r = f
        .barrier
        .rekey(&new_key, &SealConfig::shamir(2, 3), Vec::new())
        .await;
    f.barrier.seal().await;

    assert!(matches!(r, Err(BarrierError::InvalidSealConfig(_))));
    f.barrier.unseal(&f.unseal_key).await.unwrap();
}

#[tokio::test]
async fn barrier_is_shareable_and_never_prints_values() {
    // Why: core keeps the barrier in an Arc across tasks, and debug logs must not leak data.
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    fn assert_send<T: Send>(_: T) {}
    let f = unsealed().await;
    assert_send_sync(&f.barrier);
    assert_send(f.barrier.get("k"));
    assert_send(f.barrier.put("k", b"v"));
    assert_send(f.barrier.rotate());
    assert_send(f.barrier.reload_keyring());

    let op = BarrierOp::Put {
        key: "secret/a".into(),
        value: b"hunter2".to_vec(),
    };
    assert!(!format!("{op:?} {:?}", f.barrier).contains("hunter2"));
    assert!(format!("{:?}", f.unseal_key).contains("redacted"));
}

#[tokio::test]
async fn root_key_from_another_barrier_opens_a_copied_keyring_only_if_it_matches() {
    // Why: a DR secondary adopts its primary's keyring with the bundled root key; a wrong
    // root key must leave the barrier as it was.
    let primary = unsealed().await;
    primary.barrier.put("logical/x", b"v").await.unwrap();
    let copy = Arc::new(InmemStorage::new());
    copy.put(KEYRING_PATH, raw(&primary.storage, KEYRING_PATH).await)
        .await
        .unwrap();
    copy.put("logical/x", raw(&primary.storage, "logical/x").await)
        .await
        .unwrap();
    let secondary = Barrier::new(copy);

    let wrong = secondary
        .unseal_with_root_key(&RootKey::generate().unwrap())
        .await;
    secondary
        .unseal_with_root_key(&primary.barrier.root_key().unwrap())
        .await
        .unwrap();

    assert!(wrong.is_err());
    assert_eq!(
        secondary.get("logical/x").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

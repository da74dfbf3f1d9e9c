//! Unit tests driving the userpass backend directly over a hand-made mount.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::test_support::{Fixture, req};

async fn call(
    ctx: &Ctx<'_>,
    op: Operation,
    rest: &str,
    body: Value,
) -> Result<Response, BackendError> {
    let path = format!("{}{rest}", ctx.mount.path);
    Userpass.handle(ctx, &req(op, &path, body), rest).await
}

#[tokio::test]
async fn user_round_trip_never_exposes_the_password() {
    // Why: the stored hash and the password must never leave the server.
    let fx = Fixture::auth("userpass");
    let ctx = fx.ctx();

    let body = json!({"password": "s3cret", "policies": "dev,ops", "ttl": "10s"});
    call(&ctx, Operation::Update, "users/Bob", body)
        .await
        .unwrap();
    let data = call(&ctx, Operation::Read, "users/bob", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    let list = call(&ctx, Operation::List, "users/", json!({}))
        .await
        .unwrap();

    let text = serde_json::to_string(&data).unwrap();
    assert!(
        !text.contains("s3cret") && !text.contains("argon2"),
        "{text}"
    );
    assert_eq!(data["token_policies"], json!(["dev", "ops"]));
    assert_eq!(data["token_ttl"], json!(10));
    assert_eq!(list.data.unwrap()["keys"], json!(["bob"]));
    let raw = ctx.view.get("user/bob").await.unwrap().unwrap();
    assert!(String::from_utf8(raw).unwrap().contains("$argon2id$"));
}

#[tokio::test]
async fn login_returns_the_users_token_settings() {
    // Why: the pipeline issues exactly what the login request asks for.
    let fx = Fixture::auth("userpass");
    let ctx = fx.ctx();
    let body = json!({"password": "pw", "token_policies": ["web"], "token_ttl": "1h",
        "token_num_uses": 3});
    call(&ctx, Operation::Update, "users/alice", body)
        .await
        .unwrap();

    let resp = call(
        &ctx,
        Operation::Update,
        "login/alice",
        json!({"password": "pw"}),
    )
    .await
    .unwrap();

    let login = resp.login.unwrap();
    assert_eq!(login.policies, vec!["web"]);
    assert_eq!(login.ttl, Some(Duration::from_secs(3600)));
    assert_eq!(login.num_uses, 3);
    assert_eq!(login.display_name, "userpass-alice");
    assert_eq!(
        login.metadata.get("username").map(String::as_str),
        Some("alice")
    );
    assert!(login.renewable);
}

#[tokio::test]
async fn failed_logins_look_the_same_for_unknown_users() {
    // Why: the error must not reveal whether a username exists.
    let fx = Fixture::auth("userpass");
    let ctx = fx.ctx();
    call(
        &ctx,
        Operation::Update,
        "users/alice",
        json!({"password": "pw"}),
    )
    .await
    .unwrap();

    let wrong = call(
        &ctx,
        Operation::Update,
        "login/alice",
        json!({"password": "nope"}),
    )
    .await;
    let unknown = call(
        &ctx,
        Operation::Update,
        "login/mallory",
        json!({"password": "pw"}),
    )
    .await;

    for r in [wrong, unknown] {
        match r {
            Err(BackendError::InvalidRequest(m)) => assert_eq!(m, INVALID_LOGIN),
            other => panic!("expected invalid login, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn password_and_policy_subpaths_update_only_their_field() {
    // Why: rotating a password must not reset the user's policies, and vice versa.
    let fx = Fixture::auth("userpass");
    let ctx = fx.ctx();
    call(
        &ctx,
        Operation::Update,
        "users/c",
        json!({"password": "old", "policies": "a"}),
    )
    .await
    .unwrap();

    call(
        &ctx,
        Operation::Update,
        "users/c/password",
        json!({"password": "new"}),
    )
    .await
    .unwrap();
    call(
        &ctx,
        Operation::Update,
        "users/c/policies",
        json!({"token_policies": "b"}),
    )
    .await
    .unwrap();

    let old = call(
        &ctx,
        Operation::Update,
        "login/c",
        json!({"password": "old"}),
    )
    .await;
    assert!(old.is_err());
    let login = call(
        &ctx,
        Operation::Update,
        "login/c",
        json!({"password": "new"}),
    )
    .await
    .unwrap()
    .login
    .unwrap();
    assert_eq!(login.policies, vec!["b"]);
}

#[tokio::test]
async fn create_without_password_and_bound_cidr_mismatch_are_refused() {
    // Why: a user without a password could never log in; a CIDR-bound user only from inside.
    let fx = Fixture::auth("userpass");
    let ctx = fx.ctx();
    assert!(
        call(&ctx, Operation::Update, "users/d", json!({"policies": "a"}))
            .await
            .is_err()
    );
    let body = json!({"password": "pw", "token_bound_cidrs": "10.0.0.0/8"});
    call(&ctx, Operation::Update, "users/d", body)
        .await
        .unwrap();

    let mut outside = req(
        Operation::Update,
        "auth/userpass/login/d",
        json!({"password": "pw"}),
    );
    outside.client_addr = Some("192.168.1.1:4000".parse().unwrap());
    let mut inside = outside.clone();
    inside.client_addr = Some("10.1.1.1:4000".parse().unwrap());

    assert!(Userpass.handle(&ctx, &outside, "login/d").await.is_err());
    let login = Userpass
        .handle(&ctx, &inside, "login/d")
        .await
        .unwrap()
        .login
        .unwrap();
    assert_eq!(login.bound_cidrs, vec!["10.0.0.0/8"]);
}

#[test]
fn only_login_is_unauthenticated() {
    // Why: user management must always require a token.
    assert!(Userpass.unauthenticated("login/bob", Operation::Update));
    assert!(!Userpass.unauthenticated("users/bob", Operation::Update));
    assert!(!Userpass.unauthenticated("login/bob", Operation::Read));
}

#[tokio::test]
async fn stored_hash_uses_the_documented_argon2id_cost() {
    // Why: a crate upgrade must not silently weaken (or slow down) password hashing.
    let hash = hash_password(Zeroizing::new("pw".to_owned()))
        .await
        .unwrap();

    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(
        verify_password(Zeroizing::new("pw".to_owned()), Some(hash.clone()))
            .await
            .unwrap()
    );
    assert!(
        !verify_password(Zeroizing::new("px".to_owned()), Some(hash))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn unknown_user_costs_a_full_password_verification() {
    // Why: a fast "no such user" answer would let an attacker enumerate usernames by timing.
    let fx = Fixture::auth("userpass");
    let ctx = fx.ctx();
    call(
        &ctx,
        Operation::Update,
        "users/alice",
        json!({"password": "pw"}),
    )
    .await
    .unwrap();
    let time = |name: &'static str| {
        let ctx = &ctx;
        async move {
            let mut best = Duration::MAX;
            for _ in 0..3 {
                let start = std::time::Instant::now();
                let r = call(
                    ctx,
                    Operation::Update,
                    &format!("login/{name}"),
                    json!({"password": "x"}),
                )
                .await;
                assert!(r.is_err());
                best = best.min(start.elapsed());
            }
            best
        }
    };

    let wrong_password = time("alice").await;
    let unknown_user = time("mallory").await;

    // Without the dummy verification the unknown user answers ~100x faster; allow noise.
    assert!(
        unknown_user * 3 >= wrong_password,
        "unknown user {unknown_user:?} vs wrong password {wrong_password:?}"
    );
}

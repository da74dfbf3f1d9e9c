//! Unit tests driving the approle backend directly over a hand-made mount.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::AppRole;
use super::role::require;
use super::secret_id::SecretIds;
use strongroom_logical::{Backend, BackendError, Ctx, Operation, Response};

use crate::test_support::{Fixture, req};

async fn call(
    ctx: &Ctx<'_>,
    op: Operation,
    rest: &str,
    body: Value,
) -> Result<Response, BackendError> {
    let path = format!("{}{rest}", ctx.mount.path);
    AppRole.handle(ctx, &req(op, &path, body), rest).await
}

async fn login_from(ctx: &Ctx<'_>, body: Value, addr: &str) -> Result<Response, BackendError> {
    let mut r = req(Operation::Update, "auth/approle/login", body);
    r.client_addr = Some(addr.parse().unwrap());
    AppRole.handle(ctx, &r, "login").await
}

fn assert_invalid(r: Result<Response, BackendError>) {
    match r {
        Err(BackendError::InvalidRequest(m)) => assert_eq!(m, "invalid role or secret ID"),
        other => panic!("expected invalid login, got {other:?}"),
    }
}

fn field(r: &Response, k: &str) -> String {
    r.data.as_ref().unwrap()[k].as_str().unwrap().to_owned()
}

/// Creates role `name` with `body`, returns its role ID and a fresh secret ID.
async fn role_with_secret(ctx: &Ctx<'_>, name: &str, body: Value) -> (String, String) {
    call(ctx, Operation::Update, &format!("role/{name}"), body)
        .await
        .unwrap();
    let rid = call(
        ctx,
        Operation::Read,
        &format!("role/{name}/role-id"),
        json!({}),
    )
    .await
    .unwrap();
    let sid = call(
        ctx,
        Operation::Update,
        &format!("role/{name}/secret-id"),
        json!({}),
    )
    .await
    .unwrap();
    (field(&rid, "role_id"), field(&sid, "secret_id"))
}

#[tokio::test]
async fn login_with_role_and_secret_id_carries_role_settings() {
    // Why: the issued token must reflect the role's policies and metadata.
    let fx = Fixture::auth("approle");
    let ctx = fx.ctx();
    let body = json!({"token_policies": "app", "token_ttl": "20m"});
    call(&ctx, Operation::Update, "role/web", body)
        .await
        .unwrap();
    let rid = field(
        &call(&ctx, Operation::Read, "role/web/role-id", json!({}))
            .await
            .unwrap(),
        "role_id",
    );
    let sid_body = json!({"metadata": "{\"env\":\"prod\"}"});
    let sid = call(&ctx, Operation::Update, "role/web/secret-id", sid_body)
        .await
        .unwrap();

    let resp = login_from(
        &ctx,
        json!({"role_id": rid, "secret_id": field(&sid, "secret_id")}),
        "127.0.0.1:1",
    )
    .await
    .unwrap();

    let login = resp.login.unwrap();
    assert_eq!(login.policies, vec!["app"]);
    assert_eq!(login.ttl, Some(Duration::from_secs(1200)));
    assert_eq!(login.display_name, "approle");
    assert_eq!(
        login.metadata.get("role_name").map(String::as_str),
        Some("web")
    );
    assert_eq!(login.metadata.get("env").map(String::as_str), Some("prod"));
}

#[tokio::test]
async fn every_bad_credential_gives_the_same_answer() {
    // Why: the error must not reveal which half of the credential was right.
    let fx = Fixture::auth("approle");
    let ctx = fx.ctx();
    let (rid, sid) = role_with_secret(&ctx, "r", json!({})).await;

    assert_invalid(
        login_from(
            &ctx,
            json!({"role_id": rid, "secret_id": "wrong"}),
            "127.0.0.1:1",
        )
        .await,
    );
    assert_invalid(
        login_from(
            &ctx,
            json!({"role_id": "nope", "secret_id": sid}),
            "127.0.0.1:1",
        )
        .await,
    );
    assert_invalid(login_from(&ctx, json!({"role_id": rid}), "127.0.0.1:1").await);
}

#[tokio::test]
async fn limited_use_secret_id_is_spent_exactly() {
    // Why: num_uses is a hard limit; the last use must delete the secret ID.
    let fx = Fixture::auth("approle");
    let ctx = fx.ctx();
    let (rid, _) = role_with_secret(&ctx, "r", json!({})).await;
    let sid = call(
        &ctx,
        Operation::Update,
        "role/r/secret-id",
        json!({"num_uses": 2}),
    )
    .await
    .unwrap();
    let creds = json!({"role_id": rid, "secret_id": field(&sid, "secret_id")});

    login_from(&ctx, creds.clone(), "127.0.0.1:1")
        .await
        .unwrap();
    let looked = call(
        &ctx,
        Operation::Update,
        "role/r/secret-id/lookup",
        json!({"secret_id": field(&sid, "secret_id")}),
    )
    .await
    .unwrap();
    assert_eq!(looked.data.unwrap()["secret_id_num_uses"], json!(1));
    login_from(&ctx, creds.clone(), "127.0.0.1:1")
        .await
        .unwrap();

    assert_invalid(login_from(&ctx, creds, "127.0.0.1:1").await);
    let gone = call(
        &ctx,
        Operation::Update,
        "role/r/secret-id/lookup",
        json!({"secret_id": field(&sid, "secret_id")}),
    )
    .await
    .unwrap();
    assert!(gone.is_empty(), "a spent secret ID looks up as 204");
}

#[tokio::test]
async fn expired_secret_id_is_refused_and_removed() {
    // Why: a secret ID past its TTL must not log in, even if never used.
    let fx = Fixture::auth("approle");
    let ctx = fx.ctx();
    let (rid, sid) = role_with_secret(&ctx, "r", json!({})).await;
    let role = require(&ctx, "r").await.unwrap();
    let ids = SecretIds::new(&ctx, &role);
    let key = super::hmac_key(&ctx).await.unwrap();
    let mut entry = ids
        .get(&super::mac(&key, &sid).unwrap())
        .await
        .unwrap()
        .unwrap();
    entry.expiration_time = Some(SystemTime::now() - Duration::from_secs(1));
    ids.insert(&entry).await.unwrap();

    assert_invalid(
        login_from(
            &ctx,
            json!({"role_id": rid, "secret_id": sid}),
            "127.0.0.1:1",
        )
        .await,
    );

    assert!(ids.accessors().await.unwrap().is_empty());
}

#[tokio::test]
async fn secret_id_cidr_list_restricts_login_source() {
    // Why: a CIDR-bound secret ID stolen elsewhere must be useless.
    let fx = Fixture::auth("approle");
    let ctx = fx.ctx();
    let (rid, _) =
        role_with_secret(&ctx, "r", json!({"secret_id_bound_cidrs": "127.0.0.0/8"})).await;
    let sid = call(
        &ctx,
        Operation::Update,
        "role/r/secret-id",
        json!({"cidr_list": "127.0.0.1/32"}),
    )
    .await
    .unwrap();
    let creds = json!({"role_id": rid, "secret_id": field(&sid, "secret_id")});
    let wider = call(
        &ctx,
        Operation::Update,
        "role/r/secret-id",
        json!({"cidr_list": "10.0.0.0/8"}),
    )
    .await;

    assert!(wider.is_err(), "a secret ID cannot widen the role's CIDRs");
    assert_invalid(login_from(&ctx, creds.clone(), "127.0.0.2:1").await);
    login_from(&ctx, creds, "127.0.0.1:1").await.unwrap();
}

#[tokio::test]
async fn role_without_secret_id_needs_a_cidr_and_logs_in_with_role_id() {
    // Why: bind_secret_id=false is only safe with another constraint in place.
    let fx = Fixture::auth("approle");
    let ctx = fx.ctx();
    let bare = call(
        &ctx,
        Operation::Update,
        "role/open",
        json!({"bind_secret_id": false}),
    )
    .await;
    assert!(bare.is_err());
    let body = json!({"bind_secret_id": false, "secret_id_bound_cidrs": ["127.0.0.1/32"]});
    call(&ctx, Operation::Update, "role/open", body)
        .await
        .unwrap();
    let rid = field(
        &call(&ctx, Operation::Read, "role/open/role-id", json!({}))
            .await
            .unwrap(),
        "role_id",
    );

    login_from(&ctx, json!({"role_id": rid}), "127.0.0.1:9")
        .await
        .unwrap();
    assert_invalid(login_from(&ctx, json!({"role_id": rid}), "10.9.9.9:9").await);
}

#[tokio::test]
async fn custom_role_id_moves_the_index_and_accessors_manage_secret_ids() {
    // Why: the old role ID must stop working, and accessors must reach the secret ID.
    let fx = Fixture::auth("approle");
    let ctx = fx.ctx();
    let (old_rid, sid) = role_with_secret(&ctx, "r", json!({})).await;
    call(
        &ctx,
        Operation::Update,
        "role/r/role-id",
        json!({"role_id": "my-role-id"}),
    )
    .await
    .unwrap();
    assert_invalid(
        login_from(
            &ctx,
            json!({"role_id": old_rid, "secret_id": sid}),
            "127.0.0.1:1",
        )
        .await,
    );
    login_from(
        &ctx,
        json!({"role_id": "my-role-id", "secret_id": sid}),
        "127.0.0.1:1",
    )
    .await
    .unwrap();

    let listed = call(&ctx, Operation::List, "role/r/secret-id", json!({}))
        .await
        .unwrap();
    let accessor = listed.data.unwrap()["keys"][0].as_str().unwrap().to_owned();
    let looked = call(
        &ctx,
        Operation::Update,
        "role/r/secret-id-accessor/lookup",
        json!({"secret_id_accessor": accessor}),
    )
    .await
    .unwrap();
    assert_eq!(
        looked.data.unwrap()["expiration_time"],
        json!("0001-01-01T00:00:00Z")
    );
    call(
        &ctx,
        Operation::Update,
        "role/r/secret-id-accessor/destroy",
        json!({"secret_id_accessor": accessor}),
    )
    .await
    .unwrap();
    assert_invalid(
        login_from(
            &ctx,
            json!({"role_id": "my-role-id", "secret_id": sid}),
            "127.0.0.1:1",
        )
        .await,
    );
    let empty = call(&ctx, Operation::List, "role/r/secret-id", json!({})).await;
    assert!(matches!(empty, Err(BackendError::NotFound)));
}

#[tokio::test]
async fn deleting_a_role_removes_its_secret_ids_and_index() {
    // Why: credentials of a deleted role must not survive it or log in to a recreated one.
    let fx = Fixture::auth("approle");
    let ctx = fx.ctx();
    let (rid, sid) = role_with_secret(&ctx, "r", json!({"local_secret_ids": true})).await;
    let staged = ctx.local_view.list("").await.unwrap();
    assert!(
        !staged.is_empty(),
        "local secret IDs were not in the local view"
    );

    call(&ctx, Operation::Delete, "role/r", json!({}))
        .await
        .unwrap();
    call(&ctx, Operation::Update, "role/r", json!({}))
        .await
        .unwrap();

    assert_invalid(
        login_from(
            &ctx,
            json!({"role_id": rid, "secret_id": sid}),
            "127.0.0.1:1",
        )
        .await,
    );
    let local = ctx.local_view.list("").await.unwrap();
    assert!(
        local.is_empty(),
        "local secret IDs were left behind: {local:?}"
    );
}

#[test]
fn only_login_is_unauthenticated() {
    // Why: role and secret-ID management must always require a token.
    assert!(AppRole.unauthenticated("login", Operation::Update));
    assert!(!AppRole.unauthenticated("role/x/secret-id", Operation::Update));
    assert!(!AppRole.unauthenticated("login", Operation::Read));
}

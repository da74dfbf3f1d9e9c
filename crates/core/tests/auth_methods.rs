//! userpass and approle end to end through `Core::handle`: enable the method as root, set up
//! users and roles, log in without a token, and use the issued token.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use strongroom_api::{Auth, InitRequest, UnsealRequest};
use strongroom_core::{Core, CoreConfig, CoreError, Operation, Request, Response};
use strongroom_storage::InmemStorage;

const LOCALHOST: &str = "127.0.0.1:40000";

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

/// An initialized, unsealed core and its root token.
async fn unsealed() -> (Arc<Core>, String) {
    let core = Core::new(CoreConfig::default(), Arc::new(InmemStorage::new()));
    let init = core
        .init(InitRequest {
            secret_shares: 1,
            secret_threshold: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    core.unseal(UnsealRequest {
        key: init.keys.first().cloned(),
        ..Default::default()
    })
    .await
    .unwrap();
    (core, init.root_token)
}

async fn call(
    core: &Core,
    token: Option<&str>,
    op: Operation,
    path: &str,
    body: Value,
    addr: &str,
) -> Result<Response, CoreError> {
    let mut req = Request::new(op, path).with_data(obj(body));
    req.token = token.map(str::to_owned);
    req.client_addr = Some(addr.parse::<SocketAddr>().unwrap());
    core.handle(req).await
}

/// A root write from localhost.
async fn root_write(core: &Core, root: &str, path: &str, body: Value) -> Response {
    call(core, Some(root), Operation::Update, path, body, LOCALHOST)
        .await
        .unwrap_or_else(|e| panic!("write {path}: {e}"))
}

/// A tokenless login from `addr`.
async fn login(core: &Core, path: &str, body: Value, addr: &str) -> Result<Auth, CoreError> {
    let resp = call(core, None, Operation::Update, path, body, addr).await?;
    Ok(resp.auth.expect("a login answers with auth"))
}

fn assert_login_refused(r: Result<Auth, CoreError>, message: &str) {
    match r {
        Err(CoreError::InvalidRequest(m)) => assert_eq!(m, message),
        other => panic!("expected 400 {message:?}, got {other:?}"),
    }
}

async fn lookup_self(core: &Core, token: &str) -> Map<String, Value> {
    call(
        core,
        Some(token),
        Operation::Read,
        "auth/token/lookup-self",
        json!({}),
        LOCALHOST,
    )
    .await
    .unwrap()
    .data
    .unwrap()
}

fn data_str(r: &Response, k: &str) -> String {
    r.data.as_ref().unwrap()[k].as_str().unwrap().to_owned()
}

/// Enables approle and creates role `name`; returns its role ID.
async fn approle_role(core: &Core, root: &str, name: &str, body: Value) -> String {
    root_write(core, root, &format!("auth/approle/role/{name}"), body).await;
    let rid = call(
        core,
        Some(root),
        Operation::Read,
        &format!("auth/approle/role/{name}/role-id"),
        json!({}),
        LOCALHOST,
    )
    .await
    .unwrap();
    data_str(&rid, "role_id")
}

#[tokio::test]
async fn userpass_login_issues_a_working_token_with_the_users_policies() {
    // Why: the whole point of userpass: a password becomes a token limited by policies.
    let (core, root) = unsealed().await;
    root_write(
        &core,
        &root,
        "sys/auth/userpass",
        json!({"type": "userpass"}),
    )
    .await;
    let user = json!({"password": "hunter2", "token_policies": "web,ops", "ttl": "10s"});
    root_write(&core, &root, "auth/userpass/users/alice", user).await;

    let auth = login(
        &core,
        "auth/userpass/login/alice",
        json!({"password": "hunter2"}),
        LOCALHOST,
    )
    .await
    .unwrap();

    assert!(auth.token_policies.contains(&"web".to_owned()));
    assert!(auth.policies.contains(&"ops".to_owned()));
    assert!(auth.policies.contains(&"default".to_owned()));
    assert_eq!(auth.lease_duration, 10);
    let meta = auth.metadata.clone().unwrap();
    assert_eq!(meta["username"], json!("alice"));
    let me = lookup_self(&core, &auth.client_token).await;
    assert_eq!(me["display_name"], json!("userpass-alice"));
    assert!(me["policies"].as_array().unwrap().contains(&json!("web")));
}

#[tokio::test]
async fn userpass_wrong_password_and_unknown_user_give_the_same_400() {
    // Why: a login endpoint must not reveal which usernames exist.
    let (core, root) = unsealed().await;
    root_write(
        &core,
        &root,
        "sys/auth/userpass",
        json!({"type": "userpass"}),
    )
    .await;
    let user = json!({"password": "hunter2"});
    root_write(&core, &root, "auth/userpass/users/alice", user).await;

    let wrong = login(
        &core,
        "auth/userpass/login/alice",
        json!({"password": "nope"}),
        LOCALHOST,
    )
    .await;
    let unknown = login(
        &core,
        "auth/userpass/login/nobody",
        json!({"password": "hunter2"}),
        LOCALHOST,
    )
    .await;

    assert_login_refused(wrong, "invalid username or password");
    assert_login_refused(unknown, "invalid username or password");
}

#[tokio::test]
async fn userpass_user_management_needs_a_token() {
    // Why: only login is open; creating users without a token would be a takeover.
    let (core, root) = unsealed().await;
    root_write(
        &core,
        &root,
        "sys/auth/userpass",
        json!({"type": "userpass"}),
    )
    .await;

    let r = call(
        &core,
        None,
        Operation::Update,
        "auth/userpass/users/eve",
        json!({"password": "x"}),
        LOCALHOST,
    )
    .await;

    assert!(matches!(r, Err(CoreError::PermissionDenied)), "{r:?}");
}

#[tokio::test]
async fn approle_login_issues_a_working_token_with_metadata() {
    // Why: machines log in with role ID + secret ID and get the role's policies.
    let (core, root) = unsealed().await;
    root_write(&core, &root, "sys/auth/approle", json!({"type": "approle"})).await;
    let rid = approle_role(&core, &root, "ci", json!({"token_policies": ["deploy"]})).await;
    let sid = root_write(
        &core,
        &root,
        "auth/approle/role/ci/secret-id",
        json!({"metadata": "{\"team\":\"infra\"}"}),
    )
    .await;

    let auth = login(
        &core,
        "auth/approle/login",
        json!({"role_id": rid, "secret_id": data_str(&sid, "secret_id")}),
        LOCALHOST,
    )
    .await
    .unwrap();

    assert!(auth.token_policies.contains(&"deploy".to_owned()));
    let meta = auth.metadata.clone().unwrap();
    assert_eq!(meta["role_name"], json!("ci"));
    assert_eq!(meta["team"], json!("infra"));
    let me = lookup_self(&core, &auth.client_token).await;
    assert_eq!(me["display_name"], json!("approle"));
}

#[tokio::test]
async fn approle_bad_credentials_all_give_the_same_400() {
    // Why: a caller must not learn whether the role ID or the secret ID was wrong.
    let (core, root) = unsealed().await;
    root_write(&core, &root, "sys/auth/approle", json!({"type": "approle"})).await;
    let rid = approle_role(&core, &root, "ci", json!({})).await;
    let sid = root_write(&core, &root, "auth/approle/role/ci/secret-id", json!({})).await;
    let sid = data_str(&sid, "secret_id");

    let wrong_secret = json!({"role_id": rid, "secret_id": "not-it"});
    let wrong_role = json!({"role_id": "not-it", "secret_id": sid});
    for body in [wrong_secret, wrong_role] {
        let r = login(&core, "auth/approle/login", body, LOCALHOST).await;
        assert_login_refused(r, "invalid role or secret ID");
    }
}

#[tokio::test]
async fn approle_secret_id_num_uses_are_enforced() {
    // Why: a single-use secret ID must work exactly once.
    let (core, root) = unsealed().await;
    root_write(&core, &root, "sys/auth/approle", json!({"type": "approle"})).await;
    let rid = approle_role(&core, &root, "ci", json!({})).await;
    let sid = root_write(
        &core,
        &root,
        "auth/approle/role/ci/secret-id",
        json!({"num_uses": 1}),
    )
    .await;
    assert_eq!(sid.data.as_ref().unwrap()["secret_id_num_uses"], json!(1));
    let creds = json!({"role_id": rid, "secret_id": data_str(&sid, "secret_id")});

    let first = login(&core, "auth/approle/login", creds.clone(), LOCALHOST).await;
    let second = login(&core, "auth/approle/login", creds, LOCALHOST).await;

    assert!(first.is_ok(), "{first:?}");
    assert_login_refused(second, "invalid role or secret ID");
}

#[tokio::test]
async fn approle_secret_id_ttl_expires() {
    // Why: a secret ID past its TTL must stop working without any cleanup job.
    let (core, root) = unsealed().await;
    root_write(&core, &root, "sys/auth/approle", json!({"type": "approle"})).await;
    let rid = approle_role(&core, &root, "ci", json!({})).await;
    let sid = root_write(
        &core,
        &root,
        "auth/approle/role/ci/secret-id",
        json!({"ttl": "1s"}),
    )
    .await;
    let creds = json!({"role_id": rid, "secret_id": data_str(&sid, "secret_id")});

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = login(&core, "auth/approle/login", creds, LOCALHOST).await;

    assert_login_refused(r, "invalid role or secret ID");
}

#[tokio::test]
async fn approle_without_secret_id_logs_in_with_role_id_from_allowed_cidr() {
    // Why: bind_secret_id=false roles rely on the CIDR restriction alone.
    let (core, root) = unsealed().await;
    root_write(&core, &root, "sys/auth/approle", json!({"type": "approle"})).await;
    let body = json!({"bind_secret_id": false, "secret_id_bound_cidrs": "127.0.0.0/8"});
    let rid = approle_role(&core, &root, "edge", body).await;

    let inside = login(
        &core,
        "auth/approle/login",
        json!({"role_id": rid}),
        LOCALHOST,
    )
    .await;
    let outside = login(
        &core,
        "auth/approle/login",
        json!({"role_id": rid}),
        "203.0.113.7:5000",
    )
    .await;

    let auth = inside.unwrap();
    assert!(!lookup_self(&core, &auth.client_token).await.is_empty());
    assert_login_refused(outside, "invalid role or secret ID");
}

#[tokio::test]
async fn approle_secret_id_cidr_list_refuses_outside_clients() {
    // Why: a stolen CIDR-bound secret ID must be useless from another network.
    let (core, root) = unsealed().await;
    root_write(&core, &root, "sys/auth/approle", json!({"type": "approle"})).await;
    let rid = approle_role(&core, &root, "ci", json!({})).await;
    let sid = root_write(
        &core,
        &root,
        "auth/approle/role/ci/secret-id",
        json!({"cidr_list": ["127.0.0.1/32"]}),
    )
    .await;
    let creds = json!({"role_id": rid, "secret_id": data_str(&sid, "secret_id")});

    let outside = login(&core, "auth/approle/login", creds.clone(), "10.0.0.5:1").await;
    let inside = login(&core, "auth/approle/login", creds, LOCALHOST).await;

    assert_login_refused(outside, "invalid role or secret ID");
    assert!(inside.is_ok(), "{inside:?}");
}

#[tokio::test]
async fn approle_secret_id_lookup_miss_is_204_and_list_empty_is_404() {
    // Why: hvac asserts these exact status shapes.
    let (core, root) = unsealed().await;
    root_write(&core, &root, "sys/auth/approle", json!({"type": "approle"})).await;
    approle_role(&core, &root, "ci", json!({})).await;

    let miss = root_write(
        &core,
        &root,
        "auth/approle/role/ci/secret-id/lookup",
        json!({"secret_id": "nope"}),
    )
    .await;
    let list = call(
        &core,
        Some(&root),
        Operation::List,
        "auth/approle/role/ci/secret-id",
        json!({}),
        LOCALHOST,
    )
    .await;

    assert!(miss.is_empty());
    assert!(matches!(list, Err(CoreError::NotFound)), "{list:?}");
}

//! The token store and the expiration manager end to end through `Core::handle`: every create
//! parameter, the subset rule, TTL expiry by the background task, revocation cascades,
//! accessors, batch and limited-use tokens, renewal, roles, leases and restarts.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use strongroom_api::{Auth, InitRequest, UnsealRequest};
use strongroom_core::{Core, CoreConfig, CoreError, Operation, Request, Response};
use strongroom_storage::{InmemStorage, Storage};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

struct Env {
    core: Arc<Core>,
    storage: Arc<InmemStorage>,
    key: String,
    root: String,
}

async fn unseal(core: &Core, key: &str) {
    let status = core
        .unseal(UnsealRequest {
            key: Some(key.to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!status.sealed);
}

async fn setup() -> Env {
    let storage = Arc::new(InmemStorage::new());
    let core = Core::new(CoreConfig::default(), storage.clone());
    let init = core
        .init(InitRequest {
            secret_shares: 1,
            secret_threshold: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    unseal(&core, &init.keys[0]).await;
    Env {
        core,
        storage,
        key: init.keys[0].clone(),
        root: init.root_token,
    }
}

async fn call(
    core: &Core,
    token: &str,
    op: Operation,
    path: &str,
    data: Value,
) -> Result<Response, CoreError> {
    core.handle(
        Request::new(op, path)
            .with_token(token)
            .with_data(obj(data)),
    )
    .await
}

async fn create(core: &Core, token: &str, path: &str, data: Value) -> Auth {
    call(core, token, Operation::Update, path, data)
        .await
        .unwrap()
        .auth
        .expect("create answers with an auth block")
}

async fn lookup(core: &Core, caller: &str, token: &str) -> Result<Map<String, Value>, CoreError> {
    let resp = call(
        core,
        caller,
        Operation::Update,
        "auth/token/lookup",
        json!({ "token": token }),
    )
    .await?;
    Ok(resp.data.unwrap())
}

async fn lookup_self(core: &Core, token: &str) -> Result<Map<String, Value>, CoreError> {
    Ok(call(
        core,
        token,
        Operation::Read,
        "auth/token/lookup-self",
        json!({}),
    )
    .await?
    .data
    .unwrap())
}

/// Polls until the token stops working, for at most `limit`.
async fn wait_until_dead(core: &Core, token: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if lookup_self(core, token).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Polls until the lease record is gone (the background task revoked it).
async fn wait_lease_gone(core: &Core, root: &str, lease_id: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        let r = call(
            core,
            root,
            Operation::Update,
            "sys/leases/lookup",
            json!({ "lease_id": lease_id }),
        )
        .await;
        if matches!(r, Err(CoreError::InvalidRequest(ref m)) if m == "invalid lease") {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn create_parameters_take_effect() {
    // Why: every documented create parameter must change the token, or clients are misled.
    let env = setup().await;
    let (core, root) = (&env.core, env.root.as_str());

    let auth = create(
        core,
        root,
        "auth/token/create",
        json!({
            "policies": "web,db,web", "ttl": "1h", "explicit_max_ttl": "30m",
            "num_uses": 5, "renewable": false, "display_name": "ci job",
            "meta": {"team": "infra"}
        }),
    )
    .await;
    assert!(auth.client_token.starts_with("hvs."));
    assert_eq!(auth.accessor.len(), 24);
    assert_eq!(auth.policies, ["db", "default", "web"]);
    assert_eq!(auth.lease_duration, 1800, "ttl capped by explicit_max_ttl");
    assert!(!auth.renewable);
    assert!(!auth.orphan);
    assert_eq!(auth.num_uses, 5);
    assert_eq!(auth.token_type, "service");

    let data = lookup(core, root, &auth.client_token).await.unwrap();
    assert_eq!(data["display_name"], "token-ci-job");
    assert_eq!(data["meta"], json!({"team": "infra"}));
    assert_eq!(data["explicit_max_ttl"], 1800);
    assert_eq!(data["creation_ttl"], 1800);
    assert_eq!(data["num_uses"], 5);
    assert_eq!(data["path"], "auth/token/create");
    assert_eq!(data["type"], "service");
    assert_eq!(data["id"], auth.client_token.as_str());
    assert!(data["expire_time"].is_string());
    assert!(data["issue_time"].is_string());
    let ttl = data["ttl"].as_i64().unwrap();
    assert!((1790..=1800).contains(&ttl), "remaining ttl {ttl}");

    // no_default_policy, orphan via no_parent, custom id, type batch via param.
    let auth = create(
        core,
        root,
        "auth/token/create",
        json!({"policies": ["web"], "no_default_policy": true, "no_parent": true,
               "id": "custom-id-1"}),
    )
    .await;
    assert_eq!(auth.client_token, "custom-id-1");
    assert_eq!(auth.policies, ["web"]);
    assert!(auth.orphan);
    assert_eq!(auth.lease_duration, 2_764_800, "system default TTL");

    // A root child without ttl never expires; a period sets the TTL.
    let rootchild = create(core, root, "auth/token/create", json!({})).await;
    assert_eq!(rootchild.policies, ["root"]);
    assert_eq!(rootchild.lease_duration, 0);
    let data = lookup_self(core, &rootchild.client_token).await.unwrap();
    assert_eq!(data["expire_time"], Value::Null);
    let periodic = create(
        core,
        root,
        "auth/token/create",
        json!({"policies": ["web"], "period": "30m"}),
    )
    .await;
    assert_eq!(periodic.lease_duration, 1800);
    let data = lookup(core, root, &periodic.client_token).await.unwrap();
    assert_eq!(data["period"], 1800);

    // Bad values are refused with 400 and create nothing.
    for bad in [
        json!({"ttl": "soon"}),
        json!({"num_uses": -1}),
        json!({"type": "weird"}),
        json!({"id": "has.dot"}),
    ] {
        let r = call(
            core,
            root,
            Operation::Update,
            "auth/token/create",
            bad.clone(),
        )
        .await;
        assert!(
            matches!(r, Err(CoreError::InvalidRequest(_))),
            "{bad}: {r:?}"
        );
    }
}

#[tokio::test]
async fn children_cannot_exceed_their_parent() {
    // Why: the subset rule stops a token from minting a stronger token.
    let env = setup().await;
    let (core, root) = (&env.core, env.root.as_str());
    call(
        core,
        root,
        Operation::Update,
        "sys/policies/acl/minter",
        json!({"policy": "path \"auth/token/create\" { capabilities = [\"update\", \"create\"] }"}),
    )
    .await
    .unwrap();
    let parent = create(
        core,
        root,
        "auth/token/create",
        json!({"policies": ["minter", "web"]}),
    )
    .await;

    let ok = create(
        core,
        &parent.client_token,
        "auth/token/create",
        json!({"policies": ["web"]}),
    )
    .await;
    assert_eq!(ok.policies, ["default", "web"]);
    for (body, why) in [
        (json!({"policies": ["admin"]}), "policy the parent lacks"),
        (json!({"policies": ["root"]}), "root policy"),
        (json!({"no_parent": true}), "orphan without sudo"),
        (json!({"period": "1h"}), "periodic without sudo"),
        (json!({"id": "mine"}), "custom id without sudo"),
    ] {
        let r = call(
            core,
            &parent.client_token,
            Operation::Update,
            "auth/token/create",
            body,
        )
        .await;
        assert!(
            matches!(r, Err(CoreError::InvalidRequest(_))),
            "{why}: {r:?}"
        );
    }
    // create-orphan is root-protected: the ACL refuses it without sudo.
    let r = call(
        core,
        &parent.client_token,
        Operation::Update,
        "auth/token/create-orphan",
        json!({}),
    )
    .await;
    assert!(matches!(r, Err(CoreError::PermissionDenied)), "{r:?}");
}

#[tokio::test]
async fn expired_tokens_are_revoked_by_the_background_task() {
    // Why: a token must stop working at its TTL and its records must be deleted.
    let env = setup().await;
    let (core, root) = (&env.core, env.root.as_str());
    let auth = create(
        core,
        root,
        "auth/token/create",
        json!({"policies": ["web"], "ttl": "1s"}),
    )
    .await;
    assert_eq!(auth.lease_duration, 1);
    let lease_id = format!("auth/token/create/{}", hash(&auth.client_token));
    let lease = call(
        core,
        root,
        Operation::Update,
        "sys/leases/lookup",
        json!({ "lease_id": lease_id }),
    )
    .await
    .unwrap()
    .data
    .unwrap();
    assert_eq!(lease["id"], lease_id.as_str());

    assert!(wait_until_dead(core, &auth.client_token, Duration::from_secs(5)).await);
    assert!(wait_lease_gone(core, root, &lease_id, Duration::from_secs(5)).await);
    let r = lookup(core, root, &auth.client_token).await;
    assert!(matches!(r, Err(CoreError::PermissionDenied)), "{r:?}");
    let raw = env
        .storage
        .get(&format!("sys/token/id/{}", hash(&auth.client_token)))
        .await
        .unwrap();
    assert!(raw.is_none(), "the expired token's entry was deleted");
}

#[tokio::test]
async fn revoking_a_parent_revokes_every_descendant() {
    // Why: revocation must reach grandchildren, or a leaked child survives its parent.
    let env = setup().await;
    let (core, root) = (&env.core, env.root.as_str());
    let parent = create(core, root, "auth/token/create", json!({})).await;
    let child = create(core, &parent.client_token, "auth/token/create", json!({})).await;
    let grandchild = create(core, &child.client_token, "auth/token/create", json!({})).await;
    let sibling = create(core, root, "auth/token/create", json!({})).await;
    call(
        core,
        &grandchild.client_token,
        Operation::Update,
        "cubbyhole/note",
        json!({"v": "x"}),
    )
    .await
    .unwrap();

    call(
        core,
        root,
        Operation::Update,
        "auth/token/revoke",
        json!({ "token": parent.client_token }),
    )
    .await
    .unwrap();

    for t in [&parent, &child, &grandchild] {
        let r = lookup(core, root, &t.client_token).await;
        assert!(matches!(r, Err(CoreError::PermissionDenied)), "{r:?}");
    }
    assert!(lookup(core, root, &sibling.client_token).await.is_ok());
    let cubby = env
        .storage
        .scan(
            &format!("sys/token/cubbyhole/{}/", hash(&grandchild.client_token)),
            None,
            10,
        )
        .await
        .unwrap();
    assert!(cubby.is_empty(), "the grandchild's cubbyhole was deleted");
    let index = env
        .storage
        .scan("sys/token/parent/", None, 100)
        .await
        .unwrap();
    for t in [&parent, &child, &grandchild] {
        let h = hash(&t.client_token);
        assert!(
            !index.iter().any(|(k, _)| k.contains(&h)),
            "no parent link of a revoked token remains: {index:?}"
        );
    }
    assert_eq!(index.len(), 1, "only root -> sibling is left");
}

#[tokio::test]
async fn revoke_orphan_spares_the_children() {
    // Why: revoke-orphan must revoke only the token and turn its children into orphans.
    let env = setup().await;
    let (core, root) = (&env.core, env.root.as_str());
    let parent = create(core, root, "auth/token/create", json!({})).await;
    let child = create(core, &parent.client_token, "auth/token/create", json!({})).await;
    assert!(!child.orphan);

    call(
        core,
        root,
        Operation::Update,
        "auth/token/revoke-orphan",
        json!({ "token": parent.client_token }),
    )
    .await
    .unwrap();

    assert!(lookup(core, root, &parent.client_token).await.is_err());
    let data = lookup(core, root, &child.client_token).await.unwrap();
    assert_eq!(data["orphan"], true);
}

#[tokio::test]
async fn accessors_look_up_renew_and_revoke_without_the_token() {
    // Why: operators manage tokens by accessor; a bad accessor must be 400 "invalid accessor".
    let env = setup().await;
    let (core, root) = (&env.core, env.root.as_str());
    let auth = create(
        core,
        root,
        "auth/token/create",
        json!({"policies": ["web"], "ttl": "1h"}),
    )
    .await;

    let data = call(
        core,
        root,
        Operation::Update,
        "auth/token/lookup-accessor",
        json!({ "accessor": auth.accessor }),
    )
    .await
    .unwrap()
    .data
    .unwrap();
    assert_eq!(data["id"], "");
    assert_eq!(data["accessor"], auth.accessor.as_str());

    let keys = call(
        core,
        root,
        Operation::List,
        "auth/token/accessors",
        json!({}),
    )
    .await
    .unwrap()
    .data
    .unwrap();
    assert!(
        keys["keys"]
            .as_array()
            .unwrap()
            .contains(&json!(auth.accessor))
    );

    let renewed = call(
        core,
        root,
        Operation::Update,
        "auth/token/renew-accessor",
        json!({ "accessor": auth.accessor, "increment": "2h" }),
    )
    .await
    .unwrap()
    .auth
    .unwrap();
    assert_eq!(renewed.client_token, "");
    assert_eq!(renewed.lease_duration, 7200);

    let r = call(
        core,
        root,
        Operation::Update,
        "auth/token/lookup-accessor",
        json!({"accessor": "nosuchaccessor"}),
    )
    .await;
    assert!(matches!(r, Err(CoreError::InvalidRequest(ref m)) if m == "invalid accessor"));

    call(
        core,
        root,
        Operation::Update,
        "auth/token/revoke-accessor",
        json!({ "accessor": auth.accessor }),
    )
    .await
    .unwrap();
    assert!(lookup(core, root, &auth.client_token).await.is_err());
    let r = call(
        core,
        root,
        Operation::Update,
        "auth/token/revoke-accessor",
        json!({ "accessor": auth.accessor }),
    )
    .await;
    assert!(matches!(r, Err(CoreError::InvalidRequest(_))));
}

#[tokio::test]
async fn batch_tokens_work_without_storage_and_cannot_be_renewed() {
    // Why: batch tokens promise no storage writes and no renewal; both are security claims.
    let env = setup().await;
    let (core, root) = (&env.core, env.root.as_str());
    call(
        core,
        root,
        Operation::Update,
        "sys/policies/acl/minter",
        json!({"policy": "path \"auth/token/create\" { capabilities = [\"update\"] }"}),
    )
    .await
    .unwrap();
    let parent = create(core, root, "auth/token/create", json!({})).await;
    let before = env.storage.scan("", None, 100_000).await.unwrap();

    let batch = create(
        core,
        &parent.client_token,
        "auth/token/create",
        json!({"type": "batch", "policies": ["minter", "web"], "ttl": "10m"}),
    )
    .await;
    let after = env.storage.scan("", None, 100_000).await.unwrap();
    assert_eq!(
        before.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        after.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        "issuing a batch token writes nothing"
    );
    assert!(batch.client_token.starts_with("hvb."));
    assert_eq!(batch.accessor, "");
    assert_eq!(batch.token_type, "batch");
    assert!(!batch.renewable);

    let data = lookup_self(core, &batch.client_token).await.unwrap();
    assert_eq!(data["type"], "batch");
    assert_eq!(data["policies"], json!(["default", "minter", "web"]));
    let r = call(
        core,
        &batch.client_token,
        Operation::Update,
        "auth/token/renew-self",
        json!({}),
    )
    .await;
    assert!(matches!(r, Err(CoreError::InvalidRequest(_))), "{r:?}");
    let r = call(
        core,
        &batch.client_token,
        Operation::Update,
        "auth/token/create",
        json!({}),
    )
    .await;
    assert!(matches!(r, Err(CoreError::InvalidRequest(_))), "{r:?}");

    // A tampered batch token is just an unknown token.
    let mut tampered = batch.client_token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert!(lookup_self(core, &tampered).await.is_err());

    // It dies with its parent.
    call(
        core,
        root,
        Operation::Update,
        "auth/token/revoke",
        json!({ "token": parent.client_token }),
    )
    .await
    .unwrap();
    assert!(lookup_self(core, &batch.client_token).await.is_err());
}

#[tokio::test]
async fn limited_use_tokens_stop_after_their_last_use() {
    // Why: num_uses bounds how often a leaked token can be replayed.
    let env = setup().await;
    let (core, root) = (&env.core, env.root.as_str());
    let auth = create(
        core,
        root,
        "auth/token/create",
        json!({"policies": ["web"], "num_uses": 2}),
    )
    .await;

    assert!(lookup_self(core, &auth.client_token).await.is_ok());
    assert!(lookup_self(core, &auth.client_token).await.is_ok());
    let r = lookup_self(core, &auth.client_token).await;
    assert!(matches!(r, Err(CoreError::PermissionDenied)), "{r:?}");
    let lease_id = format!("auth/token/create/{}", hash(&auth.client_token));
    assert!(wait_lease_gone(core, root, &lease_id, Duration::from_secs(5)).await);
    let raw = env
        .storage
        .get(&format!("sys/token/id/{}", hash(&auth.client_token)))
        .await
        .unwrap();
    assert!(raw.is_none(), "the used-up token was revoked");
}

#[tokio::test]
async fn tokens_and_their_expiry_survive_a_restart() {
    // Why: expiry must be enforced even when the server restarts before the TTL ends.
    let env = setup().await;
    let auth = create(
        &env.core,
        &env.root,
        "auth/token/create",
        json!({"policies": ["web"], "ttl": "3s"}),
    )
    .await;
    let keeper = create(
        &env.core,
        &env.root,
        "auth/token/create",
        json!({"policies": ["web"], "ttl": "1h"}),
    )
    .await;
    let Env {
        core,
        storage,
        key,
        root,
    } = env;
    core.seal(Some(&root)).await.unwrap();
    drop(core);

    let core = Core::new(CoreConfig::default(), storage.clone());
    unseal(&core, &key).await;
    assert!(lookup_self(&core, &auth.client_token).await.is_ok());
    assert!(wait_until_dead(&core, &auth.client_token, Duration::from_secs(8)).await);
    let lease_id = format!("auth/token/create/{}", hash(&auth.client_token));
    assert!(wait_lease_gone(&core, &root, &lease_id, Duration::from_secs(5)).await);
    assert!(lookup_self(&core, &keeper.client_token).await.is_ok());
}

#[tokio::test]
async fn renewal_extends_and_periodic_tokens_reset_to_their_period() {
    // Why: renew must move the expiry (and the lease), within the token's limits.
    let env = setup().await;
    let (core, root) = (&env.core, env.root.as_str());
    let auth = create(
        core,
        root,
        "auth/token/create",
        json!({"policies": ["web"], "ttl": "10s", "explicit_max_ttl": "2h"}),
    )
    .await;
    let renewed = call(
        core,
        &auth.client_token,
        Operation::Update,
        "auth/token/renew-self",
        json!({"increment": "1h"}),
    )
    .await
    .unwrap()
    .auth
    .unwrap();
    assert_eq!(renewed.client_token, auth.client_token);
    assert_eq!(renewed.lease_duration, 3600);
    let data = lookup_self(core, &auth.client_token).await.unwrap();
    assert!(data["ttl"].as_i64().unwrap() > 3500);
    assert!(data["last_renewal_time"].is_i64());
    let lease = call(
        core,
        root,
        Operation::Update,
        "sys/leases/lookup",
        json!({"lease_id": format!("auth/token/create/{}", hash(&auth.client_token))}),
    )
    .await
    .unwrap()
    .data
    .unwrap();
    assert!(lease["ttl"].as_i64().unwrap() > 3500, "the lease moved too");

    // Capped by explicit_max_ttl.
    let capped = call(
        core,
        root,
        Operation::Update,
        "auth/token/renew",
        json!({"token": auth.client_token, "increment": "5h"}),
    )
    .await
    .unwrap()
    .auth
    .unwrap();
    assert!(capped.lease_duration <= 7200 && capped.lease_duration > 7100);

    let periodic = create(
        core,
        root,
        "auth/token/create",
        json!({"policies": ["web"], "period": "1h"}),
    )
    .await;
    let renewed = call(
        core,
        &periodic.client_token,
        Operation::Update,
        "auth/token/renew-self",
        json!({"increment": "10s"}),
    )
    .await
    .unwrap()
    .auth
    .unwrap();
    assert_eq!(renewed.lease_duration, 3600);

    let fixed = create(
        core,
        root,
        "auth/token/create",
        json!({"policies": ["web"], "renewable": false}),
    )
    .await;
    let r = call(
        core,
        &fixed.client_token,
        Operation::Update,
        "auth/token/renew-self",
        json!({}),
    )
    .await;
    assert!(matches!(r, Err(CoreError::InvalidRequest(_))), "{r:?}");
}

#[tokio::test]
async fn roles_shape_the_tokens_created_through_them() {
    // Why: roles are the delegation mechanism; their limits must bind every created token.
    let env = setup().await;
    let (core, root) = (&env.core, env.root.as_str());
    let r = call(core, root, Operation::List, "auth/token/roles", json!({})).await;
    assert!(matches!(r, Err(CoreError::NotFound)), "{r:?}");

    let written = call(
        core,
        root,
        Operation::Update,
        "auth/token/roles/deployer",
        json!({"allowed_policies": ["testpolicy"], "orphan": true, "token_period": "20m",
               "path_suffix": "v1"}),
    )
    .await
    .unwrap();
    assert!(written.is_empty(), "role write answers 204");
    let data = call(
        core,
        root,
        Operation::Read,
        "auth/token/roles/deployer",
        json!({}),
    )
    .await
    .unwrap()
    .data
    .unwrap();
    assert_eq!(data["name"], "deployer");
    assert_eq!(data["token_period"], 1200);
    assert_eq!(data["allowed_policies"], json!(["testpolicy"]));

    let auth = create(core, root, "auth/token/create/deployer", json!({})).await;
    assert_eq!(auth.policies, ["default", "testpolicy"]);
    assert!(auth.orphan);
    assert_eq!(auth.lease_duration, 1200);
    let data = lookup_self(core, &auth.client_token).await.unwrap();
    assert_eq!(data["path"], "auth/token/create/deployer/v1");
    assert_eq!(data["role"], "deployer");

    let r = call(
        core,
        root,
        Operation::Update,
        "auth/token/create/deployer",
        json!({"policies": ["other"]}),
    )
    .await;
    assert!(matches!(r, Err(CoreError::InvalidRequest(_))), "{r:?}");

    let list = call(core, root, Operation::List, "auth/token/roles", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(list["keys"], json!(["deployer"]));
    call(
        core,
        root,
        Operation::Delete,
        "auth/token/roles/deployer",
        json!({}),
    )
    .await
    .unwrap();
    let r = call(
        core,
        root,
        Operation::Read,
        "auth/token/roles/deployer",
        json!({}),
    )
    .await;
    assert!(matches!(r, Err(CoreError::NotFound)), "{r:?}");
}

#[tokio::test]
async fn lease_endpoints_list_refuse_token_renewal_and_revoke_by_prefix() {
    // Why: operators revoke whole subtrees of leases by prefix (e.g. a compromised mount).
    let env = setup().await;
    let (core, root) = (&env.core, env.root.as_str());
    let a = create(
        core,
        root,
        "auth/token/create",
        json!({"policies": ["web"]}),
    )
    .await;
    let b = create(
        core,
        root,
        "auth/token/create",
        json!({"policies": ["web"]}),
    )
    .await;

    let keys = call(
        core,
        root,
        Operation::List,
        "sys/leases/lookup/auth/token/create/",
        json!({}),
    )
    .await
    .unwrap()
    .data
    .unwrap();
    let keys = keys["keys"].as_array().unwrap();
    assert!(keys.contains(&json!(hash(&a.client_token))));
    assert!(keys.contains(&json!(hash(&b.client_token))));

    let r = call(
        core,
        root,
        Operation::Update,
        "sys/leases/renew",
        json!({"lease_id": format!("auth/token/create/{}", hash(&a.client_token))}),
    )
    .await;
    assert!(matches!(r, Err(CoreError::InvalidRequest(_))), "{r:?}");
    let r = call(
        core,
        root,
        Operation::Update,
        "sys/leases/lookup",
        json!({"lease_id": "nope/nothing"}),
    )
    .await;
    assert!(matches!(r, Err(CoreError::InvalidRequest(_))), "{r:?}");

    call(
        core,
        root,
        Operation::Update,
        "sys/leases/revoke-prefix/auth/token/",
        json!({}),
    )
    .await
    .unwrap();
    assert!(lookup_self(core, &a.client_token).await.is_err());
    assert!(lookup_self(core, &b.client_token).await.is_err());
    assert!(lookup_self(core, root).await.is_ok(), "root has no lease");
    let r = call(
        core,
        root,
        Operation::List,
        "sys/leases/lookup/auth/token/create/",
        json!({}),
    )
    .await;
    assert!(matches!(r, Err(CoreError::NotFound)), "{r:?}");
}

#[tokio::test]
async fn revoke_self_and_unknown_lookups() {
    // Why: lookup of a bad token is 403 (hvac asserts it), and revoke-self must end the token.
    let env = setup().await;
    let (core, root) = (&env.core, env.root.as_str());
    let r = lookup(core, root, "hvs.doesnotexist").await;
    assert!(matches!(r, Err(CoreError::PermissionDenied)), "{r:?}");
    let auth = create(
        core,
        root,
        "auth/token/create",
        json!({"policies": ["web"]}),
    )
    .await;
    call(
        core,
        &auth.client_token,
        Operation::Update,
        "auth/token/revoke-self",
        json!({}),
    )
    .await
    .unwrap();
    let r = lookup_self(core, &auth.client_token).await;
    assert!(matches!(r, Err(CoreError::PermissionDenied)), "{r:?}");
    let r = call(core, root, Operation::Update, "auth/token/tidy", json!({}))
        .await
        .unwrap();
    assert_eq!(r.warnings.len(), 1);
}

//! Mount management, KV v1/v2 and cubbyhole through `Core::handle` with real tokens.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use serde_json::{Map, Value, json};
use strongroom_core::{Core, CoreConfig, CoreError, Operation, Request, Response};
use strongroom_storage::{InmemStorage, Storage};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// A dev-style core (initialized, unsealed) over memory storage, and its root token.
async fn setup() -> (Arc<Core>, Arc<InmemStorage>, String) {
    let storage = Arc::new(InmemStorage::new());
    let core = Core::new(CoreConfig::default(), storage.clone());
    let (_, root) = core.dev_bootstrap(None).await.unwrap();
    (core, storage, root)
}

async fn call(
    core: &Core,
    token: &str,
    op: Operation,
    path: &str,
    body: Value,
) -> Result<Response, CoreError> {
    core.handle(
        Request::new(op, path)
            .with_token(token)
            .with_data(obj(body)),
    )
    .await
}

async fn data(core: &Core, token: &str, op: Operation, path: &str, body: Value) -> Value {
    let resp = call(core, token, op, path, body)
        .await
        .unwrap_or_else(|e| panic!("{op:?} {path}: {e}"));
    Value::Object(resp.data.unwrap_or_default())
}

async fn put(core: &Core, token: &str, path: &str, body: Value) -> Value {
    data(core, token, Operation::Update, path, body).await
}

async fn get(core: &Core, token: &str, path: &str) -> Value {
    data(core, token, Operation::Read, path, json!({})).await
}

fn is_bad_request(r: Result<Response, CoreError>, needle: &str) -> bool {
    matches!(r, Err(CoreError::InvalidRequest(m)) if m.contains(needle))
}

/// Every raw storage key under `prefix`.
async fn raw_keys(storage: &InmemStorage, prefix: &str) -> Vec<String> {
    storage
        .scan(prefix, None, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

#[tokio::test]
async fn fresh_server_lists_builtin_mounts() {
    // Why: `vault secrets list` and `vault auth list` must show Vault's built-in mounts.
    let (core, _, root) = setup().await;

    let mounts = get(&core, &root, "sys/mounts").await;
    let auths = get(&core, &root, "sys/auth").await;

    assert_eq!(mounts["cubbyhole/"]["type"], "cubbyhole");
    assert_eq!(mounts["cubbyhole/"]["local"], true);
    assert_eq!(mounts["sys/"]["type"], "system");
    assert!(
        mounts.get("secret/").is_none(),
        "no secret/ outside dev mode"
    );
    let token = &auths["token/"];
    assert_eq!(token["type"], "token");
    assert_eq!(token["description"], "token based credentials");
    assert_eq!(token["config"]["token_type"], "default-service");
    let acc = token["accessor"].as_str().unwrap();
    assert!(acc.starts_with("auth_token_") && acc.len() == "auth_token_".len() + 8);
}

#[tokio::test]
async fn enable_read_tune_disable_secrets_mount() {
    // Why: the exact JSON shapes are what hvac and the CLI assert on.
    let (core, storage, root) = setup().await;

    put(
        &core,
        &root,
        "sys/mounts/kv2",
        json!({"type": "kv", "description": "d", "options": {"version": 2},
               "config": {"default_lease_ttl": "1h", "max_lease_ttl": "2h"}}),
    )
    .await;
    let listed = get(&core, &root, "sys/mounts").await;
    let one = get(&core, &root, "sys/mounts/kv2").await;
    let tune = get(&core, &root, "sys/mounts/kv2/tune").await;

    let m = &listed["kv2/"];
    assert_eq!(m["options"], json!({"version": "2"}));
    assert_eq!(m["type"], "kv");
    assert_eq!(m["description"], "d");
    assert_eq!(m["config"]["default_lease_ttl"], 3600);
    assert!(m["accessor"].as_str().unwrap().starts_with("kv_"));
    assert_eq!(&one, m);
    assert_eq!(tune["default_lease_ttl"], 3600);
    assert_eq!(tune["max_lease_ttl"], 7200);
    assert_eq!(tune["options"], json!({"version": "2"}));

    // Tune: absent fields keep their values; system defaults fill zeros.
    let r = call(
        &core,
        &root,
        Operation::Update,
        "sys/mounts/kv2/tune",
        json!({"default_lease_ttl": 0, "max_lease_ttl": "3600s", "description": "new"}),
    )
    .await
    .unwrap();
    assert!(r.is_empty(), "tune answers 204");
    let tune = get(&core, &root, "sys/mounts/kv2/tune").await;
    assert_eq!(tune["default_lease_ttl"], 2_764_800);
    assert_eq!(tune["max_lease_ttl"], 3600);
    assert_eq!(tune["description"], "new");

    // Errors: same path again, unknown type, reserved path.
    let again = call(
        &core,
        &root,
        Operation::Update,
        "sys/mounts/kv2",
        json!({"type": "kv"}),
    );
    assert!(is_bad_request(
        again.await,
        "path is already in use at kv2/"
    ));
    let bad = call(
        &core,
        &root,
        Operation::Update,
        "sys/mounts/x",
        json!({"type": "nope"}),
    );
    assert!(is_bad_request(
        bad.await,
        "plugin not found in the catalog: nope"
    ));
    let reserved = call(
        &core,
        &root,
        Operation::Update,
        "sys/mounts/sys",
        json!({"type": "kv"}),
    );
    assert!(matches!(reserved.await, Err(CoreError::InvalidRequest(_))));

    // Disable deletes the data; disabling again is still a 204.
    put(&core, &root, "kv2/data/a", json!({"data": {"k": "v"}})).await;
    let uuid = m["uuid"].as_str().unwrap().to_owned();
    assert!(
        !raw_keys(&storage, &format!("logical/{uuid}/"))
            .await
            .is_empty()
    );
    let del = call(&core, &root, Operation::Delete, "sys/mounts/kv2", json!({})).await;
    assert!(del.unwrap().is_empty());
    assert!(
        raw_keys(&storage, &format!("logical/{uuid}/"))
            .await
            .is_empty()
    );
    assert!(get(&core, &root, "sys/mounts").await.get("kv2/").is_none());
    let del = call(&core, &root, Operation::Delete, "sys/mounts/kv2", json!({})).await;
    assert!(del.unwrap().is_empty());
}

#[tokio::test]
async fn kv_v2_shorthand_and_builtins_cannot_be_disabled() {
    // Why: `vault secrets enable kv-v2` must yield a v2 mount; cubbyhole must survive.
    let (core, _, root) = setup().await;

    put(&core, &root, "sys/mounts/v2", json!({"type": "kv-v2"})).await;
    let cub = call(
        &core,
        &root,
        Operation::Delete,
        "sys/mounts/cubbyhole",
        json!({}),
    )
    .await;

    let m = get(&core, &root, "sys/mounts/v2").await;
    assert_eq!(m["type"], "kv");
    assert_eq!(m["options"], json!({"version": "2"}));
    assert!(matches!(cub, Err(CoreError::InvalidRequest(_))));
}

#[tokio::test]
async fn local_mounts_use_local_table_and_prefix() {
    // Why: performance replication must never ship local mounts or their data.
    let (core, storage, root) = setup().await;

    put(
        &core,
        &root,
        "sys/mounts/lkv",
        json!({"type": "kv", "local": true}),
    )
    .await;
    put(&core, &root, "lkv/secret", json!({"a": "b"})).await;
    put(
        &core,
        &root,
        "sys/auth/lup",
        json!({"type": "userpass", "local": true}),
    )
    .await;

    let m = get(&core, &root, "sys/mounts/lkv").await;
    assert_eq!(m["local"], true);
    let uuid = m["uuid"].as_str().unwrap();
    assert_eq!(raw_keys(&storage, &format!("local/{uuid}/")).await.len(), 1);
    assert!(
        raw_keys(&storage, &format!("logical/{uuid}/"))
            .await
            .is_empty()
    );
    assert_eq!(raw_keys(&storage, "core/local-mounts").await.len(), 1);
    assert_eq!(raw_keys(&storage, "core/local-auth").await.len(), 1);
    assert_eq!(get(&core, &root, "lkv/secret").await, json!({"a": "b"}));
    assert_eq!(get(&core, &root, "sys/auth").await["lup/"]["local"], true);
}

#[tokio::test]
async fn mount_table_survives_seal_and_unseal() {
    // Why: all four table records must be reloaded after a restart.
    let storage = Arc::new(InmemStorage::new());
    let core = Core::new(CoreConfig::default(), storage.clone());
    let (key, root) = core.dev_bootstrap(None).await.unwrap();
    put(&core, &root, "sys/mounts/a", json!({"type": "kv"})).await;
    put(
        &core,
        &root,
        "sys/mounts/b",
        json!({"type": "kv", "local": true}),
    )
    .await;
    put(&core, &root, "sys/auth/up", json!({"type": "userpass"})).await;
    let before_m = get(&core, &root, "sys/mounts").await;
    let before_a = get(&core, &root, "sys/auth").await;

    core.seal(Some(&root)).await.unwrap();
    core.unseal(strongroom_api::UnsealRequest {
        key: Some(key),
        ..Default::default()
    })
    .await
    .unwrap();

    assert_eq!(get(&core, &root, "sys/mounts").await, before_m);
    assert_eq!(get(&core, &root, "sys/auth").await, before_a);
}

#[tokio::test]
async fn auth_mounts_enable_tune_remount_disable() {
    // Why: auth methods live under auth/ and must be tunable and movable like Vault's.
    let (core, _, root) = setup().await;

    put(
        &core,
        &root,
        "sys/auth/userpass",
        json!({"type": "userpass", "description": "u"}),
    )
    .await;
    let bad = call(
        &core,
        &root,
        Operation::Update,
        "sys/auth/x",
        json!({"type": "github"}),
    );
    assert!(is_bad_request(
        bad.await,
        "plugin not found in the catalog: github"
    ));

    let a = get(&core, &root, "sys/auth").await;
    assert_eq!(a["userpass/"]["type"], "userpass");
    assert!(
        a["userpass/"]["accessor"]
            .as_str()
            .unwrap()
            .starts_with("auth_userpass_")
    );
    let r = call(
        &core,
        &root,
        Operation::Update,
        "sys/auth/userpass/tune",
        json!({"default_lease_ttl": 12_345_678u64 / 1000, "token_type": "batch"}),
    )
    .await
    .unwrap();
    assert!(r.is_empty());
    let t = get(&core, &root, "sys/auth/userpass/tune").await;
    assert_eq!(t["default_lease_ttl"], 12_345);
    assert_eq!(t["token_type"], "batch");
    let t2 = get(&core, &root, "sys/mounts/auth/userpass/tune").await;
    assert_eq!(t, t2);
    let bad = call(
        &core,
        &root,
        Operation::Update,
        "sys/auth/userpass/tune",
        json!({"token_type": "weird"}),
    );
    assert!(matches!(bad.await, Err(CoreError::InvalidRequest(_))));

    // Remount auth/userpass -> auth/up2 keeps the uuid (and so the data).
    let uuid = a["userpass/"]["uuid"].clone();
    let moved = put(
        &core,
        &root,
        "sys/remount",
        json!({"from": "auth/userpass", "to": "auth/up2"}),
    )
    .await;
    let id = moved["migration_id"].as_str().unwrap().to_owned();
    let status = get(&core, &root, &format!("sys/remount/status/{id}")).await;
    assert_eq!(status["migration_info"]["status"], "success");
    assert_eq!(status["migration_info"]["target_mount"], "auth/up2/");
    let a = get(&core, &root, "sys/auth").await;
    assert!(a.get("userpass/").is_none());
    assert_eq!(a["up2/"]["uuid"], uuid);

    let del = call(&core, &root, Operation::Delete, "sys/auth/up2", json!({})).await;
    assert!(del.unwrap().is_empty());
    assert!(get(&core, &root, "sys/auth").await.get("up2/").is_none());
    let del = call(&core, &root, Operation::Delete, "sys/auth/token", json!({})).await;
    assert!(matches!(del, Err(CoreError::InvalidRequest(_))));
}

#[tokio::test]
async fn remount_keeps_secrets() {
    // Why: moving a mount must not lose or rewrite its data.
    let (core, _, root) = setup().await;
    put(&core, &root, "sys/mounts/old", json!({"type": "kv"})).await;
    put(&core, &root, "old/k", json!({"v": "1"})).await;

    put(
        &core,
        &root,
        "sys/remount",
        json!({"from": "old", "to": "new"}),
    )
    .await;

    assert_eq!(get(&core, &root, "new/k").await, json!({"v": "1"}));
    let gone = call(&core, &root, Operation::Read, "old/k", json!({})).await;
    assert!(matches!(gone, Err(CoreError::UnsupportedPath(_))));
    let clash = call(
        &core,
        &root,
        Operation::Update,
        "sys/remount",
        json!({"from": "new", "to": "cubbyhole"}),
    );
    assert!(matches!(clash.await, Err(CoreError::InvalidRequest(_))));
}

#[tokio::test]
async fn kv_preflight_reports_owning_mount() {
    // Why: the CLI decides v1 versus v2 from this answer.
    let (core, _, root) = setup().await;
    put(
        &core,
        &root,
        "sys/mounts/secret",
        json!({"type": "kv", "options": {"version": "2"}}),
    )
    .await;
    put(&core, &root, "sys/auth/approle", json!({"type": "approle"})).await;

    let ui = get(&core, &root, "sys/internal/ui/mounts/secret/foo/bar").await;
    let all = get(&core, &root, "sys/mounts-all/secret/foo").await;
    let ap = get(&core, &root, "sys/internal/ui/mounts/auth/approle/login").await;
    let list = get(&core, &root, "sys/internal/ui/mounts").await;

    assert_eq!(ui["path"], "secret/");
    assert_eq!(ui["type"], "kv");
    assert_eq!(ui["options"], json!({"version": "2"}));
    assert_eq!(all["path"], "secret/");
    assert_eq!(ap["path"], "auth/approle/");
    assert!(list["secret"].get("secret/").is_some());
    assert!(list["auth"].get("approle/").is_some());
    let unknown = call(
        &core,
        &root,
        Operation::Read,
        "sys/internal/ui/mounts/nope/x",
        json!({}),
    )
    .await;
    assert!(matches!(unknown, Err(CoreError::PermissionDenied)));
    let anon = core
        .handle(Request::new(Operation::Read, "sys/mounts-all/secret/foo"))
        .await;
    assert!(matches!(anon, Err(CoreError::PermissionDenied)));
}

/// Sets up a v2 mount at `kv/`.
async fn v2() -> (Arc<Core>, Arc<InmemStorage>, String) {
    let (core, storage, root) = setup().await;
    put(
        &core,
        &root,
        "sys/mounts/kv",
        json!({"type": "kv", "options": {"version": "2"}}),
    )
    .await;
    (core, storage, root)
}

#[tokio::test]
async fn kv2_versions_and_cas() {
    // Why: versioning and check-and-set are the core promises of KV v2.
    let (core, _, root) = v2().await;

    let w1 = put(&core, &root, "kv/data/app", json!({"data": {"pw": "one"}})).await;
    let w2 = put(
        &core,
        &root,
        "kv/data/app",
        json!({"data": {"pw": "two"}, "options": {"cas": 1}}),
    )
    .await;
    let mismatch = call(
        &core,
        &root,
        Operation::Update,
        "kv/data/app",
        json!({"data": {"pw": "x"}, "options": {"cas": 1}}),
    )
    .await;
    let latest = get(&core, &root, "kv/data/app").await;
    let first = data(
        &core,
        &root,
        Operation::Read,
        "kv/data/app",
        json!({"version": "1"}),
    )
    .await;

    assert_eq!(w1["version"], 1);
    assert_eq!(w2["version"], 2);
    for key in [
        "created_time",
        "custom_metadata",
        "deletion_time",
        "destroyed",
        "version",
    ] {
        assert!(w2.get(key).is_some(), "write response has {key}");
    }
    assert!(is_bad_request(
        mismatch,
        "check-and-set parameter did not match the current version"
    ));
    assert_eq!(latest["data"], json!({"pw": "two"}));
    assert_eq!(latest["metadata"]["version"], 2);
    assert_eq!(latest["metadata"]["deletion_time"], "");
    assert_eq!(latest["metadata"]["destroyed"], false);
    assert_eq!(first["data"], json!({"pw": "one"}));
    let cas0 = call(
        &core,
        &root,
        Operation::Update,
        "kv/data/new",
        json!({"data": {"a": 1}, "options": {"cas": 0}}),
    )
    .await;
    assert!(cas0.is_ok(), "cas 0 creates a new key");
    let cas0 = call(
        &core,
        &root,
        Operation::Update,
        "kv/data/new",
        json!({"data": {"a": 1}, "options": {"cas": 0}}),
    )
    .await;
    assert!(is_bad_request(cas0, "did not match"));
    let nothing = call(&core, &root, Operation::Read, "kv/data/missing", json!({})).await;
    assert!(matches!(nothing, Err(CoreError::NotFound)));
    let no_data = call(
        &core,
        &root,
        Operation::Update,
        "kv/data/app",
        json!({"x": 1}),
    )
    .await;
    assert!(matches!(no_data, Err(CoreError::InvalidRequest(_))));
}

#[tokio::test]
async fn kv2_cas_required_on_mount_and_key() {
    // Why: cas_required must refuse blind writes wherever it is set.
    let (core, _, root) = v2().await;
    put(
        &core,
        &root,
        "kv/config",
        json!({"cas_required": true, "max_versions": 5, "delete_version_after": "30m"}),
    )
    .await;

    let cfg = get(&core, &root, "kv/config").await;
    let blind = call(
        &core,
        &root,
        Operation::Update,
        "kv/data/a",
        json!({"data": {"x": 1}}),
    )
    .await;

    assert_eq!(
        cfg,
        json!({"cas_required": true, "delete_version_after": "30m0s", "max_versions": 5})
    );
    assert!(is_bad_request(
        blind,
        "check-and-set parameter required for this call"
    ));

    put(
        &core,
        &root,
        "kv/config",
        json!({"cas_required": false, "delete_version_after": "0s"}),
    )
    .await;
    put(&core, &root, "kv/metadata/b", json!({"cas_required": true})).await;
    let blind = call(
        &core,
        &root,
        Operation::Update,
        "kv/data/b",
        json!({"data": {"x": 1}}),
    )
    .await;
    assert!(is_bad_request(blind, "required"));
    let ok = call(
        &core,
        &root,
        Operation::Update,
        "kv/data/b",
        json!({"data": {"x": 1}, "options": {"cas": 0}}),
    )
    .await;
    assert!(ok.is_ok());
}

#[tokio::test]
async fn kv2_delete_undelete_destroy() {
    // Why: deleted and destroyed versions answer 404 with the metadata, as clients expect.
    let (core, _, root) = v2().await;
    put(&core, &root, "kv/data/s", json!({"data": {"v": 1}})).await;
    put(&core, &root, "kv/data/s", json!({"data": {"v": 2}})).await;

    // Soft delete of the latest version.
    let del = call(&core, &root, Operation::Delete, "kv/data/s", json!({}))
        .await
        .unwrap();
    assert!(del.is_empty());
    let deleted = call(&core, &root, Operation::Read, "kv/data/s", json!({})).await;
    let Err(CoreError::NotFoundWith(resp)) = deleted else {
        panic!("expected 404 with envelope, got {deleted:?}");
    };
    let d = Value::Object(resp.data.clone().unwrap());
    assert_eq!(d["data"], Value::Null);
    assert_ne!(d["metadata"]["deletion_time"], "");
    assert_eq!(d["metadata"]["version"], 2);

    // Undelete brings it back.
    put(&core, &root, "kv/undelete/s", json!({"versions": [2]})).await;
    assert_eq!(
        get(&core, &root, "kv/data/s").await["data"],
        json!({"v": 2})
    );

    // Delete a specific version via delete/, ignoring unknown ones.
    put(&core, &root, "kv/delete/s", json!({"versions": [1, 99]})).await;
    let v1 = call(
        &core,
        &root,
        Operation::Read,
        "kv/data/s",
        json!({"version": 1}),
    )
    .await;
    assert!(matches!(v1, Err(CoreError::NotFoundWith(_))));

    // Destroy is permanent.
    put(&core, &root, "kv/destroy/s", json!({"versions": "2"})).await;
    let destroyed = call(&core, &root, Operation::Read, "kv/data/s", json!({})).await;
    let Err(CoreError::NotFoundWith(resp)) = destroyed else {
        panic!("expected 404 with envelope");
    };
    let d = Value::Object(resp.data.clone().unwrap());
    assert_eq!(d["metadata"]["destroyed"], true);
    put(&core, &root, "kv/undelete/s", json!({"versions": [2]})).await;
    assert!(
        call(&core, &root, Operation::Read, "kv/data/s", json!({}))
            .await
            .is_err()
    );
    let meta = get(&core, &root, "kv/metadata/s").await;
    assert_eq!(meta["versions"]["2"]["destroyed"], true);
    assert_ne!(meta["versions"]["1"]["deletion_time"], "");
    let missing = call(&core, &root, Operation::Update, "kv/delete/s", json!({})).await;
    assert!(is_bad_request(missing, "no version number provided"));
}

#[tokio::test]
async fn kv2_max_versions_trims_oldest() {
    // Why: retention limits must actually drop old data.
    let (core, _, root) = v2().await;
    put(&core, &root, "kv/metadata/t", json!({"max_versions": 2})).await;

    for i in 1..=4 {
        put(&core, &root, "kv/data/t", json!({"data": {"i": i}})).await;
    }

    let meta = get(&core, &root, "kv/metadata/t").await;
    assert_eq!(meta["current_version"], 4);
    assert_eq!(meta["oldest_version"], 3);
    assert_eq!(meta["max_versions"], 2);
    let versions: Vec<&String> = meta["versions"].as_object().unwrap().keys().collect();
    assert_eq!(versions, ["3", "4"]);
    let old = call(
        &core,
        &root,
        Operation::Read,
        "kv/data/t",
        json!({"version": 1}),
    )
    .await;
    assert!(matches!(old, Err(CoreError::NotFound)));
}

#[tokio::test]
async fn kv2_metadata_custom_list_and_delete() {
    // Why: metadata endpoints back `vault kv metadata` and `vault kv list`.
    let (core, _, root) = v2().await;
    put(&core, &root, "kv/data/dir/a", json!({"data": {"x": 1}})).await;
    put(&core, &root, "kv/data/top", json!({"data": {"x": 1}})).await;

    put(
        &core,
        &root,
        "kv/metadata/top",
        json!({"custom_metadata": {"owner": "jdoe", "team": "x"},
        "delete_version_after": "1h"}),
    )
    .await;
    data(
        &core,
        &root,
        Operation::Patch,
        "kv/metadata/top",
        json!({"custom_metadata": {"team": null, "env": "prod"}}),
    )
    .await;
    let meta = get(&core, &root, "kv/metadata/top").await;
    let read = get(&core, &root, "kv/data/top").await;
    let root_list = data(&core, &root, Operation::List, "kv/metadata/", json!({})).await;
    let dir_list = data(&core, &root, Operation::List, "kv/metadata/dir", json!({})).await;

    assert_eq!(
        meta["custom_metadata"],
        json!({"owner": "jdoe", "env": "prod"})
    );
    assert_eq!(meta["delete_version_after"], "1h0m0s");
    for key in [
        "cas_required",
        "created_time",
        "current_version",
        "max_versions",
        "oldest_version",
        "updated_time",
        "versions",
    ] {
        assert!(meta.get(key).is_some(), "metadata has {key}");
    }
    assert_eq!(
        read["metadata"]["custom_metadata"],
        json!({"owner": "jdoe", "env": "prod"})
    );
    assert_eq!(root_list["keys"], json!(["dir/", "top"]));
    assert_eq!(dir_list["keys"], json!(["a"]));

    let del = call(
        &core,
        &root,
        Operation::Delete,
        "kv/metadata/top",
        json!({}),
    )
    .await
    .unwrap();
    assert!(del.is_empty());
    assert!(matches!(
        call(&core, &root, Operation::Read, "kv/metadata/top", json!({})).await,
        Err(CoreError::NotFound)
    ));
    assert!(matches!(
        call(&core, &root, Operation::Read, "kv/data/top", json!({})).await,
        Err(CoreError::NotFound)
    ));
    let empty = call(
        &core,
        &root,
        Operation::List,
        "kv/metadata/nothing/",
        json!({}),
    )
    .await;
    assert!(matches!(empty, Err(CoreError::NotFound)));
}

#[tokio::test]
async fn kv2_patch_and_subkeys() {
    // Why: `kv patch` merges; subkeys reveal structure but no values.
    let (core, _, root) = v2().await;
    put(
        &core,
        &root,
        "kv/data/p",
        json!({"data": {"a": "1", "n": {"b": "2", "c": "3"}}}),
    )
    .await;

    let patched = data(
        &core,
        &root,
        Operation::Patch,
        "kv/data/p",
        json!({"data": {"a": null, "n": {"c": "9"}, "z": "new"}, "options": {"cas": 1}}),
    )
    .await;
    let read = get(&core, &root, "kv/data/p").await;
    let sub = data(
        &core,
        &root,
        Operation::Read,
        "kv/subkeys/p",
        json!({"depth": "1"}),
    )
    .await;
    let deep = get(&core, &root, "kv/subkeys/p").await;

    assert_eq!(patched["version"], 2);
    assert_eq!(read["data"], json!({"n": {"b": "2", "c": "9"}, "z": "new"}));
    assert_eq!(sub["subkeys"], json!({"n": null, "z": null}));
    assert_eq!(
        deep["subkeys"],
        json!({"n": {"b": null, "c": null}, "z": null})
    );
    assert_eq!(deep["metadata"]["version"], 2);
    let missing = call(
        &core,
        &root,
        Operation::Patch,
        "kv/data/none",
        json!({"data": {"a": 1}}),
    )
    .await;
    assert!(matches!(missing, Err(CoreError::NotFound)));
    let bad_cas = call(
        &core,
        &root,
        Operation::Patch,
        "kv/data/p",
        json!({"data": {"a": 1}, "options": {"cas": 1}}),
    )
    .await;
    assert!(is_bad_request(bad_cas, "did not match"));
}

#[tokio::test]
async fn kv2_delete_version_after_expires_versions() {
    // Why: scheduled deletion must make versions unreadable once due.
    let (core, _, root) = v2().await;
    put(
        &core,
        &root,
        "kv/metadata/e",
        json!({"delete_version_after": "1s"}),
    )
    .await;
    let w = put(&core, &root, "kv/data/e", json!({"data": {"x": 1}})).await;

    assert_ne!(
        w["deletion_time"], "",
        "deletion is scheduled at write time"
    );
    assert_eq!(
        get(&core, &root, "kv/data/e").await["data"],
        json!({"x": 1})
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let after = call(&core, &root, Operation::Read, "kv/data/e", json!({})).await;
    assert!(matches!(after, Err(CoreError::NotFoundWith(_))));
}

#[tokio::test]
async fn kv2_invalid_paths_warn() {
    // Why: `vault read kv/foo` on a v2 mount must explain the versioned layout.
    let (core, _, root) = v2().await;

    let r = call(&core, &root, Operation::Read, "kv/foo", json!({})).await;

    let Err(CoreError::NotFoundWith(resp)) = r else {
        panic!("expected 404 with warning, got {r:?}");
    };
    assert!(resp.warnings[0].contains("Invalid path for a versioned K/V secrets engine"));
}

#[tokio::test]
async fn kv_v1_to_v2_upgrade_keeps_data_and_downgrade_is_refused() {
    // Why: `vault kv enable-versioning` must not lose existing secrets.
    let (core, _, root) = setup().await;
    put(&core, &root, "sys/mounts/up", json!({"type": "kv"})).await;
    put(&core, &root, "up/a", json!({"x": "1"})).await;
    put(&core, &root, "up/dir/b", json!({"y": "2"})).await;
    put(&core, &root, "up/meta/c", json!({"z": "3"})).await;

    let r = call(
        &core,
        &root,
        Operation::Update,
        "sys/mounts/up/tune",
        json!({"options": {"version": "2"}}),
    )
    .await
    .unwrap();

    assert!(!r.warnings.is_empty());
    assert_eq!(
        get(&core, &root, "sys/mounts/up").await["options"],
        json!({"version": "2"})
    );
    let a = get(&core, &root, "up/data/a").await;
    assert_eq!(a["data"], json!({"x": "1"}));
    assert_eq!(a["metadata"]["version"], 1);
    assert_eq!(
        get(&core, &root, "up/data/dir/b").await["data"],
        json!({"y": "2"})
    );
    assert_eq!(
        get(&core, &root, "up/data/meta/c").await["data"],
        json!({"z": "3"})
    );
    let list = data(&core, &root, Operation::List, "up/metadata/", json!({})).await;
    assert_eq!(list["keys"], json!(["a", "dir/", "meta/"]));
    let down = call(
        &core,
        &root,
        Operation::Update,
        "sys/mounts/up/tune",
        json!({"options": {"version": "1"}}),
    )
    .await;
    assert!(matches!(down, Err(CoreError::InvalidRequest(_))));
}

#[tokio::test]
async fn kv_upgrade_of_more_than_one_page_keeps_every_key_and_no_other_mount() {
    // Why: the upgrade walks the mount in pages of 1,000 keys; every page must convert, and
    // the walk must stay inside the mount it upgrades.
    let (core, storage, root) = setup().await;
    put(&core, &root, "sys/mounts/big", json!({"type": "kv"})).await;
    put(&core, &root, "sys/mounts/other", json!({"type": "kv"})).await;
    put(&core, &root, "other/keep", json!({"v": "kept"})).await;
    let count = 1_050;
    for i in 0..count {
        put(&core, &root, &format!("big/k{i:04}"), json!({ "i": i })).await;
    }

    call(
        &core,
        &root,
        Operation::Update,
        "sys/mounts/big/tune",
        json!({"options": {"version": "2"}}),
    )
    .await
    .unwrap();

    let list = data(&core, &root, Operation::List, "big/metadata/", json!({})).await;
    assert_eq!(list["keys"].as_array().map(Vec::len), Some(count));
    for i in [0, 999, 1_000, count - 1] {
        let secret = get(&core, &root, &format!("big/data/k{i:04}")).await;
        assert_eq!(secret["data"], json!({ "i": i }), "key {i}");
    }
    assert_eq!(get(&core, &root, "other/keep").await, json!({"v": "kept"}));
    let staged = raw_keys(&storage, "logical/").await;
    assert!(
        !staged.iter().any(|k| k.contains("/kv-upgrade")),
        "staging left behind"
    );
}

#[tokio::test]
async fn kv_v1_read_write_list_delete() {
    // Why: v1 must keep working exactly as before v2 arrived.
    let (core, _, root) = setup().await;
    put(&core, &root, "sys/mounts/v1", json!({"type": "generic"})).await;
    put(&core, &root, "v1/a/bar/foo", json!({"k": "v"})).await;
    put(&core, &root, "v1/a/foo", json!({"k": "v", "ttl": "1h"})).await;

    let list = data(&core, &root, Operation::List, "v1/a", json!({})).await;
    let with_ttl = call(&core, &root, Operation::Read, "v1/a/foo", json!({}))
        .await
        .unwrap();
    let plain = call(&core, &root, Operation::Read, "v1/a/bar/foo", json!({}))
        .await
        .unwrap();

    assert_eq!(list["keys"], json!(["bar/", "foo"]));
    assert_eq!(with_ttl.lease.unwrap().duration_secs, 3600);
    assert_eq!(plain.lease.unwrap().duration_secs, 2_764_800);
    call(&core, &root, Operation::Delete, "v1/a/foo", json!({}))
        .await
        .unwrap();
    assert!(matches!(
        call(&core, &root, Operation::Read, "v1/a/foo", json!({})).await,
        Err(CoreError::NotFound)
    ));
}

#[tokio::test]
async fn cubbyhole_is_private_per_token() {
    // Why: a cubbyhole must be invisible to every other token, root included.
    let (core, storage, root) = setup().await;
    let created = call(
        &core,
        &root,
        Operation::Update,
        "auth/token/create",
        json!({"policies": ["default"]}),
    )
    .await
    .unwrap();
    let other = created.auth.unwrap().client_token;

    put(&core, &root, "cubbyhole/mine", json!({"who": "root"})).await;
    put(&core, &other, "cubbyhole/mine", json!({"who": "other"})).await;

    assert_eq!(
        get(&core, &root, "cubbyhole/mine").await,
        json!({"who": "root"})
    );
    assert_eq!(
        get(&core, &other, "cubbyhole/mine").await,
        json!({"who": "other"})
    );
    put(&core, &root, "cubbyhole/only-root", json!({"x": 1})).await;
    let hidden = call(
        &core,
        &other,
        Operation::Read,
        "cubbyhole/only-root",
        json!({}),
    )
    .await;
    assert!(matches!(hidden, Err(CoreError::NotFound)));
    let listed = data(&core, &other, Operation::List, "cubbyhole/", json!({})).await;
    assert_eq!(listed["keys"], json!(["mine"]));
    assert_eq!(raw_keys(&storage, "sys/token/cubbyhole/").await.len(), 3);

    // Revoking a token destroys its cubbyhole and nothing else.
    call(
        &core,
        &other,
        Operation::Update,
        "auth/token/revoke-self",
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(raw_keys(&storage, "sys/token/cubbyhole/").await.len(), 2);
}

#[tokio::test]
async fn batch_tokens_have_no_cubbyhole() {
    // Why: batch tokens are not stored, so there is nothing to tie a cubbyhole to.
    let (core, _, root) = setup().await;
    let created = call(
        &core,
        &root,
        Operation::Update,
        "auth/token/create",
        json!({"type": "batch", "policies": ["default"]}),
    )
    .await
    .unwrap();
    let batch = created.auth.unwrap().client_token;

    let r = call(
        &core,
        &batch,
        Operation::Update,
        "cubbyhole/x",
        json!({"a": 1}),
    )
    .await;

    assert!(is_bad_request(
        r,
        "only supported by \"service\" type tokens"
    ));
}

#[tokio::test]
async fn preflight_works_for_restricted_tokens_only_on_their_mounts() {
    // Why: a policy-limited CLI user must learn the KV version of mounts it can use, and
    // nothing about the others.
    let (core, _, root) = v2().await;
    put(&core, &root, "sys/mounts/other", json!({"type": "kv"})).await;
    put(
        &core,
        &root,
        "sys/policies/acl/kvread",
        json!({"policy": "path \"kv/data/*\" { capabilities = [\"read\"] }"}),
    )
    .await;
    let created = call(
        &core,
        &root,
        Operation::Update,
        "auth/token/create",
        json!({"policies": ["kvread"]}),
    )
    .await
    .unwrap();
    let user = created.auth.unwrap().client_token;

    let ok = get(&core, &user, "sys/internal/ui/mounts/kv/app").await;
    let all = get(&core, &user, "sys/mounts-all/kv/app").await;
    let denied = call(
        &core,
        &user,
        Operation::Read,
        "sys/internal/ui/mounts/other/x",
        json!({}),
    )
    .await;
    let listing = get(&core, &user, "sys/internal/ui/mounts").await;

    assert_eq!(ok["path"], "kv/");
    assert_eq!(ok["options"], json!({"version": "2"}));
    assert_eq!(all["path"], "kv/");
    assert!(matches!(denied, Err(CoreError::PermissionDenied)));
    assert!(listing["secret"].get("kv/").is_some());
    assert!(listing["secret"].get("other/").is_none());
}

#[tokio::test]
async fn disabling_an_auth_method_revokes_its_tokens() {
    // Why: a disabled login method must not leave working tokens behind.
    let (core, _, root) = setup().await;
    put(
        &core,
        &root,
        "sys/auth/userpass",
        json!({"type": "userpass"}),
    )
    .await;
    put(
        &core,
        &root,
        "auth/userpass/users/bob",
        json!({"password": "correct horse", "policies": "default"}),
    )
    .await;
    let login = core
        .handle(
            Request::new(Operation::Update, "auth/userpass/login/bob")
                .with_data(obj(json!({"password": "correct horse"}))),
        )
        .await
        .unwrap();
    let bob = login.auth.unwrap().client_token;
    assert!(
        call(
            &core,
            &bob,
            Operation::Read,
            "auth/token/lookup-self",
            json!({})
        )
        .await
        .is_ok()
    );

    call(
        &core,
        &root,
        Operation::Delete,
        "sys/auth/userpass",
        json!({}),
    )
    .await
    .unwrap();

    let after = call(
        &core,
        &bob,
        Operation::Read,
        "auth/token/lookup-self",
        json!({}),
    )
    .await;
    assert!(matches!(after, Err(CoreError::PermissionDenied)));
}

/// A core whose system TTLs are short (default 30m, max 1h), and its root token.
async fn setup_short_system_max() -> (Arc<Core>, String) {
    let config = CoreConfig {
        default_lease_ttl: Some(std::time::Duration::from_secs(1800)),
        max_lease_ttl: Some(std::time::Duration::from_secs(3600)),
        ..CoreConfig::default()
    };
    let core = Core::new(config, Arc::new(InmemStorage::new()));
    let (_, root) = core.dev_bootstrap(None).await.unwrap();
    (core, root)
}

#[tokio::test]
async fn mount_max_lease_ttl_above_the_system_max_is_accepted_and_capped_at_use() {
    // Why: Vault accepts a mount max above the system max (clients tune it so); what a
    // client gets must still never outlive the system maximum.
    let (core, root) = setup_short_system_max().await;
    let hours = |h: i64| json!({"config": {"max_lease_ttl": format!("{h}h")}});

    let secrets = call(&core, &root, Operation::Update, "sys/mounts/long", {
        let mut b = hours(10);
        b["type"] = json!("kv");
        b
    })
    .await;
    let secrets_tune = call(
        &core,
        &root,
        Operation::Update,
        "sys/mounts/long/tune",
        json!({"max_lease_ttl": "20h"}),
    )
    .await;
    let auth = call(&core, &root, Operation::Update, "sys/auth/userpass", {
        let mut b = hours(10);
        b["type"] = json!("userpass");
        b
    })
    .await;
    let auth_tune = call(
        &core,
        &root,
        Operation::Update,
        "sys/auth/userpass/tune",
        json!({"max_lease_ttl": "20h"}),
    )
    .await;
    put(&core, &root, "long/s", json!({"v": "1", "ttl": "5h"})).await;
    let secret = call(&core, &root, Operation::Read, "long/s", json!({}))
        .await
        .unwrap();
    let user = json!({"password": "hunter2", "ttl": "5h", "max_ttl": "15h"});
    put(&core, &root, "auth/userpass/users/alice", user).await;
    let login = core
        .handle(
            Request::new(Operation::Update, "auth/userpass/login/alice")
                .with_data(obj(json!({"password": "hunter2"}))),
        )
        .await
        .unwrap();
    let token = call(
        &core,
        &root,
        Operation::Update,
        "auth/token/create",
        json!({"ttl": "5h"}),
    )
    .await
    .unwrap();

    for (what, r) in [
        ("enable", secrets),
        ("tune", secrets_tune),
        ("auth enable", auth),
        ("auth tune", auth_tune),
    ] {
        assert!(r.is_ok(), "{what} refused: {r:?}");
    }
    assert_eq!(
        get(&core, &root, "sys/mounts/long/tune").await["max_lease_ttl"],
        72_000
    );
    assert_eq!(
        get(&core, &root, "sys/auth/userpass/tune").await["max_lease_ttl"],
        72_000
    );
    assert_eq!(secret.lease.as_ref().unwrap().duration_secs, 3600);
    assert!(
        secret.warnings.iter().any(|w| w.contains("capped")),
        "{secret:?}"
    );
    assert_eq!(login.auth.unwrap().lease_duration, 3600);
    assert_eq!(token.auth.unwrap().lease_duration, 3600);
}

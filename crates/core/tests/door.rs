//! The door test: every route core serves passes the same admission.
//!
//! It walks the whole route table (and a sample path of every engine and auth method) and
//! proves, route by route, that a request is audited, spends a use of a use-limited token,
//! is refused outside the token's bound CIDRs, and is refused while sealed. A new endpoint
//! that skipped any of these would fail here; one that skipped the table is unreachable.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use strongroom_api::{InitRequest, UnsealRequest};
use strongroom_core::routing::{Access, ROUTES};
use strongroom_core::{Core, CoreConfig, CoreError, Operation, Request, Response};
use strongroom_storage::InmemStorage;

/// A policy that grants everything, sudo included: the door, not the ACL, is under test.
const ALL: &str = r#"path "*" { capabilities = ["create", "read", "update", "delete", "list", "patch", "sudo"] }"#;

/// Sample paths served by mounts rather than the table, with whether they need a token.
const MOUNT_SAMPLES: &[(&str, Operation, bool)] = &[
    ("secret/data/app", Operation::Read, true),
    ("secret/metadata/app", Operation::Read, true),
    ("kv1/app", Operation::Read, true),
    ("cubbyhole/app", Operation::Read, true),
    ("auth/userpass/users/bob", Operation::Read, true),
    ("auth/approle/role/web", Operation::Read, true),
    ("auth/userpass/login/bob", Operation::Update, false),
    ("auth/approle/login", Operation::Update, false),
];

struct Env {
    core: Arc<Core>,
    keys: Vec<String>,
    root: String,
    audit_log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn client() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

async fn call(
    env: &Env,
    op: Operation,
    path: &str,
    token: Option<&str>,
) -> Result<Response, CoreError> {
    call_from(env, op, path, token, client()).await
}

async fn call_from(
    env: &Env,
    op: Operation,
    path: &str,
    token: Option<&str>,
    from: SocketAddr,
) -> Result<Response, CoreError> {
    let mut req = Request::new(op, path).with_client_addr(from);
    req.token = token.map(str::to_owned);
    env.core.handle(req).await
}

async fn root_call(env: &Env, op: Operation, path: &str, data: Value) -> Response {
    let req = Request::new(op, path)
        .with_token(&env.root)
        .with_data(obj(data))
        .with_client_addr(client());
    env.core
        .handle(req)
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A fresh unsealed core with a file audit device, the mounts of `MOUNT_SAMPLES` and the
/// all-granting policy.
async fn setup() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let audit_log = dir.path().join("audit.log");
    let core = Core::new(CoreConfig::default(), Arc::new(InmemStorage::new()));
    let init = core
        .init(InitRequest {
            secret_shares: 1,
            secret_threshold: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let env = Env {
        core,
        keys: init.keys,
        root: init.root_token,
        audit_log,
        _dir: dir,
    };
    unseal(&env).await;
    let log = env.audit_log.to_string_lossy().into_owned();
    root_call(
        &env,
        Operation::Update,
        "sys/audit/file",
        json!({"type": "file", "options": {"file_path": log}}),
    )
    .await;
    root_call(
        &env,
        Operation::Update,
        "sys/mounts/secret",
        json!({"type": "kv", "options": {"version": "2"}}),
    )
    .await;
    root_call(
        &env,
        Operation::Update,
        "sys/mounts/kv1",
        json!({"type": "kv"}),
    )
    .await;
    root_call(
        &env,
        Operation::Update,
        "sys/auth/userpass",
        json!({"type": "userpass"}),
    )
    .await;
    root_call(
        &env,
        Operation::Update,
        "sys/auth/approle",
        json!({"type": "approle"}),
    )
    .await;
    root_call(
        &env,
        Operation::Update,
        "sys/policies/acl/all",
        json!({"policy": ALL}),
    )
    .await;
    root_call(
        &env,
        Operation::Update,
        "sys/policies/acl/nosudo",
        json!({"policy": ALL.replace(", \"sudo\"", "")}),
    )
    .await;
    env
}

async fn unseal(env: &Env) {
    for key in &env.keys {
        env.core
            .unseal(UnsealRequest {
                key: Some(key.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
    }
}

/// A token with only `policy`.
async fn token_with(env: &Env, policy: &str) -> String {
    let body = json!({"policies": [policy], "no_default_policy": true});
    let resp = root_call(env, Operation::Update, "auth/token/create", body).await;
    resp.auth.unwrap().client_token
}

/// A token with the all-granting policy and the given limits.
async fn token(env: &Env, limits: Value) -> String {
    let mut body = json!({"policies": ["all"], "no_default_policy": true});
    for (k, v) in obj(limits) {
        body[k] = v;
    }
    let resp = root_call(env, Operation::Update, "auth/token/create", body).await;
    resp.auth.unwrap().client_token
}

/// A token bound to 10.0.0.0/8 (bound CIDRs come from a token role, as in Vault).
async fn bound_token(env: &Env) -> String {
    let role = json!({"allowed_policies": ["all"], "token_bound_cidrs": ["10.0.0.0/8"]});
    root_call(env, Operation::Update, "auth/token/roles/bound", role).await;
    let body = json!({"policies": ["all"], "no_default_policy": true});
    let resp = root_call(env, Operation::Update, "auth/token/create/bound", body).await;
    resp.auth.unwrap().client_token
}

/// How many `request` entries the audit log holds for `path`.
fn audited(log: &Path, path: &str) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    // A token in the path is audited hashed: match the form and the hash's prefix.
    let matches = |logged: &str| match strongroom_core::routing::token_in_path(path) {
        Some((form, _)) => logged.starts_with(&format!("{form}hmac-sha256:")),
        None => logged == path,
    };
    let entries: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["request"]["path"].as_str().is_some_and(matches))
        .collect();
    let count = |kind: &str| entries.iter().filter(|v| v["type"] == kind).count();
    assert_eq!(
        count("request"),
        count("response"),
        "{path}: a request entry without its response entry"
    );
    count("request")
}

/// The four properties for one authenticated route.
async fn check_token_route(path: &str, op: Operation) {
    // Set up: a use-limited token and a CIDR-bound one, both otherwise all-powerful.
    let env = setup().await;
    // Two uses, so that handlers acting on the caller's own token (renew-self) still find
    // it on the first request; the third request must be refused.
    let limited = token(&env, json!({"num_uses": 2})).await;
    let bound = bound_token(&env).await;

    // Outside the bound CIDRs: refused, and the refusal is audited.
    let before = audited(&env.audit_log, path);
    let refused = call(&env, op, path, Some(&bound)).await;
    assert!(
        matches!(refused, Err(CoreError::PermissionDenied)),
        "{path}: CIDR-bound token from 127.0.0.1 got {refused:?}"
    );
    assert_eq!(
        audited(&env.audit_log, path),
        before + 1,
        "{path}: the refused request is not audited"
    );
    // Inside them the same token is admitted: the refusal above was the CIDR bound's.
    let inside: SocketAddr = "10.1.2.3:40000".parse().unwrap();
    let admitted = call_from(&env, op, path, Some(&bound), inside).await;
    assert!(
        !matches!(admitted, Err(CoreError::PermissionDenied)),
        "{path}: CIDR-bound token from inside its CIDR got {admitted:?}"
    );
    let mut before = before + 1;
    if env.core.sealed() {
        unseal(&env).await; // the route was sys/seal
    }

    // Root-protected paths need sudo, with or without a trailing slash.
    if strongroom_core::routing::requires_sudo(path, op) {
        let nosudo = token_with(&env, "nosudo").await;
        for form in [path.to_owned(), format!("{path}/")] {
            let got = call(&env, op, &form, Some(&nosudo)).await;
            assert!(
                matches!(got, Err(CoreError::PermissionDenied)),
                "{form}: admitted without sudo: {got:?}"
            );
        }
        // The refusal at `path` itself is audited too (and, where the path carries a token
        // and so is matched by its hashed form, the one with the slash as well).
        before += if strongroom_core::routing::token_in_path(path).is_some() {
            2
        } else {
            1
        };
    }

    // The first use: admitted and audited.
    let first = call(&env, op, path, Some(&limited)).await;
    assert!(
        !matches!(first, Err(CoreError::PermissionDenied)),
        "{path}: a fresh token was refused: {first:?}"
    );
    assert_eq!(
        audited(&env.audit_log, path),
        before + 2,
        "{path}: the admitted request is not audited"
    );
    if env.core.sealed() {
        unseal(&env).await; // the route was sys/seal
    }

    // The uses are spent: after a second request, a third is refused.
    let _ = call(&env, op, path, Some(&limited)).await;
    if env.core.sealed() {
        unseal(&env).await;
    }
    let second = call(&env, op, path, Some(&limited)).await;
    assert!(
        matches!(second, Err(CoreError::PermissionDenied)),
        "{path}: a used-up token was admitted: {second:?}"
    );

    // Sealed: refused before anything else.
    check_sealed(&env, path, op).await;
}

/// Unauthenticated routes still pass the door: audited, refused while sealed.
async fn check_open_route(path: &str, op: Operation) {
    let env = setup().await;
    let before = audited(&env.audit_log, path);
    let _ = call(&env, op, path, None).await;
    assert_eq!(
        audited(&env.audit_log, path),
        before + 1,
        "{path}: the request is not audited"
    );
    check_sealed(&env, path, op).await;
}

async fn check_sealed(env: &Env, path: &str, op: Operation) {
    env.core.seal(Some(&env.root)).await.unwrap();
    let sealed = call(env, op, path, Some(&env.root)).await;
    if path == "sys/seal" {
        // Sealing a sealed node is a no-op that needs no token.
        assert!(
            matches!(sealed, Ok(ref r) if r.is_empty()),
            "{path}: {sealed:?}"
        );
    } else {
        assert!(
            matches!(sealed, Err(CoreError::Sealed)),
            "{path} while sealed: {sealed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_passes_the_door() {
    let mut token_routes = 0;
    let mut open_routes = 0;
    for row in ROUTES {
        let (path, op) = row.sample;
        match row.access {
            Access::Token => {
                check_token_route(path, op).await;
                token_routes += 1;
            }
            Access::Unauthenticated | Access::UnauthenticatedRead => {
                check_open_route(path, op).await;
                open_routes += 1;
            }
            Access::NodeState => {}
        }
    }
    for &(path, op, needs_token) in MOUNT_SAMPLES {
        if needs_token {
            check_token_route(path, op).await;
            token_routes += 1;
        } else {
            check_open_route(path, op).await;
            open_routes += 1;
        }
    }
    println!("door: {token_routes} authenticated and {open_routes} unauthenticated routes checked");
    assert!(token_routes >= 70, "the route table shrank: {token_routes}");
}

#[tokio::test]
async fn node_state_paths_never_reach_core_and_unlisted_paths_do_not_exist() {
    // Why: node-state paths are answered by `http` before the door; if core served them
    // too there would be two ways in. An unlisted built-in path must not answer at all.
    let env = setup().await;
    for row in ROUTES.iter().filter(|r| r.access == Access::NodeState) {
        let (path, op) = row.sample;
        let got = call(&env, op, path, Some(&env.root)).await;
        assert!(
            matches!(got, Err(CoreError::UnsupportedPath(_))),
            "{path}: {got:?}"
        );
    }
    let got = call(&env, Operation::Read, "sys/not-a-route", Some(&env.root)).await;
    assert!(matches!(got, Err(CoreError::UnsupportedPath(_))), "{got:?}");
}

#[tokio::test]
async fn a_request_refused_by_a_failing_audit_device_spends_no_use() {
    // Why: a request that is not served must not cost the caller; the use is counted only
    // after the request has been audited.
    let env = setup().await;
    let limited = token(&env, json!({"num_uses": 1})).await;
    std::fs::remove_file(&env.audit_log).unwrap();
    std::fs::create_dir(&env.audit_log).unwrap(); // the device can no longer write
    let refused = call(&env, Operation::Read, "sys/mounts", Some(&limited)).await;
    assert!(
        matches!(&refused, Err(CoreError::Internal(m)) if m.contains("audit device")),
        "served without an audit trail: {refused:?}"
    );

    std::fs::remove_dir(&env.audit_log).unwrap();
    let served = call(&env, Operation::Read, "sys/mounts", Some(&limited)).await;
    assert!(
        served.is_ok(),
        "the failed request spent the token's only use: {served:?}"
    );
}

#[tokio::test]
async fn raw_answers_are_never_sent_unwrapped_to_a_wrapping_request() {
    // Why: a policy's min_wrapping_ttl must not be skipped just because the answer is bytes.
    let env = setup().await;
    let mut req = Request::new(Operation::Read, "sys/storage/raft/snapshot")
        .with_token(&env.root)
        .with_client_addr(client());
    req.wrap_ttl = Some(std::time::Duration::from_secs(60));
    let got = env.core.handle(req).await;
    assert!(matches!(got, Err(CoreError::InvalidRequest(_))), "{got:?}");
}

//! Response wrapping and audit devices, driven through `Core::handle` with real tokens.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use strongroom_api::{InitRequest, UnsealRequest, WrapInfo};
use strongroom_core::{Core, CoreConfig, CoreError, Operation, Request, Response};
use strongroom_storage::{InmemStorage, Storage};

const INVALID: &str = "wrapping token is not valid or does not exist";

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

/// An initialized, unsealed core over memory storage, its unseal keys and root token.
async fn ready_core() -> (Arc<Core>, Arc<InmemStorage>, Vec<String>, String) {
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
    unseal(&core, &init.keys).await;
    (core, storage, init.keys, init.root_token)
}

async fn unseal(core: &Core, keys: &[String]) {
    for k in keys {
        core.unseal(UnsealRequest {
            key: Some(k.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    }
}

async fn call(
    core: &Core,
    op: Operation,
    path: &str,
    token: Option<&str>,
    data: Value,
) -> Result<Response, CoreError> {
    let mut req = Request::new(op, path).with_data(obj(data));
    req.token = token.map(str::to_owned);
    core.handle(req).await
}

/// Wraps `data` through `sys/wrapping/wrap` with the given TTL.
async fn wrap(core: &Core, root: &str, data: Value, ttl: Duration) -> WrapInfo {
    let mut req = Request::new(Operation::Update, "sys/wrapping/wrap")
        .with_token(root)
        .with_data(obj(data));
    req.wrap_ttl = Some(ttl);
    core.handle(req).await.unwrap().wrap_info.unwrap()
}

/// Unwraps `wrapping` and returns the wrapped answer's parts as the client would see them.
async fn unwrap(core: &Core, caller: Option<&str>, wrapping: &str) -> Result<Value, CoreError> {
    let resp = call(
        core,
        Operation::Update,
        "sys/wrapping/unwrap",
        caller,
        json!({"token": wrapping}),
    )
    .await?;
    Ok(inner_parts(resp))
}

/// The client-visible parts of an unwrap's answer (http renders them as the envelope).
fn inner_parts(resp: strongroom_core::Response) -> Value {
    let inner = resp.unwrapped.expect("unwrap carries the wrapped answer");
    json!({
        "data": inner.data,
        "auth": inner.auth,
        "wrap_info": inner.wrap_info,
        "mount_type": inner.mount_type,
    })
}

fn assert_invalid(r: Result<impl std::fmt::Debug, CoreError>) {
    match r {
        Err(CoreError::InvalidRequest(m)) => assert_eq!(m, INVALID),
        other => panic!("expected the invalid wrapping token error, got {other:?}"),
    }
}

#[tokio::test]
async fn wrap_and_unwrap_round_trip_and_are_single_use() {
    // Why: the payload must come back identical exactly once, and the reply to a wrapped
    // request must carry nothing but wrap_info.
    let (core, _, _, root) = ready_core().await;
    let payload = json!({"password": "p4ss", "n": 7, "nested": {"list": ["a", "b"]}});

    let mut req = Request::new(Operation::Update, "sys/wrapping/wrap")
        .with_token(&root)
        .with_data(obj(payload.clone()));
    req.wrap_ttl = Some(Duration::from_secs(120));
    let resp = core.handle(req).await.unwrap();
    let info = resp.wrap_info.clone().unwrap();
    assert!(resp.data.is_none() && resp.auth.is_none());
    assert_eq!(info.ttl, 120);
    assert_eq!(info.creation_path, "sys/wrapping/wrap");
    assert!(info.token.starts_with("hvs."));
    assert!(!info.accessor.is_empty());
    assert!(humantime::parse_rfc3339(&info.creation_time).is_ok());

    let body = unwrap(&core, Some(&root), &info.token).await.unwrap();
    assert_eq!(body["data"], payload);
    assert_eq!(body["auth"], Value::Null);
    assert_eq!(body["wrap_info"], Value::Null);

    assert_invalid(unwrap(&core, Some(&root), &info.token).await);
}

#[tokio::test]
async fn any_response_can_be_wrapped_by_header() {
    // Why: X-Vault-Wrap-TTL applies to every endpoint, not only sys/wrapping/wrap.
    let (core, _, _, root) = ready_core().await;
    let plain = call(
        &core,
        Operation::Read,
        "sys/key-status",
        Some(&root),
        json!({}),
    )
    .await
    .unwrap();

    let mut req = Request::new(Operation::Read, "sys/key-status").with_token(&root);
    req.wrap_ttl = Some(Duration::from_secs(60));
    let wrapped = core.handle(req).await.unwrap();
    let info = wrapped.wrap_info.unwrap();
    assert!(wrapped.data.is_none());
    assert_eq!(info.creation_path, "sys/key-status");

    let body = unwrap(&core, None, &info.token).await.unwrap();
    assert_eq!(body["data"]["term"], json!(plain.data.unwrap()["term"]));
    assert_eq!(body["mount_type"], "system");
}

#[tokio::test]
async fn wrapped_token_create_reports_the_inner_accessor() {
    // Why: hvac checks wrapped_accessor against the token found inside the wrapper.
    let (core, _, _, root) = ready_core().await;
    let mut req = Request::new(Operation::Update, "auth/token/create")
        .with_token(&root)
        .with_data(obj(json!({"policies": ["default"]})));
    req.wrap_ttl = Some(Duration::from_secs(900));
    let resp = core.handle(req).await.unwrap();
    assert!(resp.auth.is_none());
    let info = resp.wrap_info.unwrap();
    assert_eq!(info.ttl, 900);

    let body = unwrap(&core, None, &info.token).await.unwrap();
    assert_eq!(body["auth"]["accessor"], json!(info.wrapped_accessor));
    assert!(
        body["auth"]["client_token"]
            .as_str()
            .unwrap()
            .starts_with("hvs.")
    );
}

#[tokio::test]
async fn unwrap_with_the_wrapping_token_as_client_token() {
    // Why: hvac's cubbyhole auth unwraps with no body, authenticating as the wrapping token.
    let (core, _, _, root) = ready_core().await;
    let info = wrap(&core, &root, json!({"k": "v"}), Duration::from_secs(60)).await;

    let resp = call(
        &core,
        Operation::Update,
        "sys/wrapping/unwrap",
        Some(&info.token),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(inner_parts(resp)["data"], json!({"k": "v"}));

    let again = call(
        &core,
        Operation::Update,
        "sys/wrapping/unwrap",
        Some(&info.token),
        json!({}),
    )
    .await;
    assert_invalid(again);
}

#[tokio::test]
async fn wrapping_ttl_is_enforced() {
    // Why: a wrapping token outliving its TTL would defeat the point of a short TTL.
    let (core, _, _, root) = ready_core().await;
    let info = wrap(&core, &root, json!({"k": "v"}), Duration::from_secs(1)).await;
    assert_eq!(info.ttl, 1);

    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = call(
            &core,
            Operation::Update,
            "sys/wrapping/lookup",
            None,
            json!({"token": info.token}),
        )
        .await;
        if r.is_err() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "token outlived its TTL"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_invalid(unwrap(&core, None, &info.token).await);
}

#[tokio::test]
async fn lookup_reports_creation_facts_without_consuming() {
    // Why: a recipient checks where a token came from before trusting it, then unwraps.
    let (core, _, _, root) = ready_core().await;
    let info = wrap(&core, &root, json!({"k": "v"}), Duration::from_secs(300)).await;

    let data = call(
        &core,
        Operation::Update,
        "sys/wrapping/lookup",
        None,
        json!({"token": info.token}),
    )
    .await
    .unwrap()
    .data
    .unwrap();
    assert_eq!(data["creation_path"], "sys/wrapping/wrap");
    assert_eq!(data["creation_ttl"], 300);
    assert_eq!(data["creation_time"], json!(info.creation_time));

    assert_eq!(
        unwrap(&core, None, &info.token).await.unwrap()["data"],
        json!({"k": "v"})
    );
    let after = call(
        &core,
        Operation::Update,
        "sys/wrapping/lookup",
        None,
        json!({"token": info.token}),
    )
    .await;
    assert_invalid(after);
}

#[tokio::test]
async fn rewrap_moves_the_payload_and_invalidates_the_old_token() {
    // Why: rewrap refreshes a wrapper; the old reference must stop working.
    let (core, _, _, root) = ready_core().await;
    let old = wrap(&core, &root, json!({"k": "v"}), Duration::from_secs(200)).await;

    let new = call(
        &core,
        Operation::Update,
        "sys/wrapping/rewrap",
        Some(&root),
        json!({"token": old.token}),
    )
    .await
    .unwrap()
    .wrap_info
    .unwrap();
    assert_ne!(new.token, old.token);
    assert_eq!(new.ttl, 200);
    assert_eq!(new.creation_path, "sys/wrapping/wrap");

    assert_invalid(unwrap(&core, None, &old.token).await);
    assert_eq!(
        unwrap(&core, None, &new.token).await.unwrap()["data"],
        json!({"k": "v"})
    );
}

#[tokio::test]
async fn other_tokens_and_other_uses_are_refused() {
    // Why: only wrapping tokens unwrap, and a wrapping token opens nothing but its wrapper.
    let (core, _, _, root) = ready_core().await;
    assert_invalid(unwrap(&core, None, &root).await);
    assert_invalid(unwrap(&core, None, "hvs.doesnotexist000000000000").await);
    assert_invalid(
        call(
            &core,
            Operation::Update,
            "sys/wrapping/unwrap",
            None,
            json!({}),
        )
        .await,
    );

    let info = wrap(&core, &root, json!({"k": "v"}), Duration::from_secs(60)).await;
    let misuse = call(
        &core,
        Operation::Read,
        "sys/key-status",
        Some(&info.token),
        json!({}),
    )
    .await;
    assert!(
        matches!(misuse, Err(CoreError::PermissionDenied)),
        "{misuse:?}"
    );
    let misuse = call(
        &core,
        Operation::Read,
        "sys/audit",
        Some(&info.token),
        json!({}),
    )
    .await;
    assert!(
        matches!(misuse, Err(CoreError::PermissionDenied)),
        "{misuse:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------------------

async fn enable_file(
    core: &Core,
    root: &str,
    name: &str,
    options: Value,
) -> Result<Response, CoreError> {
    call(
        core,
        Operation::Update,
        &format!("sys/audit/{name}"),
        Some(root),
        json!({"type": "file", "options": options}),
    )
    .await
}

async fn audit_hash(core: &Core, root: &str, device: &str, input: &str) -> String {
    call(
        core,
        Operation::Update,
        &format!("sys/audit-hash/{device}"),
        Some(root),
        json!({"input": input}),
    )
    .await
    .unwrap()
    .data
    .unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn audit_lines_pair_up_and_hash_secrets() {
    // Why: the audit trail must show every request and its outcome without ever holding a
    // secret or token in clear, yet let an operator find a known value via audit-hash.
    let (core, _, _, root) = ready_core().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let enabled = enable_file(
        &core,
        &root,
        "file",
        json!({"file_path": log.to_str().unwrap()}),
    )
    .await
    .unwrap();
    assert!(enabled.is_empty());

    let secret = "s3cr3t-value-in-clear";
    let mut req = Request::new(Operation::Update, "sys/wrapping/wrap")
        .with_token(&root)
        .with_data(obj(json!({"password": secret, "count": 3})));
    req.wrap_ttl = Some(Duration::from_secs(60));
    let id = req.id.clone();
    let info = core.handle(req).await.unwrap().wrap_info.unwrap();

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(secret), "plaintext secret in the audit log");
    assert!(!text.contains(&root), "root token in the audit log");
    assert!(
        !text.contains(&info.token),
        "wrapping token in the audit log"
    );

    let ours: Vec<Value> = lines(&log)
        .into_iter()
        .filter(|l| l["request"]["id"] == id)
        .collect();
    assert_eq!(ours.len(), 2, "one request and one response line");
    assert_eq!(ours[0]["type"], "request");
    assert_eq!(ours[1]["type"], "response");
    let secret_hash = audit_hash(&core, &root, "file", secret).await;
    let root_hash = audit_hash(&core, &root, "file", &root).await;
    assert!(secret_hash.starts_with("hmac-sha256:"));
    for line in &ours {
        assert_eq!(line["request"]["data"]["password"], json!(secret_hash));
        assert_eq!(line["request"]["data"]["count"], 3);
        assert_eq!(line["request"]["client_token"], json!(root_hash));
        assert_eq!(line["auth"]["client_token"], json!(root_hash));
        assert_eq!(line["request"]["operation"], "update");
        assert_eq!(line["request"]["path"], "sys/wrapping/wrap");
        assert_eq!(line["request"]["mount_type"], "system");
        assert_eq!(line["request"]["wrap_ttl"], 60);
        assert!(humantime::parse_rfc3339(line["time"].as_str().unwrap()).is_ok());
    }
    assert_eq!(ours[0]["auth"]["policy_results"]["allowed"], true);
    let wrap_hash = audit_hash(&core, &root, "file", &info.token).await;
    assert_eq!(ours[1]["response"]["wrap_info"]["token"], json!(wrap_hash));
}

#[tokio::test]
async fn failed_requests_are_audited_with_their_error() {
    // Why: denied requests are what an investigation looks for first.
    let (core, _, _, root) = ready_core().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    enable_file(&core, &root, "file", json!({"path": log.to_str().unwrap()}))
        .await
        .unwrap();

    let req = Request::new(Operation::Read, "sys/key-status").with_token("hvs.bogus");
    let id = req.id.clone();
    assert!(matches!(
        core.handle(req).await,
        Err(CoreError::PermissionDenied)
    ));

    let ours: Vec<Value> = lines(&log)
        .into_iter()
        .filter(|l| l["request"]["id"] == id)
        .collect();
    assert_eq!(ours.len(), 2);
    assert_eq!(ours[1]["error"], "permission denied");
    assert!(!std::fs::read_to_string(&log).unwrap().contains("hvs.bogus"));
}

#[tokio::test]
async fn devices_list_special_outputs_and_bad_options() {
    // Why: hvac and the CLI enable stdout/discard devices and rely on 400s and 204s here.
    let (core, _, _, root) = ready_core().await;
    enable_file(
        &core,
        &root,
        "out",
        json!({"file_path": "stdout", "log_raw": "false"}),
    )
    .await
    .unwrap();
    enable_file(&core, &root, "nowhere/", json!({"file_path": "discard"}))
        .await
        .unwrap();

    let listed = call(&core, Operation::Read, "sys/audit", Some(&root), json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(listed["out/"]["type"], "file");
    assert_eq!(listed["out/"]["path"], "out/");
    assert_eq!(listed["out/"]["options"]["file_path"], "stdout");
    assert_eq!(listed["nowhere/"]["options"]["file_path"], "discard");
    assert_eq!(listed["nowhere/"]["local"], false);
    // Disable the stdout device at once: its lines would clutter the test output.
    let gone = call(
        &core,
        Operation::Delete,
        "sys/audit/out",
        Some(&root),
        json!({}),
    )
    .await
    .unwrap();
    assert!(gone.is_empty());

    let missing = enable_file(&core, &root, "bad", json!({})).await;
    assert!(
        matches!(&missing, Err(CoreError::InvalidRequest(m)) if m == "file_path is required"),
        "{missing:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let unwritable = enable_file(
        &core,
        &root,
        "bad",
        json!({"file_path": dir.path().to_str().unwrap()}),
    )
    .await;
    assert!(
        matches!(unwritable, Err(CoreError::InvalidRequest(_))),
        "{unwritable:?}"
    );
    let dup = enable_file(&core, &root, "nowhere", json!({"file_path": "discard"})).await;
    assert!(matches!(dup, Err(CoreError::InvalidRequest(_))), "{dup:?}");
    let no_type = call(
        &core,
        Operation::Update,
        "sys/audit/x",
        Some(&root),
        json!({}),
    )
    .await;
    assert!(
        matches!(no_type, Err(CoreError::InvalidRequest(_))),
        "{no_type:?}"
    );

    let unknown = call(
        &core,
        Operation::Update,
        "sys/audit-hash/absent",
        Some(&root),
        json!({"input": "x"}),
    )
    .await;
    assert!(
        matches!(&unknown, Err(CoreError::InvalidRequest(m)) if m.contains("unknown audit backend")),
        "{unknown:?}"
    );

    let gone = call(
        &core,
        Operation::Delete,
        "sys/audit/absent",
        Some(&root),
        json!({}),
    )
    .await
    .unwrap();
    assert!(gone.is_empty());
    let listed = call(&core, Operation::Read, "sys/audit", Some(&root), json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert!(listed.get("out/").is_none() && listed.get("nowhere/").is_some());
}

#[tokio::test]
async fn requests_fail_closed_when_no_device_can_record() {
    // Why: with auditing on, an unrecorded request must not be served (Vault's blocking
    // semantics); one working device is enough; recovery needs no restart.
    let (core, _, _, root) = ready_core().await;
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("audit.log");
    enable_file(
        &core,
        &root,
        "file",
        json!({"file_path": log.to_str().unwrap()}),
    )
    .await
    .unwrap();
    let read = || {
        call(
            &core,
            Operation::Read,
            "sys/key-status",
            Some(&root),
            json!({}),
        )
    };
    read().await.unwrap();

    // Removing the directory works even for root, unlike chmod.
    std::fs::remove_dir_all(&logs).unwrap();
    match read().await {
        Err(CoreError::Internal(m)) => {
            assert!(
                m.contains("failed to log request to any audit device"),
                "{m}"
            )
        }
        other => panic!("expected fail-closed refusal, got {other:?}"),
    }

    std::fs::create_dir(&logs).unwrap();
    read().await.unwrap();
    assert!(!lines(&log).is_empty());

    enable_file(&core, &root, "spare", json!({"file_path": "discard"}))
        .await
        .unwrap();
    std::fs::remove_dir_all(&logs).unwrap();
    read().await.unwrap();
}

#[tokio::test]
async fn devices_and_salts_survive_restart_and_log_raw_is_honoured() {
    // Why: the audit trail must resume after a restart with the same salt (hashes stay
    // comparable), and log_raw is an explicit choice to log in clear.
    let (core, storage, keys, root) = ready_core().await;
    let dir = tempfile::tempdir().unwrap();
    let hashed = dir.path().join("hashed.log");
    let raw = dir.path().join("raw.log");
    enable_file(
        &core,
        &root,
        "hashed",
        json!({"file_path": hashed.to_str().unwrap()}),
    )
    .await
    .unwrap();
    enable_file(
        &core,
        &root,
        "raw",
        json!({"file_path": raw.to_str().unwrap(), "log_raw": true, "mode": "0640"}),
    )
    .await
    .unwrap();
    let before = audit_hash(&core, &root, "hashed", "x").await;

    core.shutdown().await;
    let core = Core::new(CoreConfig::default(), storage.clone() as Arc<dyn Storage>);
    unseal(&core, &keys).await;
    let after = audit_hash(&core, &root, "hashed", "x").await;
    assert_eq!(before, after);

    wrap(
        &core,
        &root,
        json!({"pw": "visible-when-raw"}),
        Duration::from_secs(60),
    )
    .await;
    assert!(
        std::fs::read_to_string(&raw)
            .unwrap()
            .contains("visible-when-raw")
    );
    assert!(
        !std::fs::read_to_string(&hashed)
            .unwrap()
            .contains("visible-when-raw")
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&raw).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}

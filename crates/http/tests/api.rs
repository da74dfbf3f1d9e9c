//! The Vault wire format over the router: exact JSON shapes, status codes and headers.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use strongroom_core::{Core, CoreConfig};
use strongroom_http::{RouterOptions, router};
use strongroom_storage::InmemStorage;
use tower::ServiceExt;

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

fn app_with(opts: RouterOptions) -> Router {
    let core = Core::new(CoreConfig::default(), Arc::new(InmemStorage::new()));
    router(core, opts)
}

fn app() -> Router {
    app_with(RouterOptions::default())
}

async fn send(app: &Router, method: &str, uri: &str, token: Option<&str>, body: &str) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("x-vault-token", t);
    }
    let req = req.body(Body::from(body.to_owned())).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

/// Initializes (3 shares, threshold 2) and unseals; returns the root token.
async fn init_and_unseal(app: &Router) -> String {
    let init = send(
        app,
        "PUT",
        "/v1/sys/init",
        None,
        r#"{"secret_shares":3,"secret_threshold":2}"#,
    )
    .await;
    assert_eq!(init.status, 200);
    let init = init.json();
    for key in init["keys"].as_array().unwrap().iter().take(2) {
        let r = send(
            app,
            "PUT",
            "/v1/sys/unseal",
            None,
            &json!({ "key": key }).to_string(),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    init["root_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn init_seal_status_unseal_flow_has_vault_shapes() {
    // The CLI and hvac decode these objects field by field; every name and type must match.
    let app = app();

    let before = send(&app, "GET", "/v1/sys/init", None, "").await;
    assert_eq!(before.status, 200);
    assert_eq!(before.json(), json!({"initialized": false}));
    assert_eq!(before.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(before.headers[header::CACHE_CONTROL], "no-store");

    let init = send(
        &app,
        "POST",
        "/v1/sys/init",
        None,
        r#"{"secret_shares":3,"secret_threshold":2}"#,
    )
    .await;
    assert_eq!(init.status, 200);
    let init = init.json();
    assert_eq!(init["keys"].as_array().unwrap().len(), 3);
    assert_eq!(init["keys_base64"].as_array().unwrap().len(), 3);
    assert!(init["root_token"].as_str().unwrap().starts_with("hvs."));

    let status = send(&app, "GET", "/v1/sys/seal-status", None, "")
        .await
        .json();
    assert_eq!(status["type"], "shamir");
    assert_eq!(status["initialized"], true);
    assert_eq!(status["sealed"], true);
    assert_eq!(status["t"], 2);
    assert_eq!(status["n"], 3);
    assert_eq!(status["progress"], 0);
    for field in [
        "nonce",
        "version",
        "build_date",
        "migration",
        "recovery_seal",
        "storage_type",
    ] {
        assert!(status.get(field).is_some(), "seal-status lacks {field}");
    }

    let first = send(
        &app,
        "PUT",
        "/v1/sys/unseal",
        None,
        &json!({"key": init["keys"][0]}).to_string(),
    )
    .await;
    assert_eq!(first.json()["progress"], 1);
    assert_eq!(first.json()["sealed"], true);
    let second = send(
        &app,
        "PUT",
        "/v1/sys/unseal",
        None,
        &json!({"key": init["keys_base64"][1]}).to_string(),
    )
    .await;
    assert_eq!(second.status, 200);
    assert_eq!(second.json()["sealed"], false);
    assert!(second.json()["cluster_id"].is_string());

    let again = send(
        &app,
        "PUT",
        "/v1/sys/init",
        None,
        r#"{"secret_shares":1,"secret_threshold":1}"#,
    )
    .await;
    assert_eq!(again.status, 400);
    assert_eq!(
        again.json(),
        json!({"errors": ["Vault is already initialized"]})
    );
}

#[tokio::test]
async fn sealed_server_answers_503_on_logical_paths() {
    // hvac maps 503 to VaultDown; any other code would hide that the server is sealed.
    let app = app();
    send(
        &app,
        "PUT",
        "/v1/sys/init",
        None,
        r#"{"secret_shares":1,"secret_threshold":1}"#,
    )
    .await;

    let r = send(&app, "GET", "/v1/secret/foo", Some("hvs.whatever"), "").await;

    assert_eq!(r.status, 503);
    assert_eq!(r.json(), json!({"errors": ["Vault is sealed"]}));
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
}

#[tokio::test]
async fn missing_or_bad_token_is_403() {
    // Unauthenticated access to any logical path must be refused, even for unknown paths.
    let app = app();
    init_and_unseal(&app).await;

    let none = send(&app, "GET", "/v1/sys/mounts", None, "").await;
    let bad = send(&app, "GET", "/v1/no/such/path", Some("hvs.not-a-token"), "").await;

    assert_eq!(none.status, 403);
    assert_eq!(none.json(), json!({"errors": ["permission denied"]}));
    assert_eq!(bad.status, 403);
}

#[tokio::test]
async fn bearer_authorization_is_accepted() {
    // Some clients send `Authorization: Bearer`; it must authenticate like X-Vault-Token.
    let app = app();
    let root = init_and_unseal(&app).await;
    let req = Request::builder()
        .uri("/v1/sys/mounts")
        .header("authorization", format!("Bearer {root}"))
        .header("x-vault-request", "true")
        .body(Body::empty())
        .unwrap();

    let resp = app.clone().oneshot(req).await.unwrap();

    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn mounts_listing_injects_data_at_top_level() {
    // hvac reads `list_mounted_secrets_engines()["sys/"]` at the top level of the answer.
    let app = app();
    let root = init_and_unseal(&app).await;

    let r = send(&app, "GET", "/v1/sys/mounts", Some(&root), "").await;

    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["sys/"]["type"], "system");
    assert_eq!(v["data"]["sys/"]["type"], "system");
    assert!(v["request_id"].as_str().unwrap().len() >= 32);
    assert_eq!(v["warnings"], Value::Null);
    assert_eq!(v["wrap_info"], Value::Null);
    assert_eq!(v["lease_duration"], 0);
}

#[tokio::test]
async fn list_verb_and_list_query_both_list() {
    // The Go CLI uses `GET ?list=true`, hvac uses `LIST` and `?list=True`: all must list keys.
    let app = app();
    let root = init_and_unseal(&app).await;
    let mount = send(
        &app,
        "POST",
        "/v1/sys/mounts/kv",
        Some(&root),
        r#"{"type":"kv"}"#,
    )
    .await;
    assert_eq!(mount.status, 204);
    let put = send(&app, "PUT", "/v1/kv/a", Some(&root), r#"{"v":"1"}"#).await;
    assert_eq!(put.status, 204);
    assert_eq!(put.headers[header::CONTENT_TYPE], "application/json");

    let by_verb = send(&app, "LIST", "/v1/kv/", Some(&root), "").await;
    let by_query = send(&app, "GET", "/v1/kv/?list=true", Some(&root), "").await;
    let by_hvac = send(&app, "GET", "/v1/kv?list=True", Some(&root), "").await;
    let read = send(&app, "GET", "/v1/kv//a", Some(&root), "").await;

    assert_eq!(by_verb.status, 200);
    assert_eq!(by_verb.json()["data"]["keys"], json!(["a"]));
    assert_eq!(by_verb.json()["mount_type"], "kv");
    assert_eq!(by_query.json()["data"]["keys"], json!(["a"]));
    assert_eq!(by_hvac.status, 200, "{:?}", by_hvac.json());
    assert_eq!(by_hvac.json()["data"]["keys"], json!(["a"]));
    assert_eq!(read.json()["data"], json!({"v": "1"}));
}

#[tokio::test]
async fn missing_secret_is_404_with_empty_errors() {
    // Vault answers a read of nothing with `{"errors":[]}`; clients test for that exact shape.
    let app = app();
    let root = init_and_unseal(&app).await;
    send(
        &app,
        "POST",
        "/v1/sys/mounts/kv",
        Some(&root),
        r#"{"type":"kv"}"#,
    )
    .await;

    let r = send(&app, "GET", "/v1/kv/nothing", Some(&root), "").await;

    assert_eq!(r.status, 404);
    assert_eq!(r.json(), json!({"errors": []}));
}

#[tokio::test]
async fn malformed_json_is_400_with_message() {
    // A client typo must be reported as its own mistake, never as a server error.
    let app = app();
    let root = init_and_unseal(&app).await;

    let raw = send(&app, "PUT", "/v1/sys/init", None, "{not json").await;
    let logical = send(&app, "PUT", "/v1/sys/mounts/kv", Some(&root), "{\"type\":").await;
    let array = send(&app, "PUT", "/v1/sys/mounts/kv", Some(&root), "[1,2]").await;

    for r in [&raw, &logical, &array] {
        assert_eq!(r.status, 400);
        assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
        let msg = r.json()["errors"][0].as_str().unwrap().to_owned();
        assert!(msg.starts_with("failed to parse JSON input"), "{msg}");
    }
}

#[tokio::test]
async fn wrong_field_types_are_400() {
    // `secret_shares: "abc"` is a client error; a 500 would page an operator for nothing.
    let app = app();

    let r = send(
        &app,
        "PUT",
        "/v1/sys/init",
        None,
        r#"{"secret_shares":"abc","secret_threshold":1}"#,
    )
    .await;
    let update = send(&app, "PUT", "/v1/sys/generate-root/update", None, "{}").await;

    assert_eq!(r.status, 400);
    assert!(
        r.json()["errors"][0]
            .as_str()
            .unwrap()
            .contains("invalid type")
    );
    assert_eq!(update.status, 400);
}

#[tokio::test]
async fn oversize_body_is_413() {
    // max_request_size protects memory; the client must learn why its request was refused.
    let app = app_with(RouterOptions {
        max_request_size: 64,
        ..RouterOptions::default()
    });
    let big = format!(r#"{{"v":"{}"}}"#, "x".repeat(100));

    let declared = send(&app, "PUT", "/v1/secret/a", None, &big).await;
    let streamed = {
        let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from(
            big.clone(),
        ))]);
        let req = Request::builder()
            .method("PUT")
            .uri("/v1/secret/a")
            .body(Body::from_stream(stream))
            .unwrap();
        app.clone().oneshot(req).await.unwrap()
    };

    assert_eq!(declared.status, 413);
    assert!(
        declared.json()["errors"][0]
            .as_str()
            .unwrap()
            .contains("request body too large")
    );
    assert_eq!(streamed.status(), 413);
}

#[tokio::test]
async fn namespaces_other_than_root_are_refused() {
    // Silently ignoring a namespace would write into the wrong place.
    let app = app();
    let req = |ns: &str| {
        Request::builder()
            .uri("/v1/sys/seal-status")
            .header("x-vault-namespace", ns)
            .body(Body::empty())
            .unwrap()
    };

    let root = app.clone().oneshot(req("root")).await.unwrap();
    let other = app.clone().oneshot(req("team-a")).await.unwrap();

    assert_eq!(root.status(), 200);
    assert_eq!(other.status(), 400);
}

#[tokio::test]
async fn wrap_ttl_garbage_is_400() {
    // A negative or unparsable wrap TTL must be refused before anything is executed.
    let app = app();
    let root = init_and_unseal(&app).await;
    for bad in ["-5", "soon", "-1m"] {
        let req = Request::builder()
            .uri("/v1/sys/mounts")
            .header("x-vault-token", &root)
            .header("x-vault-wrap-ttl", bad)
            .body(Body::empty())
            .unwrap();

        let resp = app.clone().oneshot(req).await.unwrap();

        assert_eq!(resp.status(), 400, "wrap ttl {bad}");
    }
}

#[tokio::test]
async fn health_codes_follow_state_and_overrides() {
    // Load balancers use only the status code; each state and override must map exactly.
    let app = app();
    let code = |uri: &'static str| {
        let app = app.clone();
        async move { send(&app, "GET", uri, None, "").await.status.as_u16() }
    };

    assert_eq!(code("/v1/sys/health").await, 501);
    assert_eq!(code("/v1/sys/health?uninitcode=200").await, 200);
    let uninit = send(&app, "GET", "/v1/sys/health", None, "").await.json();
    assert_eq!(uninit["initialized"], false);

    send(
        &app,
        "PUT",
        "/v1/sys/init",
        None,
        r#"{"secret_shares":1,"secret_threshold":1}"#,
    )
    .await;
    assert_eq!(code("/v1/sys/health").await, 503);
    assert_eq!(code("/v1/sys/health?sealedcode=299").await, 299);
    assert_eq!(code("/v1/sys/health?sealedcode=abc").await, 400);

    let app2 = self::app();
    init_and_unseal(&app2).await;
    let code2 = |uri: &'static str| {
        let app = app2.clone();
        async move { send(&app, "GET", uri, None, "").await.status.as_u16() }
    };
    assert_eq!(code2("/v1/sys/health").await, 200);
    assert_eq!(code2("/v1/sys/health?activecode=204").await, 204);
    assert_eq!(
        code2("/v1/sys/health?standbyok=true&standbycode=201").await,
        200
    );
    let body = send(&app2, "GET", "/v1/sys/health", None, "").await.json();
    for field in [
        "initialized",
        "sealed",
        "standby",
        "performance_standby",
        "replication_performance_mode",
        "replication_dr_mode",
        "server_time_utc",
        "version",
    ] {
        assert!(body.get(field).is_some(), "health lacks {field}");
    }
}

#[tokio::test]
async fn head_health_has_code_and_empty_body() {
    // HEAD probes must get the same verdict without a body.
    let app = app();

    let r = send(&app, "HEAD", "/v1/sys/health", None, "").await;

    assert_eq!(r.status, 501);
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn seal_needs_a_token_and_then_seals() {
    // Sealing is an emergency control: refused without a root token, effective with one.
    let app = app();
    let root = init_and_unseal(&app).await;

    let denied = send(&app, "PUT", "/v1/sys/seal", None, "").await;
    let sealed = send(&app, "PUT", "/v1/sys/seal", Some(&root), "").await;
    let after = send(&app, "GET", "/v1/sys/mounts", Some(&root), "").await;

    assert_eq!(denied.status, 403);
    assert_eq!(sealed.status, 204);
    assert_eq!(after.status, 503);
}

#[tokio::test]
async fn leader_and_step_down_answer_when_unsealed() {
    // `vault status` calls sys/leader; active_time must always be a timestamp.
    let app = app();
    let sealed_leader = send(&app, "GET", "/v1/sys/leader", None, "").await;
    assert_eq!(sealed_leader.status, 503);
    let root = init_and_unseal(&app).await;

    let leader = send(&app, "GET", "/v1/sys/leader", None, "").await;
    let step = send(&app, "PUT", "/v1/sys/step-down", Some(&root), "").await;

    assert_eq!(leader.status, 200);
    assert!(leader.json()["active_time"].as_str().unwrap().contains('T'));
    assert_eq!(step.status, 204);
}

#[tokio::test]
async fn generate_root_attempt_lifecycle() {
    // hvac's root-generation tests start, read and cancel attempts through these raw routes.
    let app = app();
    init_and_unseal(&app).await;

    let idle = send(&app, "GET", "/v1/sys/generate-root/attempt", None, "")
        .await
        .json();
    let started = send(&app, "PUT", "/v1/sys/generate-root/attempt", None, "{}").await;
    let cancel = send(&app, "DELETE", "/v1/sys/generate-root/attempt", None, "").await;
    let after = send(&app, "GET", "/v1/sys/generate-root/attempt", None, "")
        .await
        .json();

    assert_eq!(idle["started"], false);
    assert_eq!(idle["otp_length"], 28);
    assert_eq!(started.status, 200);
    assert_eq!(started.json()["started"], true);
    assert_eq!(started.json()["otp"].as_str().unwrap().len(), 28);
    assert_eq!(cancel.status, 204);
    assert_eq!(after["started"], false);
}

#[tokio::test]
async fn paths_outside_v1_are_404_and_wrong_verbs_405() {
    // Unknown prefixes and verbs get JSON errors clients can parse, never an empty 500.
    let app = app();

    let root = send(&app, "GET", "/", None, "").await;
    let wrong_verb = send(&app, "DELETE", "/v1/sys/seal-status", None, "").await;

    assert_eq!(root.status, 404);
    assert_eq!(root.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(wrong_verb.status, 405);
}

#[tokio::test]
async fn metrics_need_a_token_unless_listener_allows() {
    // sys/metrics leaks operational detail; only the listener setting may open it up.
    let closed = app();
    let config = CoreConfig {
        telemetry: strongroom_core::Telemetry::install(std::time::Duration::from_secs(60)),
        ..CoreConfig::default()
    };
    let open = router(
        Core::new(config, Arc::new(InmemStorage::new())),
        RouterOptions {
            unauthenticated_metrics_access: true,
            ..RouterOptions::default()
        },
    );
    init_and_unseal(&closed).await;

    let denied = send(&closed, "GET", "/v1/sys/metrics", None, "").await;
    let allowed = send(&open, "GET", "/v1/sys/metrics?format=json", None, "").await;
    let bad_format = send(&open, "GET", "/v1/sys/metrics?format=xml", None, "").await;

    assert_eq!(denied.status, 403);
    assert_eq!(
        allowed.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&allowed.body)
    );
    assert!(allowed.json().get("Counters").is_some());
    assert_eq!(bad_format.status, 400);
}

#[tokio::test]
async fn snapshot_round_trip_ignores_max_request_size() {
    // Snapshots are far larger than API bodies; only their upload may exceed max_request_size.
    let app = app_with(RouterOptions {
        max_request_size: 256,
        ..RouterOptions::default()
    });
    let root = init_and_unseal(&app).await;
    let req = Request::builder()
        .uri("/v1/sys/storage/raft/snapshot")
        .header("x-vault-token", &root)
        .body(Body::empty())
        .unwrap();
    let saved = app.clone().oneshot(req).await.unwrap();
    assert_eq!(saved.status(), 200);
    assert_eq!(
        saved.headers()[header::CONTENT_TYPE],
        "application/octet-stream"
    );
    let bytes = saved.into_body().collect().await.unwrap().to_bytes();
    assert!(bytes.len() > 256);

    let req = Request::builder()
        .method("POST")
        .uri("/v1/sys/storage/raft/snapshot")
        .header("x-vault-token", &root)
        .body(Body::from(bytes.clone()))
        .unwrap();
    let restored = app.clone().oneshot(req).await.unwrap();
    let other = send(
        &app,
        "PUT",
        "/v1/sys/mounts/kv",
        Some(&root),
        &"x".repeat(300),
    )
    .await;

    assert_eq!(restored.status(), 204);
    assert_eq!(other.status, 413);
}

#[tokio::test]
async fn raw_endpoints_pass_the_door_audit_and_use_limits() {
    // Why: snapshots, metrics, seal and step-down used to authorize through a smaller door
    // that skipped audit and use counting; a one-use token downloaded every secret thrice.
    let telemetry = strongroom_core::Telemetry::install(std::time::Duration::from_secs(86_400));
    let core = Core::new(
        CoreConfig {
            telemetry,
            ..CoreConfig::default()
        },
        Arc::new(InmemStorage::new()),
    );
    let app = router(core, RouterOptions::default());
    let root = init_and_unseal(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let enable = json!({"type": "file", "options": {"file_path": log}}).to_string();
    let r = send(&app, "PUT", "/v1/sys/audit/file", Some(&root), &enable).await;
    assert_eq!(r.status, 204);

    // A one-use token: the snapshot downloads once, then the token is spent.
    let create = json!({"num_uses": 1}).to_string();
    let created = send(&app, "POST", "/v1/auth/token/create", Some(&root), &create).await;
    let once = created.json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let snapshot = "/v1/sys/storage/raft/snapshot";
    let first = send(&app, "GET", snapshot, Some(&once), "").await;
    assert_eq!(first.status, 200);
    let second = send(&app, "GET", snapshot, Some(&once), "").await;
    assert_eq!(second.status, 403);

    // Metrics, step-down and seal leave request and response entries too.
    let metrics = send(
        &app,
        "GET",
        "/v1/sys/metrics?format=prometheus",
        Some(&root),
        "",
    )
    .await;
    assert_eq!(metrics.status, 200);
    let step_down = send(&app, "PUT", "/v1/sys/step-down", Some(&root), "").await;
    assert_eq!(step_down.status, 204);
    let seal = send(&app, "PUT", "/v1/sys/seal", Some(&root), "").await;
    assert_eq!(seal.status, 204);

    let text = std::fs::read_to_string(&log).unwrap();
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for path in [
        "sys/storage/raft/snapshot",
        "sys/metrics",
        "sys/step-down",
        "sys/seal",
    ] {
        for kind in ["request", "response"] {
            assert!(
                entries
                    .iter()
                    .any(|e| e["type"] == kind && e["request"]["path"] == path),
                "no {kind} entry for {path}"
            );
        }
    }
    assert!(!text.contains(&once), "a raw token reached the audit log");
}

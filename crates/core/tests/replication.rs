//! DR replication between two in-process cores: real cluster-port mTLS on loopback, the
//! primary's API served over HTTP for the activation-token unwrap, memory storage.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Map, Value, json};
use strongroom_core::{Core, CoreConfig, CoreError, HealthState, Operation, Request, Response};
use strongroom_http::{ListenerOptions, ServerHandle};
use strongroom_replication::ClusterListener;
use strongroom_storage::{InmemStorage, Storage};
use tokio::sync::watch;

const GATE: &str = "path disabled in replication DR secondary mode";
const INVALID: &str = "wrapping token is not valid or does not exist";
/// How long convergence may take on a loaded CI machine.
const CONVERGE: Duration = Duration::from_secs(30);

struct Node {
    core: Arc<Core>,
    storage: Arc<InmemStorage>,
    root: String,
    unseal_key: String,
    _api: ServerHandle,
    _stop: watch::Sender<bool>,
}

/// An unsealed core with a KV v1 mount at `kv/`, its API on HTTP and its cluster port on
/// 127.0.0.1, both with free ports.
async fn node() -> Node {
    let storage = Arc::new(InmemStorage::new());
    let core = Core::new(CoreConfig::default(), storage.clone());
    let (unseal_key, root) = core.dev_bootstrap(None).await.unwrap();
    core.mount("kv/", "kv", "", Map::new()).await.unwrap();
    let listener = Arc::new(ClusterListener::new().unwrap());
    let (stop, stopped) = watch::channel(false);
    let (cluster_addr, _task) = listener
        .clone()
        .serve("127.0.0.1:0", core.replication_primary_server(), stopped)
        .await
        .unwrap();
    core.set_cluster_listener(listener);
    let api = strongroom_http::serve(
        ListenerOptions::new("127.0.0.1:0"),
        core.clone(),
        std::future::pending(),
    )
    .await
    .unwrap();
    core.set_advertised_addrs(
        format!("http://{}", api.bound_addr()),
        format!("https://{cluster_addr}"),
    );
    Node {
        core,
        storage,
        root,
        unseal_key,
        _api: api,
        _stop: stop,
    }
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
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

async fn write(n: &Node, path: &str, data: Value) -> Response {
    call(&n.core, Operation::Update, path, Some(&n.root), data)
        .await
        .unwrap()
}

async fn dr_status(core: &Core) -> Map<String, Value> {
    call(
        core,
        Operation::Read,
        "sys/replication/dr/status",
        None,
        json!({}),
    )
    .await
    .unwrap()
    .data
    .unwrap()
}

/// Mints an activation token for `id` on `primary`.
async fn activation_token(primary: &Node, id: &str) -> String {
    let resp = write(
        primary,
        "sys/replication/dr/primary/secondary-token",
        json!({"id": id}),
    )
    .await;
    resp.wrap_info.unwrap().token
}

/// Waits until `secondary` streams and holds exactly the primary's replicated data.
async fn converge(primary: &Node, secondary: &Node) {
    let start = Instant::now();
    loop {
        let p = primary.storage.replication_status();
        let s = secondary.storage.replication_status();
        let state = dr_status(&secondary.core).await["state"].clone();
        if state == "stream-wals"
            && p.merkle_root == s.merkle_root
            && s.last_remote_wal == p.last_wal
        {
            return;
        }
        assert!(
            start.elapsed() < CONVERGE,
            "no convergence: state {state}, roots {} / {}, wal {} / {}",
            p.merkle_root,
            s.merkle_root,
            p.last_wal,
            s.last_remote_wal
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the DR operation token ceremony on `n` with its single unseal key.
async fn generate_op_token(n: &Node) -> String {
    let path = "sys/replication/dr/secondary/generate-operation-token/attempt";
    let start = call(&n.core, Operation::Update, path, None, json!({}))
        .await
        .unwrap()
        .raw_body
        .unwrap();
    let otp = start["otp"].as_str().unwrap().to_owned();
    let done = call(
        &n.core,
        Operation::Update,
        "sys/replication/dr/secondary/generate-operation-token/update",
        None,
        json!({"key": n.unseal_key, "nonce": start["nonce"]}),
    )
    .await
    .unwrap()
    .raw_body
    .unwrap();
    assert_eq!(done["complete"], json!(true));
    let encoded = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(done["encoded_token"].as_str().unwrap())
        .unwrap();
    let token: Vec<u8> = encoded
        .iter()
        .zip(otp.bytes())
        .map(|(a, b)| a ^ b)
        .collect();
    String::from_utf8(token).unwrap()
}

fn message(e: CoreError) -> String {
    e.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dr_bootstrap_gate_failover_and_failback() {
    // Why: the whole operator runbook (activate, stream, promote, fail back without a wipe)
    // must work end to end, with the secondary refusing client traffic until promoted.
    let a = node().await;
    let b = node().await;
    write(&a, "kv/before", json!({"v": "1"})).await;

    // Activation: enable primary, mint a token, enable the secondary with it.
    let enabled = write(&a, "sys/replication/dr/primary/enable", json!({})).await;
    let token = activation_token(&a, "dr-east").await;
    let activated = write(
        &b,
        "sys/replication/dr/secondary/enable",
        json!({"token": token}),
    )
    .await;
    converge(&a, &b).await;
    write(&a, "kv/after", json!({"v": "2"})).await;
    converge(&a, &b).await;

    assert!(enabled.warnings[0].contains("enabled as a primary"));
    assert!(activated.warnings[0].contains("found secondary information"));
    let a_status = dr_status(&a.core).await;
    let b_status = dr_status(&b.core).await;
    assert_eq!(a_status["mode"], json!("primary"));
    assert_eq!(a_status["known_secondaries"], json!(["dr-east"]));
    assert!(a_status["last_wal"].is_u64());
    assert_eq!(a_status["last_reindex_epoch"], json!("0"));
    assert_eq!(b_status["mode"], json!("secondary"));
    assert_eq!(b_status["secondary_id"], json!("dr-east"));
    assert_eq!(b_status["cluster_id"], a_status["cluster_id"]);
    assert_eq!(b.core.health().await.unwrap().0, HealthState::DrSecondary);
    assert_eq!(
        b.core.health().await.unwrap().1.replication_dr_mode,
        "secondary"
    );
    assert!(b_status["last_remote_wal"].is_u64());
    assert_eq!(b_status["connection_state"], json!("ready"));
    let primary_peer = &b_status["primaries"][0];
    assert!(primary_peer["replication_primary_canary_age_ms"].is_string());
    assert!(primary_peer["last_heartbeat_duration_ms"].is_string());
    assert!(primary_peer["clock_skew_ms"].is_string());

    // Gate: client paths are refused on the secondary, even with a valid replicated token.
    let gated = call(
        &b.core,
        Operation::Read,
        "kv/after",
        Some(&a.root),
        json!({}),
    )
    .await;
    assert_eq!(message(gated.unwrap_err()), GATE);
    assert_eq!(message(b.core.seal(Some(&a.root)).await.unwrap_err()), GATE);
    let no_token = call(
        &b.core,
        Operation::Update,
        "sys/replication/dr/secondary/promote",
        None,
        json!({}),
    )
    .await;
    assert_eq!(
        message(no_token.unwrap_err()),
        "DR operation token was not provided"
    );
    let bogus = call(
        &b.core,
        Operation::Update,
        "sys/replication/dr/secondary/promote",
        None,
        json!({"dr_operation_token": "hvs.bogus"}),
    )
    .await;
    assert!(matches!(bogus, Err(CoreError::PermissionDenied)));

    // A batch token made on the primary, with a policy granting promote, replicates.
    write(
        &a,
        "sys/policies/acl/dr-promote",
        json!({"policy": "path \"sys/replication/dr/secondary/promote\" { capabilities = [\"update\"] }"}),
    )
    .await;
    let batch = write(
        &a,
        "auth/token/create",
        json!({"type": "batch", "policies": ["dr-promote"], "ttl": "1h"}),
    )
    .await
    .auth
    .unwrap()
    .client_token;
    converge(&a, &b).await;

    // Failover: demote A, promote B with the batch token.
    write(&a, "sys/replication/dr/primary/demote", json!({})).await;
    let promoted = call(
        &b.core,
        Operation::Update,
        "sys/replication/dr/secondary/promote",
        None,
        json!({"dr_operation_token": batch, "force": true}),
    )
    .await
    .unwrap();
    assert!(promoted.warnings[0].contains("promoted"));
    assert_eq!(dr_status(&b.core).await["mode"], json!("primary"));
    assert_eq!(dr_status(&a.core).await["state"], json!("idle"));
    // The primary's root token and data serve clients on the promoted cluster.
    let read = call(
        &b.core,
        Operation::Read,
        "kv/after",
        Some(&a.root),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(read.data.unwrap()["v"], json!("2"));

    // Failback: A follows B without a wipe, authorized by an operation token from A's keys.
    let b_as_primary = Node {
        core: b.core.clone(),
        storage: b.storage.clone(),
        root: a.root.clone(),
        unseal_key: a.unseal_key.clone(),
        _api: b._api,
        _stop: b._stop,
    };
    let token = activation_token(&b_as_primary, "old-primary").await;
    let op_token = generate_op_token(&a).await;
    call(
        &a.core,
        Operation::Update,
        "sys/replication/dr/secondary/update-primary",
        None,
        json!({"dr_operation_token": op_token, "token": token}),
    )
    .await
    .unwrap();
    write(&b_as_primary, "kv/after-failover", json!({"v": "3"})).await;
    converge(&b_as_primary, &a).await;
    assert_eq!(
        dr_status(&a.core).await["secondary_id"],
        json!("old-primary")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_tokens_are_signed_single_use_and_expire() {
    // Why: the activation token carries the primary's root key; a forged, replayed or
    // stale one must never unwrap.
    let a = node().await;
    write(&a, "sys/replication/dr/primary/enable", json!({})).await;
    let good = activation_token(&a, "one").await;
    let short = write(
        &a,
        "sys/replication/dr/primary/secondary-token",
        json!({"id": "two", "ttl": "1s"}),
    )
    .await
    .wrap_info
    .unwrap()
    .token;
    let parts: Vec<&str> = good.split('.').collect();
    let mut claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    claims["addr"] = json!("http://attacker:8200");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    let unwrap = |t: String| {
        let core = a.core.clone();
        async move {
            call(
                &core,
                Operation::Update,
                "sys/wrapping/unwrap",
                None,
                json!({"token": t}),
            )
            .await
        }
    };

    let forged_result = unwrap(forged).await;
    let first = unwrap(good.clone()).await.unwrap();
    let replay = unwrap(good).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = unwrap(short).await;

    assert_eq!(message(forged_result.unwrap_err()), INVALID);
    assert_eq!(
        first.unwrapped.unwrap().data.unwrap()["secondary_id"],
        json!("one")
    );
    assert_eq!(message(replay.unwrap_err()), INVALID);
    assert_eq!(message(expired.unwrap_err()), INVALID);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_disabled_then_primary_with_vault_types() {
    // Why: monitoring polls these without a token and the Go client decodes fixed types.
    let a = node().await;

    let disabled = call(
        &a.core,
        Operation::Read,
        "sys/replication/status",
        None,
        json!({}),
    )
    .await
    .unwrap()
    .data
    .unwrap();
    write(&a, "sys/replication/dr/primary/enable", json!({})).await;
    let refused = call(
        &a.core,
        Operation::Update,
        "sys/replication/dr/primary/secondary-token",
        None,
        json!({"id": "x"}),
    )
    .await;
    let primary = dr_status(&a.core).await;

    assert_eq!(
        Value::Object(disabled),
        json!({"dr": {"mode": "disabled"}, "performance": {"mode": "disabled"}})
    );
    assert!(matches!(refused, Err(CoreError::PermissionDenied)));
    assert_eq!(primary["state"], json!("running"));
    assert_eq!(
        primary["last_corruption_check_epoch"],
        json!("-62135596800")
    );
    assert_eq!(primary["merkle_root"].as_str().unwrap().len(), 40);
    assert!(primary["last_dr_wal"].is_u64());
    assert_eq!(primary["ssct_generation_counter"], json!(0));
    assert_eq!(a.core.replication_dr_mode(), "primary");
}

//! Wrapping through a real core: what unwrap hands out, including tokens wrapped by earlier
//! releases (their cubbyhole holds Vault's envelope as text).

use serde_json::{Map, Value, json};
use strongroom_api::LogicalResponse;
use strongroom_barrier::BarrierOp;

use super::RESPONSE_KEY;
use crate::test_support::unsealed_core;
use crate::{Core, Operation, Request, Response};

fn body(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

async fn wrap(core: &Core, root: &str, data: Value) -> String {
    let mut req = Request::new(Operation::Update, "sys/wrapping/wrap")
        .with_token(root)
        .with_data(body(data));
    req.wrap_ttl = Some(std::time::Duration::from_secs(60));
    core.handle(req).await.unwrap().wrap_info.unwrap().token
}

async fn unwrap(core: &Core, token: &str) -> Response {
    let req = Request::new(Operation::Update, "sys/wrapping/unwrap")
        .with_data(body(json!({ "token": token })));
    core.handle(req).await.unwrap()
}

#[tokio::test]
async fn unwrap_hands_out_the_wrapped_answer_not_an_envelope() {
    // Why: core keeps its own response; only http renders Vault's envelope.
    let (core, root) = unsealed_core().await;
    let token = wrap(&core, &root, json!({"k": "v"})).await;

    let resp = unwrap(&core, &token).await;

    let inner = resp.unwrapped.expect("unwrap carries the wrapped answer");
    assert_eq!(inner.data, Some(body(json!({"k": "v"}))));
    assert_eq!(inner.mount_type, "system");
    assert!(inner.auth.is_none() && inner.wrap_info.is_none());
    assert!(resp.raw_body.is_none() && resp.data.is_none());
}

#[tokio::test]
async fn a_token_wrapped_before_the_upgrade_still_unwraps() {
    // Why: a wrapping token handed out by the previous release stays valid across the
    // upgrade; its cubbyhole holds the envelope text that release stored.
    let (core, root) = unsealed_core().await;
    let token = wrap(&core, &root, json!({"placeholder": true})).await;
    let entry = core.lookup_token(&token).await.unwrap().unwrap();
    let legacy = LogicalResponse {
        data: Some(body(json!({"secret": "s3", "n": 7}))),
        warnings: Some(vec!["old".into()]),
        lease_id: "kv/x/1".into(),
        lease_duration: 30,
        mount_type: "kv".into(),
        ..LogicalResponse::default()
    };
    let text = serde_json::to_string(&legacy).unwrap();
    let record = serde_json::to_vec(&json!({ "response": text })).unwrap();
    let key = format!(
        "{}{RESPONSE_KEY}",
        crate::keys::cubbyhole_prefix(&entry.id_hash)
    );
    core.barrier
        .write(vec![BarrierOp::Put { key, value: record }])
        .await
        .unwrap();

    let inner = unwrap(&core, &token).await.unwrapped.unwrap();

    assert_eq!(inner.data, legacy.data);
    assert_eq!(inner.warnings, vec!["old".to_owned()]);
    assert_eq!(inner.mount_type, "kv");
    let lease = inner.lease.unwrap();
    assert_eq!(
        (lease.lease_id.as_str(), lease.duration_secs),
        ("kv/x/1", 30)
    );
    assert!(!lease.renewable);
}

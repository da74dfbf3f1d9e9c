//! Fixtures for core's unit tests that need a whole core: unsealed, in memory.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use strongroom_api::{InitRequest, UnsealRequest};
use strongroom_barrier::BarrierOp;
use strongroom_storage::InmemStorage;

use crate::keys::TOKEN_ID_PREFIX;
use crate::token::token_hash;

use crate::{Core, CoreConfig, Operation, Request, Response};

/// A fresh core, initialized with one key share and unsealed, and its root token.
pub(crate) async fn unsealed_core() -> (Arc<Core>, String) {
    let core = Core::new(CoreConfig::default(), Arc::new(InmemStorage::new()));
    let init = core
        .init(InitRequest {
            secret_shares: 1,
            secret_threshold: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let status = core
        .unseal(UnsealRequest {
            key: init.keys.first().cloned(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!status.sealed);
    (core, init.root_token)
}

/// Runs one request with `token` and a JSON-object body.
pub(crate) async fn call(
    core: &Core,
    token: &str,
    op: Operation,
    path: &str,
    data: Value,
) -> Response {
    let data: Map<String, Value> = data.as_object().cloned().unwrap_or_default();
    core.handle(Request::new(op, path).with_token(token).with_data(data))
        .await
        .unwrap()
}

/// Creates `n` child tokens of `root` with a `ttl` (`None`: the default), returning them.
pub(crate) async fn create_tokens(
    core: &Core,
    root: &str,
    n: usize,
    ttl: Option<&str>,
) -> Vec<String> {
    let body = ttl.map_or_else(|| json!({}), |t| json!({ "ttl": t }));
    let mut tokens = Vec::with_capacity(n);
    for _ in 0..n {
        let resp = call(
            core,
            root,
            Operation::Update,
            "auth/token/create",
            body.clone(),
        )
        .await;
        tokens.push(resp.auth.unwrap().client_token);
    }
    tokens
}

/// Deletes the token records of `tokens` and nothing else, as an interrupted revocation
/// leaves them: accessors, parent links and leases stay behind.
pub(crate) async fn lose_token_records(core: &Core, tokens: &[String]) {
    let ops = tokens
        .iter()
        .map(|t| BarrierOp::Delete {
            key: format!("{TOKEN_ID_PREFIX}{}", token_hash(t)),
        })
        .collect();
    core.barrier.write(ops).await.unwrap();
}

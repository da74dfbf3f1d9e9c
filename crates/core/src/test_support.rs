//! Fixtures for core's unit tests that need a whole core: unsealed, in memory.

use std::sync::Arc;

use serde_json::{Map, Value};
use strongroom_api::{InitRequest, UnsealRequest};
use strongroom_storage::InmemStorage;

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

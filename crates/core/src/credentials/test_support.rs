//! Fixtures for the auth-method unit tests: an unsealed in-memory core and hand-made mounts,
//! so each backend can be driven directly without the mount table or the token store.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use strongroom_api::{InitRequest, UnsealRequest};
use strongroom_storage::InmemStorage;

use crate::mounts::MountEntry;
use crate::{Core, CoreConfig, Operation, Request};

/// A fresh core, initialized with one key share and unsealed.
pub(crate) async fn unsealed_core() -> Arc<Core> {
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
    core
}

/// An auth mount of `engine` at `auth/<engine>/`, not entered in any table.
pub(crate) fn auth_mount(engine: &str) -> MountEntry {
    serde_json::from_value(json!({
        "path": format!("auth/{engine}/"),
        "type": engine,
        "uuid": uuid::Uuid::new_v4().to_string(),
        "accessor": format!("auth_{engine}_0000abcd"),
        "description": "",
        "options": {},
        "local": false,
    }))
    .unwrap()
}

/// A request with a JSON-object body.
pub(crate) fn req(op: Operation, path: &str, data: Value) -> Request {
    let data: Map<String, Value> = data.as_object().cloned().unwrap_or_default();
    Request::new(op, path).with_data(data)
}

//! Fixtures for the backend unit tests: hand-made mounts over a [`MemStore`], so each
//! backend can be driven directly, without core, the barrier or a mount table.

use serde_json::{Map, Value};
use strongroom_logical::{Ctx, MemStore, MountInfo, Operation, Request, View};

/// One mount over a fresh [`MemStore`], laid out as core lays out mounts.
pub(crate) struct Fixture {
    pub store: MemStore,
    pub path: String,
    pub uuid: String,
    /// Where the mount's data lives in the store.
    pub prefix: String,
    pub kv_version: u8,
}

impl Fixture {
    /// An auth mount of `engine` at `auth/<engine>/`.
    pub fn auth(engine: &str) -> Self {
        let uuid = uuid::Uuid::new_v4().to_string();
        Fixture {
            store: MemStore::default(),
            path: format!("auth/{engine}/"),
            prefix: format!("auth/{uuid}/"),
            uuid,
            kv_version: 1,
        }
    }

    /// A KV mount of `version` at `secret/`.
    pub fn kv(version: u8) -> Self {
        let uuid = uuid::Uuid::new_v4().to_string();
        Fixture {
            store: MemStore::default(),
            path: "secret/".to_owned(),
            prefix: format!("logical/{uuid}/"),
            uuid,
            kv_version: version,
        }
    }

    /// The context of an unauthenticated request to the mount.
    pub fn ctx(&self) -> Ctx<'_> {
        Ctx {
            mount: MountInfo {
                path: &self.path,
                uuid: &self.uuid,
                kv_version: self.kv_version,
                default_lease_ttl: 0,
                max_lease_ttl: i64::MAX,
            },
            token: None,
            view: View::new(&self.store, self.prefix.clone()),
            local_view: View::new(&self.store, format!("local/{}/", self.uuid)),
            cubbyhole: None,
        }
    }
}

/// A request with a JSON-object body.
pub(crate) fn req(op: Operation, path: &str, data: Value) -> Request {
    let data: Map<String, Value> = data.as_object().cloned().unwrap_or_default();
    Request::new(op, path).with_data(data)
}

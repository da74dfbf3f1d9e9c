//! The logical part of the system backend (`sys/...` paths that go through the pipeline).
//!
//! Raw sys endpoints (init, seal-status, unseal, health, leader, generate-root) are answered
//! by `http` calling `Core` methods directly, before authentication, as Vault does.

use serde_json::{Map, Value, json};

use crate::token::TokenEntry;
use crate::{Core, CoreError, Operation, Request, Response};

pub(crate) async fn route(
    core: &Core,
    req: &Request,
    _token: &TokenEntry,
) -> Result<Response, CoreError> {
    let path = req.path.as_str();
    let mut resp = match (path, req.operation) {
        ("sys/mounts", Operation::Read) => Ok(Response::with_data(core.mounts_json().await)),
        (p, op) if p.starts_with("sys/mounts/") => {
            mounts(core, req, &p["sys/mounts/".len()..], op).await
        }
        ("sys/rotate", Operation::Update | Operation::Create) => {
            core.barrier.rotate().await?;
            Ok(Response::no_content())
        }
        ("sys/key-status", Operation::Read) => {
            let ks = core.barrier.key_status()?;
            let mut data = Map::new();
            data.insert("term".into(), json!(ks.term));
            data.insert(
                "install_time".into(),
                json!(crate::util::rfc3339(ks.install_time, false)),
            );
            data.insert("encryptions".into(), json!(ks.encryptions));
            Ok(Response::with_data(data))
        }
        ("sys/storage/raft/configuration", Operation::Read) => {
            Ok(Response::with_data(raft_configuration(core)))
        }
        ("sys/mounts" | "sys/rotate" | "sys/key-status" | "sys/storage/raft/configuration", _) => {
            Err(CoreError::UnsupportedOperation)
        }
        _ => Err(CoreError::UnsupportedPath(req.path.clone())),
    }?;
    if resp.mount_type.is_empty() {
        resp.mount_type = "system".into();
    }
    Ok(resp)
}

async fn mounts(
    core: &Core,
    req: &Request,
    mount: &str,
    op: Operation,
) -> Result<Response, CoreError> {
    match op {
        Operation::Read => {
            let table = core.mounts.read().await;
            let want = crate::mounts::normalize_mount_path(mount)?;
            let entry = table
                .entries
                .iter()
                .find(|m| m.path == want)
                .ok_or(CoreError::NotFound)?;
            match entry.to_json() {
                Value::Object(m) => Ok(Response::with_data(m)),
                _ => Err(CoreError::Internal(
                    "mount entry did not encode as an object".into(),
                )),
            }
        }
        Operation::Create | Operation::Update => {
            let engine = crate::util::str_param(&req.data, "type")?.ok_or_else(|| {
                CoreError::InvalidRequest(
                    "missing 'type' parameter: the secrets engine to mount, e.g. type=kv".into(),
                )
            })?;
            let description = crate::util::str_param(&req.data, "description")?.unwrap_or("");
            let options = match req.data.get("options") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(o)) => o.clone(),
                Some(other) => {
                    return Err(CoreError::InvalidRequest(format!(
                        "'options' must be an object, got {other}"
                    )));
                }
            };
            core.mount(mount, engine, description, options).await?;
            Ok(Response::no_content())
        }
        Operation::Delete => {
            core.unmount(mount).await?;
            Ok(Response::no_content())
        }
        _ => Err(CoreError::UnsupportedOperation),
    }
}

fn raft_configuration(core: &Core) -> Map<String, Value> {
    let status = core.storage.status();
    let servers: Vec<Value> = status
        .peers
        .iter()
        .map(|p| {
            json!({
                "address": p.address,
                "leader": p.leader,
                "node_id": p.node_id,
                "protocol_version": "3",
                "voter": p.voter,
            })
        })
        .collect();
    let mut data = Map::new();
    data.insert(
        "config".into(),
        json!({"index": status.config_index, "servers": servers}),
    );
    data
}

//! The HA endpoints behind the door: `sys/storage/raft/*` membership, the join's leader
//! half, `sys/step-down` and `sys/ha-status`.
//!
//! They reach the active node only (a standby forwards them), so every membership change is
//! made by the Raft leader, which is the only node that can commit it.

use serde_json::{Map, Value, json};

use super::join_leader::not_raft;
use crate::util::{lock, str_param};
use crate::{Core, CoreError, Operation, Request, Response};

/// `None` when `req` is not an HA path.
pub(crate) async fn route(core: &Core, req: &Request) -> Option<Result<Response, CoreError>> {
    let write = crate::pipeline::writes(req.operation);
    let result = match (req.path.as_str(), req.operation) {
        ("sys/storage/raft/bootstrap/challenge", _) if write => {
            core.raft_bootstrap_challenge(req).await
        }
        ("sys/storage/raft/bootstrap/answer", _) if write => core.raft_bootstrap_answer(req).await,
        ("sys/storage/raft/remove-peer", _) if write => remove_peer(core, req).await,
        ("sys/storage/raft/promote", _) if write => set_voter(core, req, true).await,
        ("sys/storage/raft/demote", _) if write => set_voter(core, req, false).await,
        ("sys/storage/raft/configuration", Operation::Read) => Ok(configuration(core)),
        ("sys/step-down", _) if write => step_down(core).await,
        ("sys/storage/raft/autopilot/configuration", _) => core.autopilot_configuration(req).await,
        ("sys/storage/raft/autopilot/state", Operation::Read) => core.autopilot_state().await,
        ("sys/ha-status", Operation::Read) => Ok(ha_status(core)),
        (
            "sys/storage/raft/bootstrap/challenge"
            | "sys/storage/raft/bootstrap/answer"
            | "sys/storage/raft/remove-peer"
            | "sys/storage/raft/promote"
            | "sys/storage/raft/demote"
            | "sys/storage/raft/configuration"
            | "sys/step-down"
            | "sys/storage/raft/autopilot/state"
            | "sys/ha-status",
            _,
        ) => Err(CoreError::UnsupportedOperation),
        _ => return None,
    };
    Some(result)
}

fn server_id(req: &Request) -> Result<String, CoreError> {
    str_param(&req.data, "server_id")?
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| CoreError::InvalidRequest("no server id provided".into()))
}

async fn remove_peer(core: &Core, req: &Request) -> Result<Response, CoreError> {
    let cluster = core.cluster().cloned().ok_or_else(not_raft)?;
    let id = server_id(req)?;
    if !cluster.servers().iter().any(|s| s.node_id == id) {
        return Err(CoreError::InvalidRequest(format!(
            "server {id:?} is not a member of the raft configuration; `operator raft list-peers` shows the members"
        )));
    }
    cluster.remove(&id).await?;
    core.pin_non_voter(&id, false).await?;
    tracing::info!(server_id = %id, "removed a peer from the raft cluster");
    Ok(Response::no_content())
}

async fn set_voter(core: &Core, req: &Request, voter: bool) -> Result<Response, CoreError> {
    let cluster = core.cluster().cloned().ok_or_else(not_raft)?;
    let id = server_id(req)?;
    cluster.set_voter(&id, voter).await?;
    // An operator's explicit demotion sticks; a promotion lifts the pin.
    core.pin_non_voter(&id, !voter).await?;
    Ok(Response::no_content())
}

async fn step_down(core: &Core) -> Result<Response, CoreError> {
    // A single node (or memory storage) has no one to hand leadership to; as in Vault the
    // call succeeds and nothing changes.
    let Some(cluster) = core.cluster() else {
        return Ok(Response::no_content());
    };
    if cluster.servers().iter().filter(|s| s.voter).count() <= 1 {
        return Ok(Response::no_content());
    }
    cluster.step_down().await?;
    Ok(Response::no_content())
}

/// `sys/storage/raft/configuration`: the servers of the configuration in force.
pub(crate) fn configuration(core: &Core) -> Response {
    let status = core.storage.status();
    let servers: Vec<Value> = match core.cluster() {
        Some(cluster) => cluster
            .servers()
            .iter()
            .map(|s| {
                json!({
                    "address": s.cluster_addr,
                    "leader": s.leader,
                    "node_id": s.node_id,
                    "protocol_version": "3",
                    "voter": s.voter,
                })
            })
            .collect(),
        None => status
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
            .collect(),
    };
    let mut data = Map::new();
    data.insert(
        "config".into(),
        json!({"index": status.config_index, "servers": servers}),
    );
    Response::with_data(data)
}

/// `sys/ha-status`: this active node and the standbys that echoed recently.
fn ha_status(core: &Core) -> Response {
    let (api_addr, cluster_addr) = lock(&core.node.advertised).clone();
    let hostname = crate::util::hostname();
    let mut nodes = vec![json!({
        "hostname": hostname,
        "api_address": api_addr,
        "cluster_address": cluster_addr,
        "active_node": true,
        "last_echo": Value::Null,
        "version": strongroom_api::VAULT_COMPAT_VERSION,
    })];
    for echo in core.standby_echoes() {
        nodes.push(json!({
            "hostname": if echo.hostname.is_empty() { echo.node_id.clone() } else { echo.hostname.clone() },
            "api_address": echo.api_addr,
            "cluster_address": echo.cluster_addr,
            "active_node": false,
            "last_echo": crate::util::rfc3339(echo.last_echo, false),
            "version": echo.version,
        }));
    }
    let mut data = Map::new();
    data.insert("nodes".into(), Value::Array(nodes));
    Response::with_data(data)
}

//! Node-state endpoints: bare JSON answers outside the logical envelope, before the door.
//!
//! Init, seal-status, unseal, health, leader and root generation must work while the barrier
//! is sealed and before any token exists, so they are answered here by dedicated core methods
//! (core's route table lists them as node-state paths). So is `sys/metrics` when the listener
//! allows unauthenticated access, as in Vault. Seal, step-down, authenticated metrics and
//! snapshots pass the door like every other request (see `logical.rs`).

use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::json;
use strongroom_api::{
    GenerateRootStartRequest, GenerateRootUpdateRequest, InitRequest, UnsealRequest,
};
use strongroom_core::routing::Access;
use strongroom_core::{Core, CoreError};

use crate::call::Call;
use crate::health;
use crate::parse;
use crate::reply;

type Resp = axum::response::Response;

/// The raw endpoint for `call`, or `None` if the path is logical.
pub(crate) async fn handle(
    core: &Arc<Core>,
    call: &Call,
    unauthenticated_metrics: bool,
) -> Option<Resp> {
    // Only the route table's node-state rows are answered here: a handler below without a
    // row is unreachable, so nothing can be served beside the door without being listed.
    let node_state = strongroom_core::routing::table::lookup(&call.path)
        .is_some_and(|row| row.access == Access::NodeState);
    let open_metrics = unauthenticated_metrics && call.path == "sys/metrics";
    if !node_state && !open_metrics {
        return None;
    }
    let resp = match call.path.as_str() {
        "sys/init" => init(core, call).await,
        "sys/seal-status" => {
            get_only(call, || async { json_result(core.seal_status().await) }).await
        }
        "sys/unseal" => unseal(core, call).await,
        "sys/leader" => get_only(call, || async { json_result(core.leader().await) }).await,
        "sys/health" => health(core, call).await,
        "sys/generate-root/attempt" => generate_root_attempt(core, call).await,
        "sys/generate-root/update" => generate_root_update(core, call).await,
        "sys/rekey/init" | "sys/rekey/update" | "sys/rekey/verify" => {
            crate::rekey::handle(core, call).await
        }
        "sys/metrics" => metrics(core, call).await,
        "sys/storage/raft/join" => raft_join(core, call).await,
        _ => return None,
    };
    Some(resp)
}

/// Whether `path` accepts a snapshot body, which may exceed `max_request_size`.
pub(crate) fn is_snapshot_upload(path: &str) -> bool {
    matches!(
        path,
        "sys/storage/raft/snapshot" | "sys/storage/raft/snapshot-force"
    )
}

fn json_result<T: serde::Serialize>(r: Result<T, CoreError>) -> Resp {
    match r {
        Ok(v) => reply::json(StatusCode::OK, &v),
        Err(e) => reply::core_error(&e),
    }
}

async fn get_only<F, Fut>(call: &Call, f: F) -> Resp
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Resp>,
{
    if call.method == Method::GET {
        f().await
    } else {
        reply::method_not_allowed()
    }
}

async fn init(core: &Arc<Core>, call: &Call) -> Resp {
    if call.method == Method::GET {
        return match core.initialized().await {
            Ok(b) => reply::json(StatusCode::OK, &json!({ "initialized": b })),
            Err(e) => reply::core_error(&e),
        };
    }
    if !call.is_write() {
        return reply::method_not_allowed();
    }
    match parse::typed_body::<InitRequest>(&call.body) {
        Ok(req) => json_result(core.init(req).await),
        Err(e) => e.into(),
    }
}

/// `sys/storage/raft/join`, sent to the joining node itself, before it is initialized.
async fn raft_join(core: &Arc<Core>, call: &Call) -> Resp {
    if !call.is_write() {
        return reply::method_not_allowed();
    }
    match crate::join::from_body(&call.body) {
        Ok(join) => match core
            .raft_join(join.leaders, join.retry, join.non_voter)
            .await
        {
            Ok(_) => reply::json(StatusCode::OK, &json!({ "joined": true })),
            Err(e) => reply::core_error(&e),
        },
        Err(e) => e.into(),
    }
}

async fn unseal(core: &Arc<Core>, call: &Call) -> Resp {
    if !call.is_write() {
        return reply::method_not_allowed();
    }
    match parse::typed_body::<UnsealRequest>(&call.body) {
        Ok(req) => json_result(core.unseal(req).await),
        Err(e) => e.into(),
    }
}

async fn health(core: &Arc<Core>, call: &Call) -> Resp {
    let head = call.method == Method::HEAD;
    if call.method != Method::GET && !head {
        return reply::method_not_allowed();
    }
    let (state, body) = match core.health().await {
        Ok(v) => v,
        Err(e) => return reply::core_error(&e),
    };
    let code = match health::status_code(state, &call.query) {
        Ok(c) => c,
        Err(e) => return e.into(),
    };
    if head {
        return reply::with_body(code, "application/json", axum::body::Body::empty());
    }
    reply::json(code, &body)
}

async fn generate_root_attempt(core: &Arc<Core>, call: &Call) -> Resp {
    match call.method {
        Method::GET => json_result(core.generate_root_status().await),
        Method::DELETE => {
            core.generate_root_cancel();
            reply::no_content()
        }
        _ if call.is_write() => match parse::typed_body::<GenerateRootStartRequest>(&call.body) {
            Ok(req) => json_result(core.generate_root_start(req).await),
            Err(e) => e.into(),
        },
        _ => reply::method_not_allowed(),
    }
}

async fn generate_root_update(core: &Arc<Core>, call: &Call) -> Resp {
    if !call.is_write() {
        return reply::method_not_allowed();
    }
    match parse::typed_body::<GenerateRootUpdateRequest>(&call.body) {
        Ok(req) => json_result(core.generate_root_update(req).await),
        Err(e) => e.into(),
    }
}

/// `sys/metrics` on a listener with `unauthenticated_metrics_access`: no token, no audit,
/// served even while sealed or on a DR secondary (monitoring must see those nodes too).
async fn metrics(core: &Arc<Core>, call: &Call) -> Resp {
    if call.method != Method::GET {
        return reply::method_not_allowed();
    }
    let format = parse::query_value(&call.query, "format");
    let rendered =
        strongroom_core::sys::parse_metrics_format(format).and_then(|f| core.telemetry().render(f));
    match rendered {
        Ok((content_type, body)) => reply::with_body(StatusCode::OK, content_type, body),
        Err(e) => reply::core_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strongroom_core::routing::{Access, ROUTES};

    #[tokio::test]
    async fn every_node_state_route_has_a_handler_here() {
        // Why: core's route table declares which paths skip the door because `http`
        // answers them; a row without a handler here would fall through to the door and
        // answer 404, and a handler without a row would be a way in that nobody listed.
        let core = Core::new(
            Default::default(),
            Arc::new(strongroom_storage::InmemStorage::new()),
        );
        for row in ROUTES.iter().filter(|r| r.access == Access::NodeState) {
            let call = Call {
                method: Method::GET,
                uri: Default::default(),
                version: Default::default(),
                headers: Default::default(),
                query: Vec::new(),
                path: row.sample.0.to_owned(),
                body: Default::default(),
                peer: None,
            };
            assert!(
                handle(&core, &call, false).await.is_some(),
                "{}",
                row.pattern
            );
        }
        for path in [
            "sys/seal",
            "sys/step-down",
            "sys/storage/raft/snapshot",
            "sys/metrics",
        ] {
            let call = Call {
                method: Method::GET,
                uri: Default::default(),
                version: Default::default(),
                headers: Default::default(),
                query: Vec::new(),
                path: path.to_owned(),
                body: Default::default(),
                peer: None,
            };
            assert!(
                handle(&core, &call, false).await.is_none(),
                "{path} skips the door"
            );
        }
    }
}

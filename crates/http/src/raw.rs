//! Raw endpoints: bare JSON (or bytes) answers outside the logical envelope.
//!
//! Init, unseal, health, leader and root generation must work while the barrier is sealed and
//! before any token exists, so they bypass core's logical pipeline and call dedicated core
//! methods. Metrics and snapshots check a token but answer with non-JSON bodies.

use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::json;
use strongroom_api::{
    GenerateRootStartRequest, GenerateRootUpdateRequest, InitRequest, UnsealRequest,
};
use strongroom_core::{Core, CoreError, MetricsFormat};

use crate::call::Call;
use crate::health;
use crate::parse::{self, BadRequest};
use crate::reply;

type Resp = axum::response::Response;

/// The raw endpoint for `call`, or `None` if the path is logical.
pub(crate) async fn handle(
    core: &Arc<Core>,
    call: &Call,
    unauthenticated_metrics: bool,
) -> Option<Resp> {
    let resp = match call.path.as_str() {
        "sys/init" => init(core, call).await,
        "sys/seal-status" => {
            get_only(call, || async { json_result(core.seal_status().await) }).await
        }
        "sys/unseal" => unseal(core, call).await,
        "sys/seal" => seal(core, call).await,
        "sys/step-down" => step_down(core, call).await,
        "sys/leader" => get_only(call, || async { json_result(core.leader().await) }).await,
        "sys/health" => health(core, call).await,
        "sys/generate-root/attempt" => generate_root_attempt(core, call).await,
        "sys/generate-root/update" => generate_root_update(core, call).await,
        "sys/rekey/init" | "sys/rekey/update" | "sys/rekey/verify" => {
            crate::rekey::handle(core, call).await
        }
        "sys/metrics" => metrics(core, call, unauthenticated_metrics).await,
        "sys/storage/raft/snapshot" => snapshot(core, call, false).await,
        "sys/storage/raft/snapshot-force" => snapshot(core, call, true).await,
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

fn empty_result(r: Result<(), CoreError>) -> Resp {
    match r {
        Ok(()) => reply::no_content(),
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

async fn unseal(core: &Arc<Core>, call: &Call) -> Resp {
    if !call.is_write() {
        return reply::method_not_allowed();
    }
    match parse::typed_body::<UnsealRequest>(&call.body) {
        Ok(req) => json_result(core.unseal(req).await),
        Err(e) => e.into(),
    }
}

async fn seal(core: &Arc<Core>, call: &Call) -> Resp {
    if !call.is_write() {
        return reply::method_not_allowed();
    }
    match call.token() {
        Ok(token) => empty_result(core.seal(token.as_deref()).await),
        Err(e) => e.into(),
    }
}

/// `sys/step-down`: needs a root (sudo) token, as Vault's.
async fn step_down(core: &Arc<Core>, call: &Call) -> Resp {
    if !call.is_write() {
        return reply::method_not_allowed();
    }
    match call.token() {
        Ok(token) => empty_result(core.step_down(token.as_deref()).await),
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

async fn metrics(core: &Arc<Core>, call: &Call, unauthenticated: bool) -> Resp {
    if call.method != Method::GET {
        return reply::method_not_allowed();
    }
    let format = match parse::query_value(&call.query, "format") {
        None | Some("") | Some("json") => MetricsFormat::Json,
        Some("prometheus") => MetricsFormat::Prometheus,
        Some(other) => {
            return BadRequest::new(format!(
                "unknown metrics format {other:?}: use \"json\" or \"prometheus\""
            ))
            .into();
        }
    };
    let token = match call.token() {
        Ok(t) => t,
        Err(e) => return e.into(),
    };
    match core
        .metrics(token.as_deref(), format, unauthenticated)
        .await
    {
        Ok((content_type, body)) => reply::with_body(StatusCode::OK, content_type, body),
        Err(e) => reply::core_error(&e),
    }
}

async fn snapshot(core: &Arc<Core>, call: &Call, force: bool) -> Resp {
    let token = match call.token() {
        Ok(t) => t,
        Err(e) => return e.into(),
    };
    if call.method == Method::GET && !force {
        return match core.snapshot_save(token.as_deref()).await {
            Ok(bytes) => reply::with_body(StatusCode::OK, "application/octet-stream", bytes),
            Err(e) => reply::core_error(&e),
        };
    }
    if !call.is_write() {
        return reply::method_not_allowed();
    }
    empty_result(
        core.snapshot_restore(token.as_deref(), &call.body, force)
            .await,
    )
}

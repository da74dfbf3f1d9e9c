//! What a standby does with a client request: forward it to the active node, or redirect.
//!
//! A standby answers node state itself, and reads when it serves them (`router.rs` decides,
//! with `consistency.rs`). Everything else goes to the active node over the cluster port,
//! transparently, or, when the client asks for it with `X-Vault-No-Request-Forwarding` or
//! forwarding fails, as a 307 to the active node's `api_addr` (which Vault's clients follow).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use strongroom_core::Core;
use strongroom_core::ha::{ActiveNode, ForwardTarget};

use crate::forward::Forwarder;
use crate::reply;

/// The header that asks a standby to redirect instead of forwarding.
pub const NO_FORWARDING_HEADER: &str = "x-vault-no-request-forwarding";
/// The path a standby's echo takes over the forwarding channel (never served to clients).
pub const ECHO_PATH: &str = "/v1/sys/internal/strongroom/echo";
pub(crate) const ECHO_API_ADDR: &str = "x-strongroom-echo-api-addr";
pub(crate) const ECHO_CLUSTER_ADDR: &str = "x-strongroom-echo-cluster-addr";
pub(crate) const ECHO_HOSTNAME: &str = "x-strongroom-echo-hostname";

/// Serves `req` on behalf of the active node.
pub(crate) async fn divert(
    core: &Arc<Core>,
    forwarder: Option<&Arc<Forwarder>>,
    req: http::Request<Body>,
    peer: Option<SocketAddr>,
) -> Response {
    let active = match core.forward_target().await {
        ForwardTarget::Active(active) => active,
        ForwardTarget::Unknown => {
            return reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "local node not active but active cluster node not found",
            );
        }
        ForwardTarget::Local => {
            return reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "this node is changing between standby and active; retry the request",
            );
        }
    };
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| req.uri().path().to_owned());
    let no_forwarding = req
        .headers()
        .get(NO_FORWARDING_HEADER)
        .is_some_and(|v| !v.is_empty());
    let Some(forwarder) = forwarder.filter(|_| !no_forwarding) else {
        return redirect(&active, &target);
    };
    let forwarded = forwarder.forward(&active.cluster_addr, req, peer);
    let Some(mut leadership) = core.leadership() else {
        return answer(forwarded.await, &active, &target);
    };
    // A request in flight to an active node that loses its leadership (cut off, or killed
    // without a clean close) would wait for the forwarding timeout; it is abandoned as soon
    // as Raft names another leader, and the client retries against the new one. The outcome is
    // unknown to the client either way; a deposed leader cannot commit it.
    let moved = async {
        loop {
            if leadership.changed().await.is_err() {
                return std::future::pending::<()>().await;
            }
            let now = leadership.borrow().leader.clone();
            if now.is_some_and(|l| l != active.node_id) {
                return;
            }
        }
    };
    tokio::select! {
        result = forwarded => answer(result, &active, &target),
        () = moved => {
            metrics::counter!("vault_ha_rpc_client_forward_errors_total").increment(1);
            reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the active node changed while the request was forwarded to it; its outcome is unknown, retry the request",
            )
        }
    }
}

fn answer(
    result: Result<Response, crate::forward::ForwardError>,
    active: &ActiveNode,
    target: &str,
) -> Response {
    match result {
        Ok(resp) => {
            metrics::counter!("vault_ha_rpc_client_forward_total").increment(1);
            resp
        }
        Err(e) if e.should_redirect() => {
            tracing::warn!(error = %e, "forwarding to the active node failed; redirecting the client");
            metrics::counter!("vault_ha_rpc_client_forward_errors_total").increment(1);
            redirect(active, target)
        }
        Err(e) => reply::error(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
    }
}

fn redirect(active: &ActiveNode, target: &str) -> Response {
    let location = format!("{}{target}", active.api_addr.trim_end_matches('/'));
    let mut resp = reply::with_body(StatusCode::TEMPORARY_REDIRECT, "text/plain", Body::empty());
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
            resp
        }
        Err(_) => reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the active node advertises an api_addr that is not a valid URL",
        ),
    }
}

/// `sys/seal` on a standby seals that node only, as in Vault. The standby cannot judge a
/// token itself (it holds no token store or policies), so it asks the active node, through the
/// door there (audited), what the caller's token may do on `sys/seal`, and seals itself only if
/// the answer includes `sudo` and `update` (or `root`).
pub(crate) async fn seal_standby(
    core: &Arc<Core>,
    forwarder: Option<&Arc<Forwarder>>,
    headers: &http::HeaderMap,
    peer: Option<SocketAddr>,
) -> Response {
    let (Some(forwarder), ForwardTarget::Active(active)) = (forwarder, core.forward_target().await)
    else {
        return reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "local node not active but active cluster node not found",
        );
    };
    let mut req = http::Request::builder()
        .method(http::Method::POST)
        .uri("/v1/sys/capabilities-self")
        .header(header::CONTENT_TYPE, "application/json");
    for name in ["x-vault-token", "authorization"] {
        if let Some(v) = headers.get(name) {
            req = req.header(name, v);
        }
    }
    let Ok(req) = req.body(Body::from(r#"{"paths":["sys/seal"]}"#)) else {
        return reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "building the capability check failed",
        );
    };
    let resp = match forwarder.forward(&active.cluster_addr, req, peer).await {
        Ok(resp) => resp,
        Err(e) => {
            return reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot check the token with the active node: {e}"),
            );
        }
    };
    let status = resp.status();
    let bytes = match axum::body::to_bytes(resp.into_body(), 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => {
            return reply::error(
                StatusCode::BAD_GATEWAY,
                format!("reading the capability check: {e}"),
            );
        }
    };
    if !status.is_success() {
        // The active node's own refusal (403 for a bad token) is the answer.
        return reply::with_body(status, "application/json", Body::from(bytes));
    }
    let caps: Vec<String> = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| {
            let data = v.get("data").cloned().unwrap_or(v);
            data.get("sys/seal")
                .or_else(|| data.get("capabilities"))
                .cloned()
        })
        .and_then(|c| serde_json::from_value(c).ok())
        .unwrap_or_default();
    let has = |c: &str| caps.iter().any(|x| x == c);
    if !(has("root") || (has("sudo") && has("update"))) {
        return reply::error(StatusCode::FORBIDDEN, "permission denied");
    }
    core.seal_standby().await;
    reply::no_content()
}

/// Sends this standby's echo to the active node: its addresses, so `sys/ha-status` lists it.
pub async fn send_echo(
    forwarder: &Forwarder,
    core: &Core,
    active_cluster_addr: &str,
) -> Result<(), String> {
    let (api_addr, cluster_addr) = core.advertised_addrs();
    let req = http::Request::builder()
        .method(http::Method::POST)
        .uri(ECHO_PATH)
        .header(ECHO_API_ADDR, api_addr)
        .header(ECHO_CLUSTER_ADDR, cluster_addr)
        .header(ECHO_HOSTNAME, strongroom_core::util::hostname())
        .body(Body::empty())
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(
        Duration::from_secs(5),
        forwarder.forward(active_cluster_addr, req, None),
    )
    .await
    .map_err(|_| "the active node did not answer the echo within 5s".to_owned())?
    .map_err(|e| e.to_string())?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!(
            "the active node answered the echo with {}",
            resp.status()
        ))
    }
}

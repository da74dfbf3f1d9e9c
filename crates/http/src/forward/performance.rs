//! Forwarding between clusters: a performance secondary's writes to its primary.
//!
//! The secondary's door has already admitted the request (its token is the secondary's own,
//! unknown to the primary), and core refused the write because it touches shared state
//! (`strongroom_core::ha::Tracked::needs_primary`). Here the secondary sends it to the primary's
//! active node over the cluster port (`repl_fw_v1`, under the activation identity the
//! primary issued it), without the client's token and with the caller in
//! [`IDENTITY_HEADER`]; then it waits, bounded, until the write's WAL index has streamed back,
//! so the client can read its own write here. The primary's end believes that header only on
//! this channel, from a secondary it serves.
//!
//! Why HTTP/2 and the same router as the API: the primary answers exactly as it would answer
//! the client (status, envelope, `X-Vault-Index`), and the secondary passes that answer on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderValue, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use strongroom_core::{Core, ForwardedIdentity};
use strongroom_replication::{ClientTls, ClusterPeer, StreamHandler};
use strongroom_storage::BoxStream;
use tokio::sync::Mutex;
use tower::ServiceExt;

use super::{FORWARDED_FOR_HEADER, Forwarder, ForwarderOptions};
use crate::consistency;
use crate::reply;

/// The header carrying the caller of a forwarded request (base64url JSON).
pub const IDENTITY_HEADER: &str = "x-strongroom-forwarded-identity";
/// How long a secondary waits for a forwarded write's WAL index (Vault's
/// `best_effort_wal_wait_duration` default).
pub const BEST_EFFORT_WAL_WAIT: Duration = Duration::from_secs(2);
/// Largest answer body a secondary rewrites to add its warning.
const MAX_REWRITTEN_BODY: usize = 32 * 1024 * 1024;
/// Concurrent forwarded requests per secondary connection.
const MAX_CONCURRENT_STREAMS: u32 = 256;

/// Marks a request that a performance secondary forwarded, with its caller.
#[derive(Debug, Clone)]
pub(crate) struct ForwardedBySecondary(pub ForwardedIdentity);

/// The secondary's end: one forwarder per activation identity and primary address.
#[derive(Default)]
pub struct PrimaryForwarder {
    cached: Mutex<Option<(String, Arc<Forwarder>)>>,
}

impl std::fmt::Debug for PrimaryForwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrimaryForwarder")
    }
}

impl PrimaryForwarder {
    /// The forwarder for the current route, rebuilt when the identity changed.
    async fn forwarder(
        &self,
        route: &strongroom_core::PrimaryRoute,
    ) -> Result<Arc<Forwarder>, String> {
        let key = format!("{}\n{}", route.secondary_id, route.client_cert_pem);
        let mut cached = self.cached.lock().await;
        if let Some((k, f)) = cached.as_ref()
            && *k == key
        {
            return Ok(f.clone());
        }
        let tls = ClientTls::new(&route.ca_pem, &route.client_cert_pem, &route.client_key_pem)
            .map_err(|e| e.to_string())?;
        let forwarder = Arc::new(Forwarder::to_primary(tls, ForwarderOptions::default()));
        *cached = Some((key, forwarder.clone()));
        Ok(forwarder)
    }
}

/// Sends a request the secondary's door admitted to the primary, waits for its WAL index,
/// and answers the client with the primary's answer.
pub(crate) async fn forward_to_primary(
    core: &Arc<Core>,
    client: &PrimaryForwarder,
    mut req: http::Request<Body>,
    identity: ForwardedIdentity,
    peer: Option<SocketAddr>,
) -> axum::response::Response {
    let Some(route) = core.performance_primary_route() else {
        return reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this performance secondary is not connected to a primary, so shared state cannot change now: retry when sys/replication/performance/status shows a connected primary, or update-primary or promote it",
        );
    };
    // Wrapped here, not on the primary: its wrapping tokens would not unwrap on this cluster.
    // The TTL is the one this secondary's door settled on (header or policy).
    let wrap_ttl = identity.wrap_ttl_secs.map(Duration::from_secs);
    let path = req.uri().path().trim_start_matches("/v1/").to_owned();
    let headers = req.headers_mut();
    headers.remove("x-vault-wrap-ttl");
    headers.remove("x-vault-token");
    headers.remove(http::header::AUTHORIZATION);
    headers.remove(IDENTITY_HEADER);
    match serde_json::to_vec(&identity)
        .ok()
        .and_then(|raw| HeaderValue::from_str(&URL_SAFE_NO_PAD.encode(raw)).ok())
    {
        Some(v) => {
            headers.insert(IDENTITY_HEADER, v);
        }
        None => {
            return reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the caller's identity could not be encoded for the primary",
            );
        }
    }
    let forwarder = match client.forwarder(&route).await {
        Ok(f) => f,
        Err(e) => {
            return reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the activation identity cannot be used to reach the primary: {e}"),
            );
        }
    };
    let started = Instant::now();
    let answer = match forwarder.forward(&route.addr, req, peer).await {
        Ok(a) => a,
        Err(e) => {
            metrics::counter!("vault_replication_performance_forward_errors_total").increment(1);
            tracing::warn!(error = %e, "forwarding a write to the performance primary failed");
            return reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "this performance secondary could not reach its primary to apply the change ({e}); reads are still served here, retry the write when the primary is reachable"
                ),
            );
        }
    };
    metrics::counter!("vault_replication_performance_forward_total").increment(1);
    metrics::histogram!("vault_replication_performance_forward_seconds")
        .record(started.elapsed().as_secs_f64());
    let answer = await_write(core, answer).await;
    match wrap_ttl {
        Some(ttl) => wrap_here(core, &path, answer, ttl).await,
        None => answer,
    }
}

/// The primary's successful JSON answer, response-wrapped on this cluster.
async fn wrap_here(
    core: &Core,
    path: &str,
    answer: axum::response::Response,
    ttl: Duration,
) -> axum::response::Response {
    if answer.status() != StatusCode::OK {
        return answer;
    }
    let (parts, body) = answer.into_parts();
    let Ok(bytes) = http_body_util::Limited::new(body, MAX_REWRITTEN_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
    else {
        return reply::error(
            StatusCode::BAD_GATEWAY,
            "the primary's answer could not be read",
        );
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return http::Response::from_parts(parts, Body::from(bytes));
    };
    let data = value.get("data").and_then(|d| d.as_object()).cloned();
    let warnings = value
        .get("warnings")
        .and_then(|w| w.as_array())
        .map(|w| {
            w.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    match core.wrap_forwarded_answer(path, data, warnings, ttl).await {
        Ok(resp) => {
            let request_id = value
                .get("request_id")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned();
            let mut out = reply::json(
                StatusCode::OK,
                &crate::logical::envelope(path, request_id, resp),
            );
            if let Some(index) = parts.headers.get(consistency::INDEX_HEADER) {
                out.headers_mut()
                    .insert(consistency::INDEX_HEADER, index.clone());
            }
            out
        }
        Err(e) => reply::core_error(&e),
    }
}

/// Waits until the WAL index in `answer`'s `X-Vault-Index` arrived here (bounded), and warns
/// in the answer when it did not.
async fn await_write(core: &Core, answer: http::Response<Body>) -> axum::response::Response {
    let index = answer
        .headers()
        .get(consistency::INDEX_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| consistency::decode(v).ok());
    let Some(index) = index else {
        return answer;
    };
    if core
        .await_remote_wal(index.wal_index, BEST_EFFORT_WAL_WAIT)
        .await
    {
        return answer;
    }
    metrics::counter!("vault_replication_performance_wal_wait_timeouts_total").increment(1);
    let warning = format!(
        "the primary applied this request, but its WAL index {} had not reached this performance secondary after {}s; a read here may not see it yet",
        index.wal_index,
        BEST_EFFORT_WAL_WAIT.as_secs()
    );
    with_warning(answer, warning).await
}

/// `answer` with `warning` added to its JSON `warnings` (a 204 becomes a 200 with a body).
async fn with_warning(answer: http::Response<Body>, warning: String) -> axum::response::Response {
    let (mut parts, body) = answer.into_parts();
    let bytes = match http_body_util::Limited::new(body, MAX_REWRITTEN_BODY)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return reply::error(
                StatusCode::BAD_GATEWAY,
                "the primary's answer could not be read",
            );
        }
    };
    let mut value: serde_json::Value = if bytes.is_empty() {
        serde_json::json!({"request_id": "", "lease_id": "", "lease_duration": 0, "renewable": false, "data": null, "wrap_info": null, "auth": null})
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            // Not JSON (raw bytes): passed on unchanged.
            Err(_) => return http::Response::from_parts(parts, Body::from(bytes)),
        }
    };
    if let Some(obj) = value.as_object_mut() {
        let warnings = obj
            .entry("warnings")
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if !warnings.is_array() {
            *warnings = serde_json::Value::Array(Vec::new());
        }
        if let Some(list) = warnings.as_array_mut() {
            list.push(serde_json::Value::String(warning));
        }
    }
    let out = serde_json::to_vec(&value).unwrap_or_default();
    if parts.status == StatusCode::NO_CONTENT {
        parts.status = StatusCode::OK;
    }
    parts.headers.remove(http::header::CONTENT_LENGTH);
    http::Response::from_parts(parts, Body::from(out))
}

/// The primary's end: HTTP/2 on an authenticated `repl_fw_v1` stream from a performance
/// secondary, served by the API router with the caller from [`IDENTITY_HEADER`].
#[derive(Clone)]
pub struct PrimaryForwardHandler {
    core: Arc<Core>,
    router: Router,
}

impl PrimaryForwardHandler {
    pub fn new(core: Arc<Core>, router: Router) -> Self {
        PrimaryForwardHandler { core, router }
    }
}

/// Reads and checks the identity header of a forwarded request (`None`: absent or not
/// believable, so the request is served as anonymous).
fn take_identity(headers: &mut http::HeaderMap, secondary_id: &str) -> Option<ForwardedIdentity> {
    let value = headers.remove(IDENTITY_HEADER)?;
    let raw = URL_SAFE_NO_PAD.decode(value.as_bytes()).ok()?;
    let mut identity: ForwardedIdentity = serde_json::from_slice(&raw).ok()?;
    if !identity.is_bounded() {
        tracing::warn!(%secondary_id, "forwarded identity too large; serving the request without it");
        return None;
    }
    identity.secondary_id = secondary_id.to_owned();
    Some(identity)
}

#[async_trait]
impl StreamHandler for PrimaryForwardHandler {
    async fn handle(&self, stream: BoxStream, peer: ClusterPeer) {
        let secondary_id = peer.node_id.clone();
        if !self.core.serves_performance_secondary(&secondary_id) {
            tracing::warn!(%secondary_id, "forwarding from a performance secondary this cluster does not serve; closing");
            return;
        }
        let core = self.core.clone();
        let router = self.router.clone();
        let id = secondary_id.clone();
        let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
            let mut req = req.map(Body::new);
            let core = core.clone();
            let router = router.clone();
            let id = id.clone();
            async move {
                // Revocation and demotion take effect on the next request, not the next dial.
                if !core.serves_performance_secondary(&id) || core.is_standby() {
                    return Ok::<_, std::convert::Infallible>(reply::error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "this node does not serve that performance secondary now (revoked, demoted, or not the active node)",
                    ));
                }
                let client = req
                    .headers_mut()
                    .remove(FORWARDED_FOR_HEADER)
                    .and_then(|v| v.to_str().ok().and_then(|v| v.parse::<SocketAddr>().ok()));
                if let Some(addr) = client {
                    req.extensions_mut().insert(ConnectInfo(addr));
                }
                let identity = take_identity(req.headers_mut(), &id).unwrap_or(ForwardedIdentity {
                    secondary_id: id.clone(),
                    ..ForwardedIdentity::default()
                });
                req.extensions_mut().insert(ForwardedBySecondary(identity));
                router.oneshot(req).await
            }
        });
        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
            .keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(20));
        if let Err(e) = builder
            .serve_connection(TokioIo::new(stream), service)
            .await
        {
            tracing::debug!(%secondary_id, remote = %peer.remote_addr, error = %e,
                "performance forwarding connection ended with an error");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_header_is_consumed_and_the_secondary_id_comes_from_the_channel() {
        // Why: a secondary must not speak for another, and nothing downstream may re-read it.
        let sent = ForwardedIdentity {
            secondary_id: "someone-else".into(),
            policies: vec!["writer".into()],
            display_name: "userpass-bob".into(),
            ..ForwardedIdentity::default()
        };
        let mut headers = http::HeaderMap::new();
        let encoded = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&sent).unwrap());
        headers.insert(IDENTITY_HEADER, encoded.parse().unwrap());

        let got = take_identity(&mut headers, "pr-1").unwrap();

        assert_eq!(got.secondary_id, "pr-1");
        assert_eq!(got.policies, vec!["writer"]);
        assert!(!headers.contains_key(IDENTITY_HEADER));
        headers.insert(IDENTITY_HEADER, "not base64 json".parse().unwrap());
        assert!(take_identity(&mut headers, "pr-1").is_none());
    }

    #[tokio::test]
    async fn a_late_write_gets_a_warning_and_a_body() {
        // Why: the client must learn that a read here right after may not see its write.
        let answer = http::Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(Body::empty())
            .unwrap();

        let out = with_warning(answer, "late".into()).await;

        assert_eq!(out.status(), StatusCode::OK);
        let bytes = out.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["warnings"], serde_json::json!(["late"]));
    }
}

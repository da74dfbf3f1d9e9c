//! The axum router: every request enters here, is bounded, read, routed and counted.
//!
//! Vault's paths are open-ended (`secret/a/b/c`, custom verbs like `LIST`), so instead of
//! axum's per-route table one fallback handler reads the request once and dispatches on the
//! logical path. Core work runs in its own task: a client that disconnects (or a request that
//! outlives `max_request_duration`) then never cancels an unseal or a write half-way.
//!
//! Every request runs inside core's tracking scope (`strongroom_core::ha::track`): the answer
//! of one that wrote storage gets `X-Vault-Index`, and a standby's local read that turned out
//! to need a write is sent on to the active node. A standby serves a read itself only after
//! the consistency check (`consistency.rs`), and always through the door.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use http::{Method, StatusCode};
use strongroom_core::Core;
use strongroom_core::snapshot::MAX_SNAPSHOT_BYTES;

use crate::body::read_body;
use crate::call::Call;
use crate::consistency::{self, Decision, Requirement};
use crate::forward::performance::{ForwardedBySecondary, forward_to_primary};
use crate::forward::{ForwardedBy, Forwarder, PrimaryForwarder};
use crate::parse;
use crate::{logical, raw, reply, standby};

/// Vault's default `max_request_size`: 32 MiB.
pub const DEFAULT_MAX_REQUEST_SIZE: u64 = 32 * 1024 * 1024;

/// Per-listener settings the router needs.
#[derive(Debug, Clone)]
pub struct RouterOptions {
    /// Largest accepted request body in bytes (snapshot uploads excepted); 0 means the default.
    pub max_request_size: u64,
    /// Serve `sys/metrics` without a token (`telemetry { unauthenticated_metrics_access }`).
    pub unauthenticated_metrics_access: bool,
    /// Answer 503 when a request takes longer; the work itself still completes.
    pub max_request_duration: Option<Duration>,
    /// How a standby reaches the active node (None: redirect only).
    pub forwarder: Option<Arc<Forwarder>>,
}

impl Default for RouterOptions {
    fn default() -> Self {
        RouterOptions {
            max_request_size: DEFAULT_MAX_REQUEST_SIZE,
            unauthenticated_metrics_access: false,
            max_request_duration: None,
            forwarder: None,
        }
    }
}

#[derive(Clone)]
struct AppState {
    core: Arc<Core>,
    opts: Arc<RouterOptions>,
    /// A performance secondary's connection to its primary (idle otherwise).
    to_primary: Arc<PrimaryForwarder>,
}

/// The Vault API as an axum router. The peer address is read from a
/// `ConnectInfo<SocketAddr>` extension when the server provides one.
pub fn router(core: Arc<Core>, mut opts: RouterOptions) -> Router {
    if opts.max_request_size == 0 {
        opts.max_request_size = DEFAULT_MAX_REQUEST_SIZE;
    }
    Router::new().fallback(dispatch).with_state(AppState {
        core,
        opts: Arc::new(opts),
        to_primary: Arc::new(PrimaryForwarder::default()),
    })
}

async fn dispatch(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    let method = method_label(req.method());
    // The path only: the query string and headers (tokens) and the body (secrets) stay out of
    // the log. Vault treats request paths as non-secret too (its audit log keeps them clear).
    let path = tracing::enabled!(tracing::Level::TRACE).then(|| loggable_path(req.uri().path()));
    let started = std::time::Instant::now();
    let resp = handle(state, req).await;
    if let Some(path) = path {
        tracing::trace!(
            method,
            path,
            status = resp.status().as_u16(),
            elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "request served"
        );
    }
    let class = match resp.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::counter!("vault_http_requests_total", "method" => method, "code" => class)
        .increment(1);
    resp
}

/// A standby's echo, accepted only over the forwarding channel.
fn echo(core: &Core, parts: &http::request::Parts) -> Response {
    let Some(ForwardedBy(node_id)) = parts.extensions.get::<ForwardedBy>() else {
        return reply::error(StatusCode::NOT_FOUND, "no handler for route");
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .chars()
            .take(256)
            .collect::<String>()
    };
    core.record_standby_echo(
        node_id,
        &header(standby::ECHO_HOSTNAME),
        &header(standby::ECHO_API_ADDR),
        &header(standby::ECHO_CLUSTER_ADDR),
        strongroom_api::VAULT_COMPAT_VERSION,
    );
    reply::no_content()
}

/// The request path for the log, with a token carried in the path hidden.
fn loggable_path(path: &str) -> String {
    let logical = path.strip_prefix("/v1/").unwrap_or(path);
    match strongroom_core::routing::token_in_path(logical) {
        Some((form, _)) => format!("/v1/{form}[redacted]"),
        None => path.to_owned(),
    }
}

/// A bounded label for the request method.
fn method_label(m: &Method) -> &'static str {
    match m.as_str() {
        "GET" => "GET",
        "PUT" => "PUT",
        "POST" => "POST",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "LIST" => "LIST",
        _ => "OTHER",
    }
}

async fn handle(state: AppState, req: axum::extract::Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = match parse::logical_path(parts.uri.path()) {
        Ok(Some(p)) => p,
        Ok(None) => {
            return reply::error(
                StatusCode::NOT_FOUND,
                "no route for this path: the Vault API is served below /v1/",
            );
        }
        Err(e) => return e.into(),
    };
    if let Err(e) = parse::check_namespace(&parts.headers) {
        return e.into();
    }
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if parts.uri.path() == standby::ECHO_PATH {
        return echo(&state.core, &parts);
    }
    // A standby answers node state itself and sends everything else to the active node.
    if path == "sys/seal" && parts.method != Method::GET && state.core.is_standby() {
        return standby::seal_standby(
            &state.core,
            state.opts.forwarder.as_ref(),
            &parts.headers,
            peer,
        )
        .await;
    }
    let standby_local = match place(&state, &parts, &path).await {
        Placement::Here { standby_local } => standby_local,
        Placement::Answer(resp) => return resp,
        Placement::Divert => {
            let req = http::Request::from_parts(parts, body);
            return standby::divert(&state.core, state.opts.forwarder.as_ref(), req, peer).await;
        }
    };
    let uploads_snapshot = raw::is_snapshot_upload(&path)
        && (parts.method == Method::PUT || parts.method == Method::POST);
    // Only a caller the door would admit may make the server buffer a snapshot-sized body.
    // Anyone else gets the listener's usual limit, and the door then refuses (and audits)
    // the upload like any other request.
    let mut limit = state.opts.max_request_size;
    if uploads_snapshot {
        let token = match parse::token(&parts.headers) {
            Ok(t) => t,
            Err(e) => return e.into(),
        };
        let mut probe = strongroom_core::Request::new(strongroom_core::Operation::Update, &path);
        probe.token = token;
        probe.client_addr = peer;
        if state.core.preflight(&probe).await.is_ok() {
            limit = MAX_SNAPSHOT_BYTES;
        }
    }
    let body = match read_body(parts.version, &parts.headers, body, limit).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let from_secondary = parts
        .extensions
        .get::<ForwardedBySecondary>()
        .map(|f| f.0.clone());
    let call = Call {
        uri: parts.uri.clone(),
        version: parts.version,
        query: parse::query_pairs(parts.uri.query()),
        peer,
        method: parts.method,
        headers: parts.headers,
        path,
        body,
    };
    let placed = Placed {
        standby_local,
        from_secondary,
    };
    let task = tokio::spawn(serve_call(state.clone(), call, placed));
    let joined = match state.opts.max_request_duration {
        None => task.await,
        Some(limit) => match tokio::time::timeout(limit, task).await {
            Ok(joined) => joined,
            Err(_) => {
                return reply::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "request exceeded the listener's max_request_duration of {}s; \
                         it may still complete on the server",
                        limit.as_secs_f64()
                    ),
                );
            }
        },
    };
    joined.unwrap_or_else(|e| {
        tracing::error!(error = %e, "request handler task failed");
        reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error: request handler failed",
        )
    })
}

/// What `handle` decided about a request before serving it.
struct Placed {
    /// A read this standby serves itself.
    standby_local: bool,
    /// The caller of a request a performance secondary forwarded here.
    from_secondary: Option<strongroom_core::ForwardedIdentity>,
}

/// Serves one request (in its own task): through the door inside core's tracking scope,
/// then on to the primary or the active node when the door found it must be, or stamped with
/// `X-Vault-Index` when it wrote.
async fn serve_call(state: AppState, call: Call, placed: Placed) -> Response {
    let core = &state.core;
    let unauthenticated_metrics = state.opts.unauthenticated_metrics_access;
    let served = async {
        match raw::handle(core, &call, unauthenticated_metrics).await {
            Some(resp) => resp,
            None => logical::handle(core, &call).await,
        }
    };
    let tracked_request = strongroom_core::ha::track(placed.standby_local, served);
    let (mut resp, tracked) = match placed.from_secondary {
        // A performance secondary's request: its caller, not a token, passes the door.
        Some(identity) => strongroom_core::serve_as_forwarded(identity, tracked_request).await,
        None => tracked_request.await,
    };
    if tracked.needs_primary {
        let Some(identity) = tracked.identity else {
            // No caller the door admitted with a token: a login (forwarded, it would mint a
            // token on the primary, which this cluster does not know) or a node operation
            // such as a rekey, which must not be replayed on another cluster.
            return reply::error(
                StatusCode::BAD_REQUEST,
                "this request changes shared state, which only the performance primary can do, and it is not one this secondary can hand on (a login would get a token of the primary, not valid here): send it to the primary; for AppRole logins here use a role with local_secret_ids=true",
            );
        };
        // Shared state changes on the primary: the secondary's door admitted the request (and
        // audited it); the primary's door checks and audits it again.
        let req = rebuild(&call);
        return forward_to_primary(core, &state.to_primary, req, identity, call.peer).await;
    }
    if tracked.needs_active {
        // The read needed a write after all: the active node serves it (this node has
        // already audited it, so it is audited twice, as in OpenBao).
        record_standby_read("needs_active", &call.path);
        let req = rebuild(&call);
        return standby::divert(core, state.opts.forwarder.as_ref(), req, call.peer).await;
    }
    if placed.standby_local {
        record_standby_read("local", &call.path);
    }
    if tracked.wrote {
        stamp_index(core, &mut resp);
    }
    resp
}

/// Where a request is answered, decided before its body is read.
enum Placement {
    /// On this node; `standby_local` when it is a standby serving a read itself.
    Here { standby_local: bool },
    /// On the active node (forwarded, or a 307).
    Divert,
    /// Already answered: a 400 for a malformed consistency header, or a 412.
    Answer(Response),
}

/// Places a request by this node's role and the consistency headers. A standby answers node
/// state itself, serves the reads it can at the state the client asked for, and sends the
/// rest to the active node; the active node waits (bounded) only for an index it has not
/// applied yet. The cheap role check comes first: without `X-Vault-Index` an active node
/// never walks the route table here.
async fn place(state: &AppState, parts: &http::request::Parts, path: &str) -> Placement {
    let standby = state.core.is_standby();
    if !standby && !parts.headers.contains_key(consistency::INDEX_HEADER) {
        return Placement::Here {
            standby_local: false,
        };
    }
    // Node state, and the metrics a listener serves without a token: this node's own.
    let node_state = (state.opts.unauthenticated_metrics_access && path == "sys/metrics")
        || strongroom_core::routing::table::lookup(path)
            .is_some_and(|row| row.access == strongroom_core::routing::Access::NodeState);
    if node_state {
        return Placement::Here {
            standby_local: false,
        };
    }
    let requirement = match Requirement::from_headers(&parts.headers) {
        Ok(r) => r,
        Err(e) => return Placement::Answer(e.into()),
    };
    if standby {
        place_on_standby(state, parts, path, &requirement).await
    } else {
        let reads = read_operation(parts).is_some();
        place_on_active(state, path, reads, &requirement).await
    }
}

/// The active node serves everything; it waits (bounded) for the states it lacks: its own
/// Raft index, and on a performance secondary, for a read, its primary's WAL index (the index a
/// write through this cluster returned).
async fn place_on_active(
    state: &AppState,
    path: &str,
    reads: bool,
    requirement: &Requirement,
) -> Placement {
    let role = state.core.read_role();
    // A write goes to the primary anyway, which holds its own state: no wait for it here.
    if reads && state.core.is_perf_secondary() {
        let own = match &role {
            strongroom_core::ha::ReadRole::Active { state } => state.cluster_id.as_str(),
            _ => "",
        };
        let applied = state.core.performance_applied_wal();
        match consistency::decide_remote(own, applied, requirement) {
            Decision::NotPresent => return Placement::Answer(not_present(path)),
            Decision::AwaitRemote(wal)
                if !state
                    .core
                    .await_remote_wal(wal, consistency::AWAIT_BOUND)
                    .await =>
            {
                return Placement::Answer(not_present(path));
            }
            _ => {}
        }
    }
    if let Decision::ServeAfterApplied(index) = consistency::decide(&role, requirement) {
        // Bounded: an index beyond anything committed (forged, or from a lost leader's
        // log) is served all the same, as Vault's active node does.
        state
            .core
            .await_index(index, consistency::AWAIT_BOUND)
            .await;
    }
    Placement::Here {
        standby_local: false,
    }
}

/// A standby serves the reads it can at the state the client asked for and sends the rest
/// to the active node.
async fn place_on_standby(
    state: &AppState,
    parts: &http::request::Parts,
    path: &str,
    requirement: &Requirement,
) -> Placement {
    let reads_here = read_operation(parts)
        .is_some_and(|op| strongroom_core::ha::served_on_standby(path, op))
        && !parts.headers.contains_key("x-vault-wrap-ttl");
    if !reads_here {
        return Placement::Divert;
    }
    let role = state.core.read_role();
    // A performance secondary's standby cannot tell how far its primary's stream got; the
    // active node can (a client that wrote through this cluster holds the primary's index).
    if state.core.is_perf_secondary()
        && let strongroom_core::ha::ReadRole::StandbyReads { state: own } = &role
        && requirement.names_other_cluster(&own.cluster_id)
    {
        return Placement::Divert;
    }
    let here = Placement::Here {
        standby_local: true,
    };
    match consistency::decide(&role, requirement) {
        Decision::Forward => {
            record_standby_read("forward_active_node", path);
            Placement::Divert
        }
        Decision::NotPresent => Placement::Answer(not_present(path)),
        Decision::Await(index) => {
            if state
                .core
                .await_index(index, consistency::AWAIT_BOUND)
                .await
            {
                here
            } else {
                Placement::Answer(not_present(path))
            }
        }
        Decision::Serve | Decision::ServeAfterApplied(_) | Decision::AwaitRemote(_) => here,
    }
}

/// The operation of a request a standby might serve itself: reads and lists only.
fn read_operation(parts: &http::request::Parts) -> Option<strongroom_core::Operation> {
    use strongroom_core::Operation;
    if parts.method.as_str() == "LIST" {
        return Some(Operation::List);
    }
    if parts.method != Method::GET {
        return None;
    }
    let pairs = parse::query_pairs(parts.uri.query());
    let list = parse::query_value(&pairs, "list").and_then(parse::parse_bool);
    Some(if list == Some(true) {
        Operation::List
    } else {
        Operation::Read
    })
}

/// 412 `required index state not present`.
fn not_present(path: &str) -> Response {
    record_standby_read("index_not_present", path);
    reply::error(
        StatusCode::PRECONDITION_FAILED,
        consistency::STATE_NOT_PRESENT,
    )
}

/// Counts how a standby handled a read it could have served (bounded labels only).
fn record_standby_read(outcome: &'static str, path: &str) {
    metrics::counter!(
        "strongroom_standby_reads_total",
        "outcome" => outcome,
        "class" => strongroom_core::telemetry::path_class(path)
    )
    .increment(1);
}

/// Puts `X-Vault-Index` on the answer of a request that wrote storage.
fn stamp_index(core: &Core, resp: &mut Response) {
    let state = core.written_index();
    if state.cluster_id.is_empty() {
        // Before the cluster has an identity (init): nothing a node could compare it with.
        return;
    }
    if let Ok(value) = http::HeaderValue::from_str(&consistency::encode(&state)) {
        resp.headers_mut().insert(consistency::INDEX_HEADER, value);
    }
}

/// The request as it came, for the active node, after this standby read its body.
fn rebuild(call: &Call) -> http::Request<axum::body::Body> {
    let mut req = http::Request::new(axum::body::Body::from(call.body.clone()));
    *req.method_mut() = call.method.clone();
    *req.uri_mut() = call.uri.clone();
    *req.version_mut() = call.version;
    *req.headers_mut() = call.headers.clone();
    req
}

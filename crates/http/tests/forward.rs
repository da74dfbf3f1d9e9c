//! Request forwarding standby -> active over the cluster port, with real mutual TLS on
//! 127.0.0.1 and a stand-in router (the transport must not care what the router is).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderValue, StatusCode};
use http_body_util::BodyExt;
use strongroom_http::forward::{
    FORWARDED_FOR_HEADER, ForwardError, ForwardHandler, Forwarder, ForwarderOptions,
};
use strongroom_replication::cluster::NO_IDENTITY;
use strongroom_replication::wire::ALPN_FORWARD;
use strongroom_replication::{
    ClusterCa, ClusterDialer, ClusterListener, ClusterPeer, PeerInfo, PrimaryServer,
    SecondaryRegistry, StreamHandler,
};
use strongroom_storage::{BoxStream, InmemStorage};
use tokio::sync::watch;
use tower::ServiceExt;

struct NoSecondaries;
impl SecondaryRegistry for NoSecondaries {
    fn cluster_id(&self) -> Option<String> {
        None
    }
    fn is_allowed(&self, _: &str) -> bool {
        false
    }
    fn known_primary_cluster_addrs(&self) -> Vec<String> {
        Vec::new()
    }
    fn record_heartbeat(&self, _: &str, _: PeerInfo) {}
}

/// Counts forwarding connections, then serves them as the integrator would.
struct Counting {
    inner: ForwardHandler,
    connections: AtomicUsize,
}

#[async_trait]
impl StreamHandler for Counting {
    async fn handle(&self, stream: BoxStream, peer: ClusterPeer) {
        self.connections.fetch_add(1, Ordering::SeqCst);
        self.inner.handle(stream, peer).await;
    }
}

async fn whoami(req: Request) -> Response {
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or("none".to_owned(), |c| c.0.to_string());
    let leaked = req.headers().contains_key(FORWARDED_FOR_HEADER);
    format!("{client} leaked={leaked}").into_response()
}

async fn teapot(req: Request) -> Response {
    let token = req
        .headers()
        .get("x-vault-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let method = req.method().to_string();
    let query = req.uri().query().unwrap_or("").to_owned();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap();
    let mut resp = (
        StatusCode::IM_A_TEAPOT,
        format!(
            "{method} {query} {token} {}",
            String::from_utf8_lossy(&body)
        ),
    )
        .into_response();
    resp.headers_mut()
        .insert("x-answer", HeaderValue::from_static("42"));
    resp.headers_mut()
        .append("set-cookie", HeaderValue::from_static("a=1"));
    resp.headers_mut()
        .append("set-cookie", HeaderValue::from_static("b=2"));
    resp
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(5)).await;
    "late"
}

fn app() -> Router {
    Router::new()
        .route("/v1/whoami", get(whoami))
        .route("/v1/teapot", post(teapot))
        .route("/v1/slow", get(slow))
}

struct Active {
    addr: String,
    handler: Arc<Counting>,
    shutdown: watch::Sender<bool>,
}

async fn start_active(ca: &ClusterCa, node_id: &str) -> Active {
    let listener = Arc::new(ClusterListener::new().unwrap());
    listener
        .set_cluster_identity(&ca.issue_node(node_id).unwrap())
        .unwrap();
    let handler = Arc::new(Counting {
        inner: ForwardHandler::new(app()),
        connections: AtomicUsize::new(0),
    });
    listener.register(ALPN_FORWARD, handler.clone()).unwrap();
    let primary = Arc::new(PrimaryServer::new(
        Arc::new(InmemStorage::new()),
        Arc::new(NoSecondaries),
    ));
    let (shutdown, rx) = watch::channel(false);
    let (bound, _task) = listener.serve("127.0.0.1:0", primary, rx).await.unwrap();
    Active {
        addr: format!("https://{bound}"),
        handler,
        shutdown,
    }
}

fn standby(ca: &ClusterCa, opts: ForwarderOptions) -> Forwarder {
    let dialer = ClusterDialer::new();
    dialer
        .set_identity(&ca.issue_node("standby").unwrap())
        .unwrap();
    Forwarder::new(Arc::new(dialer), opts)
}

fn teapot_request() -> http::Request<Body> {
    http::Request::builder()
        .method("POST")
        .uri("/v1/teapot?list=true")
        .header("x-vault-token", "s.secret")
        .header("connection", "keep-alive")
        .header("keep-alive", "timeout=5")
        .header("host", "standby.example:8200")
        .body(Body::from("{\"a\":1}"))
        .unwrap()
}

async fn body_text(resp: Response) -> String {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn a_forwarded_request_gets_the_routers_own_answer() {
    // Why: forwarding must be transparent: the client cannot tell the standby relayed it.
    let ca = ClusterCa::generate("c1").unwrap();
    let active = start_active(&ca, "active").await;
    let forwarder = standby(&ca, ForwarderOptions::default());

    let direct = app().oneshot(teapot_request()).await.unwrap();
    let relayed = forwarder
        .forward(&active.addr, teapot_request(), None)
        .await
        .unwrap();

    assert_eq!(relayed.status(), direct.status());
    for name in ["x-answer", "content-type"] {
        assert_eq!(
            relayed.headers().get(name),
            direct.headers().get(name),
            "{name}"
        );
    }
    let cookies = |r: &Response| -> Vec<HeaderValue> {
        r.headers().get_all("set-cookie").iter().cloned().collect()
    };
    assert_eq!(cookies(&relayed), cookies(&direct));
    assert_eq!(body_text(relayed).await, body_text(direct).await);
}

#[tokio::test]
async fn the_active_node_sees_the_original_client_address() {
    // Why: audit and token CIDR bounds on the active node must judge the real client, not
    // the standby that relayed the request.
    let ca = ClusterCa::generate("c1").unwrap();
    let active = start_active(&ca, "active").await;
    let forwarder = standby(&ca, ForwarderOptions::default());
    let client: SocketAddr = "203.0.113.7:4444".parse().unwrap();
    let spoofed = http::Request::builder()
        .uri("/v1/whoami")
        .header(FORWARDED_FOR_HEADER, "6.6.6.6:1")
        .body(Body::empty())
        .unwrap();

    let resp = forwarder
        .forward(&active.addr, spoofed, Some(client))
        .await
        .unwrap();

    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_text(resp).await, "203.0.113.7:4444 leaked=false");
}

#[tokio::test]
async fn one_connection_per_active_node_and_a_new_one_when_leadership_moves() {
    // Why: a TLS handshake per request would dominate forwarding latency; a cached
    // connection must still follow the active node to its new address.
    let ca = ClusterCa::generate("c1").unwrap();
    let first = start_active(&ca, "node-a").await;
    let second = start_active(&ca, "node-b").await;
    let forwarder = standby(&ca, ForwarderOptions::default());
    let get = || {
        http::Request::builder()
            .uri("/v1/whoami")
            .body(Body::empty())
            .unwrap()
    };

    for _ in 0..3 {
        let resp = forwarder.forward(&first.addr, get(), None).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let moved = forwarder.forward(&second.addr, get(), None).await.unwrap();
    let back = forwarder.forward(&first.addr, get(), None).await.unwrap();

    assert_eq!(moved.status(), StatusCode::OK);
    assert_eq!(back.status(), StatusCode::OK);
    assert_eq!(first.handler.connections.load(Ordering::SeqCst), 2);
    assert_eq!(second.handler.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_vanished_active_node_gives_an_error_the_standby_can_redirect_on() {
    // Why: when the active node goes away the standby answers 307; it needs a typed error,
    // not a hang, and must not keep using the dead connection.
    let ca = ClusterCa::generate("c1").unwrap();
    let active = start_active(&ca, "active").await;
    let forwarder = standby(&ca, ForwarderOptions::default());
    let get = || {
        http::Request::builder()
            .uri("/v1/whoami")
            .body(Body::empty())
            .unwrap()
    };
    forwarder.forward(&active.addr, get(), None).await.unwrap();

    active.shutdown.send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let err = forwarder
        .forward(&active.addr, get(), None)
        .await
        .unwrap_err();

    assert!(err.should_redirect(), "{err}");
    assert!(
        matches!(
            err,
            ForwardError::Connect { .. } | ForwardError::Send { .. }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_slow_active_node_times_out() {
    // Why: a stuck active node must not hold the client forever; the standby redirects.
    let ca = ClusterCa::generate("c1").unwrap();
    let active = start_active(&ca, "active").await;
    let forwarder = standby(
        &ca,
        ForwarderOptions {
            request_timeout: Duration::from_millis(300),
            ..ForwarderOptions::default()
        },
    );
    let req = http::Request::builder()
        .uri("/v1/slow")
        .body(Body::empty())
        .unwrap();

    let err = forwarder
        .forward(&active.addr, req, None)
        .await
        .unwrap_err();

    assert!(matches!(err, ForwardError::Timeout { .. }), "{err:?}");
    assert!(err.should_redirect());
}

#[tokio::test]
async fn bodies_past_the_limit_are_not_forwarded() {
    // Why: the standby must bound what it buffers exactly as the API listener does, and a
    // redirect would not cure an oversized body.
    let ca = ClusterCa::generate("c1").unwrap();
    let active = start_active(&ca, "active").await;
    let forwarder = standby(
        &ca,
        ForwarderOptions {
            max_request_size: 4,
            ..ForwarderOptions::default()
        },
    );

    let err = forwarder
        .forward(&active.addr, teapot_request(), None)
        .await
        .unwrap_err();

    assert!(
        matches!(err, ForwardError::BodyTooLarge { limit: 4 }),
        "{err:?}"
    );
    assert!(!err.should_redirect());
    assert_eq!(active.handler.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_standby_without_cluster_identity_cannot_forward() {
    // Why: a sealed standby holds no identity; the error must say so and allow a redirect.
    let ca = ClusterCa::generate("c1").unwrap();
    let active = start_active(&ca, "active").await;
    let forwarder = Forwarder::new(Arc::new(ClusterDialer::new()), ForwarderOptions::default());

    let err = forwarder
        .forward(&active.addr, teapot_request(), None)
        .await
        .unwrap_err();

    assert!(err.to_string().contains(NO_IDENTITY), "{err}");
    assert!(err.should_redirect());
}

#[tokio::test]
async fn a_node_of_another_cluster_cannot_forward() {
    // Why: forwarded requests are trusted to carry the client address; only this cluster's
    // nodes may send them.
    let ca = ClusterCa::generate("c1").unwrap();
    let active = start_active(&ca, "active").await;
    let other = ClusterCa::generate("c2").unwrap();
    let stranger = other.issue_node("standby").unwrap();
    let dialer = ClusterDialer::new();
    dialer
        .set_identity(&strongroom_replication::NodeCert {
            ca_cert_pem: ca.ca_cert_pem.clone(),
            ..stranger
        })
        .unwrap();
    let forwarder = Forwarder::new(Arc::new(dialer), ForwarderOptions::default());

    let result = forwarder
        .forward(&active.addr, teapot_request(), None)
        .await;

    assert!(result.is_err());
    assert_eq!(active.handler.connections.load(Ordering::SeqCst), 0);
}

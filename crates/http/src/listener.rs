//! The API listener: accept loop, TLS handshake, HTTP/1.1 + h2, graceful shutdown.
//!
//! We run our own accept loop (rather than `axum::serve`) to own TLS: the handshake, ALPN,
//! client-certificate policy and certificate reloads. A failed handshake or a reset connection
//! only ends that connection; the loop itself stops only on shutdown, and then waits (bounded)
//! for in-flight requests so an operator's `Ctrl-C` does not cut off a write half-way.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::forward::FORWARDED_FOR_HEADER;
use crate::router::{RouterOptions, router};
use crate::tls::{ReloadableCert, TlsOptions, server_config};
use crate::{HttpError, router::DEFAULT_MAX_REQUEST_SIZE};
use strongroom_core::Core;

/// Settings of one `listener "tcp"` block.
#[derive(Debug, Clone)]
pub struct ListenerOptions {
    /// `host:port` to bind; port 0 picks a free port (see [`ServerHandle::bound_addr`]).
    pub address: String,
    /// `None` serves plain HTTP (`tls_disable = true`).
    pub tls: Option<TlsOptions>,
    /// Largest request body in bytes; 0 means the default (32 MiB).
    pub max_request_size: u64,
    pub unauthenticated_metrics_access: bool,
    pub max_request_duration: Option<Duration>,
    /// Connections served at once; further clients wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Time allowed for a TLS handshake and for each request's headers (slowloris guard). On
    /// HTTP/1.1 it also bounds how long an idle keep-alive connection is kept.
    pub header_read_timeout: Duration,
    /// How long shutdown waits for in-flight requests before closing their connections.
    pub shutdown_grace: Duration,
    /// How a standby forwards to the active node (None: it redirects).
    pub forwarder: Option<Arc<crate::Forwarder>>,
}

impl ListenerOptions {
    /// Vault's defaults for `address`, with TLS off.
    pub fn new(address: impl Into<String>) -> Self {
        ListenerOptions {
            address: address.into(),
            tls: None,
            max_request_size: DEFAULT_MAX_REQUEST_SIZE,
            unauthenticated_metrics_access: false,
            max_request_duration: None,
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
            forwarder: None,
        }
    }
}

/// A running listener.
pub struct ServerHandle {
    addr: SocketAddr,
    cert: Option<Arc<ReloadableCert>>,
    task: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// The address actually bound (useful with port 0).
    pub fn bound_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Re-reads the TLS certificate and key (SIGHUP). A plain-HTTP listener has nothing to do.
    pub fn reload(&self) -> Result<(), HttpError> {
        match &self.cert {
            Some(cert) => cert.reload(),
            None => Ok(()),
        }
    }

    /// The reloadable certificate, when TLS is on.
    pub fn certificate(&self) -> Option<&Arc<ReloadableCert>> {
        self.cert.as_ref()
    }

    /// Waits until the listener has shut down and its connections are closed.
    pub async fn wait(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the API listener task failed");
        }
    }
}

/// Binds `opts.address` and serves the API until `shutdown` completes.
pub async fn serve(
    opts: ListenerOptions,
    core: Arc<Core>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<ServerHandle, HttpError> {
    let tls = opts.tls.as_ref().map(server_config).transpose()?;
    let listener = TcpListener::bind(&opts.address)
        .await
        .map_err(|source| HttpError::Bind {
            address: opts.address.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| HttpError::Bind {
        address: opts.address.clone(),
        source,
    })?;
    let app = router(
        core,
        RouterOptions {
            max_request_size: opts.max_request_size,
            unauthenticated_metrics_access: opts.unauthenticated_metrics_access,
            max_request_duration: opts.max_request_duration,
            forwarder: opts.forwarder.clone(),
        },
    );
    let (acceptor, cert) = match tls {
        Some((config, cert)) => (Some(TlsAcceptor::from(config)), Some(cert)),
        None => (None, None),
    };
    tracing::info!(address = %addr, tls = acceptor.is_some(), "API listener started");
    let task = tokio::spawn(accept_loop(listener, acceptor, app, opts, shutdown));
    Ok(ServerHandle { addr, cert, task })
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    app: Router,
    opts: ListenerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let limit = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Reap finished connections so the set only holds live ones.
        while conns.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = limit.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(v) => v,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning, keep serving.
                    tracing::warn!(error = %e, "failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let stop = stop_rx.clone();
        let header_timeout = opts.header_read_timeout;
        conns.spawn(async move {
            let _permit = permit;
            serve_connection(stream, peer, acceptor, app, stop, header_timeout).await;
        });
    }
    drop(listener);
    tracing::info!("API listener stopped accepting; finishing in-flight requests");
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(opts.shutdown_grace, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            remaining = conns.len(),
            "closing connections still busy after the shutdown grace period"
        );
        conns.shutdown().await;
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    app: Router,
    stop: watch::Receiver<bool>,
    header_timeout: Duration,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "failed to set TCP_NODELAY");
    }
    match acceptor {
        None => serve_http(stream, peer, app, stop, header_timeout).await,
        Some(acceptor) => match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await
        {
            Ok(Ok(tls)) => serve_http(tls, peer, app, stop, header_timeout).await,
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        },
    }
}

async fn serve_http<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    mut stop: watch::Receiver<bool>,
    header_timeout: Duration,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
        let mut req = req.map(axum::body::Body::new);
        // Only a standby on the cluster port may say who the client was; here it is the peer.
        req.headers_mut().remove(FORWARDED_FOR_HEADER);
        req.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(req)
    });
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        // h2 has no header timeout; pings find dead peers so they release their slot.
        .keep_alive_interval(Duration::from_secs(60))
        .keep_alive_timeout(Duration::from_secs(20));
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        _ = async { drop(stop.wait_for(|stopping| *stopping).await) } => {
            conn.as_mut().graceful_shutdown();
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error during shutdown");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty};

    #[tokio::test]
    async fn the_api_listener_ignores_a_client_supplied_forwarded_for() {
        // Why: only a standby on the mTLS cluster port may name the client; on the public
        // listener the header would let anyone pick the address audit and CIDR bounds see.
        let app = Router::new().fallback(|req: axum::extract::Request| async move {
            let client = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or("none".to_owned(), |c| c.0.to_string());
            let leaked = req.headers().contains_key(FORWARDED_FOR_HEADER);
            format!("{client} leaked={leaked}")
        });
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let peer: SocketAddr = "198.51.100.9:5555".parse().unwrap();
        let (_stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(serve_http(
            server_io,
            peer,
            app,
            stop_rx,
            Duration::from_secs(5),
        ));
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client_io))
            .await
            .unwrap();
        tokio::spawn(conn);

        let req = http::Request::builder()
            .uri("/v1/sys/health")
            .header(FORWARDED_FOR_HEADER, "10.0.0.1:1")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();

        assert_eq!(&body[..], b"198.51.100.9:5555 leaked=false");
    }
}

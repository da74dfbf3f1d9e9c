//! The standby's end of forwarding: one cached HTTP/2 connection to the active node.
//!
//! Dialing costs a TCP connect and a mutual TLS handshake, so the connection is kept and
//! multiplexed; it is replaced when it breaks or when leadership moves to another node (a new
//! address). A request that fails is never retried here: it may have reached the active node,
//! and the standby cannot tell, so the caller decides (a 307 lets the client retry knowingly).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use strongroom_replication::wire::{ALPN_FORWARD, ALPN_PERFORMANCE_FORWARD};
use strongroom_replication::{ClientTls, ClusterDialer};
use strongroom_storage::BoxStream;
use tokio::sync::Mutex;

use super::{FORWARD_AUTHORITY, FORWARDED_FOR_HEADER, ForwardError};
use crate::router::DEFAULT_MAX_REQUEST_SIZE;

/// Limits of a [`Forwarder`].
#[derive(Debug, Clone)]
pub struct ForwarderOptions {
    /// How long the active node may take to answer (the response head; the body then streams).
    pub request_timeout: Duration,
    /// Largest request body forwarded, as the API listener's `max_request_size`.
    pub max_request_size: u64,
}

impl Default for ForwarderOptions {
    fn default() -> Self {
        ForwarderOptions {
            request_timeout: Duration::from_secs(90),
            max_request_size: DEFAULT_MAX_REQUEST_SIZE,
        }
    }
}

struct Cached {
    addr: String,
    sender: SendRequest<Full<Bytes>>,
}

/// How a forwarder reaches its target's cluster port.
enum Dial {
    /// A standby to its active node: the cluster-internal identity, `req_fw_v1`.
    Cluster(Arc<ClusterDialer>),
    /// A performance secondary to its primary: the activation identity, `repl_fw_v1`.
    Primary(ClientTls),
}

impl Dial {
    async fn dial(&self, addr: &str) -> std::io::Result<BoxStream> {
        match self {
            Dial::Cluster(d) => d.dial_alpn(addr, ALPN_FORWARD).await,
            Dial::Primary(tls) => {
                strongroom_replication::connect_alpn(tls, addr, ALPN_PERFORMANCE_FORWARD)
                    .await
                    .map(|s| Box::new(s) as BoxStream)
                    .map_err(std::io::Error::other)
            }
        }
    }
}

/// Forwards client requests to the active node (or a performance secondary's writes to its
/// primary) over the cluster port.
pub struct Forwarder {
    dial: Dial,
    opts: ForwarderOptions,
    conn: Mutex<Option<Cached>>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl Forwarder {
    /// A forwarder dialing with `dialer` (the node's cluster identity).
    pub fn new(dialer: Arc<ClusterDialer>, opts: ForwarderOptions) -> Self {
        Self::with_dial(Dial::Cluster(dialer), opts)
    }

    /// A performance secondary's forwarder to its primary, as `tls` (its activation identity).
    pub fn to_primary(tls: ClientTls, opts: ForwarderOptions) -> Self {
        Self::with_dial(Dial::Primary(tls), opts)
    }

    fn with_dial(dial: Dial, mut opts: ForwarderOptions) -> Self {
        if opts.max_request_size == 0 {
            opts.max_request_size = DEFAULT_MAX_REQUEST_SIZE;
        }
        Forwarder {
            dial,
            opts,
            conn: Mutex::new(None),
        }
    }

    /// Sends `request` to the active node at `active_cluster_addr` and returns its answer
    /// (status, headers, body) unchanged. `client_addr` is the original client's address,
    /// which the active node audits and checks CIDRs against (`None`: it sees no address).
    pub async fn forward(
        &self,
        active_cluster_addr: &str,
        request: http::Request<Body>,
        client_addr: Option<SocketAddr>,
    ) -> Result<http::Response<Body>, ForwardError> {
        let outgoing = self.prepare(request, client_addr).await?;
        let mut sender = self.sender(active_cluster_addr).await?;
        let timeout = self.opts.request_timeout;
        let exchange = async {
            sender.ready().await?;
            sender.send_request(outgoing).await
        };
        let answer = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ForwardError::Timeout {
                addr: active_cluster_addr.to_owned(),
                timeout,
            })?
            .map_err(|source| ForwardError::Send {
                addr: active_cluster_addr.to_owned(),
                source,
            })?;
        Ok(answer.map(Body::new))
    }

    /// Rebuilds the request for the active node: bounded body, end-to-end headers only, the
    /// client address in [`FORWARDED_FOR_HEADER`].
    async fn prepare(
        &self,
        request: http::Request<Body>,
        client_addr: Option<SocketAddr>,
    ) -> Result<http::Request<Full<Bytes>>, ForwardError> {
        let limit = self.opts.max_request_size;
        let (parts, body) = request.into_parts();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit) {
            return Err(ForwardError::BodyTooLarge { limit });
        }
        let cap = usize::try_from(limit).unwrap_or(usize::MAX);
        let bytes = match Limited::new(body, cap).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(ForwardError::BodyTooLarge { limit });
            }
            Err(e) => return Err(ForwardError::Body(e.to_string())),
        };
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned();
        let uri = http::Uri::builder()
            .scheme("https")
            .authority(FORWARD_AUTHORITY)
            .path_and_query(path)
            .build()
            .map_err(|e| ForwardError::InvalidRequest(e.to_string()))?;
        let mut headers = end_to_end(parts.headers);
        if let Some(addr) = client_addr {
            let value = HeaderValue::from_str(&addr.to_string())
                .map_err(|e| ForwardError::InvalidRequest(e.to_string()))?;
            headers.insert(HeaderName::from_static(FORWARDED_FOR_HEADER), value);
        }
        let mut outgoing = http::Request::new(Full::new(bytes));
        *outgoing.method_mut() = parts.method;
        *outgoing.uri_mut() = uri;
        *outgoing.headers_mut() = headers;
        Ok(outgoing)
    }

    /// The cached connection to `addr`, or a new one when there is none, it broke, or it
    /// leads elsewhere.
    async fn sender(&self, addr: &str) -> Result<SendRequest<Full<Bytes>>, ForwardError> {
        let mut cached = self.conn.lock().await;
        if let Some(c) = cached.as_ref()
            && c.addr == addr
            && !c.sender.is_closed()
        {
            return Ok(c.sender.clone());
        }
        *cached = None;
        let stream = self
            .dial
            .dial(addr)
            .await
            .map_err(|source| ForwardError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        let handshake = tokio::time::timeout(
            self.opts.request_timeout,
            builder.handshake(TokioIo::new(stream)),
        )
        .await
        .map_err(|_| ForwardError::Timeout {
            addr: addr.to_owned(),
            timeout: self.opts.request_timeout,
        })?;
        let (sender, connection) = handshake.map_err(|source| ForwardError::Handshake {
            addr: addr.to_owned(),
            source,
        })?;
        let peer = addr.to_owned();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(active = %peer, error = %e, "forwarding connection closed");
            }
        });
        *cached = Some(Cached {
            addr: addr.to_owned(),
            sender: sender.clone(),
        });
        Ok(sender)
    }
}

/// The headers worth sending on: hop-by-hop headers (and those the `Connection` header names)
/// belong to the client's connection to the standby, `Host` is replaced by the HTTP/2
/// authority, and a client's own forwarded-for header is never passed on.
fn end_to_end(mut headers: HeaderMap) -> HeaderMap {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
        header::HOST,
        header::CONTENT_LENGTH,
    ] {
        headers.remove(name);
    }
    for name in ["keep-alive", "proxy-connection", FORWARDED_FOR_HEADER] {
        headers.remove(name);
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_dropped_and_end_to_end_kept() {
        // Why: connection-level headers are malformed on HTTP/2 and meaningless to the active
        // node; a client-supplied forwarded-for must not ride along to be trusted there.
        let mut headers = HeaderMap::new();
        headers.insert("x-vault-token", HeaderValue::from_static("s.abc"));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::HOST, HeaderValue::from_static("standby:8200"));
        headers.insert(FORWARDED_FOR_HEADER, HeaderValue::from_static("6.6.6.6:1"));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let kept = end_to_end(headers);
        let names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert_eq!(kept["x-vault-token"], "s.abc");
        assert_eq!(kept[header::CONTENT_TYPE], "application/json");
    }
}

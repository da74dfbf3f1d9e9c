//! Why a forward failed, typed so the standby can choose its answer: a redirect when the
//! active node is unreachable or slow, the API listener's own 413 when the body is too large.

use std::time::Duration;

use thiserror::Error;

/// A request could not be forwarded to the active node.
#[derive(Debug, Error)]
pub enum ForwardError {
    /// Dialing the active node's cluster port failed (includes "no cluster identity yet").
    #[error("cannot reach the active node's cluster port {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The HTTP/2 connection over the cluster stream could not be set up.
    #[error("HTTP/2 handshake with the active node at {addr} failed: {source}")]
    Handshake {
        addr: String,
        #[source]
        source: hyper::Error,
    },
    /// The request was sent (or being sent) when the connection failed.
    #[error("forwarding to the active node at {addr} failed: {source}")]
    Send {
        addr: String,
        #[source]
        source: hyper::Error,
    },
    /// The active node did not answer in time.
    #[error("the active node at {addr} did not answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    /// The request body exceeds the listener's `max_request_size`.
    #[error("request body exceeds the maximum of {limit} bytes")]
    BodyTooLarge { limit: u64 },
    /// Reading the client's request body failed (the client went away).
    #[error("reading the request body failed: {0}")]
    Body(String),
    /// The request could not be rebuilt for forwarding.
    #[error("the request cannot be forwarded: {0}")]
    InvalidRequest(String),
}

impl ForwardError {
    /// Whether the standby should answer with a 307 to the active node instead: true when the
    /// active node could not be reached or did not answer, false when the request itself is
    /// at fault (too large, unreadable), which a redirect would not cure.
    pub fn should_redirect(&self) -> bool {
        !matches!(
            self,
            ForwardError::BodyTooLarge { .. } | ForwardError::Body(_)
        )
    }
}

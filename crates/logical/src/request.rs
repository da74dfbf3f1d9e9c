//! A logical request as core and backends see it, independent of HTTP.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Map, Value};

/// What the caller wants done to a path. HTTP PUT and POST both map to `Update`; core decides
/// create-versus-update where the ACL needs the difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Read,
    Create,
    Update,
    Patch,
    Delete,
    List,
}

/// One logical request.
#[derive(Debug, Clone)]
pub struct Request {
    /// Unique per request; echoed as `request_id`.
    pub id: String,
    pub operation: Operation,
    /// The path below `/v1/`, without leading slash (`secret/foo`, `sys/mounts`).
    pub path: String,
    /// The JSON body (or query parameters for reads), as an object.
    pub data: Map<String, Value>,
    /// The client token, from `X-Vault-Token` or `Authorization: Bearer`.
    pub token: Option<String>,
    /// The peer address, for audit and CIDR checks.
    pub client_addr: Option<SocketAddr>,
    /// Requested response-wrapping TTL (`X-Vault-Wrap-TTL`).
    pub wrap_ttl: Option<Duration>,
    /// The body as received, for the one endpoint whose body is not JSON (a snapshot
    /// upload); `data` is then empty. Never audited.
    pub raw_body: Option<bytes::Bytes>,
}

impl Request {
    /// A request with a fresh id and no body, token or wrapping.
    pub fn new(operation: Operation, path: impl Into<String>) -> Self {
        Request {
            id: uuid::Uuid::new_v4().to_string(),
            operation,
            path: path.into(),
            data: Map::new(),
            token: None,
            client_addr: None,
            wrap_ttl: None,
            raw_body: None,
        }
    }

    /// Sets the token (builder style, for tests and internal callers).
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Sets the client address (builder style).
    pub fn with_client_addr(mut self, addr: SocketAddr) -> Self {
        self.client_addr = Some(addr);
        self
    }

    /// Sets the body (builder style).
    pub fn with_data(mut self, data: Map<String, Value>) -> Self {
        self.data = data;
        self
    }
}

//! A logical response as core and backends produce it; `http` turns it into Vault's envelope.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};
use strongroom_api::{Auth, WrapInfo};

use crate::TokenType;

/// The lease attached to a secret, when there is one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeaseInfo {
    pub lease_id: String,
    pub duration_secs: i64,
    pub renewable: bool,
}

/// What an auth method asks core to issue after a successful login. The pipeline turns it
/// into a token (applying mount and system TTL limits) and fills [`Response::auth`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoginRequest {
    pub policies: Vec<String>,
    pub ttl: Option<Duration>,
    pub max_ttl: Option<Duration>,
    pub explicit_max_ttl: Option<Duration>,
    pub period: Option<Duration>,
    pub num_uses: i64,
    pub renewable: bool,
    pub display_name: String,
    pub metadata: BTreeMap<String, String>,
    /// `None` follows the mount's `token_type` default.
    pub token_type: Option<TokenType>,
    pub bound_cidrs: Vec<String>,
    pub no_default_policy: bool,
}

/// A finished non-JSON answer (Prometheus text, a snapshot archive) that `http` sends as
/// it is with status 200, outside the envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct RawBody {
    pub content_type: &'static str,
    pub bytes: bytes::Bytes,
}

/// A successful logical answer. All fields empty means 204 No Content.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response {
    pub data: Option<Map<String, Value>>,
    pub warnings: Vec<String>,
    pub auth: Option<Auth>,
    pub lease: Option<LeaseInfo>,
    /// The type of the mount that served the request (`kv`, `system`, `token`).
    pub mount_type: String,
    /// Set by auth methods on login; consumed by the pipeline.
    pub login: Option<LoginRequest>,
    /// Set when the response was wrapped: everything else is then empty.
    pub wrap_info: Option<WrapInfo>,
    /// A complete JSON body to send as-is with status 200 (DR operation-token answers).
    pub raw_body: Option<Value>,
    /// A non-JSON body to send as-is (see [`RawBody`]); never wrapped or audited.
    pub raw: Option<RawBody>,
    /// `sys/wrapping/unwrap`: the wrapped answer, sent in place of this one exactly as it
    /// would have been sent unwrapped (its own mount type; never wrapped again).
    pub unwrapped: Option<Box<Response>>,
}

impl Response {
    /// An answer with a data object.
    pub fn with_data(data: Map<String, Value>) -> Self {
        Response {
            data: Some(data),
            ..Response::default()
        }
    }

    /// An answer with no body (204).
    pub fn no_content() -> Self {
        Response::default()
    }

    /// Whether this answer has nothing to send (HTTP 204).
    pub fn is_empty(&self) -> bool {
        self.data.is_none()
            && self.warnings.is_empty()
            && self.auth.is_none()
            && self.wrap_info.is_none()
            && self.raw_body.is_none()
            && self.raw.is_none()
            && self.unwrapped.is_none()
            && self.lease.is_none()
    }
}

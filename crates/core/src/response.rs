//! A logical response as core produces it; `http` turns it into Vault's envelope.

use serde_json::{Map, Value};
use strongroom_api::Auth;

/// The lease attached to a secret, when there is one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeaseInfo {
    pub lease_id: String,
    pub duration_secs: i64,
    pub renewable: bool,
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
        self.data.is_none() && self.warnings.is_empty() && self.auth.is_none()
    }
}

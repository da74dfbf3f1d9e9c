//! The success and error envelopes of logical endpoints (spec §1.1, §1.2).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The standard success envelope of a logical endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LogicalResponse {
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub lease_id: String,
    #[serde(default)]
    pub renewable: bool,
    #[serde(default)]
    pub lease_duration: i64,
    #[serde(default)]
    pub data: Option<Map<String, Value>>,
    #[serde(default)]
    pub wrap_info: Option<WrapInfo>,
    #[serde(default)]
    pub warnings: Option<Vec<String>>,
    #[serde(default)]
    pub auth: Option<Auth>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mount_type: String,
}

/// The `auth` object of login and token responses.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Auth {
    pub client_token: String,
    #[serde(default)]
    pub accessor: String,
    #[serde(default)]
    pub policies: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_policies: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity_policies: Vec<String>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub lease_duration: i64,
    #[serde(default)]
    pub renewable: bool,
    #[serde(default)]
    pub entity_id: String,
    #[serde(default)]
    pub token_type: String,
    #[serde(default)]
    pub orphan: bool,
    #[serde(default)]
    pub mfa_requirement: Option<Value>,
    #[serde(default)]
    pub num_uses: i64,
}

/// The `wrap_info` object of a response-wrapped answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WrapInfo {
    pub token: String,
    #[serde(default)]
    pub accessor: String,
    pub ttl: i64,
    pub creation_time: String,
    pub creation_path: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub wrapped_accessor: String,
}

/// The body of every response with status >= 400.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ErrorResponse {
    #[serde(default)]
    pub errors: Vec<String>,
}

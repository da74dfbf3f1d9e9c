//! One HTTP request after the body has been read: the unit every endpoint handler works on.
//!
//! Reading the body and the path happens once, before routing, so limits and path rules apply
//! to every endpoint alike and handlers only see already-validated input.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, Uri, Version};

use crate::parse::{self, BadRequest};

/// A request ready for an endpoint handler.
pub(crate) struct Call {
    pub method: Method,
    /// The request target as received (a standby hands it on unchanged).
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// The logical path below `/v1/` (see [`parse::logical_path`]).
    pub path: String,
    pub body: Bytes,
    pub peer: Option<SocketAddr>,
}

impl Call {
    /// The client token, if any.
    pub fn token(&self) -> Result<Option<String>, BadRequest> {
        parse::token(&self.headers)
    }

    /// Whether the verb is the custom `LIST`.
    pub fn is_list_verb(&self) -> bool {
        self.method.as_str() == "LIST"
    }

    /// Whether the verb writes (PUT or POST, which Vault treats alike).
    pub fn is_write(&self) -> bool {
        self.method == Method::PUT || self.method == Method::POST
    }
}

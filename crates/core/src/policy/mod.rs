//! ACL policies: the only thing standing between an authenticated token and every secret.
//!
//! Split by concern so each part can be reviewed alone: the grammar (HCL/JSON text to rules)
//! is the `strongroom-policy` crate, shared with the CLI's `policy fmt`; `acl` (merging a token's policies and deciding one request), `store` (verbatim storage
//! and the cache that keeps parsing off the request path), `builtin` (`default`, `root`,
//! `response-wrapping`) and `routes` (the `sys/policy*` and `sys/capabilities*` endpoints).
//!
//! Interface used by the pipeline (keep these signatures):
//! - [`Core::acl_for`] builds the ACL of a token's policies;
//! - [`Acl::check`] decides one request;
//! - [`route`] serves the policy and capability endpoints.

use std::time::Duration;

mod acl;
mod builtin;
#[cfg(test)]
mod fuzz_tests;
mod routes;
mod store;

pub use acl::Acl;
pub(crate) use routes::route;
pub(crate) use store::PolicyStore;

use crate::{Core, CoreError};

/// The outcome of evaluating one request against an ACL.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AclDecision {
    /// The operation is permitted on the path (including parameter constraints).
    pub allowed: bool,
    /// The path grants `sudo` (needed for root-protected paths).
    pub sudo: bool,
    /// The token holds the root policy.
    pub root: bool,
    /// Names of the policies that granted the request (for audit).
    pub granting_policies: Vec<String>,
    /// Wrapping TTL bounds from the matching rule.
    pub min_wrapping_ttl: Option<Duration>,
    pub max_wrapping_ttl: Option<Duration>,
    /// The policy pattern that decided the request (`None`: nothing matched, or root).
    pub matched_pattern: Option<String>,
    /// Sorted capabilities of the deciding rule (`["deny"]` when it grants nothing).
    pub capabilities: Vec<String>,
}

impl Core {
    /// The ACL for a set of policy names (unknown names contribute nothing).
    pub(crate) async fn acl_for(&self, policies: &[String]) -> Result<Acl, CoreError> {
        self.policies.acl(&self.barrier, policies).await
    }
}

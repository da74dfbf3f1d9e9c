//! The request pipeline and the state every request passes through.
//!
//! `core` owns the seal state, the token check, the mount table and the system backend. It
//! returns typed [`Response`]s and [`CoreError`]s and never speaks HTTP: only the `http` crate
//! knows the Vault JSON envelope and status codes. That split lets the same core serve the
//! HTTP API, tests and (later) request forwarding between nodes.
//!
//! The secrets engines and auth methods live in `strongroom-engines` and see only what
//! [`strongroom_logical::Ctx`] carries; `backend.rs` is the one place that builds it.

#![forbid(unsafe_code)]

mod audit;
mod autopilot;
mod backend;
mod core;
mod error;
mod expiration;
mod generate_root;
pub mod ha;
mod keys;
mod mounts;
mod node_state;
mod pipeline;
mod policy;
mod rekey;
mod replication;
pub mod routing;
mod seal;
pub mod snapshot;
pub mod telemetry;
#[cfg(test)]
mod test_support;
mod token;
pub mod util;
mod wrapping;

pub mod sys;

pub use crate::core::{Core, CoreConfig, HealthState};
pub use error::CoreError;
pub use replication::{ForwardedIdentity, PrimaryRoute, ReplicationMode, serve_as_forwarded};
pub use strongroom_logical::{LeaseInfo, LoginRequest, Operation, RawBody, Request, Response};
pub use telemetry::{MetricsFormat, Telemetry};
pub use token::TokenType;

/// Core's parameter parsers are the ones backends use (`crate::params::int_param`, ...).
pub(crate) use strongroom_logical::params;

//! The request pipeline and the state every request passes through.
//!
//! `core` owns the seal state, the token check, the mount table and the system backend. It
//! returns typed [`Response`]s and [`CoreError`]s and never speaks HTTP: only the `http` crate
//! knows the Vault JSON envelope and status codes. That split lets the same core serve the
//! HTTP API, tests and (later) request forwarding between nodes.

#![forbid(unsafe_code)]

mod audit;
mod core;
mod credentials;
mod error;
mod expiration;
mod generate_root;
mod keys;
mod mounts;
mod params;
mod pipeline;
mod policy;
mod replication;
mod request;
mod response;
mod routing;
mod seal;
pub mod snapshot;
pub mod telemetry;
mod token;
mod util;
mod wrapping;

pub mod engines;
pub mod sys;

pub use crate::core::{Core, CoreConfig, HealthState};
pub use error::CoreError;
pub use replication::ReplicationMode;
pub use request::{Operation, Request};
pub use response::{LeaseInfo, LoginRequest, Response};
pub use telemetry::{MetricsFormat, Telemetry};
pub use token::TokenType;

//! Wire types of the Vault HTTP API that Strongroom speaks.
//!
//! Both the server's `http` layer and the CLI serialize through these structs, so a field
//! renamed here is renamed on both sides at once and the two can never drift apart. Field
//! names, JSON types and optional-ness follow `shared/spec/vault-core-api.md` exactly: real
//! clients (the Vault CLI, hvac) break on small differences.

#![forbid(unsafe_code)]

pub mod duration;
mod envelope;
mod raft;
mod rekey;
mod sys;

pub use envelope::{Auth, ErrorResponse, LogicalResponse, WrapInfo};
pub use raft::{
    AutopilotConfiguration, AutopilotConfigurationUpdate, AutopilotNodeStatus, AutopilotServer,
    AutopilotServerStatus, AutopilotState, DEFAULT_DEAD_SERVER_LAST_CONTACT_THRESHOLD,
    DEFAULT_LAST_CONTACT_THRESHOLD, DEFAULT_MAX_TRAILING_LOGS, DEFAULT_SERVER_STABILIZATION_TIME,
    HaNode, HaStatusResponse, MIN_DEAD_SERVER_LAST_CONTACT_THRESHOLD, RaftConfigurationData,
    RaftJoinRequest, RaftJoinResponse, RaftVoterChangeRequest, RemovePeerRequest, SecretString,
};
pub use rekey::{
    RekeyBackup, RekeyCancelRequest, RekeyInitRequest, RekeyStatus, RekeyUpdateAnswer,
    RekeyUpdateRequest, RekeyUpdateResponse, RekeyVerificationComplete, RekeyVerificationStatus,
    RekeyVerifyAnswer,
};
pub use sys::{
    GenerateRootStartRequest, GenerateRootStatus, GenerateRootUpdateRequest, HealthResponse,
    InitRequest, InitResponse, LeaderResponse, RaftConfiguration, RaftServer, SealStatus,
    UnsealRequest,
};

/// The version string reported by `sys/seal-status`, `sys/health` and `strongroom version`.
///
/// It is Vault-shaped (`1.x.y`) on purpose: clients such as hvac parse it to decide which API
/// features exist. Our own release is appended after a `+`.
pub const VAULT_COMPAT_VERSION: &str = "1.16.3";

/// Strongroom's own version, from Cargo.
pub const STRONGROOM_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The prefix of every API route.
pub const API_PREFIX: &str = "/v1/";

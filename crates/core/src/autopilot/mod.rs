//! Vault's autopilot for integrated storage, as decisions without IO.
//!
//! Autopilot is a control loop on the leader: it watches every server's progress, promotes a
//! joiner to voter once it has been healthy long enough, and (when asked to) removes servers
//! that have been silent for too long. Every one of those steps changes who counts towards
//! quorum, so the rules are where the risk is, not the timers or the Raft calls. Keeping them
//! here as plain functions of (configuration, clock, the leader's view of the servers) lets a
//! seeded simulation drive thousands of membership histories through them in milliseconds and
//! check that no history removes the leader, drops the voters below `min_quorum`, or promotes
//! a server the operator pinned as a non-voter.
//!
//! The integrator owns the loop: it loads [`AutopilotConfig`] from the barrier, calls
//! [`Planner::tick`] on every update interval while this node leads, carries out the returned
//! [`Action`]s through `strongroom_storage::Cluster`, and serves [`Planner::state`] under
//! `data` of `sys/storage/raft/autopilot/state`.

mod config;
#[cfg(test)]
mod config_tests;
mod duration;
mod plan;
#[cfg(test)]
mod simulation;
mod state;
#[cfg(test)]
mod tests;

pub(crate) use config::AutopilotConfig;
#[cfg(test)]
pub(crate) use config::ConfigUpdateError;
pub(crate) use duration::go_duration;
pub(crate) use plan::{Action, ClusterView, Planner};
#[cfg(test)]
pub(crate) use state::NodeStatus;

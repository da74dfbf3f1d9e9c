//! `strongroom server`: turns a configuration into a running node.
//!
//! This crate is the composition root: it reads the configuration, opens storage, builds the
//! core, starts the API and cluster listeners, and owns the process lifecycle (signals,
//! memory locking, dev-mode bootstrap). No request logic lives here.

// libc calls live in one small module that opts in with `#![allow(unsafe_code)]`.
#![deny(unsafe_code)]

mod cluster;
pub mod config;
mod dev_dr;
mod dev_env;
mod dev_ha;
mod dev_pr;
mod flags;
mod logging;
mod malloc;
mod os;
mod run;

pub use flags::ServerFlags;
pub use run::run;

//! The contract between core and the backends it mounts, in the manner of Vault's
//! `sdk/logical`: requests, responses, the [`Backend`] trait, the per-request [`Ctx`] and
//! prefix-limited [`View`]s over an object-safe [`Store`].
//!
//! Core depends on this crate and implements [`Store`] with the encryption barrier; the
//! engines crate depends on this crate only. So a backend can reach storage through the views
//! it is handed and nothing else, and the compiler keeps it that way. The parameter, CIDR and
//! time helpers are here because core and the backends parse the same client input the same
//! way.

#![forbid(unsafe_code)]

mod backend;
pub mod cidr;
mod ctx;
mod error;
mod mem;
pub mod params;
mod request;
mod response;
mod storage;
pub mod time;
mod token;
mod view;

pub use backend::Backend;
pub use ctx::{Ctx, MountInfo, TokenInfo};
pub use error::BackendError;
pub use mem::MemStore;
pub use request::{Operation, Request};
pub use response::{LeaseInfo, LoginRequest, RawBody, Response};
pub use storage::Store;
pub use token::TokenType;
pub use view::{Batch, Op, View};

//! DR and performance replication between clusters: the protocol layer on top of the storage
//! WAL and merkle index.
//!
//! Storage (Layer 1) already records every replicated change as a hash-chained WAL entry and
//! keeps a merkle index of the replicated keys. This crate moves that state between clusters:
//! the primary serves its WAL and merkle pages over the mutually authenticated cluster port,
//! and a secondary decides — in a sans-IO state machine that can be tested deterministically —
//! whether it can resume streaming or must first repair itself with a merkle diff and sync.
//! Values travel exactly as storage holds them: barrier ciphertext, never plaintext. A
//! performance stream is the same protocol through a filtered view: only shared keys the
//! secondary's path filter allows, chain hashes presented through the filter's digest, and a
//! secondary that applies them as its own writes (`primary/performance.rs`, `perf_store.rs`).
//!
//! The crate also owns the cluster port itself, which carries the cluster-internal services
//! (Raft, request forwarding) beside replication: `cluster` holds their CA, the dialer and the
//! handler seam, so that one module decides the port's trust rules.

#![forbid(unsafe_code)]

pub mod activation;
mod client;
pub mod cluster;
mod error;
pub mod fsm;
pub mod join_client;
mod kind;
mod listener;
pub mod metrics;
mod peer;
mod perf_store;
pub mod pki;
mod primary;
mod runner;
mod tls;
pub mod wire;

pub use client::{ClientTls, connect, connect_alpn};
pub use cluster::{ClusterCa, ClusterDialer, ClusterPeer, NodeCert, RaftHandler, StreamHandler};
pub use error::ReplicationError;
pub use fsm::{Event, LocalView, Output, SecondaryFsm, State};
pub use join_client::{LeaderTls, post_to_leader};
pub use kind::ReplicationKind;
pub use listener::ClusterListener;
pub use peer::PeerInfo;
pub use perf_store::PerformanceStore;
pub use pki::ReplicationCa;
pub use primary::{NodeRole, PerformanceFilter, PrimaryServer, SecondaryRegistry};
pub use runner::{
    Changed, SecondaryConfig, SecondaryHandle, SecondaryHooks, SecondaryRunner, SecondaryStatus,
    SyncProgress,
};

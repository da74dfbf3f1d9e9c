//! The cluster-internal services of the cluster port: Raft RPCs and request forwarding.
//!
//! They share the port (and its listener) with DR replication but not its trust: peers here
//! are nodes of this cluster, proven by a certificate from the cluster-internal CA
//! ([`ClusterCa`]), never by the replication CA. The services themselves live elsewhere
//! (Raft in storage, forwarding in http); this module only authenticates both ends and hands
//! them a byte stream, so neither service knows TLS and both can be tested over a duplex.

mod dialer;
mod handler;
mod pki;

pub use dialer::{CONNECT_TIMEOUT, ClusterDialer, NO_IDENTITY};
pub use handler::{ClusterPeer, RaftHandler, StreamHandler};
pub use pki::{CLUSTER_SERVER_NAME, ClusterCa, NodeCert, is_valid_node_id};

//! Request forwarding from a standby to the active node, over the cluster port.
//!
//! A standby does no authorization of its own: it hands the client's request, unchanged, to
//! the active node's router, so the active node's door audits it, counts token uses and checks
//! bound CIDRs. For those checks to see the real client rather than the standby, the client's
//! address travels in [`FORWARDED_FOR_HEADER`]. That header is trusted only on this channel,
//! where the sender proved with a cluster-CA certificate that it is a node of this cluster; the
//! public API listener strips it, so a client cannot choose the address it is audited as.
//!
//! The transport is HTTP/2 on one `req_fw_v1` stream per active node: multiplexed, so one TLS
//! connection carries every concurrent forwarded request, and its pings find a dead active node
//! without waiting for a request to time out.

mod client;
mod error;
pub(crate) mod performance;
mod server;

pub use client::{Forwarder, ForwarderOptions};
pub use error::ForwardError;
pub use performance::{BEST_EFFORT_WAL_WAIT, PrimaryForwardHandler, PrimaryForwarder};
pub use server::{ForwardHandler, serve_forwarded};

/// Marks a request that arrived over the forwarding channel, with the sending node's id
/// (from its verified cluster certificate).
#[derive(Debug, Clone)]
pub(crate) struct ForwardedBy(pub String);

/// The header carrying the original client's address (`ip:port`) on forwarded requests.
pub const FORWARDED_FOR_HEADER: &str = "x-strongroom-forwarded-for";

/// The authority forwarded requests name; the active node's router ignores it.
const FORWARD_AUTHORITY: &str = "strongroom-cluster";

//! Requests a performance secondary hands to its primary, as core sees both ends.
//!
//! A performance secondary serves reads and its own tokens, but shared state (mounts,
//! policies, KV data of shared mounts) changes only on the primary. A request that tries to
//! write a shared key on the secondary is refused by core's storage wrapper (`ha/tracking.rs`)
//! after it passed the secondary's door: its token was checked there, against the secondary's
//! own token store, with the replicated policies. `http` then forwards it to the primary's
//! active node over the cluster port, carrying the caller as the secondary's door admitted
//! it: a [`ForwardedIdentity`]. The primary knows nothing of the secondary's tokens, so its
//! door takes that identity in place of a token lookup and checks its ACL again against its
//! own copy of the named policies, audits and serves the request.
//!
//! Why the primary may believe the identity: it arrives only on the `repl_fw_v1` channel,
//! whose client certificate the primary's own replication CA issued to a secondary it has
//! not revoked. A performance secondary is trusted as a node is: it holds the keyring.

use std::collections::BTreeMap;
use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::token::{TokenEntry, TokenType};

/// The caller of a forwarded request, as the secondary's door admitted it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardedIdentity {
    /// Set by the primary from the channel's client certificate; what a secondary sends here
    /// is overwritten.
    #[serde(default)]
    pub secondary_id: String,
    pub policies: Vec<String>,
    pub display_name: String,
    #[serde(default)]
    pub entity_id: String,
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    /// The response-wrapping TTL the secondary's door settled on (the client's
    /// `X-Vault-Wrap-TTL`, or a policy's minimum), in seconds: the secondary wraps the
    /// primary's answer itself, so its wrapping token unwraps where the client is. Never sent.
    #[serde(skip)]
    pub wrap_ttl_secs: Option<u64>,
}

/// Most policies a forwarded identity may name, and the longest name: a bounded header.
const MAX_POLICIES: usize = 256;
const MAX_NAME: usize = 256;

impl ForwardedIdentity {
    /// The identity of `token` (the secondary's side).
    pub(crate) fn of(token: &TokenEntry, wrap_ttl: Option<std::time::Duration>) -> Self {
        ForwardedIdentity {
            secondary_id: String::new(),
            policies: token.policies.clone(),
            display_name: token.display_name.clone(),
            entity_id: token.entity_id.clone(),
            meta: token.meta.clone(),
            wrap_ttl_secs: wrap_ttl.map(|d| d.as_secs()),
        }
    }

    /// Whether the identity is small enough to believe at all.
    pub fn is_bounded(&self) -> bool {
        self.policies.len() <= MAX_POLICIES
            && self.policies.iter().all(|p| p.len() <= MAX_NAME)
            && self.display_name.len() <= MAX_NAME
            && self.entity_id.len() <= MAX_NAME
            && self.meta.len() <= MAX_POLICIES
            && self
                .meta
                .iter()
                .all(|(k, v)| k.len() <= MAX_NAME && v.len() <= 4 * MAX_NAME)
    }

    /// The token entry the primary's door uses for the request: the named policies, no use
    /// limit, nothing stored (a batch-like entry that exists only for this request).
    pub(crate) fn token_entry(&self) -> TokenEntry {
        TokenEntry {
            id_hash: String::new(),
            accessor: String::new(),
            parent_hash: None,
            policies: self.policies.clone(),
            path: format!("replication/performance/forwarded/{}", self.secondary_id),
            meta: self.meta.clone(),
            display_name: self.display_name.clone(),
            num_uses: 0,
            creation_time: super::now_secs(),
            ttl: 0,
            explicit_max_ttl: 0,
            period: 0,
            renewable: false,
            expire_time: None,
            token_type: TokenType::Batch,
            orphan: true,
            role: None,
            bound_cidrs: Vec::new(),
            entity_id: self.entity_id.clone(),
            last_renewal_time: None,
        }
    }
}

tokio::task_local! {
    static FORWARDED: ForwardedIdentity;
}

/// Runs `fut` (one request forwarded by a performance secondary) with `identity` as its
/// caller: the door uses it instead of looking up a token.
pub async fn serve_as_forwarded<F: Future>(identity: ForwardedIdentity, fut: F) -> F::Output {
    FORWARDED.scope(identity, fut).await
}

/// The identity of the request being served, when a performance secondary forwarded it.
pub(crate) fn forwarded_identity() -> Option<ForwardedIdentity> {
    FORWARDED.try_with(Clone::clone).ok()
}

impl crate::Core {
    /// Whether `secondary_id` is a performance secondary this cluster serves (primary, not
    /// revoked): the only callers whose forwarded requests the primary takes.
    pub fn serves_performance_secondary(&self, secondary_id: &str) -> bool {
        use strongroom_replication::SecondaryRegistry as _;
        self.perf.registry.is_allowed(secondary_id)
    }

    /// The primary a performance secondary forwards to: the cluster address it streams
    /// from, and the TLS material of its activation identity (`None`: not a performance
    /// secondary, following no primary, or not connected to it yet).
    pub fn performance_primary_route(&self) -> Option<PrimaryRoute> {
        if !self.is_perf_secondary() {
            return None;
        }
        let config = self.perf.config()?;
        let material = config.secondary.as_ref()?;
        // The node the stream talks to: the primary's active node once it streams (a standby
        // redirects the stream there). Before the first connection there is nothing to name.
        // While the stream is cut the forward fails at once: a silent link would otherwise
        // hold the write until the forwarding connection's keep-alive gave up (~20 s).
        let addr = crate::util::lock(&self.perf.runner)
            .as_ref()
            .and_then(|h| {
                h.status()
                    .primaries
                    .first()
                    .filter(|p| p.connection_status == "connected")
                    .map(|p| p.cluster_address.clone())
            })
            .filter(|a| !a.is_empty())?;
        Some(PrimaryRoute {
            addr,
            secondary_id: material.secondary_id.clone(),
            ca_pem: material.ca_pem.clone(),
            client_cert_pem: material.client_cert_pem.clone(),
            client_key_pem: zeroize::Zeroizing::new(material.client_key_pem.clone()),
        })
    }

    /// Waits until the stream has applied the primary's WAL index `index` here, at most
    /// `bound`; false when it did not arrive in time (or nothing streams).
    pub async fn await_remote_wal(&self, index: u64, bound: std::time::Duration) -> bool {
        let Some(mut watch) = self.perf.applied_watch() else {
            return false;
        };
        tokio::time::timeout(bound, watch.wait_for(|applied| *applied >= index))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The last primary WAL index this performance secondary applied.
    pub fn performance_applied_wal(&self) -> u64 {
        self.perf.applied_remote_wal()
    }
}

/// Where and as whom a performance secondary forwards.
pub struct PrimaryRoute {
    /// The primary's active node's cluster address (`https://host:port`).
    pub addr: String,
    pub secondary_id: String,
    pub ca_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for PrimaryRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrimaryRoute")
            .field("addr", &self.addr)
            .field("secondary_id", &self.secondary_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primary_uses_the_named_policies_and_nothing_that_lasts() {
        // Why: a forwarded caller gets exactly the ACL its policies grant, for one request.
        let identity = ForwardedIdentity {
            secondary_id: "pr-1".into(),
            policies: vec!["default".into(), "writer".into()],
            display_name: "userpass-bob".into(),
            ..ForwardedIdentity::default()
        };
        let entry = identity.token_entry();

        assert_eq!(entry.policies, vec!["default", "writer"]);
        assert_eq!(entry.token_type, TokenType::Batch);
        assert_eq!(entry.num_uses, 0);
        assert!(entry.id_hash.is_empty() && entry.accessor.is_empty());
        assert!(entry.path.ends_with("/pr-1"));
    }

    #[test]
    fn an_oversized_identity_is_not_believed() {
        // Why: the identity arrives in a header; its size must be bounded before use.
        let big = ForwardedIdentity {
            policies: vec!["p".repeat(300)],
            ..ForwardedIdentity::default()
        };

        assert!(!big.is_bounded());
        assert!(ForwardedIdentity::default().is_bounded());
    }
}

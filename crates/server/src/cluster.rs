//! A node's Raft cluster wiring: the cluster port's identity, its Raft and forwarding
//! services, the standby's echo, and `retry_join`.
//!
//! Core decides when a node may present a certificate (unsealed) and which one; storage
//! speaks Raft over whatever stream it is given; the cluster port authenticates peers. This
//! file is the only place that knows all three, so each stays testable alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strongroom_core::Core;
use strongroom_core::ha::{ClusterIdentity, ForwardTarget, LeaderTls, NodeCredentials};
use strongroom_replication::{ClusterDialer, ClusterListener, NodeCert};
use zeroize::Zeroizing;

use crate::config::RetryJoin;

/// How often a standby echoes to the active node.
const ECHO_INTERVAL: Duration = Duration::from_secs(2);

/// Installs core's cluster identity on the listener and the dialer together.
pub(crate) struct IdentitySink {
    pub listener: Arc<ClusterListener>,
    pub dialer: Arc<ClusterDialer>,
}

impl ClusterIdentity for IdentitySink {
    fn install(&self, creds: &NodeCredentials) -> Result<(), String> {
        let node = NodeCert {
            cert_pem: creds.cert_pem.clone(),
            key_pem: creds.key_pem.clone(),
            ca_cert_pem: creds.ca_cert_pem.clone(),
        };
        self.listener
            .set_cluster_identity(&node)
            .map_err(|e| e.to_string())?;
        self.dialer.set_identity(&node).map_err(|e| e.to_string())
    }

    fn clear(&self) {
        self.listener.clear_cluster_identity();
        self.dialer.clear_identity();
    }
}

/// The leaders of the `retry_join` stanzas, for core's join.
pub(crate) fn retry_join_leaders(stanzas: &[RetryJoin]) -> Vec<(String, LeaderTls)> {
    stanzas
        .iter()
        .map(|s| {
            (
                s.leader_api_addr.clone(),
                LeaderTls {
                    ca_cert_pem: s.ca_cert_pem.clone(),
                    client_cert_pem: s.client_cert_pem.clone(),
                    client_key_pem: s
                        .client_key_pem
                        .as_ref()
                        .map(|k| Zeroizing::new(k.expose().to_owned())),
                    tls_servername: s.tls_servername.clone(),
                },
            )
        })
        .collect()
}

/// Starts `retry_join` on a node that is new (neither initialized nor a cluster member).
pub(crate) async fn start_retry_join(core: &Arc<Core>, stanzas: &[RetryJoin], non_voter: bool) {
    if stanzas.is_empty() {
        return;
    }
    match core
        .raft_join(retry_join_leaders(stanzas), true, non_voter)
        .await
    {
        Ok(outcome) => tracing::info!(?outcome, "retry_join started"),
        // An initialized node or a member has nothing to join: not an error at start-up.
        Err(e) => tracing::debug!(error = %e, "retry_join not needed"),
    }
}

/// A standby's echo loop: tells the active node it exists, and learns whether the active
/// node is reachable (`sys/health` 474 when not).
pub(crate) fn spawn_echo(core: Arc<Core>, forwarder: Arc<strongroom_http::Forwarder>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(ECHO_INTERVAL).await;
            let ForwardTarget::Active(active) = core.forward_target().await else {
                continue;
            };
            let started = Instant::now();
            match strongroom_http::send_echo(&forwarder, &core, &active.cluster_addr).await {
                Ok(()) => core.echo_succeeded(started.elapsed()),
                Err(e) => tracing::debug!(error = %e, "echo to the active node failed"),
            }
        }
    });
}

/// Registers the forwarding of performance secondaries' writes on the cluster port (served
/// only while this cluster is a performance primary: the handshake needs its identity).
pub(crate) fn wire_performance(
    core: &Arc<Core>,
    listener: &Arc<ClusterListener>,
    api: strongroom_http::ListenerOptions,
) -> anyhow::Result<()> {
    let router = strongroom_http::router(
        core.clone(),
        strongroom_http::RouterOptions {
            max_request_size: api.max_request_size,
            unauthenticated_metrics_access: api.unauthenticated_metrics_access,
            max_request_duration: api.max_request_duration,
            forwarder: None,
        },
    );
    listener
        .register_performance_service(
            strongroom_replication::wire::ALPN_PERFORMANCE_FORWARD,
            Arc::new(strongroom_http::PrimaryForwardHandler::new(
                core.clone(),
                router,
            )),
        )
        .map_err(|e| {
            anyhow::anyhow!("registering performance forwarding on the cluster port: {e}")
        })?;
    Ok(())
}

/// Registers Raft and forwarding on the cluster port and gives core the identity sink and
/// the standby echo.
pub(crate) fn wire(
    core: &Arc<Core>,
    clustering: &crate::run::Clustering,
    listener: &Arc<ClusterListener>,
    forwarder: &Arc<strongroom_http::Forwarder>,
    api: strongroom_http::ListenerOptions,
) -> anyhow::Result<()> {
    let raft: Arc<dyn strongroom_storage::Cluster> = clustering.raft.clone();
    listener
        .register(
            strongroom_replication::wire::ALPN_RAFT,
            Arc::new(strongroom_replication::RaftHandler(raft)),
        )
        .map_err(|e| anyhow::anyhow!("registering raft on the cluster port: {e}"))?;
    // Forwarded requests meet the same router (and door) as the API listener's own.
    let router = strongroom_http::router(
        core.clone(),
        strongroom_http::RouterOptions {
            max_request_size: api.max_request_size,
            unauthenticated_metrics_access: api.unauthenticated_metrics_access,
            max_request_duration: api.max_request_duration,
            forwarder: None,
        },
    );
    listener
        .register(
            strongroom_replication::wire::ALPN_FORWARD,
            Arc::new(strongroom_http::ForwardHandler::new(router)),
        )
        .map_err(|e| anyhow::anyhow!("registering request forwarding on the cluster port: {e}"))?;
    core.set_cluster_identity_sink(Arc::new(IdentitySink {
        listener: listener.clone(),
        dialer: clustering.dialer.clone(),
    }));
    spawn_echo(core.clone(), forwarder.clone());
    Ok(())
}

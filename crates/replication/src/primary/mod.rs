//! The primary side of one replication connection, DR or performance.
//!
//! A secondary connects with its chain position. If our retained WAL still holds that exact
//! position (same index and hash) we stream from it; otherwise we serve merkle pages and
//! buckets from a sync point taken before any of them was read, then stream from that point.
//! Every heartbeat re-checks the registry, so revoking a secondary or demoting this cluster
//! cuts live streams within about a second. A performance session runs the same protocol
//! through a filtered, hash-transformed view of our data (`performance.rs`), and also ends
//! when the secondary's path filter changes.

mod performance;
mod session;

pub use performance::PerformanceFilter;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use strongroom_storage::{Storage, WalPosition, WalRead};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};

use crate::ReplicationKind;
use crate::error::ReplicationError;
use crate::metrics as m;
use crate::peer::PeerInfo;
use crate::wire::read_loop;
use crate::wire::{
    MAX_FRAME, PROTOCOL_VERSION, PrimaryMsg, SecondaryMsg, chunk_pairs, codes, echo_rtt_ms,
    read_frame,
};
use performance::PerfSession;
use session::{End, Session, bounded, check_filter, send, unix_ms};

/// Interval of primary heartbeats and registry checks.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// A secondary silent for this long is considered gone.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(6);
/// How long the secondary may take to say Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one frame may take to leave before the secondary is considered stuck.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// WAL entries per `Wal` message, and their byte budget.
const WAL_BATCH_ENTRIES: usize = 512;
const WAL_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Where this node stands in its own cluster, as the replication port sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeRole {
    /// The active node (or a single node): serves streams.
    Active,
    /// A standby: sends secondaries to the active node's cluster address (`None` while no
    /// active node is known).
    Standby { active_cluster_addr: Option<String> },
}

/// What the primary needs to know about its replication role and secondaries (implemented by
/// the core, backed by its replicated state).
pub trait SecondaryRegistry: Send + Sync {
    /// The replication set (DR, or performance for a performance primary's registry) this
    /// cluster is primary of; `None` when it is not such a primary.
    fn cluster_id(&self) -> Option<String>;
    /// Whether `secondary_id` may replicate now (issued, not revoked, still primary).
    fn is_allowed(&self, secondary_id: &str) -> bool;
    /// Cluster addresses of the primary's nodes, handed to secondaries to fail over with.
    fn known_primary_cluster_addrs(&self) -> Vec<String>;
    /// The latest heartbeat from (or disconnection of) a secondary.
    fn record_heartbeat(&self, secondary_id: &str, info: PeerInfo);
    /// Whether this node serves streams or redirects to the active node.
    fn node_role(&self) -> NodeRole {
        NodeRole::Active
    }
}

/// Serves DR (or performance) replication connections from one storage.
pub struct PrimaryServer {
    storage: Arc<dyn Storage>,
    registry: Arc<dyn SecondaryRegistry>,
    /// Set for a performance primary: what each secondary may receive.
    filter: Option<Arc<dyn PerformanceFilter>>,
}

impl std::fmt::Debug for PrimaryServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrimaryServer({})", self.kind().as_str())
    }
}

impl PrimaryServer {
    /// A DR primary: secondaries receive every replicated key and our chain as it is.
    pub fn new(storage: Arc<dyn Storage>, registry: Arc<dyn SecondaryRegistry>) -> Self {
        PrimaryServer {
            storage,
            registry,
            filter: None,
        }
    }

    /// A performance primary: secondaries receive the shared keys `filter` allows them, and
    /// our chain presented through their filter's digest.
    pub fn new_performance(
        storage: Arc<dyn Storage>,
        registry: Arc<dyn SecondaryRegistry>,
        filter: Arc<dyn PerformanceFilter>,
    ) -> Self {
        PrimaryServer {
            storage,
            registry,
            filter: Some(filter),
        }
    }

    /// Which replication this server streams.
    pub fn kind(&self) -> ReplicationKind {
        match self.filter {
            None => ReplicationKind::Dr,
            Some(_) => ReplicationKind::Performance,
        }
    }

    fn names(&self) -> &'static m::Names {
        m::names(self.kind())
    }

    fn label(&self) -> &'static str {
        self.kind().label()
    }

    /// Serves one authenticated connection whose client certificate names `peer_id`, until
    /// the secondary leaves, is refused, or `shutdown` turns true.
    pub async fn serve_connection<S>(
        &self,
        stream: S,
        peer_id: String,
        shutdown: watch::Receiver<bool>,
    ) where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (mut rd, wr) = tokio::io::split(stream);
        let hello =
            tokio::time::timeout(HELLO_TIMEOUT, read_frame::<_, SecondaryMsg>(&mut rd)).await;
        let hello = match hello {
            Ok(Ok(Some(msg))) => msg,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                tracing::debug!(secondary_id = %peer_id, error = %e, "replication hello failed");
                return;
            }
            Err(_) => {
                tracing::debug!(secondary_id = %peer_id, "replication hello timed out");
                return;
            }
        };
        let mut session = Session {
            wr,
            peer_id: peer_id.clone(),
            cluster_id: String::new(),
            sync_point: WalPosition::default(),
            sync_point_sent: false,
            cursor: None,
            last_heard: Instant::now(),
            peer: PeerInfo {
                node_id: peer_id.clone(),
                ..PeerInfo::default()
            },
            secondary_hb: None,
            perf: self
                .filter
                .as_ref()
                .map(|filter| PerfSession::start(filter.clone(), &peer_id)),
        };
        let (names, label) = (self.names(), self.label());
        let end = match self.hello(&mut session, hello).await {
            Ok(()) => {
                metrics::gauge!(names.secondary_connected, "secondary_id" => peer_id.clone())
                    .set(1.0);
                self.record(&mut session.peer, "connected");
                tracing::info!(secondary_id = %peer_id, "{label} secondary connected");
                let end = self.run(&mut session, rd, shutdown).await;
                metrics::gauge!(names.secondary_connected, "secondary_id" => peer_id.clone())
                    .set(0.0);
                self.record(&mut session.peer, "disconnected");
                end
            }
            Err(end) => end,
        };
        match &end {
            End::Refused(code, message) => {
                let msg = PrimaryMsg::Error {
                    code: (*code).to_owned(),
                    message: message.clone(),
                };
                let _ = send(&mut session.wr, &msg).await;
            }
            End::Redirected(active) => {
                let msg = PrimaryMsg::Redirect {
                    active_cluster_addr: active.clone(),
                    known_primary_cluster_addrs: self.registry.known_primary_cluster_addrs(),
                };
                let _ = send(&mut session.wr, &msg).await;
            }
            _ => {}
        }
        match end {
            End::Closed => {
                tracing::info!(secondary_id = %peer_id, "{label} secondary disconnected")
            }
            End::Shutdown => {
                tracing::debug!(secondary_id = %peer_id, "{label} stream closed for shutdown")
            }
            End::Refused(code, message) => {
                tracing::warn!(secondary_id = %peer_id, code, %message, "{label} secondary refused")
            }
            End::Redirected(active) => {
                tracing::info!(secondary_id = %peer_id, active = ?active, "{label} secondary sent to the active node")
            }
            End::Failed(e) => {
                tracing::warn!(secondary_id = %peer_id, error = %e, "{label} replication stream failed")
            }
        }
    }

    /// Stamps `peer` with `status` and now, and hands a copy to the registry.
    fn record(&self, peer: &mut PeerInfo, status: &'static str) {
        peer.connection_status = status;
        if status == "connected" {
            peer.last_heartbeat = Some(SystemTime::now());
        }
        self.registry.record_heartbeat(&peer.node_id, peer.clone());
    }

    /// Checks the Hello and answers it; on refusal returns why.
    async fn hello<S: AsyncWrite>(
        &self,
        s: &mut Session<S>,
        hello: SecondaryMsg,
    ) -> Result<(), End> {
        let SecondaryMsg::Hello {
            secondary_id,
            cluster_id,
            position,
            protocol,
            api_address,
            cluster_address,
        } = hello
        else {
            return Err(End::Refused(
                codes::PROTOCOL,
                "the first message must be Hello".into(),
            ));
        };
        if protocol != PROTOCOL_VERSION {
            return Err(End::Refused(
                codes::UNSUPPORTED_PROTOCOL,
                format!(
                    "protocol {protocol} is not supported; this primary speaks {PROTOCOL_VERSION}"
                ),
            ));
        }
        if secondary_id != s.peer_id {
            return Err(End::Refused(
                codes::IDENTITY_MISMATCH,
                "the Hello names a different secondary id than the client certificate".into(),
            ));
        }
        if self.registry.cluster_id().as_deref() != Some(cluster_id.as_str()) {
            return Err(End::Refused(
                codes::UNKNOWN_CLUSTER,
                format!(
                    "this cluster is not the {} primary of that replication set",
                    self.label()
                ),
            ));
        }
        if !self.registry.is_allowed(&s.peer_id) {
            return Err(End::Refused(
                codes::REVOKED,
                "this secondary id is revoked or was never issued; generate a new secondary token"
                    .into(),
            ));
        }
        // Only the active node streams: its standbys hold the same WAL, but a secondary that
        // streamed from a standby would never notice that the standby fell behind or was cut off.
        if let NodeRole::Standby {
            active_cluster_addr,
        } = self.registry.node_role()
        {
            return Err(End::Redirected(active_cluster_addr));
        }
        s.cluster_id = cluster_id;
        // Peer-supplied strings end up in status: keep them short.
        s.peer.api_address = bounded(api_address);
        s.peer.cluster_address = bounded(cluster_address);
        // The sync point is taken before any page or bucket is read on this connection.
        let current = self.storage.replication_status().position();
        // A secondary at position 0 (fresh or just wiped) always diffs: data that predates
        // the retained WAL would otherwise never reach it.
        let resume = match &mut s.perf {
            Some(perf) => perf
                .resume(&*self.storage, position)
                .await
                .map_err(|e| End::Failed(e.into()))?,
            None => {
                position.index != 0
                    && match self.storage.wal_read(position, 1, MAX_FRAME).await {
                        Ok(WalRead::Entries(_)) => true,
                        Ok(WalRead::Gone) => false,
                        Err(e) => return Err(End::Failed(e.into())),
                    }
            }
        };
        s.sync_point = current;
        tracing::info!(
            secondary_id = %s.peer_id,
            resume,
            secondary_wal = position.index,
            primary_wal = current.index,
            "{} secondary hello",
            self.label()
        );
        let presented = s.present(current);
        send(
            &mut s.wr,
            &PrimaryMsg::HelloAck {
                resume,
                primary_position: presented,
                known_primary_cluster_addrs: self.registry.known_primary_cluster_addrs(),
            },
        )
        .await
        .map_err(End::Failed)?;
        // A performance secondary hides the mounts whose data it will not receive.
        if let Some(filter) = &self.filter {
            let msg = PrimaryMsg::PathsFilter {
                filter: filter.wire_filter(&s.peer_id),
            };
            send(&mut s.wr, &msg).await.map_err(End::Failed)?;
        }
        Ok(())
    }

    async fn run<S>(
        &self,
        s: &mut Session<S>,
        rd: tokio::io::ReadHalf<S>,
        mut shutdown: watch::Receiver<bool>,
    ) -> End
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (tx, mut incoming) = mpsc::channel::<Result<SecondaryMsg, ReplicationError>>(16);
        let reader = tokio::spawn(read_loop(rd, tx));
        let mut ticker = tokio::time::interval(HEARTBEAT_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut wal_watch = self.storage.wal_watch();
        let mut watch_alive = true;
        let end = loop {
            if *shutdown.borrow() {
                break End::Shutdown;
            }
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() { break End::Shutdown; }
                }
                msg = incoming.recv() => {
                    let msg = match msg {
                        None => break End::Closed,
                        Some(Err(e)) => break End::Failed(e),
                        Some(Ok(msg)) => msg,
                    };
                    s.last_heard = Instant::now();
                    if let Err(end) = self.handle(s, msg, &mut wal_watch).await {
                        break end;
                    }
                }
                _ = ticker.tick() => {
                    if let Err(end) = self.heartbeat(s).await {
                        break end;
                    }
                }
                changed = wal_watch.changed(), if watch_alive && s.cursor.is_some() => {
                    if changed.is_err() {
                        watch_alive = false;
                        continue;
                    }
                    wal_watch.borrow_and_update();
                    if let Err(end) = self.pump(s).await {
                        break end;
                    }
                }
            }
        };
        reader.abort();
        end
    }

    async fn heartbeat<S: AsyncWrite>(&self, s: &mut Session<S>) -> Result<(), End> {
        // First: a node that just lost its leadership may not have re-read its replication
        // record yet, and must not tell the secondary it was revoked.
        if let NodeRole::Standby {
            active_cluster_addr,
        } = self.registry.node_role()
        {
            return Err(End::Redirected(active_cluster_addr));
        }
        if self.registry.cluster_id().as_deref() != Some(s.cluster_id.as_str())
            || !self.registry.is_allowed(&s.peer_id)
        {
            return Err(End::Refused(
                codes::REVOKED,
                format!(
                    "this secondary was revoked or this cluster is no longer its {} primary",
                    self.label()
                ),
            ));
        }
        check_filter(s)?;
        let silent = s.last_heard.elapsed();
        metrics::gauge!(self.names().secondary_last_heartbeat_age_seconds, "secondary_id" => s.peer_id.clone())
            .set(silent.as_secs_f64());
        if silent > IDLE_TIMEOUT {
            return Err(End::Failed(ReplicationError::Timeout(format!(
                "waiting for secondary {} (silent for {}s)",
                s.peer_id,
                silent.as_secs()
            ))));
        }
        let (echo_unix_ms, echo_held_ms) = match s.secondary_hb {
            Some((theirs, received)) => (
                theirs,
                u64::try_from(received.elapsed().as_millis()).unwrap_or(u64::MAX),
            ),
            None => (0, 0),
        };
        let msg = PrimaryMsg::Heartbeat {
            unix_ms: unix_ms(SystemTime::now()),
            last_wal: self.storage.replication_status().last_wal,
            known_primary_cluster_addrs: self.registry.known_primary_cluster_addrs(),
            echo_unix_ms,
            echo_held_ms,
        };
        send(&mut s.wr, &msg).await.map_err(End::Failed)
    }

    async fn handle<S: AsyncWrite>(
        &self,
        s: &mut Session<S>,
        msg: SecondaryMsg,
        wal_watch: &mut watch::Receiver<u64>,
    ) -> Result<(), End> {
        match msg {
            SecondaryMsg::Heartbeat {
                unix_ms: theirs,
                last_applied,
                echo_unix_ms,
                echo_held_ms,
            } => {
                let ours = unix_ms(SystemTime::now());
                // What each secondary reports applied, beside our own last WAL index: the
                // per-secondary lag in entries, on the primary's dashboard.
                metrics::gauge!(self.names().secondary_last_remote_wal, "secondary_id" => s.peer_id.clone())
                    .set(last_applied as f64);
                s.secondary_hb = Some((theirs, Instant::now()));
                s.peer.clock_skew_ms = i64::try_from(theirs)
                    .unwrap_or(i64::MAX)
                    .saturating_sub(i64::try_from(ours).unwrap_or(i64::MAX));
                if let Some(rtt) = echo_rtt_ms(ours, echo_unix_ms, echo_held_ms) {
                    s.peer.last_heartbeat_duration_ms = rtt;
                }
                self.record(&mut s.peer, "connected");
                Ok(())
            }
            SecondaryMsg::PageHashesReq { tree, page } if s.cursor.is_none() => {
                let hashes = match &mut s.perf {
                    Some(perf) => perf
                        .page_hashes(&*self.storage, tree, page)
                        .await
                        .map_err(|e| End::Failed(e.into()))?,
                    None => self.storage.merkle_hashes(tree, page),
                };
                send(&mut s.wr, &PrimaryMsg::PageHashes(hashes))
                    .await
                    .map_err(End::Failed)
            }
            SecondaryMsg::FetchBuckets { tree, buckets } if s.cursor.is_none() => {
                if !s.sync_point_sent {
                    let msg = PrimaryMsg::SyncPoint {
                        position: s.present(s.sync_point),
                    };
                    send(&mut s.wr, &msg).await.map_err(End::Failed)?;
                    s.sync_point_sent = true;
                }
                let pairs = match &s.perf {
                    Some(perf) => perf.bucket_pairs(&*self.storage, tree, buckets).await,
                    None => self.storage.export_buckets(tree, buckets).await,
                }
                .map_err(|e| End::Failed(e.into()))?;
                for chunk in chunk_pairs(pairs) {
                    send(&mut s.wr, &chunk).await.map_err(End::Failed)?;
                }
                Ok(())
            }
            SecondaryMsg::StreamFrom { position } if s.cursor.is_none() => {
                let ours = match &s.perf {
                    None => position,
                    Some(perf) => perf
                        .ours(&*self.storage, s.sync_point, position)
                        .await
                        .map_err(|e| End::Failed(e.into()))?
                        .ok_or_else(|| {
                            End::Refused(
                                codes::WAL_GONE,
                                format!(
                                    "WAL position {} is not one this stream presents; reconnect to run a merkle sync",
                                    position.index
                                ),
                            )
                        })?,
                };
                s.cursor = Some(ours);
                wal_watch.borrow_and_update();
                self.pump(s).await
            }
            SecondaryMsg::Hello { .. } => {
                Err(End::Refused(codes::PROTOCOL, "Hello sent twice".into()))
            }
            SecondaryMsg::PageHashesReq { .. }
            | SecondaryMsg::FetchBuckets { .. }
            | SecondaryMsg::StreamFrom { .. } => Err(End::Refused(
                codes::PROTOCOL,
                "merkle requests are not accepted once streaming started".into(),
            )),
        }
    }

    /// Sends every entry after the cursor.
    async fn pump<S: AsyncWrite>(&self, s: &mut Session<S>) -> Result<(), End> {
        let Some(mut cursor) = s.cursor else {
            return Ok(());
        };
        // A node that lost its leadership still applies the new leader's entries; it must
        // hand the secondary over at once rather than keep streaming until its heartbeat.
        if let NodeRole::Standby {
            active_cluster_addr,
        } = self.registry.node_role()
        {
            return Err(End::Redirected(active_cluster_addr));
        }
        check_filter(s)?;
        loop {
            let read = self
                .storage
                .wal_read(cursor, WAL_BATCH_ENTRIES, WAL_BATCH_BYTES)
                .await
                .map_err(|e| End::Failed(e.into()))?;
            let entries = match read {
                WalRead::Gone => {
                    return Err(End::Refused(
                        codes::WAL_GONE,
                        format!(
                            "WAL position {} is no longer retained; reconnect to run a merkle sync",
                            cursor.index
                        ),
                    ));
                }
                WalRead::Entries(entries) => entries,
            };
            let Some(last) = entries.last() else {
                break;
            };
            cursor = last.position();
            let n = entries.len() as u64;
            let committed_us = entries
                .iter()
                .map(|e| self.storage.wal_committed_at(e.index).unwrap_or(0))
                .collect();
            let entries = match &s.perf {
                Some(perf) => entries.into_iter().map(|e| perf.present_entry(e)).collect(),
                None => entries,
            };
            send(
                &mut s.wr,
                &PrimaryMsg::Wal {
                    entries,
                    committed_us,
                },
            )
            .await
            .map_err(End::Failed)?;
            s.cursor = Some(cursor);
            metrics::counter!(self.names().rpc_server_stream_wals_total).increment(n);
            tracing::trace!(secondary_id = %s.peer_id, entries = n, last_index = cursor.index, "streamed WAL entries");
        }
        Ok(())
    }
}

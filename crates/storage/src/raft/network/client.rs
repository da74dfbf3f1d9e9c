//! The calling side of the transport: one cached stream per peer, each RPC bounded in time.
//!
//! A hung peer must not wedge replication to it: every request and its answer run under the
//! RPC's deadline, and a stream that failed or timed out is dropped, never reused, because
//! a late answer on it would be taken for the next request's.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{OptionalSend, RaftNetworkV2};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::frame::{self, Kind, RemovedNotice, SNAPSHOT_CHUNK_BYTES};
use crate::raft::snapshot_data::SnapshotData;
use crate::raft::types::{RaftNode, Snapshot, TypeConfig, Vote};
use crate::{BoxStream, Dialer};

/// Snapshot chunks produced ahead of the network, bounding the sender's memory.
const SNAPSHOT_CHUNKS_AHEAD: usize = 4;

/// A peer connection, opened on first use and after any failure.
pub struct PeerClient {
    target: u64,
    node: RaftNode,
    dialer: Option<Arc<dyn Dialer>>,
    /// Only ever reached through `&mut self` (`get_mut`, no locking); the mutex is there
    /// because openraft wants clients `Sync` and a stream is only `Send`.
    conn: tokio::sync::Mutex<Option<BoxStream>>,
    /// A dial (TCP and the TLS handshake) in progress. It runs in its own task so that an RPC
    /// deadline shorter than a handshake (20 ms heartbeats at `performance_multiplier = 1`)
    /// does not abandon it half-way again and again: the next call picks the stream up.
    dialing: Option<tokio::task::JoinHandle<io::Result<BoxStream>>>,
}

/// Why one call failed, before it is mapped to openraft's error of the RPC at hand.
enum CallError {
    /// No stream could be opened, the peer did not answer in time, or its Raft cannot serve.
    Unreachable(String),
    /// The stream broke or carried something unexpected.
    Network(String),
}

impl CallError {
    fn rpc(self) -> RPCError<TypeConfig> {
        match self {
            CallError::Unreachable(m) => RPCError::Unreachable(Unreachable::from_string(m)),
            CallError::Network(m) => RPCError::Network(NetworkError::from_string(m)),
        }
    }

    fn streaming(self) -> StreamingError<TypeConfig> {
        match self {
            CallError::Unreachable(m) => StreamingError::Unreachable(Unreachable::from_string(m)),
            CallError::Network(m) => StreamingError::Network(NetworkError::from_string(m)),
        }
    }
}

impl PeerClient {
    pub fn new(target: u64, node: RaftNode, dialer: Option<Arc<dyn Dialer>>) -> Self {
        Self {
            target,
            node,
            dialer,
            conn: tokio::sync::Mutex::new(None),
            dialing: None,
        }
    }

    async fn connect(&mut self) -> Result<&mut BoxStream, CallError> {
        if self.conn.get_mut().is_none() {
            let Some(dialer) = &self.dialer else {
                return Err(CallError::Unreachable(
                    "this node has no cluster transport (single-node only)".into(),
                ));
            };
            let handle = self.dialing.get_or_insert_with(|| {
                let dialer = dialer.clone();
                let addr = self.node.cluster_addr.clone();
                tokio::spawn(async move { dialer.dial(&addr).await })
            });
            // Awaiting the handle by reference is cancel-safe: if the RPC's deadline passes
            // here, the dial goes on and stays in `dialing` for the next call.
            let dialed = handle.await;
            self.dialing = None;
            let stream = dialed
                .map_err(|e| io::Error::other(e.to_string()))
                .and_then(|r| r)
                .map_err(|e| {
                    CallError::Unreachable(format!(
                        "dialing raft peer {} at {}: {e}",
                        self.node.node_id, self.node.cluster_addr
                    ))
                })?;
            *self.conn.get_mut() = Some(stream);
        }
        self.conn
            .get_mut()
            .as_mut()
            .ok_or_else(|| CallError::Network("no connection".into()))
    }

    /// Sends one request frame and waits for its answer, all within `ttl`.
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &mut self,
        kind: Kind,
        req: &Req,
        ttl: Duration,
    ) -> Result<Resp, CallError> {
        let payload = frame::encode(req).map_err(|e| CallError::Network(e.to_string()))?;
        let peer = self.node.node_id.clone();
        let result = tokio::time::timeout(ttl, async {
            let conn = self.connect().await?;
            frame::write(conn, kind, &payload)
                .await
                .map_err(|e| CallError::Network(format!("sending {kind:?} to {peer}: {e}")))?;
            read_reply(conn, &peer).await
        })
        .await;
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(_) => Err(CallError::Unreachable(format!(
                "raft peer {peer} did not answer {kind:?} within {ttl:?}"
            ))),
        };
        if outcome.is_err() {
            *self.conn.get_mut() = None;
        }
        outcome
    }

    /// Tells this peer that the cluster removed it.
    pub async fn notify_removed(&mut self, term: u64, ttl: Duration) -> io::Result<()> {
        let notice = RemovedNotice {
            node_id: self.node.node_id.clone(),
            term,
        };
        self.call::<_, ()>(Kind::Removed, &notice, ttl)
            .await
            .map_err(|e| match e {
                CallError::Unreachable(m) | CallError::Network(m) => io::Error::other(m),
            })
    }

    /// Streams a snapshot: a begin frame, chunks as the encoder produces them, an end frame,
    /// then the answer (the receiver replies after installing).
    async fn send_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        ttl: Duration,
    ) -> Result<SnapshotResponse<TypeConfig>, CallError> {
        let peer = self.node.node_id.clone();
        let net = |e: io::Error| CallError::Network(format!("sending a snapshot to {peer}: {e}"));
        let begin = frame::encode(&(vote, snapshot.meta.clone())).map_err(&net)?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(SNAPSHOT_CHUNKS_AHEAD);
        let data: SnapshotData = snapshot.snapshot;
        let producer = tokio::task::spawn_blocking(move || {
            data.encode_chunks(SNAPSHOT_CHUNK_BYTES, |chunk| {
                tx.blocking_send(chunk).is_ok()
            })
        });
        let timed = |what: &'static str| {
            CallError::Unreachable(format!(
                "raft peer {peer} did not take the snapshot {what} within {ttl:?}"
            ))
        };
        let conn = tokio::time::timeout(ttl, self.connect())
            .await
            .map_err(|_| timed("connection"))??;
        tokio::time::timeout(ttl, frame::write(conn, Kind::SnapshotBegin, &begin))
            .await
            .map_err(|_| timed("start"))?
            .map_err(&net)?;
        // Each chunk write has the whole deadline: a slow but moving transfer goes on, a
        // stalled one fails.
        while let Some(chunk) = rx.recv().await {
            tokio::time::timeout(ttl, frame::write(conn, Kind::SnapshotChunk, &chunk))
                .await
                .map_err(|_| timed("data"))?
                .map_err(&net)?;
        }
        match producer.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(net(e)),
            Err(e) => return Err(net(io::Error::other(e.to_string()))),
        }
        tokio::time::timeout(ttl, frame::write(conn, Kind::SnapshotEnd, &[]))
            .await
            .map_err(|_| timed("end"))?
            .map_err(&net)?;
        tokio::time::timeout(ttl, read_reply(conn, &peer))
            .await
            .map_err(|_| timed("install"))?
    }
}

/// Reads the answer frame of the request just sent.
async fn read_reply<Resp: DeserializeOwned>(
    conn: &mut BoxStream,
    peer: &str,
) -> Result<Resp, CallError> {
    let reply = frame::read(conn)
        .await
        .map_err(|e| CallError::Network(format!("reading the answer of {peer}: {e}")))?
        .ok_or_else(|| CallError::Network(format!("raft peer {peer} closed the stream")))?;
    match reply.kind {
        Kind::Reply => frame::decode(&reply.payload)
            .map_err(|e| CallError::Network(format!("answer of {peer}: {e}"))),
        Kind::Failed => Err(CallError::Unreachable(format!(
            "raft peer {peer} could not serve the request: {}",
            String::from_utf8_lossy(&reply.payload)
        ))),
        other => Err(CallError::Network(format!(
            "raft peer {peer} answered with a {other:?} frame"
        ))),
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(Kind::AppendEntries, &rpc, option.hard_ttl())
            .await
            .map_err(CallError::rpc)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(Kind::Vote, &rpc, option.hard_ttl())
            .await
            .map_err(CallError::rpc)
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(Kind::PreVote, &rpc, option.hard_ttl())
            .await
            .map_err(CallError::rpc)
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(Kind::TransferLeader, &req, option.hard_ttl())
            .await
            .map_err(CallError::rpc)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let target = self.target;
        let result = tokio::select! {
            closed = cancel => {
                tracing::debug!(target_node = target, "snapshot transfer cancelled");
                Err(StreamingError::Closed(closed))
            }
            sent = self.send_snapshot(vote, snapshot, option.hard_ttl()) => {
                sent.map_err(CallError::streaming)
            }
        };
        if result.is_err() {
            // The stream may hold half a snapshot; never reuse it.
            *self.conn.get_mut() = None;
        }
        result
    }
}

//! The Raft transport, which a single-node cluster never uses.
//!
//! openraft needs a network factory even when this node is the only voter. Every RPC here
//! fails as `Unreachable`, which openraft treats as a peer that is down and retries with
//! backoff. The real transport over the mTLS cluster port comes with multi-node support
//! (a later issue); it replaces this file without touching the storage.

use std::future::Future;

use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{OptionalSend, RaftNetworkV2};

use super::types::{RaftNode, Snapshot, TypeConfig, Vote};

const NO_TRANSPORT: &str = "the raft cluster transport is not available yet (single-node only)";

/// Hands out [`NoTransport`] clients for every peer.
pub struct NetworkFactory;

/// A peer connection that is always unreachable.
pub struct NoTransport;

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = NoTransport;

    async fn new_client(&mut self, _target: u64, _node: &RaftNode) -> NoTransport {
        NoTransport
    }
}

fn unreachable() -> Unreachable<TypeConfig> {
    Unreachable::from_string(NO_TRANSPORT)
}

impl RaftNetworkV2<TypeConfig> for NoTransport {
    type SnapshotData = super::snapshot_data::SnapshotData;

    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(unreachable()))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(unreachable()))
    }

    async fn full_snapshot(
        &mut self,
        _vote: Vote,
        _snapshot: Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        Err(StreamingError::Unreachable(unreachable()))
    }
}

//! The answering side of the transport: one inbound stream, served until it closes.
//!
//! Whatever arrives is checked before Raft sees it; a frame that is oversized, of an unknown
//! kind, out of order or undecodable ends this stream with a warning (the peer reconnects),
//! and never the node. Received snapshots are staged in a file in the data directory and
//! installed from there, so a large keyspace never sits in memory.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::async_runtime::watch::WatchReceiver;
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use openraft::vote::RaftLeaderId;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::frame::{self, Frame, Kind, RemovedNotice};
use crate::BoxStream;
use crate::raft::RaftStorage;
use crate::raft::snapshot_data::{SnapshotData, StagedFile};
use crate::raft::types::{Snapshot, SnapshotMeta, TypeConfig, Vote, raft_id_for};

/// Distinguishes concurrent staged snapshots of one process.
static STAGED: AtomicU64 = AtomicU64::new(0);

/// Serves `stream` from `peer` (its authenticated node id) for `node` until the peer closes
/// it or sends something invalid.
pub async fn serve(node: &RaftStorage, mut stream: BoxStream, peer: &str) {
    loop {
        let frame = match frame::read(&mut stream).await {
            // A stopped Raft serves nothing; closing lets the peer see it and lets this node's
            // files be released.
            Ok(Some(_)) if node.raft.metrics().borrow_watched().running_state.is_err() => return,
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "closing a raft peer stream: unreadable frame");
                return;
            }
        };
        if let Err(e) = serve_one(node, &mut stream, frame, peer).await {
            tracing::warn!(error = %e, "closing a raft peer stream");
            return;
        }
    }
}

/// Answers one request; an error closes the stream.
async fn serve_one(
    node: &RaftStorage,
    stream: &mut BoxStream,
    req: Frame,
    peer: &str,
) -> io::Result<()> {
    match req.kind {
        Kind::AppendEntries => {
            let rpc: AppendEntriesRequest<TypeConfig> = frame::decode(&req.payload)?;
            speaks_for_itself(&rpc.vote, peer)?;
            let result = node.raft.append_entries(rpc).await;
            answer(stream, result.map_err(|e| e.to_string())).await
        }
        Kind::Vote => {
            let rpc: VoteRequest<TypeConfig> = frame::decode(&req.payload)?;
            speaks_for_itself(&rpc.vote, peer)?;
            answer(stream, node.raft.vote(rpc).await.map_err(|e| e.to_string())).await
        }
        Kind::PreVote => {
            let rpc: VoteRequest<TypeConfig> = frame::decode(&req.payload)?;
            speaks_for_itself(&rpc.vote, peer)?;
            let result = node.raft.pre_vote(rpc).await;
            answer(stream, result.map_err(|e| e.to_string())).await
        }
        Kind::TransferLeader => {
            let rpc: TransferLeaderRequest<TypeConfig> = frame::decode(&req.payload)?;
            let result = node.raft.handle_transfer_leader(rpc).await;
            answer(stream, result.map_err(|e| e.to_string())).await
        }
        Kind::SnapshotBegin => {
            let (vote, meta): (Vote, SnapshotMeta) = frame::decode(&req.payload)?;
            speaks_for_itself(&vote, peer)?;
            let staged = receive_snapshot(node, stream).await?;
            let snapshot = Snapshot {
                meta,
                snapshot: SnapshotData::Staged(staged),
            };
            let result = node.raft.install_full_snapshot(vote, snapshot).await;
            answer(stream, result.map_err(|e| e.to_string())).await
        }
        Kind::Removed => {
            let notice: RemovedNotice = frame::decode(&req.payload)?;
            if notice.node_id != node.node_id {
                return answer::<()>(
                    stream,
                    Err(format!(
                        "this is node {}, not {}",
                        node.node_id, notice.node_id
                    )),
                )
                .await;
            }
            // Any member holds a cluster-CA certificate; only the leader this node follows
            // may remove it, or one member could seal the others.
            let (leader, term) = {
                let m = node.raft.metrics().borrow_watched().clone();
                (m.current_leader, m.current_term)
            };
            if leader != Some(raft_id_for(peer)) || notice.term < term {
                tracing::warn!(
                    sender = peer,
                    term = notice.term,
                    "ignoring a removal notice from a node that is not this node's raft leader"
                );
                return answer::<()>(
                    stream,
                    Err(format!(
                        "node {peer} is not the raft leader of node {} at term {}",
                        node.node_id, notice.term
                    )),
                )
                .await;
            }
            tracing::warn!(
                term = notice.term,
                leader = peer,
                "the raft leader removed this node from the cluster"
            );
            let result = node.mark_removed().await.map_err(|e| e.to_string());
            answer(stream, result).await
        }
        Kind::SnapshotChunk | Kind::SnapshotEnd | Kind::Reply | Kind::Failed => {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected {:?} frame from a raft peer", req.kind),
            ))
        }
    }
}

/// Refuses a request made in another node's name: only a candidate asks for votes and only
/// a leader sends entries and snapshots, each under its own vote, so the vote must name the
/// member the transport authenticated. One member cannot then pass off entries or a
/// snapshot as the leader's; what the leader itself sends is trusted, as Raft must.
fn speaks_for_itself(vote: &Vote, peer: &str) -> io::Result<()> {
    let named = *vote.leader_id().node_id();
    if named == raft_id_for(peer) {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("raft peer {peer} sent a request under another node's vote"),
    ))
}

/// Writes the snapshot chunks that follow a begin frame into a staging file.
async fn receive_snapshot(node: &RaftStorage, stream: &mut BoxStream) -> io::Result<StagedFile> {
    let n = STAGED.fetch_add(1, Ordering::Relaxed);
    let path = node.path.join(crate::raft::snapshot_data::staged_name(n));
    let mut file = tokio::fs::File::create(&path).await?;
    // Owned from here on, so the file is removed on every early return.
    let mut staged = StagedFile::new(path, 0);
    let mut len = 0u64;
    loop {
        let Some(frame) = frame::read(stream).await? else {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the raft peer closed the stream inside a snapshot",
            ));
        };
        match frame.kind {
            Kind::SnapshotChunk => {
                file.write_all(&frame.payload).await?;
                len += frame.payload.len() as u64;
            }
            Kind::SnapshotEnd => break,
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a {other:?} frame inside a snapshot"),
                ));
            }
        }
    }
    file.sync_all().await?;
    drop(file);
    staged.set_len(len);
    Ok(staged)
}

/// Sends the answer to the request just served.
async fn answer<T: Serialize>(stream: &mut BoxStream, result: Result<T, String>) -> io::Result<()> {
    match result {
        Ok(value) => frame::write(stream, Kind::Reply, &frame::encode(&value)?).await,
        Err(message) => frame::write(stream, Kind::Failed, message.as_bytes()).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_must_come_from_the_node_its_vote_names() {
        // Why: any member holds a cluster-CA certificate; without this check node3 could send
        // entries or a snapshot as if node1 led.
        let vote = Vote::new(3, raft_id_for("node1"));

        let from_leader = speaks_for_itself(&vote, "node1");
        let from_other = speaks_for_itself(&vote, "node3");

        assert!(from_leader.is_ok());
        let err = from_other.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    }
}

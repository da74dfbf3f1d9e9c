//! The wire format of the Raft transport: length-prefixed frames with a one-byte kind.
//!
//! A peer is authenticated by the cluster port's mutual TLS but may still be buggy, old or
//! compromised, so nothing it sends is trusted for sizes: the length is checked against
//! [`MAX_FRAME_BYTES`] before a buffer is allocated, and a frame that does not decode closes
//! the stream instead of reaching Raft.
//!
//! Layout: `u32 length (big-endian, kind + payload) | u8 kind | payload`; payloads are
//! postcard, the same encoding as the log, so an entry crosses the wire as it is stored.

use std::io;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame accepted or sent. Entries are capped at `max_batch_bytes` (1 MiB by
/// default) and openraft batches at most `max_payload_entries` of them; snapshots travel in
/// chunks far below this.
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// Size of one snapshot chunk frame.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

/// What a frame carries. Values are part of the wire protocol: append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    AppendEntries = 1,
    Vote = 2,
    PreVote = 3,
    TransferLeader = 4,
    /// Starts a snapshot: `(vote, meta)`; chunks follow, then [`Kind::SnapshotEnd`].
    SnapshotBegin = 5,
    /// Raw snapshot bytes, in order.
    SnapshotChunk = 6,
    /// The snapshot is complete; the receiver installs it and replies.
    SnapshotEnd = 7,
    /// "You were removed from the cluster": a [`RemovedNotice`].
    Removed = 8,
    /// The successful answer to the request before it.
    Reply = 0x80,
    /// The receiver could not serve the request; the payload is a message.
    Failed = 0x81,
}

impl Kind {
    pub fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::AppendEntries,
            2 => Kind::Vote,
            3 => Kind::PreVote,
            4 => Kind::TransferLeader,
            5 => Kind::SnapshotBegin,
            6 => Kind::SnapshotChunk,
            7 => Kind::SnapshotEnd,
            8 => Kind::Removed,
            0x80 => Kind::Reply,
            0x81 => Kind::Failed,
            _ => return None,
        })
    }
}

/// The leader's word to a node it removed.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RemovedNotice {
    /// The operator's node id of the removed node (a node ignores notices for another).
    pub node_id: String,
    /// The term of the leader that removed it.
    pub term: u64,
}

/// One received frame.
#[derive(Debug)]
pub struct Frame {
    pub kind: Kind,
    pub payload: Vec<u8>,
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Writes one frame and flushes it.
pub async fn write<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    kind: Kind,
    payload: &[u8],
) -> io::Result<()> {
    let len = payload.len() + 1;
    if len > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a {kind:?} frame of {len} bytes exceeds the {MAX_FRAME_BYTES}-byte limit"),
        ));
    }
    let len = u32::try_from(len).map_err(|_| invalid("frame length overflows u32"))?;
    let mut head = [0u8; 5];
    head[..4].copy_from_slice(&len.to_be_bytes());
    head[4] = kind as u8;
    w.write_all(&head).await?;
    w.write_all(payload).await?;
    w.flush().await
}

/// Reads one frame; `None` when the peer closed the stream between frames.
pub async fn read<R: AsyncRead + Unpin + ?Sized>(r: &mut R) -> io::Result<Option<Frame>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 {
        return Err(invalid("an empty frame (no kind byte)"));
    }
    if len > MAX_FRAME_BYTES {
        return Err(invalid(format!(
            "a frame of {len} bytes exceeds the {MAX_FRAME_BYTES}-byte limit"
        )));
    }
    let mut kind = [0u8; 1];
    r.read_exact(&mut kind).await?;
    let kind = Kind::from_byte(kind[0])
        .ok_or_else(|| invalid(format!("unknown frame kind {:#04x}", kind[0])))?;
    let mut payload = vec![0u8; len - 1];
    r.read_exact(&mut payload).await?;
    Ok(Some(Frame { kind, payload }))
}

/// Encodes a payload.
pub fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|e| invalid(format!("encoding a frame: {e}")))
}

/// Decodes a payload, refusing trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    let (value, rest) = postcard::take_from_bytes::<T>(bytes)
        .map_err(|e| invalid(format!("decoding a frame: {e}")))?;
    if !rest.is_empty() {
        return Err(invalid("trailing bytes after a frame's payload"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_lengths_are_refused_before_allocating() {
        // Why: a peer's length prefix is the one number that could make us allocate 4 GiB.
        let (mut a, mut b) = tokio::io::duplex(1024);
        write(&mut a, Kind::Vote, b"abc").await.unwrap();
        let f = read(&mut b).await.unwrap().unwrap();
        assert_eq!(
            (f.kind, f.payload.as_slice()),
            (Kind::Vote, b"abc".as_slice())
        );

        a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        let err = read(&mut b).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn an_unknown_kind_is_refused() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&[0, 0, 0, 1, 0x42]).await.unwrap();
        assert!(read(&mut b).await.is_err());
    }
}

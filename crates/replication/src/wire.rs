//! The replication wire protocol: length-prefixed postcard frames over the mTLS stream.
//!
//! A frame is a big-endian `u32` length followed by one postcard-encoded message. The length
//! is checked against [`MAX_FRAME`] before anything is allocated, so a broken or hostile peer
//! cannot make us reserve gigabytes. Values inside messages are barrier ciphertext exactly as
//! storage holds them: nothing here decrypts, and nothing here may log message contents.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use strongroom_storage::{MerkleTree, WalEntry, WalPosition};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::ReplicationError;

/// The ALPN protocol of the DR replication stream on the cluster port.
pub const ALPN_DR: &[u8] = b"replication_dr_v1";
/// The ALPN of the performance replication stream (the performance replication CA; peer id
/// from the client certificate, as for DR). Messages are the DR stream's.
pub const ALPN_PERFORMANCE: &[u8] = b"replication_v1";
/// The ALPN of HTTP/2 forwarding of writes from a performance secondary to the primary's
/// active node (the performance replication CA and identity).
pub const ALPN_PERFORMANCE_FORWARD: &[u8] = b"repl_fw_v1";
/// The ALPN of Raft RPC streams between nodes of one cluster (cluster-internal CA).
pub const ALPN_RAFT: &[u8] = b"raft_v1";
/// The ALPN of HTTP/2 request forwarding from a standby to the active node (cluster-internal
/// CA).
pub const ALPN_FORWARD: &[u8] = b"req_fw_v1";
/// Protocol version carried in [`SecondaryMsg::Hello`]. Postcard is positional, so any
/// change to a message's shape or a field's meaning bumps it (2: peer addresses in Hello,
/// heartbeat echoes; 3: a WAL entry's clock is in microseconds, was milliseconds, and WAL
/// messages carry commit times).
pub const PROTOCOL_VERSION: u32 = 3;
/// Largest frame either side sends or accepts.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;
/// Target size of one [`PrimaryMsg::Pairs`] chunk (keys plus values).
pub const MAX_PAIRS_CHUNK: usize = 4 * 1024 * 1024;

/// [`PrimaryMsg::Error`] codes.
pub mod codes {
    /// The secondary id was revoked, or this cluster is no longer a DR primary.
    pub const REVOKED: &str = "revoked";
    /// The secondary names a different replication set.
    pub const UNKNOWN_CLUSTER: &str = "unknown_cluster";
    /// The Hello's secondary id differs from the one in the client certificate.
    pub const IDENTITY_MISMATCH: &str = "identity_mismatch";
    /// The secondary speaks a protocol version this primary does not.
    pub const UNSUPPORTED_PROTOCOL: &str = "unsupported_protocol";
    /// The requested stream position is no longer retained: run a merkle sync.
    pub const WAL_GONE: &str = "wal_gone";
    /// A message arrived that is invalid in the current state.
    pub const PROTOCOL: &str = "protocol_error";
    /// The performance path filter of this secondary changed since the stream started:
    /// reconnect, and the changed stream hashes make the secondary run a merkle diff.
    pub const FILTER_CHANGED: &str = "filter_changed";
    /// The primary's storage failed.
    pub const INTERNAL: &str = "internal";
}

/// Messages a secondary sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecondaryMsg {
    /// First message on every connection.
    Hello {
        secondary_id: String,
        cluster_id: String,
        position: WalPosition,
        protocol: u32,
        /// The secondary's advertised API address (for the primary's `secondaries[]`).
        api_address: String,
        /// The secondary's advertised cluster address.
        cluster_address: String,
    },
    /// Page hashes of a tree (`page: None`) or bucket sums of one page.
    PageHashesReq { tree: MerkleTree, page: Option<u8> },
    /// Every pair in these buckets; answered with [`PrimaryMsg::SyncPoint`] (once per
    /// connection, before the first pairs) and chunked [`PrimaryMsg::Pairs`].
    FetchBuckets { tree: MerkleTree, buckets: Vec<u16> },
    /// Switch to streaming WAL entries after `position`.
    StreamFrom { position: WalPosition },
    Heartbeat {
        unix_ms: u64,
        last_applied: u64,
        /// `unix_ms` of the newest primary heartbeat received (0: none yet), echoed so the
        /// primary measures the round trip on its own clock.
        echo_unix_ms: u64,
        /// How long that primary heartbeat waited here before this echo left.
        echo_held_ms: u64,
    },
}

/// Messages a primary sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrimaryMsg {
    HelloAck {
        /// Whether the primary still holds the secondary's position: stream without a sync.
        resume: bool,
        primary_position: WalPosition,
        known_primary_cluster_addrs: Vec<String>,
    },
    /// 256 page hashes, or 256 bucket sums of the requested page.
    PageHashes(Vec<[u8; 32]>),
    /// One chunk of a [`SecondaryMsg::FetchBuckets`] answer; `last` closes it.
    Pairs {
        pairs: Vec<(String, Vec<u8>)>,
        last: bool,
    },
    /// The primary position taken before any merkle page or bucket was read on this
    /// connection: streaming from it after the sync converges.
    SyncPoint { position: WalPosition },
    /// Consecutive WAL entries, and when each was committed on the primary (unix µs, 0 when
    /// no longer remembered; informational, for the secondary's commit-to-apply histogram).
    Wal {
        entries: Vec<WalEntry>,
        committed_us: Vec<u64>,
    },
    Heartbeat {
        unix_ms: u64,
        last_wal: u64,
        known_primary_cluster_addrs: Vec<String>,
        /// `unix_ms` of the newest secondary heartbeat received (0: none yet), echoed so the
        /// secondary measures the round trip on its own clock.
        echo_unix_ms: u64,
        /// How long that secondary heartbeat waited here before this echo left.
        echo_held_ms: u64,
    },
    /// The primary refuses or aborts; see [`codes`].
    Error { code: String, message: String },
    /// This node of the primary cluster is a standby: dial the active node instead. Sent
    /// after the Hello checked out (id, replication set, not revoked), then the connection
    /// closes. `active_cluster_addr` is `None` while no active node is known (an election).
    Redirect {
        active_cluster_addr: Option<String>,
        known_primary_cluster_addrs: Vec<String>,
    },
    /// Performance streams only, right after `HelloAck`: the path filter this secondary's
    /// data passes through (`None`: none), so it hides the mounts it receives no data of.
    /// Appended last, so DR peers of earlier releases decode every message they ever get.
    PathsFilter { filter: Option<PathsFilterWire> },
}

/// A performance secondary's path filter as the stream states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathsFilterWire {
    /// `deny` mode (else `allow`).
    pub deny: bool,
    /// Mount paths with a trailing slash.
    pub paths: Vec<String>,
}

/// Round trip of a heartbeat echo: `now - sent - held`, all on the echo receiver's clock;
/// `None` when nothing was echoed yet.
pub fn echo_rtt_ms(now_ms: u64, echo_unix_ms: u64, echo_held_ms: u64) -> Option<u64> {
    (echo_unix_ms != 0).then(|| {
        now_ms
            .saturating_sub(echo_unix_ms)
            .saturating_sub(echo_held_ms)
    })
}

/// Encodes `msg` as one complete frame (length prefix included).
pub fn encode_frame<T: Serialize>(msg: &T) -> Result<Vec<u8>, ReplicationError> {
    let mut out = postcard::to_extend(msg, vec![0u8; 4])
        .map_err(|e| ReplicationError::Decode(format!("encoding a message failed: {e}")))?;
    let len = out.len() - 4;
    if len > MAX_FRAME {
        return Err(ReplicationError::FrameTooLarge(len));
    }
    let prefix = u32::try_from(len).map_err(|_| ReplicationError::FrameTooLarge(len))?;
    out[..4].copy_from_slice(&prefix.to_be_bytes());
    Ok(out)
}

/// Writes one frame and flushes it.
pub async fn write_frame<W, T>(w: &mut W, msg: &T) -> Result<(), ReplicationError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let frame = encode_frame(msg)?;
    w.write_all(&frame)
        .await
        .map_err(|e| ReplicationError::io("sending a replication frame", e))?;
    w.flush()
        .await
        .map_err(|e| ReplicationError::io("flushing a replication frame", e))
}

/// Reads frames from `rd` into `tx` until the peer closes, a frame fails (sent on, then the
/// loop ends) or the receiver is gone: the reader task of either end of a stream.
pub(crate) async fn read_loop<R, T>(
    mut rd: R,
    tx: tokio::sync::mpsc::Sender<Result<T, ReplicationError>>,
) where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    loop {
        match read_frame::<_, T>(&mut rd).await {
            Ok(Some(msg)) => {
                if tx.send(Ok(msg)).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}

/// Reads one frame; `Ok(None)` when the peer closed cleanly between frames.
pub async fn read_frame<R, T>(r: &mut R) -> Result<Option<T>, ReplicationError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r
            .read(&mut prefix[got..])
            .await
            .map_err(|e| ReplicationError::io("receiving a replication frame", e))?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(ReplicationError::Protocol(
                "the peer closed the connection inside a frame header".into(),
            ));
        }
        got += n;
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME {
        return Err(ReplicationError::FrameTooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)
        .await
        .map_err(|e| ReplicationError::io("receiving a replication frame body", e))?;
    postcard::from_bytes(&body).map(Some).map_err(|e| {
        ReplicationError::Decode(format!(
            "{e}; is the peer running another protocol version?"
        ))
    })
}

/// Splits `pairs` into [`PrimaryMsg::Pairs`] chunks of about [`MAX_PAIRS_CHUNK`] bytes; the
/// last chunk has `last: true` (an empty answer is one empty, last chunk).
pub fn chunk_pairs(pairs: Vec<(String, Vec<u8>)>) -> Vec<PrimaryMsg> {
    let mut out = Vec::new();
    let mut chunk = Vec::new();
    let mut size = 0usize;
    for (key, value) in pairs {
        let len = key.len() + value.len() + 16;
        if !chunk.is_empty() && size + len > MAX_PAIRS_CHUNK {
            out.push(PrimaryMsg::Pairs {
                pairs: std::mem::take(&mut chunk),
                last: false,
            });
            size = 0;
        }
        size += len;
        chunk.push((key, value));
    }
    out.push(PrimaryMsg::Pairs {
        pairs: chunk,
        last: true,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_reject_oversized_lengths() {
        // Why: the length check is what stops a hostile peer from forcing a huge allocation.
        let msg = SecondaryMsg::Heartbeat {
            unix_ms: 7,
            last_applied: 9,
            echo_unix_ms: 5,
            echo_held_ms: 1,
        };
        let frame = encode_frame(&msg).unwrap();
        let mut reader = &frame[..];
        let back: Option<SecondaryMsg> = read_frame(&mut reader).await.unwrap();
        assert_eq!(back, Some(msg));

        let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
        let mut reader = &huge[..];
        let err = read_frame::<_, SecondaryMsg>(&mut reader)
            .await
            .unwrap_err();
        assert!(matches!(err, ReplicationError::FrameTooLarge(_)));

        let mut empty: &[u8] = &[];
        assert!(
            read_frame::<_, SecondaryMsg>(&mut empty)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn pairs_are_chunked_below_the_limit() {
        // Why: one frame must never exceed 16 MiB even when a bucket holds large values.
        let big = vec![0u8; MAX_PAIRS_CHUNK / 3];
        let pairs = (0..5).map(|i| (format!("k{i}"), big.clone())).collect();
        let chunks = chunk_pairs(pairs);
        assert_eq!(chunks.len(), 3);
        for (i, c) in chunks.iter().enumerate() {
            let PrimaryMsg::Pairs { last, .. } = c else {
                panic!("not pairs")
            };
            assert_eq!(*last, i == 2);
            assert!(encode_frame(c).unwrap().len() <= MAX_FRAME);
        }
        assert_eq!(chunk_pairs(Vec::new()).len(), 1);
    }
}

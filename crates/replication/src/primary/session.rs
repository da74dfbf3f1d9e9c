//! One connection's state and its plumbing: how it ended, framed sends with a deadline, the
//! reader task, and the checks shared by the DR and performance paths. Kept apart from the
//! protocol steps in `mod.rs` so those read as the protocol.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use strongroom_storage::WalPosition;
use tokio::io::{AsyncWrite, WriteHalf};

use super::WRITE_TIMEOUT;
use super::performance::PerfSession;
use crate::error::ReplicationError;
use crate::peer::PeerInfo;
use crate::wire::{PrimaryMsg, codes, write_frame};

pub(super) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// How a connection ended, for the log.
pub(super) enum End {
    Closed,
    Shutdown,
    Refused(&'static str, String),
    /// This node is a standby: the secondary was told where the active node is.
    Redirected(Option<String>),
    Failed(ReplicationError),
}

pub(super) struct Session<S> {
    pub(super) wr: WriteHalf<S>,
    pub(super) peer_id: String,
    pub(super) cluster_id: String,
    pub(super) sync_point: WalPosition,
    pub(super) sync_point_sent: bool,
    /// Set once the secondary asked to stream: the position after which to send.
    pub(super) cursor: Option<WalPosition>,
    pub(super) last_heard: Instant,
    /// What the secondary advertised in its Hello, and what we measured since.
    pub(super) peer: PeerInfo,
    /// The newest secondary heartbeat: its `unix_ms` and when it arrived (echoed back).
    pub(super) secondary_hb: Option<(u64, Instant)>,
    /// Set on a performance session.
    pub(super) perf: Option<PerfSession>,
}

impl<S> Session<S> {
    /// Our position as this session's stream presents it.
    pub(super) fn present(&self, pos: WalPosition) -> WalPosition {
        match &self.perf {
            Some(perf) => perf.present(pos),
            None => pos,
        }
    }
}

/// Ends a performance session whose secondary's path filter changed since it started.
pub(super) fn check_filter<S>(s: &Session<S>) -> Result<(), End> {
    match &s.perf {
        Some(perf) if perf.filter_changed() => Err(End::Refused(
            codes::FILTER_CHANGED,
            "the path filter of this secondary changed; reconnect to resynchronize".into(),
        )),
        _ => Ok(()),
    }
}

pub(super) async fn send<W: AsyncWrite + Unpin>(
    wr: &mut W,
    msg: &PrimaryMsg,
) -> Result<(), ReplicationError> {
    tokio::time::timeout(WRITE_TIMEOUT, write_frame(wr, msg))
        .await
        .map_err(|_| ReplicationError::Timeout("sending to the secondary".into()))?
}

/// Caps a peer-supplied address at 256 bytes (on a character boundary).
pub(super) fn bounded(mut s: String) -> String {
    const MAX: usize = 256;
    if s.len() > MAX {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

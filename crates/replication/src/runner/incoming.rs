//! What arrives from the primary before the FSM sees it: WAL messages already queued merged
//! into one apply step, and the primary's commit times kept until their entries are applied
//! (for the commit-lag histogram). The frames themselves are read by `wire::read_loop`.

use std::collections::BTreeMap;

use strongroom_storage::WalEntry;

use super::Driver;
use crate::fsm::Event;
use crate::wire::PrimaryMsg;

/// Most commit times held for entries not applied yet.
const MAX_PENDING_COMMIT_TIMES: usize = 100_000;

/// Remembers when the primary committed these entries, until they are applied here; a time of
/// 0 (the primary no longer knew it) forgets any older time for that index.
pub(super) fn note_commit_times(
    times: &mut BTreeMap<u64, u64>,
    entries: &[WalEntry],
    committed_us: &[u64],
) {
    if times.len() > MAX_PENDING_COMMIT_TIMES {
        // Applies are failing or far behind: the figures would be stale anyway.
        times.clear();
    }
    for (e, &t) in entries.iter().zip(committed_us) {
        if t == 0 {
            times.remove(&e.index);
        } else {
            times.insert(e.index, t);
        }
    }
}

/// Most WAL bytes merged into one apply step from messages already received.
const MAX_COALESCED_BYTES: usize = 1024 * 1024;

impl Driver {
    /// Merges WAL messages that are already queued behind `entries` into one event, so a
    /// secondary that fell behind applies its backlog in large storage steps (one fsync each)
    /// instead of one step per message.
    pub(super) fn coalesce_wal(&mut self, mut entries: Vec<WalEntry>) {
        let mut bytes: usize = entries.iter().map(WalEntry::payload_bytes).sum();
        let mut next = None;
        if let Some(conn) = self.conn.as_mut() {
            while bytes < MAX_COALESCED_BYTES {
                match conn.incoming.try_recv() {
                    Ok(Ok(PrimaryMsg::Wal {
                        entries: more,
                        committed_us,
                    })) => {
                        note_commit_times(&mut self.commit_times, &more, &committed_us);
                        bytes += more.iter().map(WalEntry::payload_bytes).sum::<usize>();
                        entries.extend(more);
                    }
                    Ok(other) => {
                        next = Some(other);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        self.events.push_back(Event::Wal(entries));
        match next {
            Some(Ok(msg)) => self.events.push_back(msg.into()),
            Some(Err(e)) => {
                self.conn = None;
                self.events.push_back(Event::Disconnected(e.to_string()));
            }
            None => {}
        }
    }
}

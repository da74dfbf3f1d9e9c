//! The merkle diff and sync phases: find the buckets where our replicated data differs from
//! the primary's, fetch those buckets, and discard the keys the primary no longer has.
//!
//! Split from the handshake and streaming logic because it is the one long multi-message
//! exchange of the protocol; every step still runs inside [`SecondaryFsm::handle`].

use std::collections::{BTreeSet, VecDeque};

use super::*;

impl SecondaryFsm {
    pub(super) fn on_page_hashes(
        &mut self,
        remote: Vec<[u8; 32]>,
        local: &dyn LocalView,
        out: &mut Vec<Output>,
    ) -> Result<(), Violation> {
        let Some(Phase::Diff {
            asks,
            top,
            differing,
            started_ms,
        }) = &mut self.phase
        else {
            return Err(Violation("PageHashes outside merkle diff".into()));
        };
        if remote.len() != 256 {
            return Err(Violation(format!(
                "{} page hashes instead of 256",
                remote.len()
            )));
        }
        let Some(ask) = asks.pop_front() else {
            return Err(Violation("PageHashes nobody asked for".into()));
        };
        match ask {
            Ask::Top(tree) => {
                let ours = local.merkle_hashes(tree, None);
                for page in 0..=255u8 {
                    if ours.get(usize::from(page)) != Some(&remote[usize::from(page)]) {
                        asks.push_back(Ask::Page(tree, page));
                        out.push(Output::Send(SecondaryMsg::PageHashesReq {
                            tree,
                            page: Some(page),
                        }));
                    }
                }
                *top = remote;
            }
            Ask::Page(tree, page) => {
                // The primary keeps writing during a diff, so these sums may be newer than
                // the page hash asked about a round trip ago; that is fine (the sync point was
                // taken before any merkle read, and replay from it converges). Only a page
                // that hashes to neither is a protocol error.
                if remote.len() != 256 {
                    return Err(Violation(format!(
                        "page {page} has {} bucket sums, expected 256",
                        remote.len()
                    )));
                }
                let ours = local.merkle_hashes(tree, Some(page));
                for (i, sum) in remote.iter().enumerate() {
                    if ours.get(i) != Some(sum) {
                        differing.push((tree, (u16::from(page) << 8) | i as u16));
                    }
                }
            }
        }
        if !asks.is_empty() {
            return Ok(());
        }
        // This tree is done: diff the next one, or start the sync.
        if let Ask::Top(MerkleTree::Shared) | Ask::Page(MerkleTree::Shared, _) = ask {
            asks.push_back(Ask::Top(MerkleTree::Local));
            out.push(Output::Send(SecondaryMsg::PageHashesReq {
                tree: MerkleTree::Local,
                page: None,
            }));
            return Ok(());
        }
        let diff_ms = self.now_ms.saturating_sub(*started_ms);
        metrics::histogram!(m::names(self.cfg.kind).merkle_diff_seconds)
            .record(diff_ms as f64 / 1000.0);
        let mut queue: VecDeque<(MerkleTree, Vec<u16>)> = VecDeque::new();
        for tree in [MerkleTree::Shared, MerkleTree::Local] {
            let buckets: Vec<u16> = differing
                .iter()
                .filter(|(t, _)| *t == tree)
                .map(|(_, b)| *b)
                .collect();
            for chunk in buckets.chunks(BUCKETS_PER_FETCH) {
                queue.push_back((tree, chunk.to_vec()));
            }
        }
        let buckets_total = differing.len();
        tracing::info!(
            conflicting_buckets = buckets_total,
            diff_ms,
            "merkle diff complete; starting merkle sync"
        );
        if queue.is_empty() {
            // Nothing differs; one empty fetch still yields the sync point to stream from.
            queue.push_back((MerkleTree::Shared, Vec::new()));
        }
        self.state = State::MerkleSync;
        self.status.sync_keys_received = 0;
        self.status.sync_keys_estimated_total = 0;
        let mut phase = Phase::Sync {
            queue,
            current: None,
            sync_point: None,
            buckets_total,
            buckets_done: 0,
            started_ms: self.now_ms,
        };
        next_fetch(&mut phase, out);
        self.phase = Some(phase);
        Ok(())
    }

    pub(super) fn on_pairs(
        &mut self,
        pairs: Vec<(String, Vec<u8>)>,
        last: bool,
        out: &mut Vec<Output>,
    ) -> Result<(), Violation> {
        let Some(Phase::Sync {
            current,
            sync_point,
            buckets_total,
            buckets_done,
            started_ms,
            ..
        }) = &mut self.phase
        else {
            return Err(Violation("Pairs outside merkle sync".into()));
        };
        let Some(point) = *sync_point else {
            return Err(Violation("Pairs before the sync point".into()));
        };
        let Some((tree, buckets, keep)) = current else {
            return Err(Violation("Pairs nobody asked for".into()));
        };
        let mut puts = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            // Only keys of the requested tree and buckets: never a cluster-local key.
            if MerkleTree::of_key(&key) != Some(*tree)
                || buckets.binary_search(&bucket_of(&key)).is_err()
            {
                return Err(Violation(
                    "the primary sent a key outside the requested buckets".into(),
                ));
            }
            keep.insert(key.clone());
            puts.push(Op::Put { key, value });
        }
        let received = puts.len() as u64;
        self.status.sync_keys_received += received;
        metrics::counter!(m::names(self.cfg.kind).merkle_sync_keys_total).increment(received);
        if !puts.is_empty() {
            out.push(Output::ApplyStorage(ReplCommand::SyncOps(puts)));
        }
        if !last {
            return Ok(());
        }
        let (tree, buckets, keep) = (*tree, std::mem::take(buckets), std::mem::take(keep));
        *current = None;
        *buckets_done += buckets.len();
        if *buckets_done > 0 {
            let est = self
                .status
                .sync_keys_received
                .saturating_mul(*buckets_total as u64)
                / *buckets_done as u64;
            self.status.sync_keys_estimated_total = est.max(self.status.sync_keys_received);
        }
        if !buckets.is_empty() {
            out.push(Output::PruneBuckets {
                tree,
                buckets,
                keep,
            });
        }
        let started = *started_ms;
        let Some(phase) = self.phase.as_mut() else {
            return Ok(());
        };
        if next_fetch(phase, out) {
            return Ok(());
        }
        // Every differing bucket now holds the primary's data as of at least the sync point.
        let sync_ms = self.now_ms.saturating_sub(started);
        metrics::histogram!(m::names(self.cfg.kind).merkle_sync_seconds)
            .record(sync_ms as f64 / 1000.0);
        self.status.sync_keys_estimated_total = self.status.sync_keys_received;
        self.status.syncs_completed += 1;
        tracing::info!(
            keys_received = self.status.sync_keys_received,
            sync_ms,
            sync_wal = point.index,
            "merkle sync complete; streaming from the sync point"
        );
        out.push(Output::ApplyStorage(ReplCommand::SetPosition(point)));
        // The sync changed data underneath the core (a performance secondary reloads the
        // caches it serves reads from).
        out.push(Output::AfterApply);
        self.enter_stream(point, out);
        Ok(())
    }
}

/// Sends the next `FetchBuckets` of a sync; false when none is left.
pub(super) fn next_fetch(phase: &mut Phase, out: &mut Vec<Output>) -> bool {
    let Phase::Sync { queue, current, .. } = phase else {
        return false;
    };
    let Some((tree, buckets)) = queue.pop_front() else {
        return false;
    };
    out.push(Output::Send(SecondaryMsg::FetchBuckets {
        tree,
        buckets: buckets.clone(),
    }));
    *current = Some((tree, buckets, BTreeSet::new()));
    true
}

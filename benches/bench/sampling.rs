//! How the replication benchmark turns status polling into per-write lag bounds.
//!
//! Lag of a write = time from the primary's acknowledgement to the secondary having applied
//! it. The API does not tell a client the WAL index of its write, and the 1 s canary is too
//! coarse, so a dedicated sampler task polls, over its own connections, the primary's
//! `sys/leader` `last_wal` and the secondary's `sys/replication/{dr,performance}/status` `last_remote_wal`
//! (every millisecond, or back to back), timestamping each request's send and receive. Each
//! write is then bracketed from both sides:
//!
//! * upper bound: the first primary sample *sent after* the ack reads a `last_wal` that
//!   includes the write (WAL index and data commit in one transaction, before the ack); the
//!   first secondary sample showing that index, taken at its *receive* time, is no earlier than
//!   the apply. Overestimates by up to one poll interval, one status round trip, and any later
//!   writes folded into that `last_wal`.
//! * lower bound: the last primary sample *received before the write was sent* bounds the
//!   write's index from below (+1); the apply of that index happened after the *send* of the
//!   last secondary sample that did not show it yet.
//!
//! The true lag of every write lies between the two. Kept apart from the load generation so
//! the bounds can be tested on constructed timelines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;

/// One status reading: when its request was sent and its answer received, and the WAL index.
#[derive(Clone, Copy)]
pub struct Sample {
    pub sent: Instant,
    pub recv: Instant,
    pub wal: u64,
}

/// One acknowledged write.
#[derive(Clone, Copy)]
pub struct Write {
    pub sent: Instant,
    pub acked: Instant,
}

/// Per WAL index committed during the phase: an upper bound on commit-to-apply, which also
/// bounds ack-to-apply (a write is acknowledged after its commit). From the last primary sample
/// sent while the index did not exist yet to the first secondary sample received showing it.
/// Needs no mapping from writes to indexes, so concurrency does not widen it.
pub fn per_index(ps: &[Sample], ss: &[Sample]) -> Vec<Duration> {
    let (Some(first), Some(last)) = (ps.first(), ps.last()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for i in first.wal + 1..=last.wal {
        let before = ps.partition_point(|x| x.wal < i);
        let Some(start) = before.checked_sub(1).map(|b| ps[b].sent) else {
            continue;
        };
        if let Some(seen) = ss.get(ss.partition_point(|x| x.wal < i)) {
            out.push(seen.recv.saturating_duration_since(start));
        }
    }
    out
}

/// Upper and lower lag bounds of every write (see the module docs), and how many writes could
/// not be matched (no sample after the ack, or the secondary never showed the index).
pub fn bracket(
    writes: &[Write],
    ps: &[Sample],
    ss: &[Sample],
) -> (Vec<Duration>, Vec<Duration>, usize) {
    let (mut hi, mut lo, mut unresolved) = (Vec::new(), Vec::new(), 0);
    for w in writes {
        let j = ps.partition_point(|x| x.sent < w.acked);
        let Some(upper_wal) = ps.get(j).map(|x| x.wal) else {
            unresolved += 1;
            continue;
        };
        let k = ss.partition_point(|x| x.wal < upper_wal);
        let Some(seen) = ss.get(k) else {
            unresolved += 1;
            continue;
        };
        hi.push(seen.recv.saturating_duration_since(w.acked));
        let before = ps.partition_point(|x| x.recv <= w.sent);
        let lower_wal = match before {
            0 => 1,
            n => ps[n - 1].wal + 1,
        };
        let k = ss.partition_point(|x| x.wal < lower_wal);
        lo.push(match k {
            0 => Duration::ZERO,
            k => ss[k - 1].sent.saturating_duration_since(w.acked),
        });
    }
    (hi, lo, unresolved)
}

pub async fn leader_wal(client: &reqwest::Client, url: &str) -> Result<u64> {
    let v: Value = client
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    v["last_wal"].as_u64().context("sys/leader has no last_wal")
}

async fn remote_wal(client: &reqwest::Client, url: &str) -> Result<u64> {
    let v: Value = client
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    v["data"]["last_remote_wal"]
        .as_u64()
        .context("the replication status has no last_remote_wal")
}

/// Polls both clusters every `poll` (back to back when zero) until `stop`; publishes the newest secondary reading.
pub async fn sample(
    pc: reqwest::Client,
    purl: String,
    sc: reqwest::Client,
    surl: String,
    stop: Arc<AtomicBool>,
    latest_remote: Arc<AtomicU64>,
    poll: Duration,
) -> Result<(Vec<Sample>, Vec<Sample>)> {
    let (mut ps, mut ss) = (Vec::new(), Vec::new());
    let mut tick = tokio::time::interval(poll.max(Duration::from_micros(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while !stop.load(Ordering::Relaxed) {
        if poll.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tick.tick().await;
        }
        let sent = Instant::now();
        let (pw, sw) = tokio::join!(
            async { leader_wal(&pc, &purl).await.map(|w| (w, Instant::now())) },
            async { remote_wal(&sc, &surl).await.map(|w| (w, Instant::now())) }
        );
        let (pw, precv) = pw?;
        let (sw, srecv) = sw?;
        ps.push(Sample {
            sent,
            recv: precv,
            wal: pw,
        });
        ss.push(Sample {
            sent,
            recv: srecv,
            wal: sw,
        });
        latest_remote.store(sw, Ordering::Relaxed);
    }
    Ok((ps, ss))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Why: the bracketing is the whole measurement; a bound on the wrong side would make the
    // published lag optimistic.
    #[test]
    fn bracket_bounds_the_true_lag() {
        // Set up: one write sent at t0+0, acked at t0+2ms, with index 5. The primary read 4
        // before the send and 6 (a later write folded in) after the ack; the secondary shows 4
        // until a sample sent at +4ms and received at +5ms shows 6.
        let t0 = Instant::now();
        let at = |m: u64| t0 + Duration::from_millis(m);
        let s = |sent: u64, recv: u64, wal: u64| Sample {
            sent: at(sent),
            recv: at(recv),
            wal,
        };
        let ps = vec![s(0, 0, 4), s(3, 3, 6)];
        let ss = vec![s(0, 1, 4), s(3, 3, 4), s(4, 5, 6)];
        let w = Write {
            sent: at(0),
            acked: at(2),
        };

        // Act.
        let (hi, lo, unresolved) = bracket(&[w], &ps, &ss);

        // Assert: upper bound = +5ms - +2ms; lower bound = last "not yet" send (+3ms) - ack.
        assert_eq!(unresolved, 0);
        assert_eq!(hi, vec![Duration::from_millis(3)]);
        assert_eq!(lo, vec![Duration::from_millis(1)]);
    }

    // Why: the per-index bound must start before the commit and end after the apply, or it
    // would understate the lag.
    #[test]
    fn per_index_spans_last_absent_to_first_present() {
        // Set up: index 5 appears on the primary between samples sent at +1ms and +2ms, and on
        // the secondary in the sample received at +4ms.
        let t0 = Instant::now();
        let at = |m: u64| t0 + Duration::from_millis(m);
        let s = |sent: u64, recv: u64, wal: u64| Sample {
            sent: at(sent),
            recv: at(recv),
            wal,
        };
        let ps = vec![s(0, 0, 4), s(1, 1, 4), s(2, 2, 5)];
        let ss = vec![s(1, 2, 4), s(3, 4, 5)];

        // Act + assert: +4ms (secondary receive) - +1ms (last primary send without it).
        assert_eq!(per_index(&ps, &ss), vec![Duration::from_millis(3)]);
    }

    // Why: a write the secondary never applied must be reported, not silently dropped as 0.
    #[test]
    fn unapplied_writes_are_counted() {
        let t0 = Instant::now();
        let at = |m: u64| t0 + Duration::from_millis(m);
        let ps = vec![Sample {
            sent: at(3),
            recv: at(3),
            wal: 9,
        }];
        let ss = vec![Sample {
            sent: at(3),
            recv: at(4),
            wal: 8,
        }];
        let w = Write {
            sent: at(0),
            acked: at(1),
        };
        let (hi, _, unresolved) = bracket(&[w], &ps, &ss);
        assert!(hi.is_empty());
        assert_eq!(unresolved, 1);
    }
}

//! Fault injection for drills: a slow disk.
//!
//! `STRONGROOM_FAULT_FSYNC_DELAY_MS=<n>` in a server's environment delays every Raft log
//! commit (one fsync) by `n` milliseconds, so the fault-injection drill can show that a slow
//! disk on a DR secondary grows its lag without slowing the primary. Read once at start-up;
//! unset (the default) costs one relaxed check per commit.

use std::sync::OnceLock;
use std::time::Duration;

/// The environment variable that enables the delay.
pub const FSYNC_DELAY_ENV: &str = "STRONGROOM_FAULT_FSYNC_DELAY_MS";

/// Longest delay accepted, so a typo cannot wedge a server.
const MAX_DELAY_MS: u64 = 10_000;

fn delay() -> Option<Duration> {
    static DELAY: OnceLock<Option<Duration>> = OnceLock::new();
    *DELAY.get_or_init(|| {
        let ms = std::env::var(FSYNC_DELAY_ENV)
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()?;
        if ms == 0 {
            return None;
        }
        let ms = ms.min(MAX_DELAY_MS);
        tracing::warn!(
            delay_ms = ms,
            "fault injection: every raft log fsync is delayed"
        );
        Some(Duration::from_millis(ms))
    })
}

/// Sleeps before a commit when the slow-disk fault is enabled (runs on a blocking thread).
pub fn slow_disk() {
    if let Some(d) = delay() {
        std::thread::sleep(d);
    }
}

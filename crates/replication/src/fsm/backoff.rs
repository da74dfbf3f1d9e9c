//! Reconnect delays: exponential from 100 ms to 5 s with seeded jitter.
//!
//! Jitter keeps a fleet of secondaries from reconnecting in lockstep after a primary restart;
//! the seed keeps tests reproducible.

use std::time::Duration;

const MIN_MS: u64 = 100;
const MAX_MS: u64 = 5_000;

#[derive(Debug, Clone)]
pub struct Backoff {
    attempts: u32,
    rng: u64,
}

impl Backoff {
    pub fn new(seed: u64) -> Self {
        Backoff {
            attempts: 0,
            rng: seed ^ 0x9e37_79b9_7f4a_7c15,
        }
    }

    pub fn reset(&mut self) {
        self.attempts = 0;
    }

    /// The next delay: the exponential step, jittered into its upper half.
    pub fn next_delay(&mut self) -> Duration {
        let step = MIN_MS
            .saturating_mul(1u64 << self.attempts.min(16))
            .min(MAX_MS);
        self.attempts = self.attempts.saturating_add(1);
        let half = step / 2;
        let jitter = if half == 0 {
            0
        } else {
            self.next_u64() % (half + 1)
        };
        Duration::from_millis(half + jitter)
    }

    /// splitmix64: tiny, seedable, good enough for jitter.
    fn next_u64(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_reset() {
        // Why: an unbounded backoff would leave a secondary offline long after the primary returns.
        let mut b = Backoff::new(7);
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..20 {
            assert!(b.next_delay() <= Duration::from_millis(MAX_MS));
        }
        assert!(b.next_delay() >= Duration::from_millis(MAX_MS / 2));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}

//! Percentiles and the shared number formats of the benchmark tables.

use std::time::Duration;

/// The `p` quantile (0..=1) of sorted durations in milliseconds, nearest-rank; 0 when empty.
pub fn pct_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Cumulative Prometheus buckets: `(upper bound in seconds, observations at or below it)`,
/// ascending, as the `_bucket{le=...}` series of a histogram.
pub type Buckets = Vec<(f64, f64)>;

/// Observations recorded between two readings of the same histogram.
pub fn bucket_delta(before: &Buckets, after: &Buckets) -> Buckets {
    after
        .iter()
        .map(|&(le, n)| {
            let was = before
                .iter()
                .find(|(b, _)| *b == le)
                .map_or(0.0, |&(_, n)| n);
            (le, n - was)
        })
        .collect()
}

/// The `p` quantile in ms, interpolated linearly inside its bucket (as Prometheus'
/// `histogram_quantile` does); 0 when empty, the largest finite bound when it lies beyond it.
pub fn bucket_quantile_ms(buckets: &Buckets, p: f64) -> f64 {
    let Some(&(_, total)) = buckets.last() else {
        return 0.0;
    };
    if total <= 0.0 {
        return 0.0;
    }
    let rank = total * p;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(le, n) in buckets {
        if n >= rank {
            if !le.is_finite() {
                return lower * 1000.0;
            }
            let inside = n - below;
            let frac = if inside > 0.0 {
                (rank - below) / inside
            } else {
                1.0
            };
            return (lower + (le - lower) * frac) * 1000.0;
        }
        (lower, below) = (le, n);
    }
    lower * 1000.0
}

/// Share (0..=1) of observations at or below `bound` seconds, which must be a bucket bound.
pub fn bucket_share_within(buckets: &Buckets, bound: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    let at = buckets
        .iter()
        .find(|(le, _)| (*le - bound).abs() < 1e-12)?
        .1;
    (total > 0.0).then(|| at / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Why: the lag table's p50/p99 and "within 2 ms" come from these; a wrong bucket walk
    // would report a goal met or missed on numbers the server never recorded.
    #[test]
    fn quantiles_and_shares_from_cumulative_buckets() {
        let before: Buckets = vec![(0.001, 10.0), (0.002, 10.0), (f64::INFINITY, 10.0)];
        let after: Buckets = vec![(0.001, 60.0), (0.002, 108.0), (f64::INFINITY, 110.0)];

        let d = bucket_delta(&before, &after);

        assert_eq!(
            d,
            vec![(0.001, 50.0), (0.002, 98.0), (f64::INFINITY, 100.0)]
        );
        assert!((bucket_quantile_ms(&d, 0.5) - 1.0).abs() < 1e-9);
        assert!((bucket_quantile_ms(&d, 0.75) - 1.5208333).abs() < 1e-6);
        assert_eq!(bucket_quantile_ms(&d, 0.99), 2.0);
        assert_eq!(bucket_share_within(&d, 0.002), Some(0.98));
        assert_eq!(bucket_quantile_ms(&Vec::new(), 0.5), 0.0);
    }

    // Why: every table percentile goes through here; an off-by-one skews p99 of short runs.
    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(pct_ms(&v, 0.5), 50.0);
        assert_eq!(pct_ms(&v, 0.99), 99.0);
        assert_eq!(pct_ms(&v, 1.0), 100.0);
        assert_eq!(pct_ms(&[], 0.99), 0.0);
    }
}

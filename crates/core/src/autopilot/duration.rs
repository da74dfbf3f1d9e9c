//! Durations printed as Go's `time.Duration.String()`, because that is what Vault's autopilot
//! endpoints print and what the `vault` CLI and Terraform compare against.
//!
//! The configuration shows whole seconds (`"10s"`, `"24h0m0s"`) but the state's
//! `last_contact` is a measured interval (`"516.49595ms"`), so this needs Go's full rules:
//! sub-second values in the largest unit below a second, longer ones as hours, minutes and
//! fractional seconds, trailing zeros of the fraction dropped.

use std::time::Duration;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Formats `d` as Go prints a `time.Duration`: `0s`, `250ns`, `1.5µs`, `516.49595ms`, `10s`,
/// `1m30s`, `24h0m0s`, `3.969159375s`.
pub(crate) fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < NANOS_PER_SEC {
        let (scale, unit) = if nanos < 1_000 {
            (1, "ns")
        } else if nanos < 1_000_000 {
            (1_000, "µs")
        } else {
            (1_000_000, "ms")
        };
        return format!("{}{unit}", decimal(nanos, scale));
    }
    let secs = nanos / NANOS_PER_SEC;
    let (h, m) = (secs / 3600, (secs % 3600) / 60);
    let s = decimal(nanos % (60 * NANOS_PER_SEC), NANOS_PER_SEC);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// `value / scale` in decimal, with as many fraction digits as needed and no trailing zeros
/// (`scale` is a power of ten).
fn decimal(value: u128, scale: u128) -> String {
    let (whole, frac) = (value / scale, value % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autopilot_durations_print_like_go() {
        // Why: Vault's sample answers hold exactly these strings; clients compare them.
        let cases: [(Duration, &str); 12] = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(250), "250ns"),
            (Duration::from_nanos(1_500), "1.5µs"),
            (Duration::from_nanos(516_495_950), "516.49595ms"),
            (Duration::from_millis(1), "1ms"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(24 * 3600), "24h0m0s"),
            (Duration::from_nanos(3_969_159_375), "3.969159375s"),
            (Duration::from_millis(3_723_500), "1h2m3.5s"),
            (Duration::from_secs(100 * 3600 + 1), "100h0m1s"),
        ];
        for (d, want) in cases {
            assert_eq!(go_duration(d), want, "{d:?}");
        }
    }
}

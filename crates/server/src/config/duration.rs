//! Duration strings as Vault operators write them.
//!
//! Vault accepts Go's `time.ParseDuration` syntax (`"1h30m"`, `"1.5s"`), bare integers meaning
//! seconds (`"30"`), and a `d` suffix for days. Several crates (TTLs in API requests, config
//! files) need exactly the same rules, so the parser lives here as a free function.

use std::time::Duration;

/// Parses a Go-style duration: one or more `<number><unit>` groups (`"1h30m"`, `"1.5s"`,
/// `"768h"`), a bare non-negative integer meaning seconds (`"30"`), or `"0"`.
///
/// Units: `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`, `d` (24 h). Negative durations are rejected.
///
/// # Errors
///
/// Returns a message naming the offending text when the string is empty, has no or an unknown
/// unit, a malformed number, a sign, or overflows.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err(
            "empty duration: use e.g. \"30s\", \"5m\", \"1h30m\" or a number of seconds".into(),
        );
    }
    if text.starts_with('-') {
        return Err(format!(
            "invalid duration \"{s}\": negative durations are not allowed"
        ));
    }
    let text = text.strip_prefix('+').unwrap_or(text);
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("invalid duration \"{s}\": number of seconds is too large"));
    }

    let mut total_nanos: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after_number) = rest.split_at(number_len);
        if number.is_empty() || number == "." {
            return Err(format!(
                "invalid duration \"{s}\": expected a number before \"{rest}\""
            ));
        }
        let unit_len = after_number
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after_number.len());
        let (unit, after_unit) = after_number.split_at(unit_len);
        let unit_nanos = unit_in_nanos(unit).ok_or_else(|| {
            if unit.is_empty() {
                format!("invalid duration \"{s}\": missing unit after \"{number}\" (use ns, us, ms, s, m, h or d)")
            } else {
                format!("invalid duration \"{s}\": unknown unit \"{unit}\" (use ns, us, ms, s, m, h or d)")
            }
        })?;
        let group = scaled_nanos(number, unit_nanos).ok_or_else(|| {
            format!("invalid duration \"{s}\": malformed or too large number \"{number}\"")
        })?;
        total_nanos = total_nanos
            .checked_add(group)
            .ok_or_else(|| format!("invalid duration \"{s}\": too large"))?;
        rest = after_unit;
    }

    let secs = u64::try_from(total_nanos / 1_000_000_000)
        .map_err(|_| format!("invalid duration \"{s}\": too large"))?;
    let nanos = u32::try_from(total_nanos % 1_000_000_000)
        .map_err(|_| format!("invalid duration \"{s}\": too large"))?;
    Ok(Duration::new(secs, nanos))
}

/// Length of one `unit` in nanoseconds, or `None` for an unknown unit.
fn unit_in_nanos(unit: &str) -> Option<u128> {
    let nanos = match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        "d" => 86_400 * 1_000_000_000,
        _ => return None,
    };
    Some(nanos)
}

/// `number` (decimal, optional fraction) times `unit_nanos`, truncated to whole nanoseconds.
fn scaled_nanos(number: &str, unit_nanos: u128) -> Option<u128> {
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if fraction.contains('.') {
        return None;
    }
    let whole_value: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut total = whole_value.checked_mul(unit_nanos)?;
    // Each fractional digit contributes digit * unit / 10^position; digits beyond nanosecond
    // precision for the unit contribute nothing, so stop once the scale reaches zero.
    let mut scale = unit_nanos;
    for digit in fraction.bytes() {
        scale /= 10;
        if scale == 0 {
            break;
        }
        total = total.checked_add(u128::from(digit - b'0') * scale)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every accepted spelling must map to the exact duration Vault would use.
    #[test]
    fn accepts_vault_spellings() {
        let cases: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("30", Duration::from_secs(30)),
            ("30s", Duration::from_secs(30)),
            ("5m", Duration::from_secs(300)),
            ("1h30m", Duration::from_secs(5_400)),
            ("768h", Duration::from_secs(768 * 3_600)),
            ("10d", Duration::from_secs(864_000)),
            ("1.5s", Duration::from_millis(1_500)),
            (".5m", Duration::from_secs(30)),
            ("250ms", Duration::from_millis(250)),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("1h1m1s1ms", Duration::new(3_661, 1_000_000)),
            (" 45s ", Duration::from_secs(45)),
            ("+2m", Duration::from_secs(120)),
        ];
        for (input, expected) in cases {
            let parsed = parse_duration(input);

            assert_eq!(parsed.as_ref(), Ok(expected), "input {input:?}");
        }
    }

    // Malformed strings must be rejected with a message naming the input, never read as zero.
    #[test]
    fn rejects_malformed_durations() {
        let cases = [
            "",
            "s",
            "5x",
            "-5s",
            "1h-5m",
            "1..5s",
            ".s",
            "h5",
            "5 m",
            "1e3s",
            "99999999999999999999999999999999s",
            "18446744073709551616",
        ];
        for input in cases {
            let parsed = parse_duration(input);

            assert!(parsed.is_err(), "input {input:?} parsed as {parsed:?}");
        }
        let message = parse_duration("5x").unwrap_err();
        assert!(
            message.contains("\"5x\"") && message.contains("unknown unit"),
            "{message}"
        );
    }
}

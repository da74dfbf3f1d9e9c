//! Vault's duration strings (`"90"`, `"1h30m"`, `"1.5d"`), as parameters and policies use them.
//!
//! The server reads them in request parameters and in policies, and the CLI validates
//! policies with the same grammar, so both sides share this one parser.

/// Parses a duration string into whole seconds; `None` when malformed or negative.
///
/// Accepts a bare number of seconds (`"3600"`) or a sequence of `<number><unit>` pairs with
/// units `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`, `d`. An empty string is zero.
pub fn parse_duration(s: &str) -> Option<u64> {
    parse_duration_unbounded(s).filter(|secs| *secs <= MAX_DURATION_SECS)
}

/// The longest duration any parameter accepts (100 years): keeps every expiry computation far
/// from overflow and every timestamp printable.
pub const MAX_DURATION_SECS: u64 = 100 * 365 * 24 * 3600;

fn parse_duration_unbounded(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || s == "0" {
        return Some(0);
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Some(secs);
    }
    let rest = s.strip_prefix('+').unwrap_or(s);
    if rest.starts_with('-') {
        return None;
    }
    let mut total_nanos: f64 = 0.0;
    let mut chars = rest.char_indices().peekable();
    let mut saw_pair = false;
    while chars.peek().is_some() {
        let start = chars.peek().map(|(i, _)| *i)?;
        let mut end = start;
        while let Some((i, c)) = chars.peek().copied() {
            if c.is_ascii_digit() || c == '.' {
                end = i + c.len_utf8();
                chars.next();
            } else {
                break;
            }
        }
        if end == start {
            return None;
        }
        let number: f64 = rest[start..end].parse().ok()?;
        let ustart = end;
        let mut uend = end;
        while let Some((i, c)) = chars.peek().copied() {
            if c.is_ascii_digit() || c == '.' {
                break;
            }
            uend = i + c.len_utf8();
            chars.next();
        }
        let unit_nanos: f64 = match &rest[ustart..uend] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86_400e9,
            _ => return None,
        };
        total_nanos += number * unit_nanos;
        saw_pair = true;
    }
    if !saw_pair || !total_nanos.is_finite() || total_nanos > (u64::MAX / 2) as f64 * 1e9 {
        return None;
    }
    Some((total_nanos / 1e9) as u64)
}

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

/// Formats a duration as Go's `time.Duration.String()` does (`0s`, `500ms`, `10s`, `1m30s`,
/// `24h0m0s`, `1.5s`): the form Vault's API answers configuration durations in.
pub fn format_go_duration(d: std::time::Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", trim_fraction(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", trim_fraction(nanos, 1_000_000));
    }
    let secs = d.as_secs();
    let (h, m) = (secs / 3600, (secs % 3600) / 60);
    let s = trim_fraction(
        u128::from(secs % 60) * 1_000_000_000 + u128::from(d.subsec_nanos()),
        1_000_000_000,
    );
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// `value / unit` written with the fraction Go keeps (trailing zeros dropped).
fn trim_fraction(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let fraction = value % unit;
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = unit.to_string().len() - 1;
    let text = format!("{fraction:0digits$}");
    format!("{whole}.{}", text.trim_end_matches('0'))
}

/// Serde for a [`std::time::Duration`] that is written as a Go duration string and read from a
/// duration string (`"10s"`, `"24h0m0s"`) or a whole number of seconds, as Vault's
/// `TypeDurationSecond` parameters accept. Use with `#[serde(with = "duration::go_string")]`.
pub mod go_string {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_go_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let value = StringOrSeconds::deserialize(d)?;
        value.into_duration().map_err(serde::de::Error::custom)
    }

    /// A duration as a client may send it.
    #[derive(Deserialize)]
    #[serde(untagged)]
    pub(crate) enum StringOrSeconds {
        Seconds(u64),
        Text(String),
    }

    impl StringOrSeconds {
        pub(crate) fn into_duration(self) -> Result<Duration, String> {
            match self {
                StringOrSeconds::Seconds(secs) if secs <= super::MAX_DURATION_SECS => {
                    Ok(Duration::from_secs(secs))
                }
                StringOrSeconds::Seconds(secs) => Err(format!(
                    "duration of {secs} seconds is too long: the maximum is 100 years"
                )),
                StringOrSeconds::Text(text) => super::parse_duration(&text)
                    .map(Duration::from_secs)
                    .ok_or_else(|| {
                        format!(
                            "invalid duration \"{text}\": use seconds or a duration such as \"10s\", \"5m\" or \"24h\""
                        )
                    }),
            }
        }
    }

    /// The same for an optional duration (absent or `null` is `None`); skip `None` when
    /// serializing with `skip_serializing_if = "Option::is_none"`.
    pub mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serializer};

        use super::StringOrSeconds;

        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            Option::<StringOrSeconds>::deserialize(d)?
                .map(StringOrSeconds::into_duration)
                .transpose()
                .map_err(serde::de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    // Vault answers configuration durations in Go's spelling; clients compare the strings.
    #[test]
    fn go_duration_strings() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(24 * 3600), "24h0m0s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_micros(678_625), "678.625ms"),
            (Duration::from_nanos(1500), "1.5µs"),
            (Duration::from_nanos(7), "7ns"),
        ];
        for (d, text) in cases {
            assert_eq!(format_go_duration(d), text);
        }
    }

    // Durations read back from both the strings Vault writes and plain seconds.
    #[test]
    fn go_string_reads_strings_and_seconds() {
        #[derive(serde::Deserialize, serde::Serialize)]
        struct T {
            #[serde(with = "go_string")]
            d: Duration,
        }
        for (body, secs) in [
            (r#"{"d":"24h0m0s"}"#, 86_400),
            (r#"{"d":30}"#, 30),
            (r#"{"d":"90"}"#, 90),
        ] {
            let t: T = serde_json::from_str(body).unwrap();
            assert_eq!(t.d, Duration::from_secs(secs), "{body}");
        }
        assert!(serde_json::from_str::<T>(r#"{"d":"soon"}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"d":-1}"#).is_err());
        assert_eq!(
            serde_json::to_string(&T {
                d: Duration::from_secs(10)
            })
            .unwrap(),
            r#"{"d":"10s"}"#
        );
    }
}

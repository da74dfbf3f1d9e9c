//! Small helpers shared by the sys handlers: time formatting, random strings, parameter parsing.

use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::CoreError;

/// RFC 3339 with nanoseconds, as Vault prints times; `zero` gives Go's zero time, which the
/// Vault CLI expects rather than an empty string.
pub fn rfc3339(t: SystemTime, zero: bool) -> String {
    if zero {
        return "0001-01-01T00:00:00Z".to_owned();
    }
    humantime::format_rfc3339_nanos(t).to_string()
}

const BASE62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `n` random base62 characters from the OS RNG, without modulo bias.
pub fn random_base62(n: usize) -> Result<String, CoreError> {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        getrandom::fill(&mut buf)
            .map_err(|e| CoreError::Internal(format!("OS RNG failed: {e}")))?;
        for b in buf {
            // 248 = 62 * 4: reject the top values so every character is equally likely.
            if b < 248 && out.len() < n {
                out.push(BASE62[(b % 62) as usize] as char);
            }
        }
    }
    Ok(out)
}

/// Reads a string parameter.
pub fn str_param<'a>(
    data: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, CoreError> {
    match data.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(CoreError::InvalidRequest(format!(
            "invalid value for \"{name}\": expected a string, got {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base62_has_requested_length_and_alphabet() {
        // Why: root tokens must be exactly hvs. + 24 base62 characters for the OTP encoding.
        let s = random_base62(24).unwrap();
        assert_eq!(s.len(), 24);
        assert!(s.bytes().all(|b| BASE62.contains(&b)));
    }
}

/// Whether `ip` lies in the CIDR block `cidr` (`10.0.0.0/8`, `::1/128`, or a bare address).
pub fn cidr_contains(cidr: &str, ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    let (net, bits) = match cidr.trim().split_once('/') {
        Some((n, b)) => (n, b.parse::<u32>().ok()),
        None => (cidr.trim(), None),
    };
    let Ok(net) = net.parse::<IpAddr>() else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod cidr_tests {
    use super::cidr_contains;

    #[test]
    fn cidr_blocks_match_by_prefix() {
        // Why: bound CIDRs must admit only the listed networks.
        assert!(cidr_contains("10.0.0.0/8", "10.1.2.3".parse().unwrap()));
        assert!(!cidr_contains("10.0.0.0/8", "11.0.0.1".parse().unwrap()));
        assert!(cidr_contains("127.0.0.1", "127.0.0.1".parse().unwrap()));
        assert!(!cidr_contains("garbage", "127.0.0.1".parse().unwrap()));
    }
}

//! Time formatting as Vault prints it, for core and backends alike.

use std::time::SystemTime;

/// RFC 3339 with nanoseconds, as Vault prints times; `zero` gives Go's zero time, which the
/// Vault CLI expects rather than an empty string.
pub fn rfc3339(t: SystemTime, zero: bool) -> String {
    if zero {
        return "0001-01-01T00:00:00Z".to_owned();
    }
    humantime::format_rfc3339_nanos(t).to_string()
}

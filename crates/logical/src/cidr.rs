//! CIDR-list validation and matching for login restrictions.
//!
//! Auth methods accept CIDR lists from operators (`token_bound_cidrs`, `cidr_list`) and must
//! refuse a malformed block when it is written rather than silently never matching at login.

use std::net::{IpAddr, SocketAddr};

use crate::BackendError;

/// A parsed block: network address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    net: IpAddr,
    bits: u8,
}

fn parse(cidr: &str) -> Option<Block> {
    let cidr = cidr.trim();
    let (net, bits) = match cidr.split_once('/') {
        Some((n, b)) => (n.parse::<IpAddr>().ok()?, Some(b.parse::<u8>().ok()?)),
        None => (cidr.parse::<IpAddr>().ok()?, None),
    };
    let max = if net.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some(Block { net, bits })
}

/// Checks every entry of `list` is a CIDR block or a bare address; `name` is the parameter.
pub fn validate(name: &str, list: &[String]) -> Result<(), BackendError> {
    match list.iter().find(|c| parse(c).is_none()) {
        Some(bad) => Err(BackendError::InvalidRequest(format!(
            "invalid CIDR block {bad:?} in \"{name}\": use a form such as 10.0.0.0/8 or 127.0.0.1/32"
        ))),
        None => Ok(()),
    }
}

/// Whether every block of `inner` lies inside some block of `outer` (an empty `outer` admits
/// everything).
pub fn is_subset(inner: &[String], outer: &[String]) -> bool {
    if outer.is_empty() {
        return true;
    }
    inner.iter().all(|i| {
        let Some(ib) = parse(i) else { return false };
        outer
            .iter()
            .any(|o| parse(o).is_some_and(|ob| ib.bits >= ob.bits && contains(o, ib.net)))
    })
}

/// Whether `addr` may log in under `list` (an empty list admits everyone; a non-empty list
/// refuses a request whose client address is unknown).
pub fn allows(list: &[String], addr: Option<SocketAddr>) -> bool {
    if list.is_empty() {
        return true;
    }
    let Some(addr) = addr else { return false };
    list.iter().any(|c| contains(c, addr.ip()))
}

/// Whether `ip` lies in the CIDR block `cidr` (`10.0.0.0/8`, `::1/128`, or a bare address).
pub fn contains(cidr: &str, ip: std::net::IpAddr) -> bool {
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
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn malformed_blocks_are_refused_at_write_time() {
        // Why: a typo in a CIDR list must fail loudly instead of locking everyone out later.
        assert!(validate("cidr_list", &v(&["10.0.0.0/8", "127.0.0.1", "::1/128"])).is_ok());
        assert!(validate("cidr_list", &v(&["10.0.0.0/33"])).is_err());
        assert!(validate("cidr_list", &v(&["not-an-ip"])).is_err());
    }

    #[test]
    fn subset_requires_narrower_blocks_inside_wider_ones() {
        // Why: a secret ID may only narrow, never widen, the role's CIDR restriction.
        let role = v(&["10.0.0.0/8"]);
        assert!(is_subset(&v(&["10.1.0.0/16", "10.2.3.4"]), &role));
        assert!(!is_subset(&v(&["11.0.0.0/16"]), &role));
        assert!(!is_subset(&v(&["0.0.0.0/0"]), &role));
        assert!(is_subset(&v(&["0.0.0.0/0"]), &[]));
    }

    #[test]
    fn unknown_client_address_is_refused_when_restricted() {
        // Why: a request without a peer address must not bypass a CIDR restriction.
        let list = v(&["127.0.0.1/32"]);
        assert!(!allows(&list, None));
        assert!(allows(&list, Some("127.0.0.1:5000".parse().unwrap())));
        assert!(!allows(&list, Some("10.0.0.1:5000".parse().unwrap())));
        assert!(allows(&[], None));
    }
}

#[cfg(test)]
mod contains_tests {
    use super::contains as cidr_contains;

    #[test]
    fn cidr_blocks_match_by_prefix() {
        // Why: bound CIDRs must admit only the listed networks.
        assert!(cidr_contains("10.0.0.0/8", "10.1.2.3".parse().unwrap()));
        assert!(!cidr_contains("10.0.0.0/8", "11.0.0.1".parse().unwrap()));
        assert!(cidr_contains("127.0.0.1", "127.0.0.1".parse().unwrap()));
        assert!(!cidr_contains("garbage", "127.0.0.1".parse().unwrap()));
    }
}

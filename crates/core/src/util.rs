//! Small helpers shared across core: the poison-tolerant `lock`, random strings, and the
//! time, parameter and CIDR helpers core shares with the backends (re-exported from
//! `strongroom_logical`).

use std::sync::Mutex;

use crate::CoreError;

pub use strongroom_logical::cidr::contains as cidr_contains;
pub use strongroom_logical::params::str_param;
pub use strongroom_logical::time::rfc3339;

/// Locks a std mutex, recovering the data if a panicking thread poisoned it: every guarded
/// value here stays consistent between statements, so poisoning carries no meaning.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Read-locks a std RwLock, recovering from poisoning as [`lock`] does.
pub(crate) fn lock_read<T>(m: &std::sync::RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

/// Write-locks a std RwLock, recovering from poisoning as [`lock`] does.
pub(crate) fn lock_write<T>(m: &std::sync::RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
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

/// This machine's hostname, for `sys/ha-status` (empty when it cannot be read).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
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

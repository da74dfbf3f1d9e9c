//! Password hashing for userpass: argon2id PHC strings, verified off the async runtime.
//!
//! Kept apart from the HTTP-facing handlers so the cost parameters and the equal-work rule for
//! unknown users are reviewed in one place.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use strongroom_logical::BackendError;
use zeroize::Zeroizing;

/// argon2id with m=19456 KiB, t=2, p=1 (OWASP's minimum recommendation): strong enough for
/// stored passwords, and fast enough that logins do not starve the runtime.
fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT)
}

/// At most this many argon2 computations run at once (each holds ~19 MiB); a login flood
/// queues here instead of exhausting memory.
const MAX_CONCURRENT_HASHES: usize = 4;

/// How long a login waits for a hashing slot before it is refused as overloaded.
const HASH_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn hash_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| tokio::sync::Semaphore::new(MAX_CONCURRENT_HASHES))
}

async fn hash_slot() -> Result<tokio::sync::SemaphorePermit<'static>, BackendError> {
    match tokio::time::timeout(HASH_QUEUE_WAIT, hash_slots().acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(BackendError::Unavailable(
            "too many password checks in progress; retry shortly".into(),
        )),
    }
}

/// Hashes a password on the blocking pool (argon2 is deliberately slow).
pub(super) async fn hash_password(password: Zeroizing<String>) -> Result<String, BackendError> {
    let _slot = hash_slot().await?;
    tokio::task::spawn_blocking(move || {
        hasher()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| BackendError::Internal(format!("password hashing task failed: {e}")))?
    .map_err(|e| BackendError::Internal(format!("hashing the password failed: {e}")))
}

/// A hash of a random password, verified against when the user does not exist so that a
/// login for an unknown name costs the same as one with a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut random = Zeroizing::new([0u8; 32]);
        // If the RNG fails the dummy password is all zeros: still unguessable in practice
        // because nobody can log in as a user that does not exist, whatever it verifies.
        let _ = getrandom::fill(random.as_mut());
        hasher()
            .hash_password(random.as_ref())
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Verifies `password` against `stored` (or against the dummy hash when `stored` is `None`);
/// true only for a real user with the right password.
pub(super) async fn verify_password(
    password: Zeroizing<String>,
    stored: Option<String>,
) -> Result<bool, BackendError> {
    let _slot = hash_slot().await?;
    tokio::task::spawn_blocking(move || {
        let exists = stored.is_some();
        let hash = stored.unwrap_or_else(|| dummy_hash().to_owned());
        let ok = hasher()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok();
        exists && ok
    })
    .await
    .map_err(|e| BackendError::Internal(format!("password verification task failed: {e}")))
}

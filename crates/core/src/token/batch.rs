//! Batch tokens: the whole token entry, encrypted under the barrier keyring, as the token.
//!
//! Batch tokens exist for high-volume, short-lived clients: issuing one writes nothing to
//! storage, and any node holding the same keyring can verify it. The price is that one cannot
//! be revoked on its own (it dies with its parent or at its expiry), renewed, or counted.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{TokenEntry, TokenType, token_hash};
use crate::{Core, CoreError};

/// The prefix that marks a batch token.
pub(crate) const BATCH_PREFIX: &str = "hvb.";

/// Binds the ciphertext to its purpose: a value sealed for another use cannot pass as a token.
const BATCH_AAD: &str = "strongroom/token/batch";

/// Longest batch token accepted (a generous entry plus encryption overhead).
const MAX_BATCH_LEN: usize = 16 * 1024;

impl Core {
    /// Seals `entry` into a batch token. The entry's hash and accessor are ignored.
    pub(crate) fn encode_batch_token(&self, entry: &TokenEntry) -> Result<String, CoreError> {
        let mut sealed_entry = entry.clone();
        sealed_entry.id_hash = String::new();
        sealed_entry.accessor = String::new();
        let plain = zeroize::Zeroizing::new(
            serde_json::to_vec(&sealed_entry)
                .map_err(|e| CoreError::Internal(format!("encoding batch token: {e}")))?,
        );
        let sealed = self.barrier.encrypt_value(BATCH_AAD, &plain)?;
        Ok(format!("{BATCH_PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed)))
    }

    /// Opens a batch token; `None` when it is malformed or was sealed under another keyring.
    /// Expiry and parent checks are the caller's.
    pub(crate) async fn decode_batch_token(
        &self,
        token: &str,
    ) -> Result<Option<TokenEntry>, CoreError> {
        let Some(body) = token.strip_prefix(BATCH_PREFIX) else {
            return Ok(None);
        };
        if token.len() > MAX_BATCH_LEN {
            return Ok(None);
        }
        let Ok(sealed) = URL_SAFE_NO_PAD.decode(body) else {
            return Ok(None);
        };
        // A standby's keyring may not have the term the active node minted it under yet.
        let plain = match self.barrier.decrypt_value_current(BATCH_AAD, &sealed).await {
            Ok(p) => zeroize::Zeroizing::new(p),
            Err(strongroom_barrier::BarrierError::Sealed) => return Err(CoreError::Sealed),
            Err(_) => return Ok(None),
        };
        let Ok(mut entry) = serde_json::from_slice::<TokenEntry>(&plain) else {
            return Ok(None);
        };
        entry.id_hash = token_hash(token);
        entry.accessor = String::new();
        entry.token_type = TokenType::Batch;
        Ok(Some(entry))
    }
}

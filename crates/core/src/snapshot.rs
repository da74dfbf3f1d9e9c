//! Raft snapshots as files: `sys/storage/raft/snapshot` save and restore.
//!
//! The container is the one the Vault CLI checks: a gzip'd tar holding `meta.json`,
//! `state.bin`, `SHA256SUMS` and `SHA256SUMS.sealed`. `state.bin` holds the raw storage pairs,
//! which are already barrier ciphertext, so a snapshot file never carries a plaintext secret.
//! `SHA256SUMS.sealed` is the checksum file encrypted by the barrier: a cluster that can open
//! it holds the keyring the snapshot was taken under, which is how a foreign snapshot is told
//! apart from our own before anything is replaced.

use std::io::Read;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::util::lock;
use crate::{Core, CoreError};

const META: &str = "meta.json";
const STATE: &str = "state.bin";
const SUMS: &str = "SHA256SUMS";
const SUMS_SEALED: &str = "SHA256SUMS.sealed";
/// Additional data binding the sealed checksums to their purpose.
const SUMS_AAD: &str = "core/snapshot/SHA256SUMS";
/// Snapshot format written by this version.
const FORMAT: &str = "strongroom-snapshot-v1";
/// Upper bound on the decompressed size of a snapshot we accept (guards against gzip bombs).
pub const MAX_SNAPSHOT_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    format: String,
    created: String,
    node_id: String,
    index: u64,
    pairs: u64,
}

impl Core {
    /// Builds a snapshot archive of the whole storage (the handler of
    /// `GET sys/storage/raft/snapshot`, behind the door).
    pub(crate) async fn build_snapshot(&self) -> Result<Vec<u8>, CoreError> {
        let status = self.storage.status();
        // One consistent read: a snapshot is the state at one instant, never torn by writes
        // that land while it is taken. A snapshot too big for restore is refused here, not
        // discovered at restore time.
        let limit = self.storage.max_replace_all_bytes();
        let pairs = self.storage.export(limit).await.map_err(|e| match e {
            strongroom_storage::StorageError::TooLarge(m) => CoreError::TooLarge(format!(
                "{m}: this version restores snapshots up to {limit} bytes of data"
            )),
            other => other.into(),
        })?;
        let mut state = Vec::new();
        let count = pairs.len() as u64;
        for (k, v) in &pairs {
            write_frame(&mut state, k.as_bytes());
            write_frame(&mut state, v);
        }
        drop(pairs);
        let meta = Meta {
            format: FORMAT.into(),
            created: crate::util::rfc3339(std::time::SystemTime::now(), false),
            node_id: status.node_id.clone(),
            index: status.applied_index,
            pairs: count,
        };
        let meta = serde_json::to_vec_pretty(&meta)
            .map_err(|e| CoreError::Internal(format!("encoding snapshot meta: {e}")))?;
        let sums = checksums(&meta, &state);
        let sealed = self.barrier.encrypt_value(SUMS_AAD, sums.as_bytes())?;

        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        for (name, body) in [
            (META, meta.as_slice()),
            (STATE, state.as_slice()),
            (SUMS, sums.as_bytes()),
            (SUMS_SEALED, sealed.as_slice()),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o600);
            header.set_cksum();
            tar.append_data(&mut header, name, body)
                .map_err(|e| CoreError::Internal(format!("writing snapshot archive: {e}")))?;
        }
        let gz = tar
            .into_inner()
            .map_err(|e| CoreError::Internal(format!("finishing snapshot archive: {e}")))?;
        gz.finish()
            .map_err(|e| CoreError::Internal(format!("compressing snapshot: {e}")))
    }

    /// Restores a snapshot archive, replacing all data. Without `force`, refuses a snapshot
    /// taken under another keyring; a corrupt archive is refused before anything changes.
    /// The caller (the door) holds the request gate exclusively.
    pub(crate) async fn restore_snapshot(&self, body: &[u8], force: bool) -> Result<(), CoreError> {
        let files = read_archive(body)?;
        let get = |name: &str| {
            files
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, b)| b.as_slice())
                .ok_or_else(|| {
                    CoreError::InvalidRequest(format!(
                        "invalid snapshot: the archive has no {name} file"
                    ))
                })
        };
        let (meta_raw, state, sums, sealed) =
            (get(META)?, get(STATE)?, get(SUMS)?, get(SUMS_SEALED)?);
        if checksums(meta_raw, state).as_bytes() != sums {
            return Err(CoreError::InvalidRequest(
                "snapshot is corrupt: its SHA256SUMS do not match its contents".into(),
            ));
        }
        let meta: Meta = serde_json::from_slice(meta_raw).map_err(|e| {
            CoreError::InvalidRequest(format!("snapshot is corrupt: meta.json: {e}"))
        })?;
        if meta.format != FORMAT {
            return Err(CoreError::InvalidRequest(format!(
                "unsupported snapshot format {:?}; this server reads {FORMAT}",
                meta.format
            )));
        }
        let ours = self
            .barrier
            .decrypt_value(SUMS_AAD, sealed)
            .map(|plain| plain == sums)
            .unwrap_or(false);
        if !ours && !force {
            return Err(CoreError::InvalidRequest(
                "snapshot was taken by a cluster with a different keyring and cannot be restored here; use snapshot-force to restore it anyway (you will then need that cluster's unseal keys)".into(),
            ));
        }
        let pairs = parse_state(state)?;
        if pairs.len() as u64 != meta.pairs {
            return Err(CoreError::InvalidRequest(
                "snapshot is corrupt: pair count does not match meta.json".into(),
            ));
        }
        let keyring_opens = pairs
            .iter()
            .find(|(k, _)| k == "core/keyring")
            .is_some_and(|(_, v)| self.barrier.keyring_opens(v));

        let _guard = self.seal_state.transition.lock().await;
        self.storage.replace_all(pairs).await?;
        *lock(&self.seal_state.progress) = Default::default();
        // Everything cached from the old keyspace goes: leases, policies, audit devices.
        self.expiration_stop().await;
        self.policies.clear();
        self.clear_audit();
        let reloaded = if keyring_opens {
            match self.barrier.reload_keyring().await {
                Ok(()) => self.post_unseal().await,
                Err(e) => Err(e.into()),
            }
        } else {
            // The data now belongs to another cluster's keys: seal until its shares arrive.
            Err(CoreError::Sealed)
        };
        if let Err(e) = reloaded {
            self.seal_internal().await;
            if !matches!(e, CoreError::Sealed) {
                return Err(e);
            }
        }
        tracing::info!(pairs = meta.pairs, force, "snapshot restored");
        Ok(())
    }
}

fn write_frame(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn checksums(meta: &[u8], state: &[u8]) -> String {
    format!(
        "{}  {META}\n{}  {STATE}\n",
        hex::encode(Sha256::digest(meta)),
        hex::encode(Sha256::digest(state))
    )
}

/// Unpacks the gzip'd tar, with limits on total size and member count.
fn read_archive(body: &[u8]) -> Result<Vec<(String, Vec<u8>)>, CoreError> {
    let bad = |e: std::io::Error| {
        CoreError::InvalidRequest(format!("invalid snapshot: not a gzip'd tar archive: {e}"))
    };
    let gz = flate2::read::GzDecoder::new(body).take(MAX_SNAPSHOT_BYTES);
    let mut archive = tar::Archive::new(gz);
    let mut out = Vec::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        if out.len() >= 16 {
            return Err(CoreError::InvalidRequest(
                "invalid snapshot: too many files in the archive".into(),
            ));
        }
        let mut buf = Vec::new();
        entry.read_to_end(&mut buf).map_err(bad)?;
        out.push((name, buf));
    }
    Ok(out)
}

fn parse_state(mut s: &[u8]) -> Result<Vec<(String, Vec<u8>)>, CoreError> {
    let corrupt = || CoreError::InvalidRequest("snapshot is corrupt: truncated state.bin".into());
    let frame = |s: &mut &[u8]| -> Result<Vec<u8>, CoreError> {
        let (len, rest) = s.split_first_chunk::<8>().ok_or_else(corrupt)?;
        let len = usize::try_from(u64::from_be_bytes(*len)).map_err(|_| corrupt())?;
        if rest.len() < len {
            return Err(corrupt());
        }
        let (body, rest) = rest.split_at(len);
        *s = rest;
        Ok(body.to_vec())
    };
    let mut pairs = Vec::new();
    while !s.is_empty() {
        let k = String::from_utf8(frame(&mut s)?).map_err(|_| {
            CoreError::InvalidRequest("snapshot is corrupt: a key is not UTF-8".into())
        })?;
        let v = frame(&mut s)?;
        pairs.push((k, v));
    }
    Ok(pairs)
}

/// Checks that `body` is a snapshot container the Vault CLI accepts; used by tests and the CLI.
pub fn has_sealed_sums(body: &[u8]) -> bool {
    read_archive(body)
        .map(|files| files.iter().any(|(n, b)| n == SUMS_SEALED && !b.is_empty()))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_frames_round_trip_and_truncation_is_detected() {
        // Why: a truncated upload must be refused, never half-applied.
        let mut s = Vec::new();
        write_frame(&mut s, b"k1");
        write_frame(&mut s, b"v1");
        assert_eq!(
            parse_state(&s).unwrap(),
            vec![("k1".to_string(), b"v1".to_vec())]
        );
        assert!(parse_state(&s[..s.len() - 1]).is_err());
    }

    #[test]
    fn garbage_is_not_an_archive() {
        // Why: a random upload gets a clear 400, not a 500.
        assert!(matches!(
            read_archive(b"not a snapshot"),
            Err(CoreError::InvalidRequest(_))
        ));
    }
}

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
        // `force` is for snapshots of other clusters, whose sealed checksums this one cannot
        // read. A snapshot that carries this cluster's own keyring can always be checked, so
        // one that fails the check was altered after it was taken: refused, forced or not.
        if keyring_opens && !ours {
            return Err(CoreError::InvalidRequest(
                "snapshot is corrupt: it carries this cluster's keyring but its contents do not match the checksums sealed under that keyring, so it was altered after it was taken; restore an unaltered snapshot".into(),
            ));
        }

        let _guard = self.seal_state.transition.lock().await;
        // The lease timer runs outside the request gate: stop it first, so no revocation of
        // the old keyspace lands in the restored one.
        self.expiration_stop().await;
        if let Err(e) = self.storage.replace_all(pairs).await {
            self.expiration_start().await?;
            return Err(e.into());
        }
        // Everything cached from the old keyspace goes: attempts, policies, audit devices.
        *lock(&self.seal_state.progress) = Default::default();
        *lock(&self.seal_state.generate_root) = None;
        *lock(&self.seal_state.rekey) = None;
        self.policies.clear();
        self.clear_audit();
        let reloaded = if keyring_opens {
            match self.barrier.reload_keyring().await {
                Ok(()) => match self.post_unseal().await {
                    Ok(()) => self.readvertise().await,
                    Err(e) => Err(e),
                },
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
    read_archive_within(body, MAX_SNAPSHOT_BYTES)
}

/// [`read_archive`] with the decompressed-size limit given, so tests can use a small one.
fn read_archive_within(body: &[u8], limit: u64) -> Result<Vec<(String, Vec<u8>)>, CoreError> {
    let bad = |e: std::io::Error| {
        CoreError::InvalidRequest(format!("invalid snapshot: not a gzip'd tar archive: {e}"))
    };
    let gz = Bounded::new(flate2::read::GzDecoder::new(body), limit);
    let mut archive = tar::Archive::new(gz);
    let unpacked = unpack(&mut archive);
    if archive.into_inner().exceeded {
        return Err(CoreError::TooLarge(format!(
            "invalid snapshot: it decompresses to more than {limit} bytes"
        )));
    }
    unpacked.map_err(bad)
}

fn unpack<R: Read>(archive: &mut tar::Archive<R>) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        if out.len() >= 16 {
            return Err(std::io::Error::other("too many files in the archive"));
        }
        let mut buf = Vec::new();
        entry.read_to_end(&mut buf)?;
        out.push((name, buf));
    }
    Ok(out)
}

/// A reader that fails, and remembers that it failed, once more than `left` bytes are read:
/// a gzip bomb is refused as too large instead of being cut short and misreported.
struct Bounded<R> {
    inner: R,
    left: u64,
    exceeded: bool,
}

impl<R> Bounded<R> {
    fn new(inner: R, limit: u64) -> Self {
        Bounded {
            inner,
            left: limit,
            exceeded: false,
        }
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            // At the limit: one more byte means the stream is too large.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.exceeded = true;
            return Err(std::io::Error::other("decompressed size limit exceeded"));
        }
        let room = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..room])?;
        self.left -= n as u64;
        Ok(n)
    }
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

    /// A gzip'd tar of one member of `size` zero bytes.
    fn archive_of(size: usize) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let mut header = tar::Header::new_gnu();
        header.set_size(size as u64);
        header.set_cksum();
        tar.append_data(&mut header, META, vec![0u8; size].as_slice())
            .unwrap();
        tar.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn fuzz_snapshot_gzip_bomb_is_refused_at_the_limit() {
        // Why: a small upload that inflates past the limit must be refused as too large
        // (was: silently cut at the limit and reported as a corrupt archive), and nothing
        // past the limit may be decompressed into memory.
        let body = archive_of(64 * 1024);
        assert!(
            body.len() < 1024,
            "the test needs a bomb, got {} bytes",
            body.len()
        );
        let decompressed = 512 + 64 * 1024 + 1024; // header, data, end-of-archive blocks
        assert!(read_archive_within(&body, decompressed as u64 * 4).is_ok());

        let too_small = read_archive_within(&body, 32 * 1024);

        assert!(
            matches!(&too_small, Err(CoreError::TooLarge(m)) if m.contains("32768 bytes")),
            "{too_small:?}"
        );
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

//! The byte format of a Raft snapshot's data: every key/value pair of the state machine.
//!
//! Snapshots leave the node (to followers, later to operators as backups), so the format is
//! self-checking: a magic header to reject foreign bytes, length prefixes validated against the
//! buffer, and a SHA-256 trailer so truncation or bit rot is reported rather than installed.
//!
//! Layout: `MAGIC | u64 count | count × (u32 key_len | key | u32 value_len | value) | sha256`,
//! integers big-endian, the digest over everything before it.

use std::io;

use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"SRSNAP\x00\x01";
const DIGEST_LEN: usize = 32;

/// Builds snapshot data one pair at a time, straight from a table scan.
pub struct SnapshotEncoder {
    buf: Vec<u8>,
    count: u64,
}

impl SnapshotEncoder {
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(4096);
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&0u64.to_be_bytes());
        Self { buf, count: 0 }
    }

    pub fn push(&mut self, key: &str, value: &[u8]) -> io::Result<()> {
        let too_big = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("snapshot {what} exceeds 4 GiB"),
            )
        };
        let key_len = u32::try_from(key.len()).map_err(|_| too_big("key"))?;
        let value_len = u32::try_from(value.len()).map_err(|_| too_big("value"))?;
        self.buf.extend_from_slice(&key_len.to_be_bytes());
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.extend_from_slice(&value_len.to_be_bytes());
        self.buf.extend_from_slice(value);
        self.count += 1;
        Ok(())
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf[MAGIC.len()..MAGIC.len() + 8].copy_from_slice(&self.count.to_be_bytes());
        let digest = Sha256::digest(&self.buf);
        self.buf.extend_from_slice(&digest);
        self.buf
    }
}

/// Encodes a snapshot whose pair count is known up front (a redb table knows its length) in
/// chunks, so a sender holds one chunk of the keyspace at a time, not all of it. The bytes
/// are exactly those [`SnapshotEncoder`] would produce.
pub struct ChunkEncoder {
    buf: Vec<u8>,
    hasher: Sha256,
    declared: u64,
    pushed: u64,
    chunk_bytes: usize,
}

impl ChunkEncoder {
    pub fn new(count: u64, chunk_bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(chunk_bytes.min(1 << 20) + 64);
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&count.to_be_bytes());
        Self {
            buf,
            hasher: Sha256::new(),
            declared: count,
            pushed: 0,
            chunk_bytes,
        }
    }

    /// Adds one pair; returns a chunk to send once enough bytes have gathered.
    pub fn push(&mut self, key: &str, value: &[u8]) -> io::Result<Option<Vec<u8>>> {
        let key_len = u32::try_from(key.len()).map_err(|_| too_big("key"))?;
        let value_len = u32::try_from(value.len()).map_err(|_| too_big("value"))?;
        self.buf.extend_from_slice(&key_len.to_be_bytes());
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.extend_from_slice(&value_len.to_be_bytes());
        self.buf.extend_from_slice(value);
        self.pushed += 1;
        if self.buf.len() < self.chunk_bytes {
            return Ok(None);
        }
        self.hasher.update(&self.buf);
        Ok(Some(std::mem::take(&mut self.buf)))
    }

    /// The last chunk, with the digest; fails if the pairs did not match the declared count.
    pub fn finish(mut self) -> io::Result<Vec<u8>> {
        if self.pushed != self.declared {
            return Err(io::Error::other(format!(
                "snapshot declared {} pairs but {} were encoded",
                self.declared, self.pushed
            )));
        }
        self.hasher.update(&self.buf);
        let digest = self.hasher.finalize();
        self.buf.extend_from_slice(&digest);
        Ok(self.buf)
    }
}

fn too_big(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("snapshot {what} exceeds 4 GiB"),
    )
}

/// Decodes `total_len` bytes of snapshot data from `r` pair by pair, handing each to `f`,
/// without holding the keyspace in memory. Lengths are checked against the bytes left before
/// anything is allocated. The digest is checked only at the end: `f` must stage what it gets
/// (an uncommitted transaction) and discard it if this returns an error.
pub fn decode_from<R: io::Read>(
    r: R,
    total_len: u64,
    mut f: impl FnMut(String, Vec<u8>) -> io::Result<()>,
) -> io::Result<()> {
    let header = (MAGIC.len() + 8 + DIGEST_LEN) as u64;
    if total_len < header {
        return Err(bad("too short"));
    }
    let mut r = HashingReader {
        inner: r,
        hasher: Sha256::new(),
        left: total_len - DIGEST_LEN as u64,
    };
    let mut magic = [0u8; MAGIC.len()];
    r.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(bad("not a strongroom snapshot (bad magic)"));
    }
    let count = u64::from_be_bytes(r.array()?);
    for _ in 0..count {
        let key_len = u32::from_be_bytes(r.array()?) as usize;
        let key = r.bytes(key_len)?;
        let key = String::from_utf8(key).map_err(|_| bad("a key is not UTF-8"))?;
        let value_len = u32::from_be_bytes(r.array()?) as usize;
        let value = r.bytes(value_len)?;
        f(key, value)?;
    }
    if r.left != 0 {
        return Err(bad("trailing bytes after the last pair"));
    }
    let computed = r.hasher.finalize();
    let mut digest = [0u8; DIGEST_LEN];
    r.inner
        .read_exact(&mut digest)
        .map_err(|_| bad("the digest is missing"))?;
    if computed.as_slice() != digest {
        return Err(bad("checksum mismatch (truncated or damaged)"));
    }
    Ok(())
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    /// Body bytes not yet read (the digest excluded).
    left: u64,
}

impl<R: io::Read> HashingReader<R> {
    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        if (buf.len() as u64) > self.left {
            return Err(bad("a length runs past the end of the data"));
        }
        self.inner
            .read_exact(buf)
            .map_err(|_| bad("the data ends early"))?;
        self.hasher.update(&*buf);
        self.left -= buf.len() as u64;
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut out = [0u8; N];
        self.read_exact(&mut out)?;
        Ok(out)
    }

    fn bytes(&mut self, n: usize) -> io::Result<Vec<u8>> {
        if (n as u64) > self.left {
            return Err(bad("a length runs past the end of the data"));
        }
        let mut out = vec![0u8; n];
        self.read_exact(&mut out)?;
        Ok(out)
    }
}

/// Encodes a list of pairs (used by tests and by callers holding pairs in memory).
#[cfg(test)]
pub fn encode(pairs: &[(String, Vec<u8>)]) -> io::Result<Vec<u8>> {
    let mut enc = SnapshotEncoder::new();
    for (k, v) in pairs {
        enc.push(k, v)?;
    }
    Ok(enc.finish())
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("snapshot data is invalid: {}", msg.into()),
    )
}

/// Checks and decodes snapshot data held in memory into its pairs, in stored (key) order.
#[cfg(test)]
pub fn decode(data: &[u8]) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut pairs = Vec::new();
    decode_from(data, data.len() as u64, |k, v| {
        pairs.push((k, v));
        Ok(())
    })?;
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        // Why: a snapshot that does not decode to the same pairs loses data on install.
        let pairs = vec![
            ("a".to_owned(), vec![]),
            ("b/c".to_owned(), vec![0, 1, 255]),
        ];
        let data = encode(&pairs).unwrap();
        assert_eq!(decode(&data).unwrap(), pairs);
        assert_eq!(decode(&encode(&[]).unwrap()).unwrap(), vec![]);
    }

    #[test]
    fn damage_is_detected_not_installed() {
        // Why: installing a truncated or flipped snapshot would silently corrupt the keyspace.
        let data = encode(&[("key".to_owned(), b"value".to_vec())]).unwrap();
        let mut flipped = data.clone();
        flipped[20] ^= 1;
        assert!(decode(&flipped).is_err());
        assert!(decode(&data[..data.len() - 1]).is_err());
        assert!(decode(b"garbage").is_err());
    }

    #[test]
    fn chunked_encoding_is_byte_identical_and_decodes_from_a_reader() {
        // Why: a follower checks streamed bytes with the same digest as whole ones; the two
        // encoders must agree byte for byte, and the streaming decoder must refuse damage.
        let pairs: Vec<(String, Vec<u8>)> = (0..50)
            .map(|i| (format!("k/{i:03}"), vec![i as u8; i]))
            .collect();
        let whole = encode(&pairs).unwrap();
        let mut enc = ChunkEncoder::new(pairs.len() as u64, 64);
        let mut streamed = Vec::new();
        for (k, v) in &pairs {
            if let Some(chunk) = enc.push(k, v).unwrap() {
                streamed.extend_from_slice(&chunk);
            }
        }
        streamed.extend_from_slice(&enc.finish().unwrap());
        assert_eq!(streamed, whole);

        let mut got = Vec::new();
        decode_from(&whole[..], whole.len() as u64, |k, v| {
            got.push((k, v));
            Ok(())
        })
        .unwrap();
        assert_eq!(got, pairs);
        let mut flipped = whole.clone();
        flipped[30] ^= 1;
        assert!(decode_from(&flipped[..], flipped.len() as u64, |_, _| Ok(())).is_err());
        let short = &whole[..whole.len() - 1];
        assert!(decode_from(short, short.len() as u64, |_, _| Ok(())).is_err());
    }
}

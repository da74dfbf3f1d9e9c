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

/// Checks and decodes snapshot data into its pairs, in stored (key) order.
pub fn decode(data: &[u8]) -> io::Result<Vec<(String, Vec<u8>)>> {
    if data.len() < MAGIC.len() + 8 + DIGEST_LEN {
        return Err(bad("too short"));
    }
    if &data[..MAGIC.len()] != MAGIC {
        return Err(bad("not a strongroom snapshot (bad magic)"));
    }
    let (body, digest) = data.split_at(data.len() - DIGEST_LEN);
    if Sha256::digest(body).as_slice() != digest {
        return Err(bad("checksum mismatch (truncated or damaged)"));
    }
    let mut rest = &body[MAGIC.len()..];
    let count = u64::from_be_bytes(take_array(&mut rest)?);
    let mut pairs = Vec::new();
    for _ in 0..count {
        let key_len = u32::from_be_bytes(take_array(&mut rest)?) as usize;
        let key = take(&mut rest, key_len)?;
        let key = std::str::from_utf8(key)
            .map_err(|_| bad("a key is not UTF-8"))?
            .to_owned();
        let value_len = u32::from_be_bytes(take_array(&mut rest)?) as usize;
        let value = take(&mut rest, value_len)?.to_vec();
        pairs.push((key, value));
    }
    if !rest.is_empty() {
        return Err(bad("trailing bytes after the last pair"));
    }
    Ok(pairs)
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> io::Result<&'a [u8]> {
    if rest.len() < n {
        return Err(bad("a length runs past the end of the data"));
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn take_array<const N: usize>(rest: &mut &[u8]) -> io::Result<[u8; N]> {
    let mut out = [0u8; N];
    out.copy_from_slice(take(rest, N)?);
    Ok(out)
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
}

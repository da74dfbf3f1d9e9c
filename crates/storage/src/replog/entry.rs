//! One WAL entry and its chain hash, plus the compact binary form it is stored and proposed in.
//!
//! The hash covers everything that makes two histories equal (predecessor, index, epoch, ops)
//! through a canonical encoding defined here, not through serde, so that a secondary built by a
//! different release, or fed through a different wire codec, computes the same hash.

use std::io;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Op;
use crate::keyspace::{KeyClass, classify};

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
/// 2: the clock is in microseconds (1 stored milliseconds; decoded as microseconds).
const STORED_VERSION: u8 = 2;
const STORED_VERSION_MS_CLOCK: u8 = 1;

/// A point in a WAL chain: the entry index, its epoch and its chain hash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WalPosition {
    pub index: u64,
    pub epoch: u64,
    pub hash: [u8; 32],
}

/// One replicated batch: the replicated ops of one storage write, chained to its predecessor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalEntry {
    pub index: u64,
    pub epoch: u64,
    pub prev_hash: [u8; 32],
    /// SHA256(prev_hash || index BE || epoch BE || canonical ops).
    pub hash: [u8; 32],
    /// Whether any op touches a shared (performance-replicated) key.
    pub shared: bool,
    /// When the primary proposed the entry, in microseconds since the Unix epoch (not hashed:
    /// informational, for the secondary's lag histogram).
    pub unix_us: u64,
    pub ops: Vec<Op>,
}

impl WalEntry {
    /// Builds the entry that follows `prev` (index and hash) with `ops`.
    pub fn next(prev: &WalPosition, epoch: u64, unix_us: u64, ops: Vec<Op>) -> Self {
        let index = prev.index + 1;
        let hash = chain_hash(&prev.hash, index, epoch, &ops);
        let shared = ops
            .iter()
            .any(|op| classify(op.key()) == KeyClass::ReplicatedShared);
        WalEntry {
            index,
            epoch,
            prev_hash: prev.hash,
            hash,
            shared,
            unix_us,
            ops,
        }
    }

    /// Whether `hash` really is the chain hash of this entry's content.
    pub fn hash_is_valid(&self) -> bool {
        chain_hash(&self.prev_hash, self.index, self.epoch, &self.ops) == self.hash
    }

    /// This entry as a chain position.
    pub fn position(&self) -> WalPosition {
        WalPosition {
            index: self.index,
            epoch: self.epoch,
            hash: self.hash,
        }
    }

    /// Keys plus values carried, for size limits.
    pub fn payload_bytes(&self) -> usize {
        self.ops
            .iter()
            .map(|op| match op {
                Op::Put { key, value } => key.len() + value.len(),
                Op::Delete { key } => key.len(),
            })
            .sum()
    }

    /// The stored (and Raft-proposed) byte form.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf =
            Vec::with_capacity(8 * 4 + 64 + 2 + self.payload_bytes() + 16 * self.ops.len());
        buf.push(STORED_VERSION);
        buf.extend_from_slice(&self.index.to_be_bytes());
        buf.extend_from_slice(&self.epoch.to_be_bytes());
        buf.extend_from_slice(&self.prev_hash);
        buf.extend_from_slice(&self.hash);
        buf.push(u8::from(self.shared));
        buf.extend_from_slice(&self.unix_us.to_be_bytes());
        encode_ops(&mut buf, &self.ops);
        buf
    }

    /// Decodes [`WalEntry::encode`] output, checking every length against the buffer.
    pub fn decode(bytes: &[u8]) -> io::Result<Self> {
        let mut r = Reader(bytes);
        let version = r.u8()?;
        if version != STORED_VERSION && version != STORED_VERSION_MS_CLOCK {
            return Err(bad(format!("unknown WAL entry version {version}")));
        }
        let index = r.u64()?;
        let epoch = r.u64()?;
        let prev_hash = r.array()?;
        let hash = r.array()?;
        let shared = r.u8()? != 0;
        let clock = r.u64()?;
        let unix_us = if version == STORED_VERSION_MS_CLOCK {
            clock.saturating_mul(1000)
        } else {
            clock
        };
        let count = r.u64()?;
        let mut ops = Vec::new();
        for _ in 0..count {
            let tag = r.u8()?;
            let key = r.string()?;
            match tag {
                OP_PUT => {
                    let value = r.bytes()?.to_vec();
                    ops.push(Op::Put { key, value });
                }
                OP_DELETE => ops.push(Op::Delete { key }),
                other => return Err(bad(format!("unknown WAL op tag {other}"))),
            }
        }
        if !r.0.is_empty() {
            return Err(bad("trailing bytes after the last op".into()));
        }
        Ok(WalEntry {
            index,
            epoch,
            prev_hash,
            hash,
            shared,
            unix_us,
            ops,
        })
    }
}

/// The chain hash of an entry with this content.
pub fn chain_hash(prev_hash: &[u8; 32], index: u64, epoch: u64, ops: &[Op]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev_hash);
    h.update(index.to_be_bytes());
    h.update(epoch.to_be_bytes());
    let mut buf = Vec::new();
    encode_ops(&mut buf, ops);
    h.update(&buf);
    h.finalize().into()
}

/// Canonical op encoding: `u64 count`, then per op `tag | u64 key_len | key [| u64 len | value]`.
fn encode_ops(buf: &mut Vec<u8>, ops: &[Op]) {
    buf.extend_from_slice(&(ops.len() as u64).to_be_bytes());
    for op in ops {
        match op {
            Op::Put { key, value } => {
                buf.push(OP_PUT);
                put_bytes(buf, key.as_bytes());
                put_bytes(buf, value);
            }
            Op::Delete { key } => {
                buf.push(OP_DELETE);
                put_bytes(buf, key.as_bytes());
            }
        }
    }
}

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    buf.extend_from_slice(bytes);
}

fn bad(msg: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("WAL entry is invalid: {msg}"),
    )
}

/// A bounds-checked cursor over stored bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(bad("a length runs past the end of the data".into()));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn bytes(&mut self) -> io::Result<&'a [u8]> {
        let len = usize::try_from(self.u64()?).map_err(|_| bad("length overflows".into()))?;
        self.take(len)
    }

    fn string(&mut self) -> io::Result<String> {
        let raw = self.bytes()?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| bad("a key is not UTF-8".into()))
    }
}

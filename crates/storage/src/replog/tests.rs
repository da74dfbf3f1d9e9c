//! Unit tests of the pure WAL pieces (backend behaviour is tested in `tests/replication.rs`).

use super::meta::WalMeta;
use super::*;
use crate::Op;

fn sample() -> WalEntry {
    WalEntry::next(
        &WalPosition {
            index: 41,
            epoch: 2,
            hash: [3u8; 32],
        },
        2,
        1_700_000_000_000,
        vec![
            Op::Put {
                key: "logical/a".into(),
                value: vec![0, 255, 7],
            },
            Op::Delete {
                key: "sys/token/id/t".into(),
            },
        ],
    )
}

#[test]
fn entries_round_trip_through_their_stored_form() {
    // Why: a secondary stores entries verbatim; any byte lost in encoding breaks the chain.
    let e = sample();

    let back = WalEntry::decode(&e.encode()).unwrap();

    assert_eq!(back, e);
    assert_eq!((e.index, e.prev_hash), (42, [3u8; 32]));
    assert!(e.shared && e.hash_is_valid());
}

#[test]
fn entries_stored_with_a_millisecond_clock_decode_in_microseconds() {
    // Why: WAL entries written before the clock moved to microseconds are still retained and
    // streamed; their time must not read as a thousand times too early.
    let e = WalEntry {
        unix_us: 1_700_000_000_123,
        ..sample()
    };
    let mut stored = e.encode();
    stored[0] = 1;

    let decoded = WalEntry::decode(&stored).unwrap();

    assert_eq!(decoded.unix_us, 1_700_000_000_123_000);
    assert_eq!(decoded.ops, e.ops);
}

#[test]
fn damaged_stored_entries_are_errors() {
    // Why: a truncated or foreign record must surface as corruption, never as a short entry.
    let bytes = sample().encode();

    assert!(WalEntry::decode(&bytes[..bytes.len() - 1]).is_err());
    assert!(WalEntry::decode(&[bytes.as_slice(), &[0]].concat()).is_err());
    assert!(WalEntry::decode(b"").is_err());
    let mut bad_version = bytes.clone();
    bad_version[0] = 9;
    assert!(WalEntry::decode(&bad_version).is_err());
}

#[test]
fn the_chain_hash_covers_every_field_that_defines_history() {
    // Why: two different histories must never share a hash, whatever field differs.
    let e = sample();
    let variants = [
        WalEntry {
            epoch: 3,
            ..e.clone()
        },
        WalEntry {
            index: 43,
            ..e.clone()
        },
        WalEntry {
            prev_hash: [4u8; 32],
            ..e.clone()
        },
        WalEntry {
            ops: e.ops[..1].to_vec(),
            ..e.clone()
        },
    ];

    for v in variants {
        assert!(!v.hash_is_valid());
    }
    assert!(
        WalEntry {
            unix_us: 1,
            ..e.clone()
        }
        .hash_is_valid(),
        "the clock is informational"
    );
}

#[test]
fn the_chain_hash_is_stable_across_releases() {
    // Why: primaries and secondaries of different versions must agree on every hash.
    let e = WalEntry::next(
        &WalPosition::default(),
        0,
        0,
        vec![Op::Put {
            key: "k".into(),
            value: b"v".to_vec(),
        }],
    );

    assert_eq!(
        hex::encode(e.hash),
        "7befee913aef1a1736efa56686637239e401d5fe413eabe4c70254bdc2a2706f"
    );
}

#[test]
fn meta_round_trips_and_defaults_to_an_empty_chain() {
    // Why: the meta record is what a restart resumes from.
    let meta = WalMeta {
        last_wal: 9,
        last_hash: [5u8; 32],
        epoch: 1,
        last_performance_wal: 4,
        first_retained: 7,
        retained_entries: 3,
        retained_bytes: 300,
        last_remote_wal: 9,
    };

    assert_eq!(WalMeta::decode(&meta.encode().unwrap()).unwrap(), meta);
    assert!(WalMeta::decode(b"{").is_err());
    let empty = WalMeta::default();
    assert_eq!((empty.last_wal, empty.first_retained), (0, 1));
}

#[test]
fn wal_keys_sort_by_index() {
    // Why: retention and reads walk entries in key order.
    assert!(wal_entry_key(9) < wal_entry_key(10));
    assert_eq!(
        wal_entry_key(1),
        "core/replication/wal/00000000000000000001"
    );
    assert!(is_wal_key(&wal_entry_key(1)) && is_wal_key(WAL_META_KEY));
    assert!(!is_wal_key("core/replication/dr/config"));
}

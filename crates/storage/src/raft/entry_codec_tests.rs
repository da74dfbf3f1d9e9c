//! The log entry encoding: today's entries round-trip, and entries in the JSON form of earlier
//! releases decode to the commands they stood for.

use std::collections::{BTreeMap, BTreeSet};

use openraft::{EntryPayload, LogId, Membership};

use super::*;
use crate::Op;
use crate::raft::legacy_command::{EncodedEntry, WireOp, WirePair};
use crate::raft::types::Command;
use crate::replog::{ReplCommand, WalEntry, WalPosition};

fn log_id(index: u64) -> openraft::alias::LogIdOf<TypeConfig> {
    LogId::new(
        openraft::impls::leader_id_adv::LeaderId {
            term: 3,
            node_id: 9,
        },
        index,
    )
}

fn put(key: &str, value: &[u8]) -> Op {
    Op::Put {
        key: key.into(),
        value: value.to_vec(),
    }
}

fn legacy_bytes(index: u64, payload: EntryPayload<LegacyCommand, u64, RaftNode>) -> Vec<u8> {
    let entry = LegacyEntry {
        log_id: log_id(index),
        payload,
    };
    serde_json::to_vec(&entry).unwrap()
}

fn membership() -> Membership<u64, RaftNode> {
    let node = RaftNode {
        node_id: "node1".into(),
        cluster_addr: "127.0.0.1:8201".into(),
    };
    Membership::new(vec![BTreeSet::from([9])], BTreeMap::from([(9, node)])).unwrap()
}

/// Two chained WAL entries, as a primary would ship them.
fn wal_entries() -> (WalEntry, WalEntry) {
    let first = WalEntry::next(
        &WalPosition::default(),
        1,
        5_000,
        vec![put("logical/a", b"\x00\xff")],
    );
    let second = WalEntry::next(
        &first.position(),
        1,
        6_000,
        vec![Op::Delete {
            key: "logical/a".into(),
        }],
    );
    (first, second)
}

#[test]
fn legacy_json_commands_decode_as_the_commands_they_stood_for() {
    // Why: a log written by the previous release holds JSON entries until a snapshot purges
    // them; after an upgrade each must apply exactly as that release would have applied it.
    let (first, second) = wal_entries();
    let hash = [7u8; 32];
    let table: Vec<(LegacyCommand, Command)> = vec![
        (
            LegacyCommand::Batch(vec![WireOp::Put {
                key: "k".into(),
                value: vec![1, 0, 255],
            }]),
            Command::Write {
                unix_us: 0,
                ops: vec![put("k", &[1, 0, 255])],
            },
        ),
        (
            LegacyCommand::BatchAt {
                unix_ms: 5,
                ops: vec![WireOp::Delete { key: "k".into() }],
            },
            Command::Write {
                unix_us: 5_000,
                ops: vec![Op::Delete { key: "k".into() }],
            },
        ),
        (
            LegacyCommand::BatchStamped {
                unix_us: 42,
                ops: vec![put("k", b"v").into()],
            },
            Command::Write {
                unix_us: 42,
                ops: vec![put("k", b"v")],
            },
        ),
        (
            LegacyCommand::ReplaceAll(vec![WirePair {
                key: "a".into(),
                value: vec![9],
            }]),
            Command::ReplaceAll(vec![("a".into(), vec![9])]),
        ),
        (
            LegacyCommand::ApplyRemote(first.encode()),
            Command::Repl(ReplCommand::ApplyRemote(first.clone())),
        ),
        (
            LegacyCommand::ApplyRemoteBatch(vec![
                EncodedEntry(first.encode()),
                EncodedEntry(second.encode()),
            ]),
            Command::Repl(ReplCommand::ApplyRemoteBatch(vec![first, second])),
        ),
        (
            LegacyCommand::SyncOps(vec![put("logical/b", b"x").into()]),
            Command::Repl(ReplCommand::SyncOps(vec![put("logical/b", b"x")])),
        ),
        (
            LegacyCommand::SetPosition {
                index: 4,
                epoch: 2,
                hash: hex::encode(hash),
            },
            Command::Repl(ReplCommand::SetPosition(WalPosition {
                index: 4,
                epoch: 2,
                hash,
            })),
        ),
        (
            LegacyCommand::WipeReplicated,
            Command::Repl(ReplCommand::WipeReplicated),
        ),
        (
            LegacyCommand::WipeReplicatedThen(vec![put("core/keyring", b"r").into()]),
            Command::Repl(ReplCommand::WipeReplicatedThen(vec![put(
                "core/keyring",
                b"r",
            )])),
        ),
        (
            LegacyCommand::BumpEpoch,
            Command::Repl(ReplCommand::BumpEpoch),
        ),
    ];
    for (i, (legacy, expected)) in table.into_iter().enumerate() {
        let index = i as u64 + 1;
        let raw = legacy_bytes(index, EntryPayload::Normal(legacy.clone()));

        let entry = decode(index, &raw).unwrap();

        assert_eq!(entry.log_id, log_id(index), "{legacy:?}");
        assert_eq!(entry.payload, EntryPayload::Normal(expected), "{legacy:?}");
    }
}

#[test]
fn legacy_blank_and_membership_entries_decode() {
    // Why: the first entries of every log are openraft's own; they carry no command.
    let blank = decode(1, &legacy_bytes(1, EntryPayload::Blank)).unwrap();
    let member = decode(2, &legacy_bytes(2, EntryPayload::Membership(membership()))).unwrap();

    assert_eq!(blank.payload, EntryPayload::Blank);
    assert_eq!(member.payload, EntryPayload::Membership(membership()));
    assert_eq!(member.log_id, log_id(2));
}

#[test]
fn an_entry_as_the_previous_release_stored_it_decodes() {
    // Why: the legacy decoder must keep matching the bytes really on disk, not only whatever
    // the legacy type serializes to today. These are that release's bytes for a write.
    let raw = br#"{"log_id":{"leader_id":{"term":3,"node_id":9},"index":7},"payload":{"Normal":{"BatchStamped":{"unix_us":1700000000000000,"ops":[{"op":"put","key":"logical/a","value":"AP8="},{"op":"delete","key":"logical/b"}]}}}}"#;

    let entry = decode(7, raw).unwrap();

    let expected = Command::Write {
        unix_us: 1_700_000_000_000_000,
        ops: vec![
            put("logical/a", &[0, 255]),
            Op::Delete {
                key: "logical/b".into(),
            },
        ],
    };
    assert_eq!(entry.payload, EntryPayload::Normal(expected));
    assert_eq!(entry.log_id, log_id(7));
}

#[test]
fn legacy_entries_that_release_never_wrote_are_corrupt() {
    // Why: a bad hash or WAL blob must stop the open with a named entry, not apply garbage.
    let bad_hash = LegacyCommand::SetPosition {
        index: 1,
        epoch: 1,
        hash: "zz".into(),
    };
    let bad_wal = LegacyCommand::ApplyRemote(vec![9, 9]);
    for cmd in [bad_hash, bad_wal] {
        let err = decode(5, &legacy_bytes(5, EntryPayload::Normal(cmd))).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("log entry 5"), "{err}");
    }
}

#[test]
fn todays_entries_round_trip() {
    // Why: what `append` stores must come back identical in `try_get_log_entries`.
    let (first, second) = wal_entries();
    let payloads = vec![
        EntryPayload::Blank,
        EntryPayload::Membership(membership()),
        EntryPayload::Normal(Command::Write {
            unix_us: 1,
            ops: vec![put("k", &[0, 1, 255])],
        }),
        EntryPayload::Normal(Command::ReplaceAll(vec![("a".into(), vec![])])),
        EntryPayload::Normal(Command::Repl(ReplCommand::ApplyRemoteBatch(vec![
            first, second,
        ]))),
        EntryPayload::Normal(Command::Repl(ReplCommand::SetPosition(
            WalPosition::default(),
        ))),
        EntryPayload::Normal(Command::Repl(ReplCommand::BumpEpoch)),
    ];
    for (i, payload) in payloads.into_iter().enumerate() {
        let entry = Entry {
            log_id: log_id(i as u64 + 1),
            payload,
        };

        let raw = encode(&entry).unwrap();

        assert_eq!(raw[0], FORMAT_POSTCARD);
        assert_eq!(decode(i as u64 + 1, &raw).unwrap(), entry);
    }
}

#[test]
fn unknown_format_bytes_and_trailing_bytes_are_corrupt() {
    // Why: a log entry that is not exactly one entry of a known format is damage.
    let entry = Entry {
        log_id: log_id(1),
        payload: EntryPayload::Blank,
    };
    let mut trailing = encode(&entry).unwrap();
    trailing.push(0);

    for raw in [vec![], vec![2, 0], trailing] {
        assert_eq!(
            decode(1, &raw).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}

#[test]
fn a_one_kib_write_takes_fewer_log_bytes_than_in_json() {
    // Why: the log entry is written and fsync'd on every acknowledged write. Measure a typical
    // one: a 1 KiB secret under a KV path, as barrier ciphertext (1 KiB + 29 bytes of header,
    // nonce and tag), stamped with a real clock.
    let key = "logical/6f1c2d3e-8a9b-4c5d-9e0f-1a2b3c4d5e6f/data/app/config".to_owned();
    let value: Vec<u8> = (0..1024 + 29).map(|i| (i * 131 % 251) as u8).collect();
    let unix_us = 1_764_633_600_123_456;
    let legacy = legacy_bytes(
        123_456,
        EntryPayload::Normal(LegacyCommand::BatchStamped {
            unix_us,
            ops: vec![WireOp::Put {
                key: key.clone(),
                value: value.clone(),
            }],
        }),
    );
    let today = encode(&Entry {
        log_id: log_id(123_456),
        payload: EntryPayload::Normal(Command::Write {
            unix_us,
            ops: vec![Op::Put { key, value }],
        }),
    })
    .unwrap();

    println!(
        "1 KiB write: {} log bytes as JSON, {} as postcard",
        legacy.len(),
        today.len()
    );
    assert!(today.len() < legacy.len());
    // Base64 alone costs a third; postcard adds only varint lengths and tags.
    assert!(today.len() <= 1024 + 29 + 100, "{}", today.len());
}

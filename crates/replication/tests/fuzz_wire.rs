//! Fuzz targets for the replication wire format: what a hostile or broken peer can send.
//!
//! The cluster port accepts bytes from any peer whose certificate chains to the replication
//! CA, and a primary accepts them from every secondary, so decoding must refuse garbage with
//! a typed error, never panic, and never allocate for a length it has not checked. Each
//! target runs `PROPTEST_CASES` cases (256 by default; raise it for a long run).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use strongroom_fuzz::{config, mutate, mutations};
use strongroom_replication::fsm::FsmConfig;
use strongroom_replication::wire::{MAX_FRAME, PrimaryMsg, SecondaryMsg, encode_frame, read_frame};
use strongroom_replication::{Event, LocalView, ReplicationError, SecondaryFsm};
use strongroom_storage::{MerkleTree, Op, WalEntry, WalPosition};

fn runtime() -> tokio::runtime::Runtime {
    strongroom_fuzz::runtime().unwrap()
}

fn position() -> impl Strategy<Value = WalPosition> {
    (any::<u64>(), any::<u64>(), any::<[u8; 32]>()).prop_map(|(index, epoch, hash)| WalPosition {
        index,
        epoch,
        hash,
    })
}

fn tree() -> impl Strategy<Value = MerkleTree> {
    prop_oneof![Just(MerkleTree::Shared), Just(MerkleTree::Local)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (".{0,24}", prop::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(key, value)| Op::Put { key, value }),
        ".{0,24}".prop_map(|key| Op::Delete { key }),
    ]
}

fn wal_entry() -> impl Strategy<Value = WalEntry> {
    (
        position(),
        any::<[u8; 32]>(),
        any::<bool>(),
        any::<u64>(),
        prop::collection::vec(op(), 0..4),
    )
        .prop_map(|(p, prev_hash, shared, unix_us, ops)| WalEntry {
            index: p.index,
            epoch: p.epoch,
            prev_hash,
            hash: p.hash,
            shared,
            unix_us,
            ops,
        })
}

fn secondary_msg() -> impl Strategy<Value = SecondaryMsg> {
    prop_oneof![
        (
            ".{0,16}",
            ".{0,16}",
            position(),
            any::<u32>(),
            ".{0,16}",
            ".{0,16}"
        )
            .prop_map(
                |(secondary_id, cluster_id, position, protocol, api_address, cluster_address)| {
                    SecondaryMsg::Hello {
                        secondary_id,
                        cluster_id,
                        position,
                        protocol,
                        api_address,
                        cluster_address,
                    }
                }
            ),
        (tree(), any::<Option<u8>>())
            .prop_map(|(tree, page)| SecondaryMsg::PageHashesReq { tree, page }),
        (tree(), prop::collection::vec(any::<u16>(), 0..16))
            .prop_map(|(tree, buckets)| SecondaryMsg::FetchBuckets { tree, buckets }),
        position().prop_map(|position| SecondaryMsg::StreamFrom { position }),
        any::<[u64; 4]>().prop_map(|[a, b, c, d]| SecondaryMsg::Heartbeat {
            unix_ms: a,
            last_applied: b,
            echo_unix_ms: c,
            echo_held_ms: d,
        }),
    ]
}

fn primary_msg() -> impl Strategy<Value = PrimaryMsg> {
    prop_oneof![
        (
            any::<bool>(),
            position(),
            prop::collection::vec(".{0,12}", 0..3)
        )
            .prop_map(|(resume, primary_position, known_primary_cluster_addrs)| {
                PrimaryMsg::HelloAck {
                    resume,
                    primary_position,
                    known_primary_cluster_addrs,
                }
            }),
        prop::collection::vec(any::<[u8; 32]>(), 0..4).prop_map(PrimaryMsg::PageHashes),
        (
            prop::collection::vec((".{0,12}", prop::collection::vec(any::<u8>(), 0..32)), 0..4),
            any::<bool>()
        )
            .prop_map(|(pairs, last)| PrimaryMsg::Pairs { pairs, last }),
        position().prop_map(|position| PrimaryMsg::SyncPoint { position }),
        (
            prop::collection::vec(wal_entry(), 0..3),
            prop::collection::vec(any::<u64>(), 0..3)
        )
            .prop_map(|(entries, committed_us)| PrimaryMsg::Wal {
                entries,
                committed_us
            }),
        (".{0,12}", ".{0,24}").prop_map(|(code, message)| PrimaryMsg::Error { code, message }),
    ]
}

/// A secondary's storage as the FSM sees it: empty, with all-zero merkle hashes.
struct EmptyView;

impl LocalView for EmptyView {
    fn position(&self) -> WalPosition {
        WalPosition {
            index: 0,
            epoch: 0,
            hash: [0; 32],
        }
    }

    fn merkle_hashes(&self, _tree: MerkleTree, _page: Option<u8>) -> Vec<[u8; 32]> {
        vec![[0; 32]; 256]
    }
}

/// What reaches the secondary's state machine: decoded primary messages (including
/// well-sized page-hash answers, so the diff gets past its length check), transport
/// changes and time.
fn fsm_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        6 => primary_msg().prop_map(Event::from),
        2 => prop::collection::vec(any::<[u8; 32]>(), 1..3)
            .prop_map(|seed| Event::PageHashes((0..256).map(|i| seed[i % seed.len()]).collect())),
        2 => Just(Event::Tick),
        1 => Just(Event::Connected),
        1 => Just(Event::Start),
        1 => ".{0,8}".prop_map(Event::Disconnected),
        1 => ".{0,8}".prop_map(Event::ApplyFailed),
        1 => Just(Event::Stop),
    ]
}

/// Reads frames until the stream ends or a frame is refused; every refusal must be typed
/// and say something.
async fn drain<T: serde::de::DeserializeOwned>(mut stream: &[u8]) {
    // A frame is at least its 4-byte prefix, so the stream ends within len/4 + 1 reads.
    for _ in 0..=stream.len() / 4 + 1 {
        match read_frame::<_, T>(&mut stream).await {
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(e) => {
                assert!(!e.to_string().is_empty(), "an empty error: {e:?}");
                return;
            }
        }
    }
    panic!("read_frame did not consume its input");
}

proptest! {
    #![proptest_config(config(256))]

    /// Why: the peer controls every byte after the TLS handshake.
    #[test]
    fn fuzz_wire_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let rt = runtime();
        rt.block_on(drain::<SecondaryMsg>(&bytes));
        rt.block_on(drain::<PrimaryMsg>(&bytes));
    }

    /// Why: valid frames, slightly damaged, get the decoder past the length prefix and
    /// the enum tag into the message bodies.
    #[test]
    fn fuzz_wire_mutated_frames(
        from_secondary in prop::collection::vec(secondary_msg(), 1..4),
        from_primary in prop::collection::vec(primary_msg(), 1..4),
        edits in mutations(6),
    ) {
        let rt = runtime();
        let mut stream = Vec::new();
        for m in &from_secondary {
            stream.extend(encode_frame(m).unwrap());
        }
        rt.block_on(drain::<SecondaryMsg>(&mutate(stream, &edits)));
        let mut stream = Vec::new();
        for m in &from_primary {
            stream.extend(encode_frame(m).unwrap());
        }
        rt.block_on(drain::<PrimaryMsg>(&mutate(stream, &edits)));
    }

    /// Why: what the decoder accepts must be exactly what the encoder wrote.
    #[test]
    fn fuzz_wire_round_trip(s in secondary_msg(), p in primary_msg()) {
        let rt = runtime();
        let frame = encode_frame(&s).unwrap();
        let back: Option<SecondaryMsg> = rt.block_on(read_frame(&mut frame.as_slice())).unwrap();
        prop_assert_eq!(back, Some(s));
        let frame = encode_frame(&p).unwrap();
        let back: Option<PrimaryMsg> = rt.block_on(read_frame(&mut frame.as_slice())).unwrap();
        prop_assert_eq!(back, Some(p));
    }

    /// Why: a length prefix above the limit (up to 4 GiB) must be refused from the prefix
    /// alone. The stream holds no body, so a decoder that allocated and tried to read one
    /// would report an I/O error instead.
    #[test]
    fn fuzz_wire_oversized_prefix_is_refused_before_reading(
        len in (MAX_FRAME as u32 + 1)..=u32::MAX,
    ) {
        let rt = runtime();
        let prefix = len.to_be_bytes();
        let got = rt.block_on(read_frame::<_, PrimaryMsg>(&mut prefix.as_slice()));
        prop_assert!(
            matches!(got, Err(ReplicationError::FrameTooLarge(n)) if n == len as usize),
            "{got:?}"
        );
    }

    /// Why: whatever the decoder accepts is handed to the secondary's state machine, which
    /// must refuse out-of-place or malformed messages as protocol violations, not panic.
    #[test]
    fn fuzz_wire_into_secondary_fsm(
        seed in any::<u64>(),
        events in prop::collection::vec((fsm_event(), 0u64..20_000), 1..40),
    ) {
        let cfg = FsmConfig {
            secondary_id: "s1".into(),
            cluster_id: "c1".into(),
            primary_cluster_addrs: vec!["https://p:8201".into()],
            api_address: "https://s:8200".into(),
            cluster_address: "https://s:8201".into(),
            kind: strongroom_replication::ReplicationKind::Dr,
        };
        let mut fsm = SecondaryFsm::new(cfg, seed);
        let mut now = 1_000_000u64;
        fsm.handle(Event::Start, now, &EmptyView);
        fsm.handle(Event::Connected, now, &EmptyView);
        for (event, step_ms) in events {
            now += step_ms;
            let _ = fsm.handle(event, now, &EmptyView);
            let _ = fsm.status();
        }
    }
}

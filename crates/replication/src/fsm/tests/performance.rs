//! The one place the FSM treats a performance stream differently from a DR stream.

use super::*;

#[test]
fn only_a_dr_secondary_checks_an_entrys_own_hash() {
    // Why: a performance stream presents transformed hashes, which are no entry's content
    // hash; checking them would refuse every entry, while a DR secondary must still refuse
    // an entry that does not match its own hash. Chaining is checked for both.
    for (kind, accepted) in [
        (ReplicationKind::Dr, false),
        (ReplicationKind::Performance, true),
    ] {
        let local = Model::default();
        let mut fsm = SecondaryFsm::new(FsmConfig { kind, ..cfg() }, 1);
        fsm.handle(Event::Start, 0, &local);
        fsm.handle(Event::Connected, 1, &local);
        fsm.handle(hello_ack(true, WalPosition::default()), 2, &local);
        let put = Op::Put {
            key: "logical/a".into(),
            value: b"v".to_vec(),
        };
        let mut entry = WalEntry::next(&WalPosition::default(), 0, 0, vec![put]);
        entry.hash = [5u8; 32];
        let mut unchained = WalEntry::next(&entry.position(), 0, 0, Vec::new());
        unchained.prev_hash = [6u8; 32];

        let first = fsm.handle(Event::Wal(vec![entry.clone()]), 3, &local);
        let second = fsm.handle(Event::Wal(vec![unchained]), 4, &local);

        let applied = first.contains(&Output::ApplyStorage(ReplCommand::ApplyRemoteBatch(vec![
            entry,
        ])));
        assert_eq!(applied, accepted, "{kind:?}");
        if accepted {
            assert!(
                second.contains(&Output::Disconnect),
                "an entry that does not chain is refused"
            );
        } else {
            assert!(first.contains(&Output::Disconnect), "{kind:?}");
        }
    }
}

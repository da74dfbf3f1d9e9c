//! One test per planner rule, at its boundary, and the exact JSON shape of the state body
//! (field names and JSON types as Vault answers them).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use strongroom_storage::ServerInfo;

use super::*;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

const DAY: u64 = 24 * 3600;

fn leader(id: &str) -> ServerInfo {
    ServerInfo {
        node_id: id.into(),
        cluster_addr: format!("{id}.example:8201"),
        voter: true,
        leader: true,
        last_contact: None,
        last_index: 0,
        last_term: 0,
    }
}

/// A follower heard from at `contact`, caught up with a leader at index 100 of term 2.
fn follower(id: &str, voter: bool, contact: Option<SystemTime>) -> ServerInfo {
    ServerInfo {
        node_id: id.into(),
        cluster_addr: format!("{id}.example:8201"),
        voter,
        leader: false,
        last_contact: contact,
        last_index: 100,
        last_term: 2,
    }
}

fn view<'a>(servers: &'a [ServerInfo], pinned: &'a BTreeSet<String>) -> ClusterView<'a> {
    ClusterView {
        servers,
        last_index: 100,
        last_term: 2,
        stay_non_voters: pinned,
    }
}

fn cleanup(min_quorum: u64) -> AutopilotConfig {
    AutopilotConfig {
        cleanup_dead_servers: true,
        min_quorum,
        ..AutopilotConfig::default()
    }
}

fn remove(id: &str) -> Action {
    Action::Remove(id.into())
}

// ---- promotion ----

#[test]
fn promotes_a_non_voter_after_the_stabilization_time() {
    // Why: a joiner votes only once it has kept up for server_stabilization_time.
    let config = AutopilotConfig::default();
    let pinned = BTreeSet::new();
    let mut planner = Planner::new();
    for (now, want) in [
        (0, vec![]),
        (5, vec![]),
        (9, vec![]),
        (10, vec![Action::Promote("n2".into())]),
    ] {
        let servers = [leader("n1"), follower("n2", false, Some(t(now)))];
        assert_eq!(
            planner.tick(&config, t(now), view(&servers, &pinned)),
            want,
            "t+{now}"
        );
    }
}

#[test]
fn a_break_in_health_restarts_the_stabilization_time() {
    // Why: stability means continuous health, not health at two instants.
    let config = AutopilotConfig::default();
    let pinned = BTreeSet::new();
    let mut planner = Planner::new();
    // The joiner is at index 100; the leader is at `leader_index`.
    let mut tick = |now: u64, leader_index: u64| {
        let servers = [leader("n1"), follower("n2", false, Some(t(now)))];
        let mut v = view(&servers, &pinned);
        v.last_index = leader_index;
        planner.tick(&config, t(now), v)
    };
    assert!(tick(0, 100).is_empty());
    assert!(tick(5, 100).is_empty());
    assert!(tick(6, 1101).is_empty(), "1001 behind: unhealthy");
    assert!(tick(7, 100).is_empty());
    assert!(tick(16, 100).is_empty(), "only 9s healthy since the break");
    assert_eq!(tick(17, 100), vec![Action::Promote("n2".into())]);
}

#[test]
fn a_pinned_non_voter_is_never_promoted() {
    // Why: `-non-voter` joins are read replicas by the operator's choice.
    let config = AutopilotConfig::default();
    let pinned: BTreeSet<String> = ["n2".to_owned()].into();
    let mut planner = Planner::new();
    for now in [0, 10, 100, 1000] {
        let servers = [leader("n1"), follower("n2", false, Some(t(now)))];
        assert!(
            planner
                .tick(&config, t(now), view(&servers, &pinned))
                .is_empty()
        );
    }
}

#[test]
fn health_follows_raft_autopilots_four_conditions() {
    // Why: each condition alone must make a follower unhealthy, at its exact boundary.
    let config = AutopilotConfig::default();
    let pinned = BTreeSet::new();
    let now = t(100);
    let mut on_time = follower("contact-10s", true, Some(t(90)));
    on_time.last_index = 1001;
    let mut late = follower("contact-11s", true, Some(t(89)));
    late.last_index = 1001;
    let mut never = follower("never", true, None);
    never.last_index = 1001;
    let mut old_term = follower("old-term", true, Some(now));
    (old_term.last_index, old_term.last_term) = (1001, 1);
    let mut lagging = follower("behind-1001", true, Some(now));
    lagging.last_index = 0;
    let mut at_limit = follower("behind-1000", true, Some(now));
    at_limit.last_index = 1;
    let servers = [
        leader("n1"),
        on_time,
        late,
        never,
        old_term,
        lagging,
        at_limit,
    ];
    let mut v = view(&servers, &pinned);
    v.last_index = 1001;
    let state = Planner::new().state(&config, now, v, "1.0.0");
    let healthy = |id: &str| state.servers[id].healthy;
    assert!(healthy("n1"));
    assert!(healthy("contact-10s"), "exactly at last_contact_threshold");
    assert!(!healthy("contact-11s"));
    assert!(!healthy("never"));
    assert!(!healthy("old-term"));
    assert!(!healthy("behind-1001"));
    assert!(healthy("behind-1000"), "exactly max_trailing_logs behind");
}

#[test]
fn a_clock_that_steps_back_neither_panics_nor_hurries_promotion() {
    // Why: `now` is wall-clock time, which NTP may move backwards.
    let config = AutopilotConfig::default();
    let pinned = BTreeSet::new();
    let mut planner = Planner::new();
    let servers = [leader("n1"), follower("n2", false, Some(t(100)))];
    assert!(
        planner
            .tick(&config, t(100), view(&servers, &pinned))
            .is_empty()
    );
    assert!(
        planner
            .tick(&config, t(50), view(&servers, &pinned))
            .is_empty()
    );
    assert!(
        planner
            .tick(&config, t(109), view(&servers, &pinned))
            .is_empty()
    );
    assert_eq!(
        planner.tick(&config, t(110), view(&servers, &pinned)),
        vec![Action::Promote("n2".into())]
    );
}

// ---- dead server cleanup ----

/// Five voters, `dead` of them silent for more than a day at t(2 days).
fn five_voters(dead: &[&str]) -> Vec<ServerInfo> {
    let mut servers = vec![leader("n1")];
    for id in ["n2", "n3", "n4", "n5"] {
        let contact = if dead.contains(&id) { t(0) } else { t(2 * DAY) };
        servers.push(follower(id, true, Some(contact)));
    }
    servers
}

#[test]
fn dead_servers_stay_while_cleanup_is_off() {
    // Why: removal is opt-in; without it a dead server is reported, not removed.
    let pinned = BTreeSet::new();
    let servers = five_voters(&["n5"]);
    let config = AutopilotConfig::default();
    let mut planner = Planner::new();
    assert!(
        planner
            .tick(&config, t(2 * DAY), view(&servers, &pinned))
            .is_empty()
    );
    let state = planner.state(&config, t(2 * DAY), view(&servers, &pinned), "v");
    assert_eq!(state.servers["n5"].node_status, NodeStatus::Failed);
}

#[test]
fn removes_a_dead_voter_when_cleanup_is_on() {
    // Why: the point of cleanup: a server silent past the dead threshold leaves the quorum.
    let pinned = BTreeSet::new();
    let servers = five_voters(&["n5"]);
    let mut planner = Planner::new();
    let config = cleanup(3);
    assert_eq!(
        planner.tick(&config, t(2 * DAY), view(&servers, &pinned)),
        vec![remove("n5")]
    );
    let state = planner.state(&config, t(2 * DAY), view(&servers, &pinned), "v");
    assert_eq!(state.servers["n5"].node_status, NodeStatus::Left);
    assert_eq!(state.servers["n4"].node_status, NodeStatus::Alive);
}

#[test]
fn removal_never_leaves_fewer_voters_than_min_quorum() {
    // Why: min_quorum is the operator's floor for the voter count.
    let pinned = BTreeSet::new();
    let servers = five_voters(&["n4", "n5"]);
    let mut planner = Planner::new();
    assert_eq!(
        planner.tick(&cleanup(4), t(2 * DAY), view(&servers, &pinned)),
        vec![remove("n4")]
    );
    assert!(
        Planner::new()
            .tick(&cleanup(5), t(2 * DAY), view(&servers, &pinned))
            .is_empty()
    );
    assert_eq!(
        Planner::new().tick(&cleanup(3), t(2 * DAY), view(&servers, &pinned)),
        vec![remove("n4"), remove("n5")]
    );
}

#[test]
fn no_voter_is_removed_while_the_living_are_a_minority() {
    // Why: with three of five voters dead, the change could not commit, and removing them
    // would let two servers decide for the cluster.
    let pinned = BTreeSet::new();
    let servers = five_voters(&["n3", "n4", "n5"]);
    assert!(
        Planner::new()
            .tick(&cleanup(3), t(2 * DAY), view(&servers, &pinned))
            .is_empty()
    );
}

#[test]
fn the_leader_is_never_removed() {
    // Why: whatever its progress fields say, the leader is the one acting.
    let pinned = BTreeSet::new();
    let mut servers = five_voters(&[]);
    servers[0].last_contact = Some(t(0));
    assert!(
        Planner::new()
            .tick(&cleanup(3), t(2 * DAY), view(&servers, &pinned))
            .is_empty()
    );
}

#[test]
fn dead_non_voters_go_first_and_regardless_of_min_quorum() {
    // Why: a non-voter holds no vote, so removing it cannot hurt the quorum.
    let pinned: BTreeSet<String> = ["r1".to_owned()].into();
    let mut servers = vec![
        leader("n1"),
        follower("n2", true, Some(t(2 * DAY))),
        follower("n3", true, Some(t(2 * DAY))),
    ];
    servers.push(follower("r1", false, Some(t(0))));
    assert_eq!(
        Planner::new().tick(&cleanup(3), t(2 * DAY), view(&servers, &pinned)),
        vec![remove("r1")]
    );
}

#[test]
fn a_server_never_heard_from_is_dead_only_after_this_leader_watched_it() {
    // Why: after a leader change nobody knows when a silent joiner last answered; the new
    // leader must wait the full threshold itself.
    let pinned = BTreeSet::new();
    let at = |now: u64| {
        let mut servers = five_voters(&[]);
        for s in &mut servers[1..4] {
            s.last_contact = Some(t(now));
        }
        servers[4].last_contact = None;
        servers
    };
    let config = cleanup(3);
    let mut planner = Planner::new();
    assert!(
        planner
            .tick(&config, t(0), view(&at(0), &pinned))
            .is_empty()
    );
    assert!(
        planner
            .tick(&config, t(DAY), view(&at(DAY), &pinned))
            .is_empty()
    );
    assert_eq!(
        planner.tick(&config, t(DAY + 1), view(&at(DAY + 1), &pinned)),
        vec![remove("n5")]
    );
    assert!(
        Planner::new()
            .tick(&config, t(DAY + 1), view(&at(DAY + 1), &pinned))
            .is_empty()
    );
}

#[test]
fn a_new_leader_starts_the_stabilization_time_again() {
    // Why: one leader's memory of health says nothing about what another observed.
    let config = AutopilotConfig::default();
    let pinned = BTreeSet::new();
    let mut planner = Planner::new();
    let as_leader = |id: &str, now: u64| {
        let other = if id == "n1" { "n3" } else { "n1" };
        vec![
            leader(id),
            follower(other, true, Some(t(now))),
            follower("n2", false, Some(t(now))),
        ]
    };
    assert!(
        planner
            .tick(&config, t(0), view(&as_leader("n1", 0), &pinned))
            .is_empty()
    );
    assert!(
        planner
            .tick(&config, t(8), view(&as_leader("n3", 8), &pinned))
            .is_empty()
    );
    assert!(
        planner
            .tick(&config, t(12), view(&as_leader("n3", 12), &pinned))
            .is_empty()
    );
    assert_eq!(
        planner.tick(&config, t(18), view(&as_leader("n3", 18), &pinned)),
        vec![Action::Promote("n2".into())]
    );
    // And a view with no leader plans nothing.
    let servers = [follower("n2", false, Some(t(30)))];
    assert!(
        planner
            .tick(&config, t(30), view(&servers, &pinned))
            .is_empty()
    );
}

// ---- state body ----

#[test]
fn state_body_has_vaults_fields_and_types() {
    // Why: `vault operator raft autopilot state` and monitoring parse these names and types.
    let pinned: BTreeSet<String> = ["n3".to_owned()].into();
    let now = t(100);
    let follower_contact = now - Duration::from_nanos(516_495_950);
    let servers = [
        leader("n1"),
        follower("n2", true, Some(follower_contact)),
        follower("n3", false, Some(now)),
    ];
    let config = AutopilotConfig::default();
    let mut planner = Planner::new();
    planner.tick(&config, t(90), view(&servers, &pinned));
    let state = planner.state(&config, now, view(&servers, &pinned), "1.2.3");
    let body = Value::Object(state.to_data().unwrap());

    let top: BTreeSet<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        top,
        [
            "failure_tolerance",
            "healthy",
            "leader",
            "servers",
            "voters"
        ]
        .into()
    );
    assert_eq!(body["healthy"], true);
    assert_eq!(
        body["failure_tolerance"], 0,
        "two voters: quorum 2, none spare"
    );
    assert_eq!(body["leader"], "n1");
    assert_eq!(body["voters"], json!(["n1", "n2"]));
    let stable = crate::util::rfc3339(t(90), false);
    assert_eq!(
        body["servers"]["n2"],
        json!({
            "id": "n2",
            "name": "n2",
            "address": "n2.example:8201",
            "node_status": "alive",
            "last_contact": "516.49595ms",
            "last_term": 2,
            "last_index": 100,
            "healthy": true,
            "stable_since": stable,
            "status": "voter",
            "version": "1.2.3",
            "node_type": "voter",
        })
    );
    assert_eq!(body["servers"]["n1"]["last_contact"], "0s");
    assert_eq!(body["servers"]["n1"]["status"], "leader");
    assert_eq!(body["servers"]["n1"]["last_index"], 100);
    assert_eq!(body["servers"]["n3"]["status"], "non-voter");
    assert!(
        humantime::parse_rfc3339(body["servers"]["n3"]["stable_since"].as_str().unwrap()).is_ok()
    );
}

#[test]
fn failure_tolerance_counts_healthy_voters_beyond_quorum() {
    // Why: "how many servers can I lose" is the number operators page on.
    let pinned = BTreeSet::new();
    let config = AutopilotConfig::default();
    let now = t(2 * DAY);
    let all = Planner::new().state(&config, now, view(&five_voters(&[]), &pinned), "v");
    assert_eq!((all.healthy, all.failure_tolerance), (true, 2));
    let one_down = Planner::new().state(&config, now, view(&five_voters(&["n5"]), &pinned), "v");
    assert_eq!((one_down.healthy, one_down.failure_tolerance), (false, 1));
    let three_down = Planner::new().state(
        &config,
        now,
        view(&five_voters(&["n3", "n4", "n5"]), &pinned),
        "v",
    );
    assert_eq!(three_down.failure_tolerance, 0);
    let leaderless = [follower("n2", true, Some(now))];
    let none = Planner::new().state(&config, now, view(&leaderless, &pinned), "v");
    assert_eq!((none.healthy, none.leader.as_str()), (false, ""));
}

//! End-to-end: a join whose leader dies between the two phases still completes at unseal,
//! against the leader elected meanwhile, without the operator running the join again.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::cluster::{Cluster, Join, Ports, free_ports, node_id, node_with, seal_status};

#[test]
fn a_join_whose_leader_died_between_the_phases_finishes_at_unseal() {
    // Set up: three voters; a fourth node whose retry_join names all three, challenged by the
    // active node (node 1, the only one that answers challenges).
    let mut c = Cluster::form(3, Join::RetryJoin);
    let ids: Vec<String> = (0..3).map(node_id).collect();
    let active = c.wait_active(30);
    c.wait_voters(active, &ids, 30);
    let p = free_ports(2);
    let ports = Ports {
        api: p[0],
        cluster: p[1],
    };
    let mut joiner = node_with(&c.certs(), "node4", &ports, Some(&c.ports[0].api_addr()));
    let config = std::fs::read_to_string(&joiner.config).unwrap();
    let first = format!("leader_api_addr = \"{}\"", c.ports[0].api_addr());
    let stanza_start = config.find("  retry_join {").unwrap();
    let stanza_end = stanza_start + config[stanza_start..].find("  }\n").unwrap() + 4;
    let stanza = &config[stanza_start..stanza_end];
    let mut stanzas = stanza.to_owned();
    for i in 1..3 {
        stanzas.push_str(&stanza.replace(
            &first,
            &format!("leader_api_addr = \"{}\"", c.ports[i].api_addr()),
        ));
    }
    let config = config.replace(stanza, &stanzas);
    std::fs::write(&joiner.config, config).unwrap();
    joiner.start();
    common::wait_for(30, "node4 to get its challenge", || {
        seal_status(&joiner)["initialized"] == true
    });

    // Act: the leader that issued the challenge dies; the operator then unseals node4.
    c.nodes[active].kill9();
    let new_active = c.wait_active(30);
    let r = joiner.unseal(&c.keys);

    // Assert: node4 joined through the new leader and serves as a standby.
    assert_eq!(r["sealed"], false, "unseal after the leader died: {r}");
    common::wait_for(30, "node4 to be listed as a raft peer", || {
        c.servers(new_active)
            .iter()
            .any(|s| s["node_id"] == "node4")
    });
}

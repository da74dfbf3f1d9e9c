//! End-to-end DR replication between two in-memory storages over real mTLS on 127.0.0.1.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use strongroom_replication::{ReplicationCa, SecondaryRunner};
use strongroom_storage::{InmemStorage, Op, Storage};

#[tokio::test]
async fn bootstrap_by_merkle_sync_then_streams() {
    // Why: the first milestone of DR: an empty secondary must copy a primary whose WAL no
    // longer starts at 1, then follow live writes.
    let primary = Primary::start().await;
    primary.storage.set_wal_retention(5, u64::MAX);
    primary.write_batches("a", 40).await;
    let secondary = Arc::new(InmemStorage::new());
    let hooks = Arc::new(Hooks::default());

    let handle = start_secondary(
        primary.secondary_config("dr-1"),
        secondary.clone(),
        hooks.clone(),
    );
    converged(&primary.storage, &secondary, &handle).await;
    let status = handle.status();
    assert_eq!(
        status.syncs_completed, 1,
        "a sync was needed: the WAL was trimmed"
    );
    assert_eq!(status.last_sync_written, 80);

    primary.storage.set_wal_retention(100_000, 256 << 20);
    primary.write_batches("b", 10).await;
    primary.storage.delete("logical/a/3").await.unwrap();
    converged(&primary.storage, &secondary, &handle).await;
    assert_eq!(
        handle.status().syncs_completed,
        1,
        "live writes arrive by streaming"
    );
    eventually("after_apply is called", || async {
        hooks.applied.load(Ordering::SeqCst) > 0
    })
    .await;
    assert_eq!(
        secondary.replication_status().last_remote_wal,
        primary.storage.replication_status().last_wal
    );
    assert_eq!(*hooks.addrs.lock().unwrap(), vec![primary.addr.clone()]);
    eventually("the primary records the secondary's heartbeat", || async {
        primary
            .registry
            .heartbeats
            .lock()
            .unwrap()
            .get("dr-1")
            .is_some_and(|p| p.connection_status == "connected" && p.node_id == "dr-1")
    })
    .await;
    handle.stop().await;
    assert_eq!(handle.status().state, "idle");
}

#[tokio::test]
async fn a_standby_of_the_primary_redirects_to_the_active_node() {
    // Why: a secondary may be pointed at any node of a multi-node primary (or an L4 load
    // balancer in front of them); only the active node streams, so a standby must check the
    // Hello and name the active node rather than refuse or serve.
    let active = Primary::start().await;
    active.write_batches("a", 10).await;
    let standby = active.peer().await;
    *standby.registry.role.lock().unwrap() = Some(strongroom_replication::NodeRole::Standby {
        active_cluster_addr: Some(active.addr.clone()),
    });
    let both = vec![standby.addr.clone(), active.addr.clone()];
    *active.registry.addrs.lock().unwrap() = both.clone();
    *standby.registry.addrs.lock().unwrap() = both.clone();
    let secondary = Arc::new(InmemStorage::new());
    let hooks = Arc::new(Hooks::default());
    let mut cfg = standby.secondary_config("dr-1");
    cfg.primary_cluster_addrs = vec![standby.addr.clone()];

    let handle = start_secondary(cfg, secondary.clone(), hooks.clone());
    converged(&active.storage, &secondary, &handle).await;

    assert_eq!(
        *hooks.addrs.lock().unwrap(),
        both,
        "the standby told us every node"
    );
    assert!(
        standby.registry.heartbeats.lock().unwrap().is_empty(),
        "the standby never served the stream"
    );
    eventually("the active node serves the stream", || async {
        active
            .registry
            .heartbeats
            .lock()
            .unwrap()
            .contains_key("dr-1")
    })
    .await;

    // A leader change: the old active node hands the live stream over to the new one.
    let syncs = handle.status().syncs_completed;
    *active.registry.role.lock().unwrap() = Some(strongroom_replication::NodeRole::Standby {
        active_cluster_addr: Some(standby.addr.clone()),
    });
    *standby.registry.role.lock().unwrap() = None;
    active.write_batches("b", 10).await;
    converged(&active.storage, &secondary, &handle).await;
    eventually("the new active node serves the stream", || async {
        standby
            .registry
            .heartbeats
            .lock()
            .unwrap()
            .contains_key("dr-1")
    })
    .await;
    assert_eq!(
        handle.status().syncs_completed,
        syncs,
        "resumed, not synced again"
    );
    handle.stop().await;
}

#[tokio::test]
async fn reconnect_resumes_without_a_sync() {
    // Why: a short outage must not cost a full merkle sync when the WAL still holds our spot.
    let primary = Primary::start().await;
    primary.write_batches("a", 20).await;
    let secondary = Arc::new(InmemStorage::new());
    let hooks = Arc::new(Hooks::default());
    let cfg = primary.secondary_config("dr-1");
    let handle = start_secondary(cfg.clone(), secondary.clone(), hooks.clone());
    converged(&primary.storage, &secondary, &handle).await;
    handle.stop().await;

    primary.write_batches("b", 15).await;
    let handle = start_secondary(cfg, secondary.clone(), hooks);
    converged(&primary.storage, &secondary, &handle).await;

    assert_eq!(handle.status().syncs_completed, 0, "resumed from the WAL");
    handle.stop().await;
}

#[tokio::test]
async fn lost_wal_position_falls_back_to_merkle_sync() {
    // Why: when retention dropped our position, streaming alone can never catch up.
    let primary = Primary::start().await;
    primary.write_batches("a", 10).await;
    let secondary = Arc::new(InmemStorage::new());
    let hooks = Arc::new(Hooks::default());
    let cfg = primary.secondary_config("dr-1");
    let handle = start_secondary(cfg.clone(), secondary.clone(), hooks.clone());
    converged(&primary.storage, &secondary, &handle).await;
    handle.stop().await;

    primary.storage.set_wal_retention(3, u64::MAX);
    primary.write_batches("b", 20).await;
    let handle = start_secondary(cfg, secondary.clone(), hooks);
    converged(&primary.storage, &secondary, &handle).await;

    let status = handle.status();
    assert_eq!(status.syncs_completed, 1);
    assert_eq!(status.last_sync_discarded, 0);
    handle.stop().await;
}

#[tokio::test]
async fn divergent_secondary_discards_its_extra_keys() {
    // Why: a secondary that took writes of its own (split brain, old primary) must end up
    // byte-identical to the primary, and the operator must see how much was discarded.
    let primary = Primary::start().await;
    primary.write_batches("a", 12).await;
    let secondary = Arc::new(InmemStorage::new());
    secondary
        .write(vec![
            Op::Put {
                key: "logical/extra/1".into(),
                value: b"x1".to_vec(),
            },
            Op::Put {
                key: "logical/extra/2".into(),
                value: b"x2".to_vec(),
            },
            Op::Put {
                key: "sys/token/id/rogue".into(),
                value: b"x3".to_vec(),
            },
            Op::Put {
                key: "logical/a/0".into(),
                value: b"stale".to_vec(),
            },
            Op::Put {
                key: "core/cluster/local/info".into(),
                value: b"ours".to_vec(),
            },
        ])
        .await
        .unwrap();
    let hooks = Arc::new(Hooks::default());

    let handle = start_secondary(primary.secondary_config("dr-1"), secondary.clone(), hooks);
    converged(&primary.storage, &secondary, &handle).await;

    let status = handle.status();
    assert_eq!(status.syncs_completed, 1);
    assert_eq!(status.last_sync_discarded, 3);
    assert_eq!(
        secondary.get("logical/a/0").await.unwrap(),
        Some(b"ct-a-0".to_vec())
    );
    assert_eq!(
        secondary.get("core/cluster/local/info").await.unwrap(),
        Some(b"ours".to_vec()),
        "cluster-local keys are never touched by replication"
    );
    handle.stop().await;
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused() {
    // Why: only the primary's own CA may admit secondaries; a cert from another primary
    // (or a secondary trusting another CA) must get nothing.
    let primary = Primary::start().await;
    primary.write_batches("a", 5).await;
    let other = ReplicationCa::generate("other-cluster").unwrap();
    let (cert, key) = other.issue_client_cert("dr-1").unwrap();
    let mut cfg = primary.secondary_config("dr-1");
    cfg.client_cert_pem = cert;
    cfg.client_key_pem = key;
    let secondary = Arc::new(InmemStorage::new());

    let handle = start_secondary(cfg, secondary.clone(), Arc::new(Hooks::default()));
    eventually("the refusal is reported", || async {
        handle.status().last_error.is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let status = handle.status();
    assert_ne!(status.state, "stream-wals");
    assert!(replicated(&secondary).await.is_empty());
    handle.stop().await;

    let mut cfg = primary.secondary_config("dr-2");
    cfg.ca_pem = other.ca_cert_pem.clone();
    let handle = start_secondary(cfg, secondary.clone(), Arc::new(Hooks::default()));
    eventually("the untrusted server is reported", || async {
        handle.status().last_error.is_some()
    })
    .await;
    assert_ne!(handle.status().state, "stream-wals");
    assert!(replicated(&secondary).await.is_empty());
    handle.stop().await;
}

#[tokio::test]
async fn revoked_secondary_is_refused_and_cut_off() {
    // Why: revoking a secondary id must stop both new and already-streaming connections.
    let primary = Primary::start().await;
    primary.write_batches("a", 5).await;
    primary
        .registry
        .revoked
        .lock()
        .unwrap()
        .insert("dr-gone".into());
    let secondary = Arc::new(InmemStorage::new());
    let handle = start_secondary(
        primary.secondary_config("dr-gone"),
        secondary.clone(),
        Arc::new(Hooks::default()),
    );
    eventually("the refusal is reported", || async {
        handle
            .status()
            .last_error
            .is_some_and(|e| e.contains("revoked"))
    })
    .await;
    assert!(replicated(&secondary).await.is_empty());
    handle.stop().await;

    let live = Arc::new(InmemStorage::new());
    let handle = start_secondary(
        primary.secondary_config("dr-live"),
        live.clone(),
        Arc::new(Hooks::default()),
    );
    converged(&primary.storage, &live, &handle).await;
    primary
        .registry
        .revoked
        .lock()
        .unwrap()
        .insert("dr-live".into());
    eventually("the live stream is cut", || async {
        handle.status().state != "stream-wals"
    })
    .await;
    primary.write_batches("after", 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(live.get("logical/after/0").await.unwrap().is_none());
    handle.stop().await;
}

#[tokio::test]
async fn listener_without_identity_refuses_everyone() {
    // Why: the cluster port is open before replication is configured; it must admit nobody.
    let primary = Primary::start().await;
    primary.listener.clear_identity().unwrap();
    let secondary = Arc::new(InmemStorage::new());
    let handle = SecondaryRunner::start(
        primary.secondary_config("dr-1"),
        secondary.clone(),
        Arc::new(Hooks::default()),
    )
    .unwrap();
    eventually("the refusal is reported", || async {
        handle.status().last_error.is_some()
    })
    .await;
    assert_ne!(handle.status().state, "stream-wals");
    handle.stop().await;
}

#[tokio::test]
async fn wire_carries_exactly_the_stored_ciphertext() {
    // Why: replication must ship barrier ciphertext byte for byte and never anything that
    // looks like plaintext; checked on the raw frames both for sync and for streaming.
    use strongroom_replication::PrimaryServer;
    use strongroom_replication::wire::{
        PROTOCOL_VERSION, PrimaryMsg, SecondaryMsg, read_frame, write_frame,
    };
    use strongroom_storage::{MerkleTree, WalPosition, replog::bucket_of};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const MARKER: &[u8] = b"PLAINTEXT-MARKER-do-not-ship";
    let seal = |i: u8| -> Vec<u8> {
        let mut v = vec![0xA5, i];
        v.extend(MARKER.iter().map(|b| b ^ 0x5c ^ i));
        v
    };
    let storage = Arc::new(InmemStorage::new());
    for i in 0..4u8 {
        storage
            .put(&format!("logical/s/{i}"), seal(i))
            .await
            .unwrap();
    }
    let registry = Arc::new(Registry::default());
    *registry.cluster_id.lock().unwrap() = Some(CLUSTER_ID.to_owned());
    let primary = Arc::new(PrimaryServer::new(storage.clone(), registry));
    let (client, server) = tokio::io::duplex(1 << 20);
    let (_tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move { primary.serve_connection(server, "dr-1".into(), rx).await });
    let (mut rd, mut wr) = tokio::io::split(client);

    let bogus = WalPosition {
        index: 999,
        epoch: 0,
        hash: [1; 32],
    };
    let buckets: Vec<u16> = {
        let mut b: Vec<u16> = (0..4u8)
            .map(|i| bucket_of(&format!("logical/s/{i}")))
            .collect();
        b.sort_unstable();
        b.dedup();
        b
    };
    for msg in [
        SecondaryMsg::Hello {
            secondary_id: "dr-1".into(),
            cluster_id: CLUSTER_ID.into(),
            position: bogus,
            protocol: PROTOCOL_VERSION,
            api_address: String::new(),
            cluster_address: String::new(),
        },
        SecondaryMsg::FetchBuckets {
            tree: MerkleTree::Shared,
            buckets,
        },
        SecondaryMsg::StreamFrom {
            position: WalPosition::default(),
        },
    ] {
        write_frame(&mut wr, &msg).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    wr.shutdown().await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), rd.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();

    assert!(
        !raw.windows(MARKER.len()).any(|w| w == MARKER),
        "plaintext marker on the wire"
    );
    let mut cursor = &raw[..];
    let (mut synced, mut streamed) = (Vec::new(), Vec::new());
    while let Some(msg) = read_frame::<_, PrimaryMsg>(&mut cursor).await.unwrap() {
        match msg {
            PrimaryMsg::HelloAck { resume, .. } => {
                assert!(!resume, "a forked position is not resumable")
            }
            PrimaryMsg::Pairs { pairs, .. } => synced.extend(pairs),
            PrimaryMsg::Wal { entries, .. } => {
                streamed.extend(entries.into_iter().flat_map(|e| e.ops))
            }
            _ => {}
        }
    }
    let expected: Vec<(String, Vec<u8>)> = (0..4u8)
        .map(|i| (format!("logical/s/{i}"), seal(i)))
        .collect();
    synced.sort();
    assert_eq!(synced, expected);
    let streamed: Vec<(String, Vec<u8>)> = streamed
        .into_iter()
        .filter_map(|op| match op {
            Op::Put { key, value } => Some((key, value)),
            Op::Delete { .. } => None,
        })
        .collect();
    assert_eq!(streamed, expected);
}

#[tokio::test]
async fn heartbeats_report_addresses_round_trips_and_primary_position() {
    // Why: status shows where each secondary lives and how far the link is, and promote's
    // catch-up check trusts the primary's last WAL index the secondary learned.
    let primary = Primary::start().await;
    primary.write_batches("a", 7).await;
    let secondary = Arc::new(InmemStorage::new());
    let hooks = Arc::new(Hooks::default());

    let handle = start_secondary(primary.secondary_config("dr-1"), secondary.clone(), hooks);
    converged(&primary.storage, &secondary, &handle).await;
    // Two heartbeat rounds each way, so both sides saw an echo.
    tokio::time::sleep(Duration::from_millis(2_600)).await;

    let peer = primary.registry.heartbeats.lock().unwrap()["dr-1"].clone();
    let status = handle.status();
    assert_eq!(peer.api_address, "https://dr-1.example:8200");
    assert_eq!(peer.cluster_address, "dr-1.example:8201");
    assert_eq!(peer.connection_status, "connected");
    assert!(
        peer.last_heartbeat_duration_ms < 1_000,
        "loopback round trip, minus the echo's hold time, is far below the 1 s interval: {}",
        peer.last_heartbeat_duration_ms
    );
    assert_eq!(
        status.primary_last_wal,
        primary.storage.replication_status().last_wal
    );
    assert_eq!(status.primary_last_wal, status.last_remote_wal);
    assert_eq!(status.primaries[0].cluster_address, primary.addr);
    assert!(status.primaries[0].last_heartbeat_duration_ms < 1_000);
    handle.stop().await;
}

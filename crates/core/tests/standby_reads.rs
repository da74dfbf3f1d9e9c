//! Standby reads in-process: two cores over real Raft (in-memory transport), one active and
//! one standby that serves reads through its own door and follows the active node's changes.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use strongroom_api::UnsealRequest;
use strongroom_core::ha::{IndexState, Tracked, track};
use strongroom_core::{Core, CoreConfig, CoreError, Operation, Request, Response};
use strongroom_storage::testing::MemNetwork;
use strongroom_storage::{Cluster, RaftOptions, RaftStorage, RaftTuning, Storage};

const WAIT: Duration = Duration::from_secs(20);

fn addr(i: usize) -> String {
    format!("node{i}:8201")
}

async fn open(net: &MemNetwork, dir: &Path, i: usize) -> Arc<RaftStorage> {
    let opts = RaftOptions::new(dir, format!("node{i}"), addr(i)).with_dialer(net.dialer(&addr(i)));
    let tuning = RaftTuning {
        performance_multiplier: 2,
        ..RaftTuning::default()
    };
    let s = RaftStorage::open_with(opts, tuning).await.unwrap();
    net.register(&addr(i), &s);
    s
}

fn core_on(storage: &Arc<RaftStorage>) -> Arc<Core> {
    let core = Core::new(CoreConfig::default(), storage.clone());
    core.set_cluster(storage.clone());
    core
}

/// An active core on node 1 and a read-serving standby core on node 2; the root token.
struct Pair {
    active: Arc<Core>,
    standby: Arc<Core>,
    root: String,
    _dirs: [tempfile::TempDir; 2],
    _net: MemNetwork,
}

async fn pair() -> Pair {
    let net = MemNetwork::new();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let n1 = open(&net, dirs[0].path(), 1).await;
    n1.bootstrap().await.unwrap();
    let active = core_on(&n1);
    let (key, root) = active.dev_bootstrap(None).await.unwrap();
    let n2 = open(&net, dirs[1].path(), 2).await;
    n1.add_non_voter("node2", &addr(2)).await.unwrap();
    n2.wait_applied(n1.status().committed_index, WAIT)
        .await
        .unwrap();
    let standby = core_on(&n2);
    let status = standby
        .unseal(UnsealRequest {
            key: Some(key),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!status.sealed);
    let deadline = Instant::now() + WAIT;
    while !standby.serves_standby_reads() {
        assert!(Instant::now() < deadline, "the standby never served reads");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Pair {
        active,
        standby,
        root,
        _dirs: dirs,
        _net: net,
    }
}

fn req(op: Operation, path: &str, token: &str, data: Value) -> Request {
    let data: Map<String, Value> = data.as_object().cloned().unwrap_or_default();
    Request::new(op, path).with_token(token).with_data(data)
}

/// A write on the active node, and the index its response would carry.
async fn write(core: &Core, token: &str, path: &str, data: Value) -> (Response, IndexState) {
    let (resp, tracked) = track(
        false,
        core.handle(req(Operation::Update, path, token, data)),
    )
    .await;
    assert!(tracked.wrote, "{path} wrote nothing");
    (resp.unwrap(), core.written_index())
}

/// A read served on the standby, once it holds `at`.
async fn read_at(
    core: &Core,
    token: &str,
    path: &str,
    at: &IndexState,
) -> (Result<Response, CoreError>, Tracked) {
    assert!(
        core.await_index(at.raft_index, WAIT).await,
        "never reached {at:?}"
    );
    track(
        true,
        core.handle(req(Operation::Read, path, token, json!({}))),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_standby_serves_reads_at_the_index_of_the_active_nodes_changes() {
    // Set up: a KV mount and a token whose policy grants nothing yet, all made on the active
    // node after the standby loaded its state; the standby caches the policy by reading once.
    let p = pair().await;
    write(&p.active, &p.root, "sys/mounts/kv", json!({"type": "kv"})).await;
    write(
        &p.active,
        &p.root,
        "sys/policies/acl/reader",
        json!({"policy": "path \"other/*\" { capabilities = [\"read\"] }"}),
    )
    .await;
    let (token, _) = write(
        &p.active,
        &p.root,
        "auth/token/create",
        json!({"policies": ["reader"]}),
    )
    .await;
    let token = token.auth.unwrap().client_token;
    let (_, at) = write(&p.active, &p.root, "kv/a", json!({"v": "1"})).await;
    let (denied, _) = read_at(&p.standby, &token, "kv/a", &at).await;
    assert!(
        matches!(denied, Err(CoreError::PermissionDenied)),
        "{denied:?}"
    );

    // Act: the active node widens the policy and rotates the keyring, then writes again.
    write(
        &p.active,
        &p.root,
        "sys/policies/acl/reader",
        json!({"policy": "path \"kv/*\" { capabilities = [\"read\"] }"}),
    )
    .await;
    write(&p.active, &p.root, "sys/rotate", json!({})).await;
    let (_, at) = write(&p.active, &p.root, "kv/b", json!({"v": "2"})).await;
    let (read, tracked) = read_at(&p.standby, &token, "kv/b", &at).await;
    let (status, _) = read_at(&p.standby, &p.root, "sys/key-status", &at).await;

    // Assert: the standby served both reads itself, under the new policy and keyring term.
    assert_eq!(read.unwrap().data.unwrap()["v"], "2");
    assert_eq!(tracked, Tracked::default());
    assert_eq!(status.unwrap().data.unwrap()["term"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_standby_read_that_must_write_is_handed_to_the_active_node() {
    // Set up: a token with a use limit (every use writes) and a read that asks for wrapping
    // (which mints a token).
    let p = pair().await;
    write(&p.active, &p.root, "sys/mounts/kv", json!({"type": "kv"})).await;
    write(&p.active, &p.root, "kv/a", json!({"v": "1"})).await;
    let (limited, at) = write(
        &p.active,
        &p.root,
        "auth/token/create",
        json!({"num_uses": 3, "policies": ["root"]}),
    )
    .await;
    let limited = limited.auth.unwrap().client_token;
    let mut wrapped = req(Operation::Read, "kv/a", &p.root, json!({}));
    wrapped.wrap_ttl = Some(Duration::from_secs(60));
    assert!(p.standby.await_index(at.raft_index, WAIT).await);
    let before = p.standby.storage().status().applied_index;

    // Act
    let (uses, uses_tracked) = read_at(&p.standby, &limited, "kv/a", &at).await;
    let (wrap, wrap_tracked) = track(true, p.standby.handle(wrapped)).await;
    let (root_read, root_tracked) = read_at(&p.standby, &p.root, "kv/a", &at).await;

    // Assert: both go to the active node, nothing was written here, and a plain read is local.
    assert!(uses.is_err() && uses_tracked.needs_active, "{uses:?}");
    assert!(wrap.is_err() && wrap_tracked.needs_active, "{wrap:?}");
    assert_eq!(root_read.unwrap().data.unwrap()["v"], "1");
    assert_eq!(root_tracked, Tracked::default());
    assert_eq!(p.standby.storage().status().applied_index, before);
}

//! Durability: every acknowledged write survives `kill -9`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Node;
use reqwest::Method;
use serde_json::{Value, json};

#[test]
fn acknowledged_writes_survive_kill_9() {
    // Set up: a raft node with a kv mount.
    let mut node = Node::new();
    node.start();
    let (keys, root) = node.init_and_unseal(1, 1);
    node.req(Method::POST, "sys/mounts/kv", &root)
        .json(&json!({"type": "kv"}))
        .send()
        .unwrap();

    // Act: four writers stream writes and record each acknowledgement; kill -9 mid-stream.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (acked, stop) = (acked.clone(), stop.clone());
        let client = node.client();
        let (addr, root) = (node.addr.clone(), root.clone());
        writers.push(std::thread::spawn(move || {
            for i in 0..100_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let key = format!("w{w}-{i}");
                let r = client
                    .put(format!("{addr}/v1/kv/{key}"))
                    .header("X-Vault-Token", &root)
                    .json(&json!({"v": key}))
                    .send();
                match r {
                    Ok(r) if r.status() == 204 => acked.lock().unwrap().push(key),
                    _ => break,
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(1500));
    node.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 20,
        "the writers made progress before the kill ({} acks)",
        acked.len()
    );

    // Assert: after restart and unseal, every acknowledged write is present with its value.
    node.start();
    node.unseal(&keys);
    let mut missing = Vec::new();
    for key in &acked {
        let r = node
            .req(Method::GET, &format!("kv/{key}"), &root)
            .send()
            .unwrap();
        if r.status() != 200 {
            missing.push(key.clone());
            continue;
        }
        let v: Value = r.json().unwrap();
        assert_eq!(v["data"]["v"], key.as_str());
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(10)]
    );
}

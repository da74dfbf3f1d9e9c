//! Bad input gets a clear error and loses nothing.

mod common;

use common::{BIN, Node};
use reqwest::Method;
use serde_json::{Value, json};

fn errors(r: reqwest::blocking::Response) -> (u16, Vec<String>, String) {
    let code = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body: Value = r.json().unwrap_or(Value::Null);
    let errs = body["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    (code, errs, ct)
}

#[test]
fn malformed_oversized_and_mistyped_requests_are_refused_cleanly() {
    // Set up: a node with one secret.
    let mut node = Node::new();
    node.start();
    let (_, root) = node.init_and_unseal(1, 1);
    node.req(Method::POST, "sys/mounts/kv", &root)
        .json(&json!({"type": "kv"}))
        .send()
        .unwrap();
    node.req(Method::PUT, "kv/keep", &root)
        .json(&json!({"v": "safe"}))
        .send()
        .unwrap();

    // Malformed JSON → 400 with a message, exactly application/json.
    let r = node
        .req(Method::PUT, "kv/keep", &root)
        .body("{not json")
        .send()
        .unwrap();
    let (code, errs, ct) = errors(r);
    assert_eq!(code, 400);
    assert_eq!(ct, "application/json");
    assert!(!errs.is_empty() && !errs[0].is_empty());

    // A body over 32 MiB → 413.
    let big = vec![b' '; 33 * 1024 * 1024];
    let r = node.req(Method::PUT, "kv/keep", &root).body(big).send();
    if let Ok(r) = r {
        assert_eq!(r.status(), 413);
    } // (a server may also close the connection early; either way nothing was written)

    // Wrong types → 400, never 500.
    let c = node.client();
    let r = c
        .put(format!("{}/v1/sys/init", node.addr))
        .json(&json!({"secret_shares": "abc"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = node
        .req(Method::POST, "sys/mounts/x", &root)
        .json(&json!({"type": 12}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);

    // Unknown path → 404; no token → 403; bad token → 403.
    assert_eq!(
        node.req(Method::GET, "nosuchmount/x", &root)
            .send()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        c.get(format!("{}/v1/kv/keep", node.addr))
            .send()
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        node.req(Method::GET, "kv/keep", "hvs.bogus")
            .send()
            .unwrap()
            .status(),
        403
    );

    // Wrong unseal key on a sealed server → 400, still sealed.
    node.req(Method::PUT, "sys/seal", &root).send().unwrap();
    let r = c
        .put(format!("{}/v1/sys/unseal", node.addr))
        .json(&json!({"key": "00".repeat(33)}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let st: Value = c
        .get(format!("{}/v1/sys/seal-status", node.addr))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(st["sealed"], true);
    assert_eq!(st["progress"], 0);
}

#[test]
fn invalid_config_file_names_file_line_and_setting() {
    // Set up: a config with a misspelled listener setting on line 5.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.hcl");
    std::fs::write(&cfg, "storage \"inmem\" {}\n\nlistener \"tcp\" {\n  address = \"127.0.0.1:0\"\n  tls_cert_fil = \"x.pem\"\n}\n").unwrap();

    // Act
    let out = std::process::Command::new(BIN)
        .arg("server")
        .arg(format!("-config={}", cfg.display()))
        .output()
        .unwrap();

    // Assert: exit 1, and the message names the file, the line and the setting.
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.hcl") && err.contains(":5") && err.contains("tls_cert_fil"),
        "{err}"
    );
}

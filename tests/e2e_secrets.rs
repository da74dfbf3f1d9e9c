//! End-to-end: tokens, policies, KV v1/v2, userpass, approle, wrapping and audit against the
//! real binary over TLS.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{Node, ok};
use reqwest::Method;
use serde_json::{Value, json};

/// A node with: KV v2 at secret/, KV v1 at kv1/, userpass and approle enabled, and an `app`
/// policy that may read and write secret/data/app/* and read kv1/shared/*.
fn setup() -> (Node, Vec<String>, String) {
    let mut node = Node::new();
    node.start();
    let (keys, root) = node.init_and_unseal(1, 1);
    ok(node
        .req(Method::POST, "sys/mounts/secret", &root)
        .json(&json!({"type": "kv", "options": {"version": "2"}}))
        .send()
        .unwrap());
    ok(node
        .req(Method::POST, "sys/mounts/kv1", &root)
        .json(&json!({"type": "kv"}))
        .send()
        .unwrap());
    ok(node
        .req(Method::POST, "sys/auth/userpass", &root)
        .json(&json!({"type": "userpass"}))
        .send()
        .unwrap());
    ok(node
        .req(Method::POST, "sys/auth/approle", &root)
        .json(&json!({"type": "approle"}))
        .send()
        .unwrap());
    let policy = r#"
path "secret/data/app/*" {
  capabilities = ["create", "read", "update"]
}
path "kv1/shared/*" {
  capabilities = ["read"]
}
path "auth/token/create" {
  capabilities = ["update"]
}
"#;
    ok(node
        .req(Method::PUT, "sys/policies/acl/app", &root)
        .json(&json!({"policy": policy}))
        .send()
        .unwrap());
    (node, keys, root)
}

#[test]
fn userpass_login_is_limited_by_policy_on_kv_v1_and_v2() {
    // Set up
    let (node, _, root) = setup();
    ok(node
        .req(Method::PUT, "auth/userpass/users/alice", &root)
        .json(&json!({"password": "correct horse", "token_policies": "app"}))
        .send()
        .unwrap());
    ok(node
        .req(Method::PUT, "kv1/shared/motd", &root)
        .json(&json!({"text": "hello"}))
        .send()
        .unwrap());

    // Act: log in without a token.
    let c = node.client();
    let login = ok(c
        .post(format!("{}/v1/auth/userpass/login/alice", node.addr))
        .json(&json!({"password": "correct horse"}))
        .send()
        .unwrap());
    let token = login["auth"]["client_token"].as_str().unwrap().to_string();
    assert!(
        login["auth"]["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "app")
    );

    // Assert: what the policy grants works; everything else is 403.
    ok(node
        .req(Method::PUT, "secret/data/app/db", &token)
        .json(&json!({"data": {"pw": "s3"}}))
        .send()
        .unwrap());
    let v = ok(node
        .req(Method::GET, "secret/data/app/db", &token)
        .send()
        .unwrap());
    assert_eq!(v["data"]["data"]["pw"], "s3");
    assert_eq!(v["data"]["metadata"]["version"], 1);
    assert_eq!(
        ok(node
            .req(Method::GET, "kv1/shared/motd", &token)
            .send()
            .unwrap())["data"]["text"],
        "hello"
    );
    assert_eq!(
        node.req(Method::PUT, "kv1/shared/motd", &token)
            .json(&json!({"text": "x"}))
            .send()
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        node.req(Method::GET, "secret/data/other", &token)
            .send()
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        node.req(Method::DELETE, "secret/data/app/db", &token)
            .send()
            .unwrap()
            .status(),
        403
    );

    // Why: a wrong password and an unknown user look the same.
    let bad1 = c
        .post(format!("{}/v1/auth/userpass/login/alice", node.addr))
        .json(&json!({"password": "nope"}))
        .send()
        .unwrap();
    let bad2 = c
        .post(format!("{}/v1/auth/userpass/login/mallory", node.addr))
        .json(&json!({"password": "nope"}))
        .send()
        .unwrap();
    assert_eq!((bad1.status().as_u16(), bad2.status().as_u16()), (400, 400));
    assert_eq!(bad1.text().unwrap(), bad2.text().unwrap());
}

#[test]
fn approle_login_and_secret_id_use_limits() {
    // Set up: a role whose secret ids work once.
    let (node, _, root) = setup();
    ok(node
        .req(Method::PUT, "auth/approle/role/ci", &root)
        .json(&json!({"token_policies": ["app"], "secret_id_num_uses": 1}))
        .send()
        .unwrap());
    let role_id = ok(node
        .req(Method::GET, "auth/approle/role/ci/role-id", &root)
        .send()
        .unwrap())["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret_id = ok(node
        .req(Method::POST, "auth/approle/role/ci/secret-id", &root)
        .send()
        .unwrap())["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Act: log in twice with the same secret id.
    let c = node.client();
    let login = |sid: &str| {
        c.post(format!("{}/v1/auth/approle/login", node.addr))
            .json(&json!({"role_id": role_id, "secret_id": sid}))
            .send()
            .unwrap()
    };
    let first = ok(login(&secret_id));
    let second = login(&secret_id);

    // Assert: first works and carries the policy; the second is refused.
    let token = first["auth"]["client_token"].as_str().unwrap();
    ok(node
        .req(Method::PUT, "secret/data/app/ci", token)
        .json(&json!({"data": {"k": "v"}}))
        .send()
        .unwrap());
    assert_eq!(second.status(), 400);
    assert_eq!(login("not-a-secret-id").status(), 400);
}

#[test]
fn wrapped_responses_unwrap_once() {
    // Set up
    let (node, _, root) = setup();
    ok(node
        .req(Method::PUT, "secret/data/app/w", &root)
        .json(&json!({"data": {"x": "wrapped-value"}}))
        .send()
        .unwrap());

    // Act: read with a wrap TTL.
    let wrapped = ok(node
        .req(Method::GET, "secret/data/app/w", &root)
        .header("X-Vault-Wrap-TTL", "60s")
        .send()
        .unwrap());
    assert!(wrapped["data"].is_null());
    assert_eq!(wrapped["wrap_info"]["ttl"], 60);
    let wtoken = wrapped["wrap_info"]["token"].as_str().unwrap().to_string();

    // Assert: unwrap returns the original; a second unwrap is refused.
    let c = node.client();
    let unwrapped = ok(c
        .post(format!("{}/v1/sys/wrapping/unwrap", node.addr))
        .header("X-Vault-Token", &wtoken)
        .send()
        .unwrap());
    assert_eq!(unwrapped["data"]["data"]["x"], "wrapped-value");
    let again = c
        .post(format!("{}/v1/sys/wrapping/unwrap", node.addr))
        .header("X-Vault-Token", &wtoken)
        .send()
        .unwrap();
    assert_eq!(again.status(), 400);
}

#[test]
fn token_revocation_cascades_and_ttls_survive_restart() {
    // Set up: parent → child; and a short-lived token.
    let (mut node, keys, root) = setup();
    let parent = ok(node
        .req(Method::POST, "auth/token/create", &root)
        .json(&json!({"policies": ["app"], "ttl": "1h"}))
        .send()
        .unwrap())["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let child = ok(node
        .req(Method::POST, "auth/token/create", &parent)
        .json(&json!({"policies": ["app"]}))
        .send()
        .unwrap())["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let short = ok(node
        .req(Method::POST, "auth/token/create", &root)
        .json(&json!({"ttl": "4s"}))
        .send()
        .unwrap())["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    ok(node
        .req(Method::GET, "auth/token/lookup-self", &child)
        .send()
        .unwrap());

    // Act: restart the server; then revoke the parent.
    node.stop();
    node.start();
    node.unseal(&keys);
    ok(node
        .req(Method::GET, "auth/token/lookup-self", &child)
        .send()
        .unwrap());
    ok(node
        .req(Method::POST, "auth/token/revoke", &root)
        .json(&json!({"token": parent}))
        .send()
        .unwrap());

    // Assert: the child died with its parent; the short token expires after the restart too.
    assert_eq!(
        node.req(Method::GET, "auth/token/lookup-self", &child)
            .send()
            .unwrap()
            .status(),
        403
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = node
            .req(Method::GET, "auth/token/lookup-self", &short)
            .send()
            .unwrap()
            .status();
        if s == 403 {
            break;
        }
        assert!(Instant::now() < deadline, "short-lived token never expired");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn audit_log_has_hmacs_not_plaintext() {
    // Set up: a file audit device.
    let (node, _, root) = setup();
    let log = node.dir.path().join("audit.log");
    ok(node
        .req(Method::PUT, "sys/audit/file", &root)
        .json(&json!({"type": "file", "options": {"file_path": log.to_str().unwrap()}}))
        .send()
        .unwrap());

    // Act: write a distinctive secret.
    let needle = "AUDIT-NEEDLE-93d1";
    ok(node
        .req(Method::PUT, "secret/data/app/a", &root)
        .json(&json!({"data": {"v": needle}}))
        .send()
        .unwrap());
    let hash = ok(node
        .req(Method::PUT, "sys/audit-hash/file", &root)
        .json(&json!({"input": needle}))
        .send()
        .unwrap())["data"]["hash"]
        .as_str()
        .unwrap()
        .to_string();

    // Assert: the value appears only as its HMAC; request and response lines pair up.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(needle), "plaintext secret in the audit log");
    assert!(!text.contains(&root), "plaintext token in the audit log");
    assert!(
        text.contains(&hash),
        "the secret's HMAC is missing from the audit log"
    );
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "request" && l["request"]["path"] == "secret/data/app/a")
    );
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "response" && l["request"]["path"] == "secret/data/app/a")
    );
}

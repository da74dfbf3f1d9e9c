//! Secrets never reach a log: the main flows run against a DR pair logging at trace level, a
//! file audit device records the primary, and then every byte either server wrote (stdout,
//! stderr) and the audit file are searched for every secret the flows handled.
//!
//! Why end to end: a leak is a property of the whole binary (a `Debug` derive on a request
//! type, an error that quotes its input, a dependency's trace output), so only the real
//! processes at their most verbose level can show there is none.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use base64::Engine as _;
use common::{Node, ok, wait_caught_up, wait_for};
use reqwest::Method;
use serde_json::{Value, json};

/// Every secret value the flows saw, each with a name for the failure message.
#[derive(Default)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, what: &str, value: &str) -> String {
        assert!(
            value.len() >= 8,
            "{what} is too short to search for: {value:?}"
        );
        self.0.push((what.to_string(), value.to_string()));
        value.to_string()
    }
}

const TRACE: &str = r#"log_level = "trace""#;

#[test]
fn no_secret_reaches_the_logs_or_the_audit_file() {
    // Set up: two servers logging at trace, A audited to a file.
    let mut s = Secrets::default();
    let mut a = Node::with_extra_config(TRACE);
    let mut b = Node::with_extra_config(TRACE);
    a.start();
    b.start();
    let root = init_and_unseal(&a, "A", 3, &mut s);
    let b_root = init_and_unseal(&b, "B", 1, &mut s);
    let audit = a.dir.path().join("audit.log");
    ok(a.req(Method::PUT, "sys/audit/file", &root)
        .json(&json!({"type": "file", "options": {"file_path": audit.to_str().unwrap()}}))
        .send()
        .unwrap());

    // Act: the client flows on A, then DR enable and a planned failover to B.
    let kv2_hmac = client_flows(&a, &root, &mut s);
    let streamed = dr_flows(&a, &b, &root, &b_root, &mut s);
    assert_eq!(
        read_kv2(&b, &root),
        streamed,
        "the promoted B serves A's data"
    );
    a.stop();
    b.stop();

    // Assert: the files are real logs (trace lines from both servers, audit entries that
    // hold the KV value's HMAC) and not one of them holds a secret.
    let logs = [
        a.stdout_log(),
        a.stderr_log(),
        b.stdout_log(),
        b.stderr_log(),
    ];
    assert_has_trace_lines(&a.stderr_log(), "strongroom_replication::primary");
    assert_has_trace_lines(&b.stderr_log(), "strongroom_replication::runner");
    let audit_text = std::fs::read_to_string(&audit).unwrap();
    assert!(
        audit_text.lines().count() >= 20,
        "audit log too short: {audit_text}"
    );
    assert!(
        audit_text.contains(&kv2_hmac),
        "the audit log lacks the KV v2 value's HMAC {kv2_hmac}"
    );
    for file in logs.iter().chain([&audit]) {
        let bytes = std::fs::read(file).unwrap();
        for (what, value) in &s.0 {
            assert!(
                !contains(&bytes, value.as_bytes()),
                "{what} appears in {}",
                file.display()
            );
        }
    }
}

/// `sys/init` with `shares` keys (threshold 1 for one share, 2 otherwise); unseals with one
/// key in hex and, when there are more, one in base64. Returns the root token.
fn init_and_unseal(node: &Node, name: &str, shares: u32, s: &mut Secrets) -> String {
    let threshold = if shares == 1 { 1 } else { 2 };
    let init = ok(node
        .client()
        .put(format!("{}/v1/sys/init", node.addr))
        .json(&json!({"secret_shares": shares, "secret_threshold": threshold}))
        .send()
        .unwrap());
    let strings = |field: &str| -> Vec<String> {
        let v = init[field].as_array().unwrap();
        v.iter().map(|k| k.as_str().unwrap().to_string()).collect()
    };
    let (hex, b64) = (strings("keys"), strings("keys_base64"));
    for (i, (h, b)) in hex.iter().zip(&b64).enumerate() {
        s.add(&format!("{name}'s unseal key {i} (hex)"), h);
        s.add(&format!("{name}'s unseal key {i} (base64)"), b);
    }
    let mut unseal_with = vec![hex[0].clone()];
    if threshold > 1 {
        unseal_with.push(b64[1].clone());
    }
    let last = node.unseal(&unseal_with);
    assert_eq!(last["sealed"], false, "{name} unsealed: {last}");
    s.add(
        &format!("{name}'s root token"),
        init["root_token"].as_str().unwrap(),
    )
}

/// Mounts, KV v1 and v2 writes, userpass (also refused) and approle logins, a created token,
/// a wrapped read and its unwrap (then refused). Returns the audit device's HMAC of the KV v2
/// value.
fn client_flows(a: &Node, root: &str, s: &mut Secrets) -> String {
    for (path, body) in [
        (
            "sys/mounts/secret",
            json!({"type": "kv", "options": {"version": "2"}}),
        ),
        ("sys/mounts/kv1", json!({"type": "kv"})),
        ("sys/auth/userpass", json!({"type": "userpass"})),
        ("sys/auth/approle", json!({"type": "approle"})),
    ] {
        ok(a.req(Method::POST, path, root).json(&body).send().unwrap());
    }
    let kv2 = s.add("the KV v2 value", "kv2-value-Q7rT2mXp9");
    let kv1 = s.add("the KV v1 value", "kv1-value-Lw4Zc8Vn3");
    ok(a.req(Method::PUT, "secret/data/app", root)
        .json(&json!({"data": {"password": kv2}}))
        .send()
        .unwrap());
    ok(a.req(Method::PUT, "kv1/app", root)
        .json(&json!({"password": kv1}))
        .send()
        .unwrap());
    assert_eq!(read_kv2(a, root), kv2);

    let password = s.add("the userpass password", "userpass-pw-Hd5Kq1Ys");
    ok(a.req(Method::PUT, "auth/userpass/users/alice", root)
        .json(&json!({"password": password, "token_policies": "default"}))
        .send()
        .unwrap());
    let token = login(
        a,
        "auth/userpass/login/alice",
        json!({"password": password}),
    );
    s.add("the userpass login's token", &token);
    // Why: error paths are where inputs get quoted; a wrong password is a secret too.
    let wrong = s.add("a wrong userpass password", "wrong-pw-Rb8Ue2Wc");
    let refused = a
        .client()
        .post(format!("{}/v1/auth/userpass/login/alice", a.addr))
        .json(&json!({"password": wrong}))
        .send()
        .unwrap();
    assert_eq!(refused.status(), 400);

    ok(a.req(Method::PUT, "auth/approle/role/ci", root)
        .json(&json!({"token_policies": ["default"]}))
        .send()
        .unwrap());
    let role_id = field(
        a,
        Method::GET,
        "auth/approle/role/ci/role-id",
        root,
        "role_id",
    );
    s.add("the approle role_id", &role_id);
    let secret_id = field(
        a,
        Method::POST,
        "auth/approle/role/ci/secret-id",
        root,
        "secret_id",
    );
    s.add("the approle secret_id", &secret_id);
    let token = login(
        a,
        "auth/approle/login",
        json!({"role_id": role_id, "secret_id": secret_id}),
    );
    s.add("the approle login's token", &token);

    let created = create_token(a, root, json!({"policies": ["default"], "ttl": "1h"}));
    s.add("a created token", &created);

    let wrapped = ok(a
        .req(Method::GET, "secret/data/app", root)
        .header("X-Vault-Wrap-TTL", "60s")
        .send()
        .unwrap());
    let wrapping = s.add(
        "the wrapping token",
        wrapped["wrap_info"]["token"].as_str().unwrap(),
    );
    let unwrapped = ok(a
        .client()
        .post(format!("{}/v1/sys/wrapping/unwrap", a.addr))
        .header("X-Vault-Token", &wrapping)
        .send()
        .unwrap());
    assert_eq!(unwrapped["data"]["data"]["password"], kv2.as_str());
    let again = a
        .client()
        .post(format!("{}/v1/sys/wrapping/unwrap", a.addr))
        .header("X-Vault-Token", &wrapping)
        .send()
        .unwrap();
    assert_eq!(again.status(), 400, "a wrapping token unwraps once");
    let hmac = ok(a
        .req(Method::PUT, "sys/audit-hash/file", root)
        .json(&json!({"input": kv2}))
        .send()
        .unwrap());
    hmac["data"]["hash"].as_str().unwrap().to_string()
}

/// DR primary enable, activation token, secondary enable, catch-up, demote A, promote B with
/// a batch DR operation token, a token issued by the promoted B. Returns the KV v2 value
/// written while streaming.
fn dr_flows(a: &Node, b: &Node, root: &str, b_root: &str, s: &mut Secrets) -> String {
    ok(
        a.req(Method::PUT, "sys/replication/dr/primary/enable", root)
            .send()
            .unwrap(),
    );
    let activation = ok(a
        .req(
            Method::PUT,
            "sys/replication/dr/primary/secondary-token",
            root,
        )
        .json(&json!({"id": "dr-east"}))
        .send()
        .unwrap())["wrap_info"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    s.add("the DR activation token", &activation);
    if let Some(inner) = jwt_wrapping_token(&activation) {
        s.add("the wrapping token inside the DR activation token", &inner);
    }
    ok(
        b.req(Method::PUT, "sys/replication/dr/secondary/enable", b_root)
            .json(&json!({
                "token": activation,
                "primary_api_addr": a.addr,
                "ca_file": a.certs.ca.to_str().unwrap(),
            }))
            .send()
            .unwrap(),
    );
    ok(a.req(Method::PUT, "sys/policies/acl/dr-promote", root)
        .json(&json!({"policy": "path \"sys/replication/dr/secondary/promote\" { capabilities = [\"update\"] }"}))
        .send()
        .unwrap());
    let dr_op = create_token(
        a,
        root,
        json!({"policies": ["dr-promote"], "type": "batch", "no_parent": true, "ttl": "1h"}),
    );
    s.add("the batch DR operation token", &dr_op);
    wait_caught_up(a, b, 60);
    // Why: a write after the catch-up reaches B as a streamed WAL entry, not by merkle sync.
    let streamed = s.add(
        "the KV v2 value written while streaming",
        "kv2-streamed-Ne6Bw0Jt",
    );
    ok(a.req(Method::PUT, "secret/data/app", root)
        .json(&json!({"data": {"password": streamed}}))
        .send()
        .unwrap());
    wait_caught_up(a, b, 60);

    ok(
        a.req(Method::PUT, "sys/replication/dr/primary/demote", root)
            .send()
            .unwrap(),
    );
    ok(b.client()
        .put(format!(
            "{}/v1/sys/replication/dr/secondary/promote",
            b.addr
        ))
        .json(&json!({"dr_operation_token": dr_op}))
        .send()
        .unwrap());
    wait_for(30, "the promoted B to serve", || {
        b.req(Method::GET, "secret/data/app", root)
            .send()
            .is_ok_and(|r| r.status() == 200)
    });
    let issued = create_token(b, root, json!({"policies": ["default"], "ttl": "1h"}));
    s.add("a token issued by the promoted B", &issued);
    streamed
}

/// The `wt` claim (the wrapping token) of an activation JWT, if it decodes.
fn jwt_wrapping_token(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims["wt"].as_str().map(str::to_string)
}

fn read_kv2(node: &Node, token: &str) -> String {
    let v = ok(node
        .req(Method::GET, "secret/data/app", token)
        .send()
        .unwrap());
    v["data"]["data"]["password"].as_str().unwrap().to_string()
}

/// `auth/token/create` with `body`; returns the new token.
fn create_token(node: &Node, token: &str, body: Value) -> String {
    let r = ok(node
        .req(Method::POST, "auth/token/create", token)
        .json(&body)
        .send()
        .unwrap());
    r["auth"]["client_token"].as_str().unwrap().to_string()
}

/// Logs in without a token; returns the client token.
fn login(node: &Node, path: &str, body: Value) -> String {
    let r = ok(node
        .client()
        .post(format!("{}/v1/{path}", node.addr))
        .json(&body)
        .send()
        .unwrap());
    r["auth"]["client_token"].as_str().unwrap().to_string()
}

/// `data.<name>` of an authenticated request.
fn field(node: &Node, method: Method, path: &str, token: &str, name: &str) -> String {
    let r = ok(node.req(method, path, token).send().unwrap());
    r["data"][name].as_str().unwrap().to_string()
}

/// The log holds trace-level lines from our crates, among them one from `module` (so capture
/// is not empty and the level took effect everywhere), and no ANSI colour codes that could
/// split a needle.
fn assert_has_trace_lines(log: &Path, module: &str) {
    let text = std::fs::read_to_string(log).unwrap();
    let trace: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" TRACE strongroom"))
        .collect();
    assert!(
        trace.len() >= 5 && trace.iter().any(|l| l.contains(module)),
        "{} has {} trace lines, none from {module}; is log_level = \"trace\" in effect?\n{text}",
        log.display(),
        trace.len()
    );
    assert!(
        !text.contains('\u{1b}'),
        "{} holds ANSI escapes",
        log.display()
    );
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

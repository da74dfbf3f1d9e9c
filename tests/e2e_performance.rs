//! End-to-end performance replication: real server processes over TLS, several clusters.
//!
//! A performance secondary serves reads from the shared data it streams, keeps its own tokens
//! and local mounts, hands changes of shared state to its primary and waits for them to come
//! back; path filters keep mounts off it; its own DR secondary inherits its role and its
//! tokens; and the roles can be swapped with promote, demote and update-primary.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Node, ok, wait_for};
use reqwest::Method;
use serde_json::{Value, json};

/// A policy granting everything: the test's regional operator.
const ADMIN_POLICY: &str =
    r#"path "*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }"#;

fn perf_status(node: &Node) -> Value {
    ok(node
        .client()
        .get(format!(
            "{}/v1/sys/replication/performance/status",
            node.addr
        ))
        .send()
        .unwrap())["data"]
        .clone()
}

fn health(node: &Node) -> Value {
    node.client()
        .get(format!("{}/v1/sys/health", node.addr))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

/// Waits until `secondary` streams from `primary` and applied everything it logged.
fn wait_streaming(primary: &Node, secondary: &Node) {
    wait_for(60, "the performance secondary to catch up", || {
        let (p, s) = (perf_status(primary), perf_status(secondary));
        s["state"] == "stream-wals"
            && s["last_remote_wal"].as_u64() >= p["last_performance_wal"].as_u64()
    });
}

fn kv_put(node: &Node, token: &str, path: &str, value: &str) -> reqwest::blocking::Response {
    node.req(Method::PUT, path, token)
        .json(&json!({"v": value}))
        .send()
        .unwrap()
}

fn kv_get(node: &Node, token: &str, path: &str) -> Option<String> {
    let r = node.req(Method::GET, path, token).send().unwrap();
    if r.status() != 200 {
        return None;
    }
    let v: Value = r.json().unwrap();
    v["data"]["v"].as_str().map(str::to_string)
}

/// A primary with a KV v1 mount `secret/`, userpass with `bob` (admin policy), PR enabled.
fn primary() -> (Node, String) {
    let mut a = Node::new();
    a.start();
    let (_, root) = a.init_and_unseal(1, 1);
    ok(a.req(Method::POST, "sys/mounts/secret", &root)
        .json(&json!({"type": "kv"}))
        .send()
        .unwrap());
    ok(a.req(Method::PUT, "sys/policies/acl/admin", &root)
        .json(&json!({"policy": ADMIN_POLICY}))
        .send()
        .unwrap());
    ok(a.req(Method::POST, "sys/auth/userpass", &root)
        .json(&json!({"type": "userpass"}))
        .send()
        .unwrap());
    ok(a.req(Method::PUT, "auth/userpass/users/bob", &root)
        .json(&json!({"password": "pw", "policies": "admin"}))
        .send()
        .unwrap());
    (a, root)
}

/// An activation token for performance secondary `id`.
fn pr_token(primary: &Node, token: &str, id: &str) -> String {
    let r = ok(primary
        .req(
            Method::PUT,
            "sys/replication/performance/primary/secondary-token",
            token,
        )
        .json(&json!({"id": id}))
        .send()
        .unwrap());
    r["wrap_info"]["token"].as_str().unwrap().to_string()
}

/// Starts a cluster and makes it a performance secondary of `a` with `token`.
fn secondary_of(a: &Node, token: &str) -> Node {
    let mut b = Node::new();
    b.start();
    let (_, b_root) = b.init_and_unseal(1, 1);
    ok(b.req(
        Method::PUT,
        "sys/replication/performance/secondary/enable",
        &b_root,
    )
    .json(&json!({"token": token, "primary_api_addr": a.addr, "ca_file": a.certs.ca.to_str().unwrap()}))
    .send()
    .unwrap());
    b
}

/// The role id of AppRole role `role`, read through `node`.
fn approle_role_id(node: &Node, token: &str, role: &str) -> String {
    ok(node
        .req(
            Method::GET,
            &format!("auth/approle/role/{role}/role-id"),
            token,
        )
        .send()
        .unwrap())["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn login(node: &Node) -> String {
    ok(node
        .client()
        .put(format!("{}/v1/auth/userpass/login/bob", node.addr))
        .json(&json!({"password": "pw"}))
        .send()
        .unwrap())["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_performance_secondary_serves_reads_forwards_writes_and_keeps_its_own_tokens() {
    // Set up: a primary holding a secret, and the seed's three commands run with our CLI.
    let (a, root) = primary();
    assert_eq!(kv_put(&a, &root, "secret/before", "from-a").status(), 204);
    ok(a.req(Method::POST, "sys/auth/approle", &root)
        .json(&json!({"type": "approle"}))
        .send()
        .unwrap());
    ok(a.req(Method::PUT, "auth/approle/role/app", &root)
        .json(&json!({"token_policies": "admin"}))
        .send()
        .unwrap());
    let t = Some(root.as_str());
    let (code, _, err) = a.cli(
        t,
        &["write", "-f", "sys/replication/performance/primary/enable"],
    );
    assert_eq!(code, 0, "{err}");
    let (code, token, err) = a.cli(
        t,
        &[
            "write",
            "-field=token",
            "-f",
            "sys/replication/performance/primary/secondary-token",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let mut b = Node::new();
    b.start();
    let (_, b_root) = b.init_and_unseal(1, 1);
    let (code, _, err) = b.cli(
        Some(&b_root),
        &[
            "write",
            "sys/replication/performance/secondary/enable",
            &format!("token={}", token.trim()),
            &format!("primary_api_addr={}", a.addr),
            &format!("ca_file={}", a.certs.ca.display()),
        ],
    );
    assert_eq!(code, 0, "{err}");
    wait_streaming(&a, &b);

    // Act: log in on the secondary; read, write and read back there; mount locally on both.
    let bob = login(&b);
    let read_there = kv_get(&b, &bob, "secret/before");
    let write = kv_put(&b, &bob, "secret/from-b", "written-on-b");
    let write_status = write.status();
    let write_index = write.headers().get("x-vault-index").cloned();
    let read_back = kv_get(&b, &bob, "secret/from-b");
    ok(b.req(Method::POST, "sys/mounts/b-local", &bob)
        .json(&json!({"type": "kv", "local": true}))
        .send()
        .unwrap());
    ok(a.req(Method::POST, "sys/mounts/a-local", &root)
        .json(&json!({"type": "kv", "local": true}))
        .send()
        .unwrap());
    assert_eq!(kv_put(&b, &bob, "b-local/k", "stays-in-b").status(), 204);
    assert_eq!(
        kv_put(&a, &root, "secret/after", "from-a-later").status(),
        204
    );
    wait_streaming(&a, &b);

    // Assert: reads served here, the forwarded write readable at once on both, tokens local
    // to each cluster, local mounts where they were made, modes in health and status.
    assert_eq!(read_there.as_deref(), Some("from-a"));
    assert_eq!(write_status, 204);
    assert!(
        write_index.is_some(),
        "a forwarded write answers with the primary's index"
    );
    assert_eq!(read_back.as_deref(), Some("written-on-b"));
    assert_eq!(
        kv_get(&a, &root, "secret/from-b").as_deref(),
        Some("written-on-b")
    );
    assert_eq!(
        kv_get(&b, &bob, "secret/after").as_deref(),
        Some("from-a-later")
    );
    let lookup_on_a = a
        .req(Method::GET, "auth/token/lookup-self", &bob)
        .send()
        .unwrap();
    assert_eq!(
        lookup_on_a.status(),
        403,
        "the secondary's token is unknown to the primary"
    );
    let root_on_b = b.req(Method::GET, "secret/before", &root).send().unwrap();
    assert_eq!(
        root_on_b.status(),
        403,
        "the primary's tokens are not valid on the secondary"
    );
    let mounts_b = ok(b.req(Method::GET, "sys/mounts", &bob).send().unwrap());
    let mounts_a = ok(a.req(Method::GET, "sys/mounts", &root).send().unwrap());
    assert!(mounts_b["data"]["b-local/"].is_object() && mounts_b["data"]["a-local/"].is_null());
    assert!(mounts_a["data"]["a-local/"].is_object() && mounts_a["data"]["b-local/"].is_null());
    assert_eq!(kv_get(&b, &bob, "b-local/k").as_deref(), Some("stays-in-b"));
    // A response-wrapped secret-id made through the secondary (the write goes to the
    // primary) unwraps on the secondary, and the app logs in there with it.
    let wrapped = ok(b
        .req(Method::PUT, "auth/approle/role/app/secret-id", &bob)
        .header("X-Vault-Wrap-TTL", "60s")
        .send()
        .unwrap());
    let wrapping_token = wrapped["wrap_info"]["token"].as_str().unwrap().to_owned();
    let unwrapped = ok(b
        .req(Method::PUT, "sys/wrapping/unwrap", &wrapping_token)
        .send()
        .unwrap());
    let secret_id = unwrapped["data"]["secret_id"].as_str().unwrap().to_owned();
    let role_id = approle_role_id(&b, &bob, "app");
    let app = ok(b
        .client()
        .put(format!("{}/v1/auth/approle/login", b.addr))
        .json(&json!({"role_id": role_id, "secret_id": secret_id}))
        .send()
        .unwrap())["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(b.req(Method::GET, "auth/token/lookup-self", &app)
        .send()
        .unwrap());
    // A login that must change shared state (a use-limited secret ID) is refused with the
    // way out, never turned into a token of the primary.
    ok(a.req(Method::PUT, "auth/approle/role/once", &root)
        .json(&json!({"token_policies": "admin", "secret_id_num_uses": 1}))
        .send()
        .unwrap());
    wait_streaming(&a, &b);
    let once_secret = ok(b
        .req(Method::PUT, "auth/approle/role/once/secret-id", &bob)
        .send()
        .unwrap())["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let once_role = approle_role_id(&b, &bob, "once");
    let refused = b
        .client()
        .put(format!("{}/v1/auth/approle/login", b.addr))
        .json(&json!({"role_id": once_role, "secret_id": once_secret}))
        .send()
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.text().unwrap().contains("local_secret_ids"));
    // A policy that forces wrapping is applied by the secondary's door, and the answer the
    // primary gave is wrapped here (not there, where the token would not unwrap for us).
    ok(a.req(Method::PUT, "sys/policies/acl/wrapped", &root)
        .json(&json!({"policy": "path \"auth/approle/role/app/secret-id\" {\n  capabilities = [\"update\"]\n  min_wrapping_ttl = \"60s\"\n}"}))
        .send()
        .unwrap());
    ok(a.req(Method::PUT, "auth/userpass/users/carol", &root)
        .json(&json!({"password": "pw", "policies": "wrapped"}))
        .send()
        .unwrap());
    wait_streaming(&a, &b);
    let carol = ok(b
        .client()
        .put(format!("{}/v1/auth/userpass/login/carol", b.addr))
        .json(&json!({"password": "pw"}))
        .send()
        .unwrap())["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let forced = ok(b
        .req(Method::PUT, "auth/approle/role/app/secret-id", &carol)
        .send()
        .unwrap());
    let forced_token = forced["wrap_info"]["token"].as_str().unwrap().to_owned();
    let forced_secret = ok(b
        .req(Method::PUT, "sys/wrapping/unwrap", &forced_token)
        .send()
        .unwrap());
    assert!(
        forced_secret["data"]["secret_id"].is_string(),
        "{forced_secret}"
    );
    assert_eq!(health(&a)["replication_performance_mode"], "primary");
    assert_eq!(health(&b)["replication_performance_mode"], "secondary");
    assert_eq!(health(&b)["replication_dr_mode"], "disabled");
    let (p, s) = (perf_status(&a), perf_status(&b));
    assert_eq!(p["known_secondaries"].as_array().map(Vec::len), Some(1));
    assert!(p["last_performance_wal"].is_u64() && p.get("last_dr_wal").is_none());
    assert_eq!(p["secondaries"][0]["connection_status"], "connected");
    assert!(p["secondaries"][0]["last_heartbeat_duration_ms"].is_string());
    assert_eq!(s["mode"], "secondary");
    assert_eq!(s["connection_state"], "ready");
    assert_eq!(
        s["merkle_root"], p["merkle_root"],
        "an unfiltered secondary holds exactly the primary's shared data"
    );
    assert_eq!(s["primaries"][0]["connection_status"], "connected");
    let combined = ok(b
        .client()
        .get(format!("{}/v1/sys/replication/status", b.addr))
        .send()
        .unwrap());
    assert_eq!(combined["data"]["performance"]["mode"], "secondary");
    assert_eq!(combined["data"]["dr"]["mode"], "disabled");
}

#[test]
fn path_filters_keep_mounts_off_the_secondary_and_remove_what_it_had() {
    // Set up: a primary with a second mount `team/`; secondary pr-allow may receive only
    // `secret/` (filtered before it ever connects), secondary pr-deny everything at first.
    let (a, root) = primary();
    ok(a.req(Method::POST, "sys/mounts/team", &root)
        .json(&json!({"type": "kv"}))
        .send()
        .unwrap());
    assert_eq!(kv_put(&a, &root, "secret/x", "shared").status(), 204);
    assert_eq!(kv_put(&a, &root, "team/x", "team-only").status(), 204);
    let mounts = ok(a.req(Method::GET, "sys/mounts", &root).send().unwrap());
    let team_uuid = mounts["data"]["team/"]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let secret_uuid = mounts["data"]["secret/"]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    ok(a.req(
        Method::PUT,
        "sys/replication/performance/primary/enable",
        &root,
    )
    .send()
    .unwrap());
    ok(a.req(
        Method::PUT,
        "sys/replication/performance/primary/paths-filter/pr-allow",
        &root,
    )
    .json(&json!({"mode": "allow", "paths": ["secret/", "auth/userpass/"]}))
    .send()
    .unwrap());
    let allow = secondary_of(&a, &pr_token(&a, &root, "pr-allow"));
    let deny = secondary_of(&a, &pr_token(&a, &root, "pr-deny"));
    wait_streaming(&a, &allow);
    wait_streaming(&a, &deny);
    let (bob_allow, bob_deny) = (login(&allow), login(&deny));
    let before = kv_get(&deny, &bob_deny, "team/x");

    // Act: deny `team/` to pr-deny on the live stream.
    ok(a.req(
        Method::PUT,
        "sys/replication/performance/primary/paths-filter/pr-deny",
        &root,
    )
    .json(&json!({"mode": "deny", "paths": ["team"]}))
    .send()
    .unwrap());
    wait_for(60, "the newly filtered data to leave pr-deny", || {
        kv_get(&deny, &bob_deny, "team/x").is_none()
    });
    assert_eq!(kv_put(&a, &root, "team/y", "later").status(), 204);
    assert_eq!(kv_put(&a, &root, "secret/y", "later").status(), 204);
    wait_streaming(&a, &deny);
    wait_streaming(&a, &allow);

    // Assert: filters read back in Vault's shape; the allow-filtered secondary never held a
    // `team/` key (not even in its data directory, where keys are plain), the deny-filtered
    // one lost what it had and gets only unfiltered writes.
    let f = ok(a
        .req(
            Method::GET,
            "sys/replication/performance/primary/paths-filter/pr-deny",
            &root,
        )
        .send()
        .unwrap());
    assert_eq!(f["data"], json!({"mode": "deny", "paths": ["team/"]}));
    let dynamic = ok(a
        .req(
            Method::GET,
            "sys/replication/performance/primary/dynamic-filter/pr-deny",
            &root,
        )
        .send()
        .unwrap());
    assert_eq!(dynamic["data"]["dynamic_filtered_mounts"], json!(["team/"]));
    assert_eq!(before.as_deref(), Some("team-only"));
    assert_eq!(
        kv_get(&allow, &bob_allow, "secret/x").as_deref(),
        Some("shared")
    );
    assert_eq!(kv_get(&allow, &bob_allow, "team/x"), None);
    assert!(
        !common::dir_contains(
            &allow.raft_dir(),
            format!("logical/{team_uuid}/").as_bytes()
        ),
        "a filtered mount's keys must never reach the secondary's disk"
    );
    assert!(
        common::dir_contains(
            &allow.raft_dir(),
            format!("logical/{secret_uuid}/").as_bytes()
        ),
        "the check above must be able to see keys that did travel"
    );
    assert_eq!(kv_get(&deny, &bob_deny, "team/y"), None);
    assert_eq!(
        kv_get(&deny, &bob_deny, "secret/y").as_deref(),
        Some("later")
    );
    // A filtered mount is hidden on the secondary: not listed, and a write there is refused
    // rather than sent to the primary, where the secondary would never see it again.
    for (node, bob) in [(&deny, &bob_deny), (&allow, &bob_allow)] {
        let mounts = ok(node.req(Method::GET, "sys/mounts", bob).send().unwrap());
        assert!(mounts["data"]["team/"].is_null() && mounts["data"]["secret/"].is_object());
    }
    let refused = kv_put(&deny, &bob_deny, "team/z", "lost?").status();
    assert!(
        refused.is_client_error(),
        "a write to a hidden mount: {refused}"
    );
    assert_eq!(kv_get(&a, &root, "team/z"), None);
    let seen = ok(deny
        .req(
            Method::GET,
            "sys/replication/performance/secondary/dynamic-filter/pr-deny",
            &bob_deny,
        )
        .send()
        .unwrap());
    assert_eq!(seen["data"]["dynamic_filtered_mounts"], json!(["team/"]));
    ok(a.req(
        Method::DELETE,
        "sys/replication/performance/primary/paths-filter/pr-deny",
        &root,
    )
    .send()
    .unwrap());
    let gone = a
        .req(
            Method::GET,
            "sys/replication/performance/primary/paths-filter/pr-deny",
            &root,
        )
        .send()
        .unwrap();
    assert_eq!(gone.status(), 404);
}

#[test]
fn a_dr_secondary_of_a_performance_secondary_keeps_its_logins_and_roles_swap_back() {
    // Set up: A performance primary, B its performance secondary, C B's DR secondary; bob
    // logs in on B and C catches up with B (tokens included).
    let (a, root) = primary();
    ok(a.req(
        Method::PUT,
        "sys/replication/performance/primary/enable",
        &root,
    )
    .send()
    .unwrap());
    let mut b = secondary_of(&a, &pr_token(&a, &root, "pr-west"));
    wait_streaming(&a, &b);
    let bob = login(&b);
    ok(
        b.req(Method::PUT, "sys/replication/dr/primary/enable", &bob)
            .send()
            .unwrap(),
    );
    let dr_token = ok(b
        .req(
            Method::PUT,
            "sys/replication/dr/primary/secondary-token",
            &bob,
        )
        .json(&json!({"id": "west-dr"}))
        .send()
        .unwrap())["wrap_info"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut c = Node::new();
    c.start();
    let (_, c_root) = c.init_and_unseal(1, 1);
    ok(c.req(Method::PUT, "sys/replication/dr/secondary/enable", &c_root)
        .json(&json!({"token": dr_token, "primary_api_addr": b.addr, "ca_file": b.certs.ca.to_str().unwrap()}))
        .send()
        .unwrap());
    common::wait_caught_up(&b, &c, 60);

    // Act: the region's cluster B is lost; its DR secondary C, caught up before the loss, is
    // promoted with bob's token (forced: its primary can no longer confirm the position).
    b.kill9();
    ok(c.client()
        .put(format!(
            "{}/v1/sys/replication/dr/secondary/promote",
            c.addr
        ))
        .header("X-Vault-Token", &bob)
        .json(&json!({"force": true}))
        .send()
        .unwrap());
    wait_streaming(&a, &c);
    assert_eq!(
        kv_put(&a, &root, "secret/from-a", "reaches-c").status(),
        204
    );
    let write_on_c = kv_put(&c, &bob, "secret/from-c", "via-c").status();
    wait_streaming(&a, &c);

    // Assert: bob is still logged in on C, which is A's performance secondary now.
    ok(c.req(Method::GET, "auth/token/lookup-self", &bob)
        .send()
        .unwrap());
    assert_eq!(perf_status(&c)["mode"], "secondary");
    assert_eq!(
        kv_get(&c, &bob, "secret/from-a").as_deref(),
        Some("reaches-c")
    );
    assert_eq!(write_on_c, 204);
    assert_eq!(kv_get(&a, &root, "secret/from-c").as_deref(), Some("via-c"));

    // Act: swap the performance roles: demote A, promote C, A follows C with C's token.
    ok(a.req(
        Method::PUT,
        "sys/replication/performance/primary/demote",
        &root,
    )
    .send()
    .unwrap());
    ok(c.req(
        Method::PUT,
        "sys/replication/performance/secondary/promote",
        &bob,
    )
    .send()
    .unwrap());
    let token_c = pr_token(&c, &bob, "old-a");
    ok(a.req(
        Method::PUT,
        "sys/replication/performance/secondary/update-primary",
        &root,
    )
    .json(&json!({"token": token_c, "primary_api_addr": c.addr, "ca_file": c.certs.ca.to_str().unwrap()}))
    .send()
    .unwrap());
    wait_streaming(&c, &a);
    assert_eq!(
        kv_put(&c, &bob, "secret/after-swap", "from-c").status(),
        204
    );
    wait_streaming(&c, &a);

    // Assert: C is the primary and A streams from it, old data and new.
    assert_eq!(perf_status(&c)["mode"], "primary");
    assert_eq!(perf_status(&a)["mode"], "secondary");
    assert_eq!(
        kv_get(&a, &root, "secret/after-swap").as_deref(),
        Some("from-c")
    );
    assert_eq!(kv_get(&a, &root, "secret/from-c").as_deref(), Some("via-c"));
    drop(b);
}

//! Issue-3 workflows through the CLI: policies, userpass login, KV v1/v2, tokens, wrapping.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Node;
use serde_json::Value;

#[test]
fn cli_policy_login_kv_token_and_wrapping() {
    // Set up: a node with KV v2 at secret/ and KV v1 at kv1/, userpass enabled, a policy file.
    let mut node = Node::new();
    node.start();
    let (_, root) = node.init_and_unseal(1, 1);
    let r = Some(root.as_str());
    let run = |token: Option<&str>, args: &[&str]| {
        let (code, out, err) = node.cli(token, args);
        assert_eq!(code, 0, "{args:?} failed: {err}");
        out
    };
    run(
        r,
        &["secrets", "enable", "-path=secret", "-version=2", "kv"],
    );
    run(r, &["secrets", "enable", "-path=kv1", "kv"]);
    run(r, &["auth", "enable", "userpass"]);
    let policy = node.dir.path().join("app.hcl");
    std::fs::write(
        &policy,
        "path \"secret/data/app/*\" {\n  capabilities = [\"create\", \"read\", \"update\"]\n}\npath \"secret/metadata/app/*\" {\n  capabilities = [\"list\", \"read\"]\n}\npath \"kv1/app/*\" {\n  capabilities = [\"read\"]\n}\n",
    )
    .unwrap();
    run(r, &["policy", "write", "app", policy.to_str().unwrap()]);
    assert!(run(r, &["policy", "list"]).contains("app"));
    run(
        r,
        &[
            "write",
            "auth/userpass/users/alice",
            "password=s3cret",
            "token_policies=app",
        ],
    );
    run(r, &["write", "kv1/app/motd", "text=hi"]);

    // Act: log in with userpass (the token lands in the token helper), then use it.
    let out = run(
        None,
        &[
            "login",
            "-method=userpass",
            "username=alice",
            "password=s3cret",
        ],
    );
    assert!(
        out.contains("token_policies") || out.contains("policies"),
        "{out}"
    );
    run(None, &["kv", "put", "secret/app/db", "pw=one"]);
    run(None, &["kv", "put", "secret/app/db", "pw=two"]);

    // Assert: versions, field output, KV v1 read, and 403 outside the policy.
    assert_eq!(
        run(None, &["kv", "get", "-field=pw", "secret/app/db"]),
        "two\n"
    );
    assert_eq!(
        run(
            None,
            &["kv", "get", "-version=1", "-field=pw", "secret/app/db"]
        ),
        "one\n"
    );
    assert_eq!(run(None, &["read", "-field=text", "kv1/app/motd"]), "hi\n");
    let (code, _, err) = node.cli(None, &["kv", "put", "secret/other", "x=y"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("403") || err.contains("permission denied"),
        "{err}"
    );
    let (code, _, _) = node.cli(None, &["write", "kv1/app/motd", "text=changed"]);
    assert_eq!(code, 2, "the policy grants read only on kv1/app/*");

    // Tokens: create a child with JSON output, look it up, revoke it.
    let out = run(
        r,
        &["token", "create", "-policy=app", "-ttl=1h", "-format=json"],
    );
    let child: Value = serde_json::from_str(&out).unwrap();
    let child_token = child["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(child["auth"]["lease_duration"], 3600);
    assert!(run(Some(&child_token), &["token", "lookup"]).contains("app"));
    run(r, &["token", "revoke", &child_token]);
    assert_eq!(
        node.cli(Some(&child_token), &["token", "lookup"]).0,
        2,
        "a revoked token is refused"
    );

    // Wrapping: read wrapped, unwrap once, the second unwrap fails.
    let wrapped = run(
        r,
        &[
            "kv",
            "get",
            "-wrap-ttl=60s",
            "-field=wrapping_token",
            "secret/app/db",
        ],
    );
    let wrapped = wrapped.trim().to_string();
    assert!(!wrapped.is_empty());
    let out = run(r, &["unwrap", "-format=json", &wrapped]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["data"]["data"]["pw"], "two");
    assert_eq!(
        node.cli(r, &["unwrap", &wrapped]).0,
        2,
        "wrapping tokens are single use"
    );
}

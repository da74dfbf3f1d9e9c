//! The `strongroom` CLI driven as a Vault user drives `vault`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};

use common::{BIN, Node, read_api_addr};
use serde_json::Value;

#[test]
fn operator_runbook_through_the_cli() {
    // Set up: a fresh TLS raft node.
    let mut node = Node::new();
    node.start();

    // init with Vault's flags and JSON output.
    let (code, out, err) = node.cli(
        None,
        &[
            "operator",
            "init",
            "-key-shares=3",
            "-key-threshold=2",
            "-format=json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let init: Value = serde_json::from_str(&out).unwrap();
    let keys: Vec<String> = init["unseal_keys_b64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().into())
        .collect();
    let root = init["root_token"].as_str().unwrap().to_string();
    assert_eq!(init["unseal_threshold"], 2);

    // Why: `status` exits 2 while sealed and 0 once unsealed.
    assert_eq!(node.cli(None, &["status"]).0, 2);
    assert_eq!(node.cli(None, &["operator", "unseal", &keys[0]]).0, 0);
    let (code, out, _) = node.cli(None, &["operator", "unseal", &keys[2]]);
    assert_eq!(code, 0);
    assert!(out.contains("Sealed") && out.contains("false"), "{out}");
    let (code, out, _) = node.cli(None, &["status"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Storage Type") && out.contains("raft"),
        "{out}"
    );

    // login stores the token; later commands use it without VAULT_TOKEN.
    assert_eq!(node.cli(None, &["login", &root]).0, 0);
    let (code, _, err) = node.cli(None, &["write", "sys/mounts/secret", "type=kv"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = node.cli(
        None,
        &["write", "secret/app", "password=hunter2", "user=ops"],
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = node.cli(None, &["read", "-field=password", "secret/app"]);
    assert_eq!((code, out.as_str()), (0, "hunter2\n"));
    let (code, out, _) = node.cli(None, &["read", "-format=json", "secret/app"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["data"]["user"], "ops");
    let (code, out, _) = node.cli(None, &["list", "secret/"]);
    assert_eq!(code, 0);
    assert!(out.contains("app"));

    // Snapshot save/restore with the exact runbook command.
    let snap = node.dir.path().join("backup.snap");
    let (code, _, err) = node.cli(
        None,
        &[
            "operator",
            "raft",
            "snapshot",
            "save",
            snap.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::metadata(&snap).unwrap().len() > 0);
    assert_eq!(node.cli(None, &["delete", "secret/app"]).0, 0);
    let (code, _, err) = node.cli(None, &["read", "secret/app"]);
    assert_eq!(code, 2);
    assert!(err.contains("No value found at secret/app"), "{err}");
    let (code, _, err) = node.cli(
        None,
        &[
            "operator",
            "raft",
            "snapshot",
            "restore",
            snap.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        node.cli(None, &["read", "-field=password", "secret/app"]).1,
        "hunter2\n"
    );

    // Why: the CLI reports API errors Vault-style with exit 2.
    let (code, _, err) = node.cli(None, &["write", "sys/mounts/bad", "type=nosuch"]);
    assert_eq!(code, 2);
    assert!(err.contains("Code: 400"), "{err}");

    // Seal through the CLI; status says so.
    assert_eq!(node.cli(None, &["operator", "seal"]).0, 0);
    assert_eq!(node.cli(None, &["status"]).0, 2);
}

#[test]
fn dev_server_starts_unsealed_with_the_given_root_token() {
    // Set up: `server -dev` on a free port with a fixed root token.
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "server",
            "-dev",
            "-dev-root-token-id=devroot",
            "-dev-listen-address=127.0.0.1:0",
        ])
        .env("HOME", home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = read_api_addr(&mut child);
    let cli = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env("VAULT_ADDR", &addr)
            .env("HOME", home.path())
            .env_remove("VAULT_TOKEN")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let mut up = false;
    for _ in 0..100 {
        if cli(&["status"]).0 == 0 {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // Act + assert: unsealed; the token helper already holds the root token; secret/ is mounted.
    assert!(up, "dev server never reported unsealed");
    assert_eq!(
        std::fs::read_to_string(home.path().join(".vault-token")).unwrap(),
        "devroot"
    );
    // Why: dev mode mounts secret/ as KV v2, as Vault does; `kv` detects the version.
    let (code, _, err) = cli(&["kv", "put", "secret/hello", "value=world"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        cli(&["kv", "get", "-field=value", "secret/hello"]).1,
        "world\n"
    );
    assert_eq!(
        cli(&["read", "-field=data", "-format=json", "secret/data/hello"]).0,
        0
    );
    let _ = child.kill();
    let _ = child.wait();
}

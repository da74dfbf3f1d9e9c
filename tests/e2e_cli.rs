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

/// A running `server -dev-pr` on free ports, what its banner printed, and a CLI against it.
struct DevPr {
    child: std::process::Child,
    home: tempfile::TempDir,
    banner: String,
    /// API addresses: the primary, its performance secondary, that one's DR secondary.
    addrs: Vec<String>,
    ca: String,
    /// The primary's root token.
    root: String,
}

impl DevPr {
    /// Starts the server and reads its banner; the later output is drained so the server
    /// never blocks on a full pipe.
    fn start() -> DevPr {
        use std::io::BufRead;
        let home = tempfile::tempdir().unwrap();
        let stderr_log = home.path().join("server.log");
        let mut child = Command::new(BIN)
            .args(["server", "-dev-pr", "-dev-listen-address=127.0.0.1:0"])
            .env("HOME", home.path())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_log).unwrap())
            .spawn()
            .unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut banner = String::new();
        while !banner.contains("\nEverything is in memory") {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                let log = std::fs::read_to_string(&stderr_log).unwrap_or_default();
                panic!("no complete -dev-pr banner; stdout:\n{banner}\nstderr:\n{log}");
            };
            banner.push_str(&line);
            banner.push('\n');
        }
        let values = |label: &str| -> Vec<String> {
            banner
                .lines()
                .filter_map(|l| l.trim().strip_prefix(label))
                .filter_map(|rest| rest.split_whitespace().next().map(str::to_string))
                .collect()
        };
        let (addrs, ca) = (values("Api Address:"), values("CA File:")[0].clone());
        let root = values("Root Token:")[0].clone();
        DevPr {
            child,
            home,
            banner,
            addrs,
            ca,
            root,
        }
    }

    /// Runs the CLI against `addr` (the token helper is this server's own); returns (exit
    /// code, stdout, stderr).
    fn cli(&self, addr: &str, token: Option<&str>, args: &[&str]) -> (i32, String, String) {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("VAULT_ADDR", addr)
            .env("VAULT_CACERT", &self.ca)
            .env("HOME", self.home.path())
            .env_remove("VAULT_TOKEN")
            .env_remove("VAULT_FORMAT");
        if let Some(t) = token {
            cmd.env("VAULT_TOKEN", t);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for DevPr {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn dev_pr_starts_three_replicating_clusters_and_the_secondary_logs_in_its_own_users() {
    // Set up: `server -dev-pr`; its banner names the three clusters and the primary's token.
    let mut dev = DevPr::start();
    let (primary, secondary, dr) = (&dev.addrs[0], &dev.addrs[1], &dev.addrs[2]);
    let root = dev.root.clone();
    let login_hint =
        format!("VAULT_ADDR={secondary} strongroom login -method=userpass username=demo");
    assert!(
        dev.banner
            .contains("the primary's root token is NOT valid here")
            && dev.banner.contains(&login_hint),
        "{}",
        dev.banner
    );

    // Act: write on the primary with its root token; on the secondary log in as the demo
    // user, read the secret, try the primary's token, and write through the secondary.
    let put = |addr: &str, token: Option<&str>, value: &str| {
        let (code, _, err) = dev.cli(addr, token, &["kv", "put", "secret/demo", value]);
        assert_eq!(code, 0, "{err}");
    };
    let get = |addr: &str, token: Option<&str>| {
        dev.cli(addr, token, &["kv", "get", "-field=hello", "secret/demo"])
    };
    put(primary, Some(&root), "hello=world");
    let login = [
        "login",
        "-method=userpass",
        "username=demo",
        "password=demo",
    ];
    let (code, _, err) = dev.cli(secondary, None, &login);
    assert_eq!(code, 0, "{err}");
    common::wait_for(10, "the primary's write to reach the secondary", || {
        get(secondary, None).1 == "world\n"
    });
    let root_on_secondary = get(secondary, Some(&root));
    put(secondary, None, "hello=again");
    let read_back_on_secondary = get(secondary, None).1;
    let read_on_primary = get(primary, Some(&root)).1;
    let field = |addr: &str, field: &str, kind: &str| {
        let path = format!("sys/replication/{kind}/status");
        dev.cli(addr, None, &["read", &format!("-field={field}"), &path])
            .1
    };

    // Assert: the primary's token is refused on the secondary, the demo user's token works
    // there, the forwarded write is readable at once on both clusters, and both secondaries
    // stream.
    assert!(
        root_on_secondary.0 == 2 && root_on_secondary.2.contains("403"),
        "the primary's root token must be refused on the secondary: {root_on_secondary:?}"
    );
    assert_eq!(read_back_on_secondary, "again\n");
    assert_eq!(read_on_primary, "again\n");
    assert_eq!(field(primary, "mode", "performance"), "primary\n");
    assert_eq!(field(secondary, "mode", "performance"), "secondary\n");
    assert_eq!(field(secondary, "state", "performance"), "stream-wals\n");
    assert_eq!(field(dr, "mode", "dr"), "secondary\n");
    assert_eq!(field(dr, "state", "dr"), "stream-wals\n");

    // SIGTERM stops all three and removes the generated certificates.
    common::signal(&dev.child, libc::SIGTERM);
    let status = dev.child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(
        !std::path::Path::new(&dev.ca).exists(),
        "{} outlived the server",
        dev.ca
    );
}

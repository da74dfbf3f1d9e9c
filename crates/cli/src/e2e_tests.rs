//! In-process end-to-end tests: the real CLI entry point against a scripted HTTP server.
//!
//! They check what unit tests cannot: the exact method, path, query, headers and body on the
//! wire, and how real answers become output and exit codes.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::thread::JoinHandle;

use serde_json::{Value, json};

use crate::run_with_io;

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Serves the scripted `(status, content-type, body)` answers, one per connection, in order.
fn serve(answers: Vec<(u16, &'static str, Vec<u8>)>) -> (String, JoinHandle<Vec<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for (status, content_type, body) in answers {
            let (mut stream, _) = listener.accept().unwrap();
            seen.push(answer(&mut stream, status, content_type, &body));
        }
        seen
    });
    (address, handle)
}

fn answer<S: Read + Write>(stream: &mut S, status: u16, content_type: &str, body: &[u8]) -> Seen {
    let mut reader = BufReader::new(&mut *stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap().to_string();
    let target = parts.next().unwrap().to_string();
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap();
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    let mut request_body = Vec::new();
    if let Some(len) = headers.get("content-length") {
        request_body.resize(len.parse().unwrap(), 0);
        reader.read_exact(&mut request_body).unwrap();
    } else if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            request_body.extend_from_slice(&chunk[..size]);
        }
    }
    drop(reader);
    let reason = if status < 300 { "OK" } else { "Error" };
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    stream.flush().unwrap();
    Seen {
        method,
        target,
        headers,
        body: request_body,
    }
}

fn json_answer(status: u16, value: Value) -> (u16, &'static str, Vec<u8>) {
    (
        status,
        "application/json",
        serde_json::to_vec(&value).unwrap(),
    )
}

fn empty_answer() -> (u16, &'static str, Vec<u8>) {
    (204, "application/json", Vec::new())
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

fn cli(address: &str, args: &[&str], stdin: &[u8], extra_env: &[(&str, &str)]) -> Outcome {
    let mut env: HashMap<String, String> = HashMap::from([
        ("VAULT_ADDR".to_string(), address.to_string()),
        ("VAULT_TOKEN".to_string(), "test-token".to_string()),
    ]);
    for (key, value) in extra_env {
        env.insert(key.to_string(), value.to_string());
    }
    let lookup = move |key: &str| env.get(key).cloned();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_with_io(args, &mut &stdin[..], &mut out, &mut err, &lookup);
    Outcome {
        code,
        stdout: String::from_utf8(out).unwrap(),
        stderr: String::from_utf8(err).unwrap(),
    }
}

fn kv_answer() -> Value {
    json!({"request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 2764800,
           "data": {"foo": "bar"}, "wrap_info": null, "warnings": null, "auth": null,
           "mount_type": "kv"})
}

// Every request carries the token and X-Vault-Request, and `read -field` prints the raw value.
#[test]
fn read_field_sends_vault_headers() {
    let (address, server) = serve(vec![json_answer(200, kv_answer())]);

    let outcome = cli(&address, &["read", "-field=foo", "/secret/foo/"], b"", &[]);

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(outcome.stdout, "bar\n");
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].target, "/v1/secret/foo");
    assert_eq!(seen[0].headers["x-vault-token"], "test-token");
    assert_eq!(seen[0].headers["x-vault-request"], "true");
}

// A 404 read is "No value found" on stderr with exit 2.
#[test]
fn read_not_found() {
    let (address, server) = serve(vec![json_answer(404, json!({"errors": []}))]);

    let outcome = cli(&address, &["read", "secret/missing"], b"", &[]);

    server.join().unwrap();
    assert_eq!(outcome.code, 2);
    assert_eq!(outcome.stderr, "No value found at secret/missing\n");
    assert!(outcome.stdout.is_empty());
}

// `write k=v` PUTs string values, and a 204 prints Vault's success line.
#[test]
fn write_sends_strings() {
    let (address, server) = serve(vec![empty_answer()]);

    let outcome = cli(
        &address,
        &["write", "secret/foo", "n=1", "flag=true", "pw=-"],
        b"from-stdin",
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(outcome.stdout, "Success! Data written to: secret/foo\n");
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].headers["content-type"], "application/json");
    assert_eq!(
        seen[0].json(),
        json!({"n": "1", "flag": "true", "pw": "from-stdin"})
    );
}

// API errors are printed Vault-style with the full URL and exit 2.
#[test]
fn write_error_is_vault_style() {
    let (address, server) = serve(vec![json_answer(
        400,
        json!({"errors": ["missing client token"]}),
    )]);

    let outcome = cli(&address, &["write", "secret/foo", "a=b"], b"", &[]);

    server.join().unwrap();
    assert_eq!(outcome.code, 2);
    assert_eq!(
        outcome.stderr,
        format!(
            "Error writing data to secret/foo: Error making API request.\n\n\
             URL: PUT {address}/v1/secret/foo\nCode: 400. Errors:\n\n* missing client token\n"
        )
    );
}

// 503 answers are retried (VAULT_MAX_RETRIES defaults to 2) and the final success is used.
#[test]
fn server_errors_are_retried() {
    let (address, server) = serve(vec![
        json_answer(503, json!({"errors": ["Vault is sealed"]})),
        json_answer(200, kv_answer()),
    ]);

    let outcome = cli(&address, &["read", "-format=json", "secret/foo"], b"", &[]);

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(seen.len(), 2);
    let printed: Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(printed["data"]["foo"], "bar");
}

// `list` asks for `?list=true` on the path with a trailing slash and prints the Keys column.
#[test]
fn list_keys() {
    let (address, server) = serve(vec![json_answer(
        200,
        json!({"request_id": "r", "data": {"keys": ["a", "b/"]}}),
    )]);

    let outcome = cli(&address, &["list", "secret"], b"", &[]);

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(seen[0].target, "/v1/secret/?list=true");
    assert_eq!(outcome.stdout, "Keys\n----\na\nb/\n");
}

// An empty list (404) says "No value found at PATH/" and exits 2.
#[test]
fn list_not_found() {
    let (address, server) = serve(vec![json_answer(404, json!({"errors": []}))]);

    let outcome = cli(&address, &["list", "secret/none"], b"", &[]);

    server.join().unwrap();
    assert_eq!(outcome.code, 2);
    assert_eq!(outcome.stderr, "No value found at secret/none/\n");
}

fn seal_status(sealed: bool) -> Value {
    json!({"type": "shamir", "initialized": true, "sealed": sealed, "t": 3, "n": 5,
           "progress": if sealed { 1 } else { 0 }, "nonce": if sealed { "abc" } else { "" },
           "version": "1.16.3", "build_date": "2024-05-29T14:28:42Z", "migration": false,
           "recovery_seal": false, "storage_type": "raft"})
}

// `status` on a sealed server exits 2 without asking for the leader.
#[test]
fn status_sealed_exits_2() {
    let (address, server) = serve(vec![json_answer(200, seal_status(true))]);

    let outcome = cli(&address, &["status"], b"", &[]);

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 2);
    assert_eq!(seen.len(), 1);
    assert!(
        outcome.stdout.contains("Unseal Progress    1/3\n"),
        "{}",
        outcome.stdout
    );
}

// `status -format=json` on an unsealed server merges seal-status and leader, exit 0.
#[test]
fn status_unsealed_json() {
    let leader = json!({"ha_enabled": true, "is_self": true,
        "active_time": "2025-01-02T03:04:05Z", "leader_address": "https://a:8200",
        "leader_cluster_address": "https://a:8201", "performance_standby": false,
        "performance_standby_last_remote_wal": 0, "raft_committed_index": 7,
        "raft_applied_index": 7});
    let (address, server) = serve(vec![
        json_answer(200, seal_status(false)),
        json_answer(200, leader),
    ]);

    let outcome = cli(&address, &["status", "-format", "json"], b"", &[]);

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(seen[1].target, "/v1/sys/leader");
    let printed: Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(printed["sealed"], false);
    assert_eq!(printed["raft_committed_index"], 7);
}

// `status` exits 1 (not 2) when the server cannot be reached: 2 means "sealed".
#[test]
fn status_unreachable_exits_1() {
    let outcome = cli(
        "http://127.0.0.1:1",
        &["status"],
        b"",
        &[("VAULT_MAX_RETRIES", "0")],
    );

    assert_eq!(outcome.code, 1);
    assert!(outcome.stderr.starts_with("Error checking seal status"));
}

// `login TOKEN` verifies the token with lookup-self and stores it (0600) for later commands.
#[test]
fn login_stores_verified_token() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    let home_str = home.path().to_str().unwrap().to_string();
    let (address, server) = serve(vec![json_answer(
        200,
        json!({"request_id": "r", "data": {"id": "s.new", "accessor": "acc",
               "policies": ["root"], "ttl": 0, "renewable": false}}),
    )]);

    let outcome = cli(
        &address,
        &["login", "s.new"],
        b"",
        &[("HOME", &home_str), ("VAULT_TOKEN", "")],
    );

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(seen[0].target, "/v1/auth/token/lookup-self");
    assert_eq!(seen[0].headers["x-vault-token"], "s.new");
    assert!(
        outcome.stdout.contains("token_policies       [\"root\"]"),
        "{}",
        outcome.stdout
    );
    let stored = home.path().join(".vault-token");
    assert_eq!(std::fs::read_to_string(&stored).unwrap(), "s.new");
    assert_eq!(
        std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

// A rejected token is not stored.
#[test]
fn login_rejected_token_is_not_stored() {
    let home = tempfile::tempdir().unwrap();
    let home_str = home.path().to_str().unwrap().to_string();
    let (address, server) = serve(vec![json_answer(
        403,
        json!({"errors": ["permission denied"]}),
    )]);

    let outcome = cli(&address, &["login", "bad"], b"", &[("HOME", &home_str)]);

    server.join().unwrap();
    assert_eq!(outcome.code, 2);
    assert!(outcome.stderr.starts_with("Error authenticating: "));
    assert!(!home.path().join(".vault-token").exists());
}

// `operator init -format=json` sends the share counts and prints Vault's JSON keys.
#[test]
fn operator_init_json() {
    let (address, server) = serve(vec![json_answer(
        200,
        json!({"keys": ["aa"], "keys_base64": ["qg=="], "root_token": "hvs.root"}),
    )]);

    let outcome = cli(
        &address,
        &[
            "operator",
            "init",
            "-key-shares=1",
            "-key-threshold",
            "1",
            "-format=json",
        ],
        b"",
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(seen[0].target, "/v1/sys/init");
    assert_eq!(
        seen[0].json(),
        json!({"secret_shares": 1, "secret_threshold": 1})
    );
    let printed: Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(printed["unseal_keys_b64"], json!(["qg=="]));
    assert_eq!(printed["unseal_keys_hex"], json!(["aa"]));
    assert_eq!(printed["root_token"], "hvs.root");
    assert_eq!(printed["recovery_keys_threshold"], 0);
}

// `operator init -status` exits 2 for an uninitialized server.
#[test]
fn operator_init_status() {
    let (address, server) = serve(vec![json_answer(200, json!({"initialized": false}))]);

    let outcome = cli(&address, &["operator", "init", "-status"], b"", &[]);

    server.join().unwrap();
    assert_eq!(outcome.code, 2);
    assert_eq!(outcome.stdout, "Vault is not initialized\n");
}

// `operator unseal` reads the key from stdin when not given and prints the seal status.
#[test]
fn operator_unseal_prompts() {
    let (address, server) = serve(vec![json_answer(200, seal_status(true))]);

    let outcome = cli(&address, &["operator", "unseal"], b"c2hhcmU=\n", &[]);

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(seen[0].json(), json!({"key": "c2hhcmU="}));
    assert!(outcome.stderr.contains("Unseal Key (will be hidden): "));
    assert!(outcome.stdout.contains("Sealed             true"));
}

// `operator seal` PUTs sys/seal and prints Vault's line.
#[test]
fn operator_seal() {
    let (address, server) = serve(vec![empty_answer()]);

    let outcome = cli(&address, &["operator", "seal"], b"", &[]);

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("PUT", "/v1/sys/seal")
    );
    assert_eq!(outcome.stdout, "Success! Vault is sealed.\n");
}

fn snapshot_bytes(with_sums: bool) -> Vec<u8> {
    use flate2::Compression;
    use flate2::write::GzEncoder;
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    let mut entries: Vec<(&str, &[u8])> = vec![("meta.json", b"{}"), ("state.bin", b"state")];
    if with_sums {
        entries.push(("SHA256SUMS.sealed", b"sealed"));
    }
    for (name, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        builder.append_data(&mut header, name, data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

// `snapshot save` writes the streamed archive to the file once it is verified complete.
#[test]
fn snapshot_save_complete() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("backup.snap");
    let bytes = snapshot_bytes(true);
    let (address, server) = serve(vec![(200, "application/gzip", bytes.clone())]);

    let outcome = cli(
        &address,
        &[
            "operator",
            "raft",
            "snapshot",
            "save",
            target.to_str().unwrap(),
        ],
        b"",
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(seen[0].target, "/v1/sys/storage/raft/snapshot");
    assert_eq!(std::fs::read(&target).unwrap(), bytes);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

// An archive without SHA256SUMS.sealed is refused and leaves no file behind.
#[test]
fn snapshot_save_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("backup.snap");
    let (address, server) = serve(vec![(200, "application/gzip", snapshot_bytes(false))]);

    let outcome = cli(
        &address,
        &[
            "operator",
            "raft",
            "snapshot",
            "save",
            target.to_str().unwrap(),
        ],
        b"",
        &[],
    );

    server.join().unwrap();
    assert_eq!(outcome.code, 2);
    assert_eq!(
        outcome.stderr,
        "incomplete snapshot, unable to read SHA256SUMS.sealed file\n"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

// `snapshot restore -force` streams the file to snapshot-force.
#[test]
fn snapshot_restore_force() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("backup.snap");
    let bytes = snapshot_bytes(true);
    std::fs::write(&source, &bytes).unwrap();
    let (address, server) = serve(vec![empty_answer()]);

    let outcome = cli(
        &address,
        &[
            "operator",
            "raft",
            "snapshot",
            "restore",
            "-force",
            source.to_str().unwrap(),
        ],
        b"",
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].target, "/v1/sys/storage/raft/snapshot-force");
    assert_eq!(seen[0].body, bytes);
}

// `raft list-peers` reads data.config and prints the peers table.
#[test]
fn raft_list_peers() {
    let (address, server) = serve(vec![json_answer(
        200,
        json!({"request_id": "r", "data": {"config": {"index": 3, "servers": [
            {"address": "127.0.0.1:8201", "leader": true, "node_id": "n1",
             "protocol_version": "3", "voter": true}]}}}),
    )]);

    let outcome = cli(&address, &["operator", "raft", "list-peers"], b"", &[]);

    server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert!(
        outcome
            .stdout
            .contains("n1      127.0.0.1:8201    leader    true"),
        "{}",
        outcome.stdout
    );
}

// `raft join` sends Vault's body to sys/storage/raft/join and prints `Joined true`.
#[test]
fn raft_join_wire() {
    let (address, server) = serve(vec![json_answer(200, json!({"joined": true}))]);

    let outcome = cli(
        &address,
        &[
            "operator",
            "raft",
            "join",
            "-retry",
            "-non-voter",
            "-leader-ca-cert=CA",
            "https://n1:8200",
        ],
        b"",
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].target, "/v1/sys/storage/raft/join");
    assert_eq!(
        seen[0].json(),
        json!({"leader_api_addr": "https://n1:8200", "retry": true, "leader_ca_cert": "CA",
            "non_voter": true})
    );
    assert!(
        outcome.stdout.contains("Joined    true"),
        "{}",
        outcome.stdout
    );
}

// remove-peer, promote and demote post the node id to their endpoints.
#[test]
fn raft_membership_changes_wire() {
    let (address, server) = serve(vec![
        (204, "application/json", Vec::new()),
        (204, "application/json", Vec::new()),
        (204, "application/json", Vec::new()),
    ]);

    let removed = cli(
        &address,
        &["operator", "raft", "remove-peer", "n2"],
        b"",
        &[],
    );
    let promoted = cli(&address, &["operator", "raft", "promote", "n3"], b"", &[]);
    let demoted = cli(&address, &["operator", "raft", "demote", "n3"], b"", &[]);

    let seen = server.join().unwrap();
    assert_eq!(
        removed.stdout, "Peer removed successfully!\n",
        "{}",
        removed.stderr
    );
    assert_eq!(
        promoted.stdout, "Peer promoted successfully!\n",
        "{}",
        promoted.stderr
    );
    assert_eq!(
        demoted.stdout, "Peer demoted successfully!\n",
        "{}",
        demoted.stderr
    );
    let targets: Vec<&str> = seen.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            "/v1/sys/storage/raft/remove-peer",
            "/v1/sys/storage/raft/promote",
            "/v1/sys/storage/raft/demote"
        ]
    );
    assert_eq!(seen[0].json(), json!({"server_id": "n2"}));
    assert_eq!(seen[1].json(), json!({"server_id": "n3"}));
}

// autopilot get-config reads data, set-config sends only the flags given.
#[test]
fn raft_autopilot_config_wire() {
    let config = json!({"request_id": "r", "data": {"cleanup_dead_servers": false,
        "last_contact_threshold": "10s", "dead_server_last_contact_threshold": "24h0m0s",
        "max_trailing_logs": 1000, "min_quorum": 0, "server_stabilization_time": "10s"}});
    let (address, server) = serve(vec![
        json_answer(200, config.clone()),
        json_answer(200, config),
        (204, "application/json", Vec::new()),
    ]);

    let table = cli(
        &address,
        &["operator", "raft", "autopilot", "get-config"],
        b"",
        &[],
    );
    let as_json = cli(
        &address,
        &[
            "operator",
            "raft",
            "autopilot",
            "get-config",
            "-format=json",
        ],
        b"",
        &[],
    );
    let set = cli(
        &address,
        &[
            "operator",
            "raft",
            "autopilot",
            "set-config",
            "-cleanup-dead-servers",
            "-min-quorum=3",
        ],
        b"",
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(
        table
            .stdout
            .contains("Dead Server Last Contact Threshold    24h0m0s"),
        "{}",
        table.stdout
    );
    let printed: Value = serde_json::from_str(&as_json.stdout).unwrap();
    assert_eq!(printed["max_trailing_logs"], 1000);
    assert_eq!(set.code, 0, "{}", set.stderr);
    assert_eq!(
        seen[0].target,
        "/v1/sys/storage/raft/autopilot/configuration"
    );
    assert_eq!(seen[2].method, "PUT");
    assert_eq!(
        seen[2].json(),
        json!({"cleanup_dead_servers": true, "min_quorum": 3})
    );
}

// generate-root -init shows the server-generated OTP; -nonce submits a share.
#[test]
fn generate_root_flow() {
    let started = json!({"started": true, "nonce": "N1", "progress": 0, "required": 1,
        "encoded_token": "", "encoded_root_token": "", "pgp_fingerprint": "",
        "otp_length": 28, "otp": "OTPVALUE", "complete": false});
    let done = json!({"started": true, "nonce": "N1", "progress": 1, "required": 1,
        "encoded_token": "ENC", "encoded_root_token": "ENC", "pgp_fingerprint": "",
        "otp_length": 28, "otp": "", "complete": true});
    let (address, server) = serve(vec![json_answer(200, started), json_answer(200, done)]);

    let init = cli(&address, &["operator", "generate-root", "-init"], b"", &[]);
    let update = cli(
        &address,
        &["operator", "generate-root", "-nonce=N1", "share"],
        b"",
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(init.code, 0, "{}", init.stderr);
    assert!(
        init.stdout.contains("OTP           OTPVALUE"),
        "{}",
        init.stdout
    );
    assert_eq!(seen[0].target, "/v1/sys/generate-root/attempt");
    assert_eq!(update.code, 0, "{}", update.stderr);
    assert_eq!(seen[1].json(), json!({"key": "share", "nonce": "N1"}));
    assert!(
        update.stdout.contains("Encoded Token    ENC"),
        "{}",
        update.stdout
    );
}

/// A CA and a server certificate for `localhost` signed by it, written as PEM files.
struct Pki {
    dir: tempfile::TempDir,
    server_config: Arc<rustls::ServerConfig>,
}

impl Pki {
    fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        let other_key = KeyPair::generate().unwrap();
        let mut other_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        other_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        std::fs::write(
            dir.path().join("other-ca.pem"),
            other_params.self_signed(&other_key).unwrap().pem(),
        )
        .unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .unwrap();
        server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            dir,
            server_config: Arc::new(server_config),
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    /// Serves one TLS connection; `None` when the handshake or request fails.
    fn serve_once(&self, answer_body: Value) -> (u16, JoinHandle<Option<Seen>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let config = self.server_config.clone();
        let body = serde_json::to_vec(&answer_body).unwrap();
        let handle = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().ok()?;
            let conn = rustls::ServerConnection::new(config).ok()?;
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let probe = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                answer(&mut tls, 200, "application/json", &body)
            }));
            tls.conn.send_close_notify();
            let _ = tls.flush();
            probe.ok()
        });
        (port, handle)
    }
}

// A server certificate from the CA in -ca-cert is trusted.
#[test]
fn tls_with_ca_cert() {
    let pki = Pki::new();
    let (port, server) = pki.serve_once(kv_answer());
    let address = format!("https://localhost:{port}");
    let ca = format!("-ca-cert={}", pki.path("ca.pem"));

    let outcome = cli(
        &address,
        &["read", &ca, "-field=foo", "secret/foo"],
        b"",
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(outcome.stdout, "bar\n");
    assert_eq!(seen.unwrap().headers["x-vault-token"], "test-token");
}

// A certificate from an untrusted CA is refused: remote error, exit 2, nothing sent.
#[test]
fn tls_untrusted_ca_is_refused() {
    let pki = Pki::new();
    let (port, server) = pki.serve_once(kv_answer());
    let address = format!("https://localhost:{port}");

    let outcome = cli(
        &address,
        &["read", "secret/foo"],
        b"",
        &[
            ("VAULT_CACERT", &pki.path("other-ca.pem")),
            ("VAULT_MAX_RETRIES", "0"),
        ],
    );

    assert!(server.join().unwrap().is_none());
    assert_eq!(outcome.code, 2);
    assert!(outcome.stderr.contains("certificate"), "{}", outcome.stderr);
}

// -tls-skip-verify accepts an untrusted certificate with a mismatched name.
#[test]
fn tls_skip_verify() {
    let pki = Pki::new();
    let (port, server) = pki.serve_once(kv_answer());
    let address = format!("https://127.0.0.1:{port}");

    let outcome = cli(
        &address,
        &["read", "-tls-skip-verify", "-field=foo", "secret/foo"],
        b"",
        &[],
    );

    assert!(server.join().unwrap().is_some());
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(outcome.stdout, "bar\n");
}

// VAULT_TLS_SERVER_NAME verifies against the given name when connecting by IP.
#[test]
fn tls_server_name_override() {
    let pki = Pki::new();
    let (port, server) = pki.serve_once(kv_answer());
    let address = format!("https://127.0.0.1:{port}");

    let outcome = cli(
        &address,
        &["read", "-field=foo", "secret/foo"],
        b"",
        &[
            ("VAULT_CACERT", &pki.path("ca.pem")),
            ("VAULT_TLS_SERVER_NAME", "localhost"),
        ],
    );

    assert!(server.join().unwrap().is_some());
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
}

// userpass login POSTs the password to the login path without any old token, and stores the new one.
#[test]
fn userpass_login() {
    let home = tempfile::tempdir().unwrap();
    let home_str = home.path().to_str().unwrap().to_string();
    let (address, server) = serve(vec![json_answer(
        200,
        json!({"request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0,
               "data": null, "wrap_info": null, "warnings": null,
               "auth": {"client_token": "hvs.user", "accessor": "a", "policies": ["default"],
                        "lease_duration": 60, "renewable": true}}),
    )]);

    let outcome = cli(
        &address,
        &["login", "-method=userpass", "-field=token", "username=bob"],
        b"pw\n",
        &[("HOME", &home_str)],
    );

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(outcome.stdout, "hvs.user\n");
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].target, "/v1/auth/userpass/login/bob");
    assert_eq!(seen[0].json(), json!({"password": "pw"}));
    assert!(!seen[0].headers.contains_key("x-vault-token"));
    assert_eq!(
        std::fs::read_to_string(home.path().join(".vault-token")).unwrap(),
        "hvs.user"
    );
}

mod admin;
mod kv;
mod rekey;
mod tokens;

/// The preflight answer for a path under a KV mount of the given version.
fn preflight(mount: &str, version: &str) -> (u16, &'static str, Vec<u8>) {
    json_answer(
        200,
        json!({"request_id": "p", "data": {"path": format!("{mount}/"), "type": "kv",
               "options": {"version": version}, "accessor": "kv_1", "local": false}}),
    )
}

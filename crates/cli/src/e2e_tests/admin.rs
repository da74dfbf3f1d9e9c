//! `policy`, `secrets`, `auth` and `audit` commands on the wire.

use super::*;

// `policy write NAME -` uploads stdin verbatim under the lower-cased name.
#[test]
fn policy_write_from_stdin() {
    let (address, server) = serve(vec![empty_answer()]);
    let text = "path \"secret/*\" {\n  capabilities = [\"read\"]\n}\n";

    let outcome = cli(
        &address,
        &["policy", "write", "Web", "-"],
        text.as_bytes(),
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(outcome.stdout, "Success! Uploaded policy: web\n");
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].target, "/v1/sys/policies/acl/web");
    assert_eq!(seen[0].json(), json!({"policy": text}));
}

// `policy write` from a file; a missing file fails locally (exit 1) before any request.
#[test]
fn policy_write_from_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.hcl");
    std::fs::write(&file, "path \"a\" { policy = \"read\" }").unwrap();
    let (address, server) = serve(vec![empty_answer()]);

    let ok = cli(
        &address,
        &["policy", "write", "p", file.to_str().unwrap()],
        b"",
        &[],
    );
    let missing = cli(
        &address,
        &["policy", "write", "p", "/nonexistent.hcl"],
        b"",
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(
        seen[0].json(),
        json!({"policy": "path \"a\" { policy = \"read\" }"})
    );
    assert_eq!(missing.code, 1);
}

// `policy read` prints the text; 404 is "No policy named" with exit 2.
#[test]
fn policy_read() {
    let (address, server) = serve(vec![
        json_answer(
            200,
            json!({"data": {"name": "web", "policy": "path \"a\" {}\n\n"}}),
        ),
        json_answer(404, json!({"errors": []})),
    ]);

    let found = cli(&address, &["policy", "read", "web"], b"", &[]);
    let missing = cli(&address, &["policy", "read", "nope"], b"", &[]);

    let seen = server.join().unwrap();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].target, "/v1/sys/policies/acl/web");
    assert_eq!(found.code, 0, "{}", found.stderr);
    assert_eq!(found.stdout, "path \"a\" {}\n");
    assert_eq!(missing.code, 2);
    assert_eq!(missing.stderr, "No policy named: nope\n");
}

// `policy list` asks for the list and prints one name per line; delete DELETEs.
#[test]
fn policy_list_and_delete() {
    let (address, server) = serve(vec![
        json_answer(200, json!({"data": {"keys": ["default", "root", "web"]}})),
        empty_answer(),
    ]);

    let list = cli(&address, &["policy", "list"], b"", &[]);
    let delete = cli(&address, &["policy", "delete", "web"], b"", &[]);

    let seen = server.join().unwrap();
    assert_eq!(seen[0].target, "/v1/sys/policies/acl?list=true");
    assert_eq!(list.stdout, "default\nroot\nweb\n");
    assert_eq!(seen[1].method, "DELETE");
    assert_eq!(seen[1].target, "/v1/sys/policies/acl/web");
    assert_eq!(delete.stdout, "Success! Deleted policy: web\n");
}

// `policy fmt` rewrites the file canonically; a broken file is left alone with exit 1.
#[test]
fn policy_fmt() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.hcl");
    let bad = dir.path().join("bad.hcl");
    std::fs::write(&good, "path \"a/*\"{capabilities=[\"read\",\"list\"]}").unwrap();
    std::fs::write(&bad, "path \"a\" {").unwrap();

    let ok = cli(
        "http://127.0.0.1:1",
        &["policy", "fmt", good.to_str().unwrap()],
        b"",
        &[],
    );
    let err = cli(
        "http://127.0.0.1:1",
        &["policy", "fmt", bad.to_str().unwrap()],
        b"",
        &[],
    );

    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(
        std::fs::read_to_string(&good).unwrap(),
        "path \"a/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n"
    );
    assert_eq!(err.code, 1);
    assert!(err.stderr.starts_with("Failed to parse policy"));
    assert_eq!(std::fs::read_to_string(&bad).unwrap(), "path \"a\" {");
}

// `secrets enable kv-v2` mounts kv with version 2 at the -path given.
#[test]
fn secrets_enable_kv_v2() {
    let (address, server) = serve(vec![empty_answer(), empty_answer()]);

    let v2 = cli(
        &address,
        &[
            "secrets",
            "enable",
            "-path=team",
            "-description=Team secrets",
            "-max-lease-ttl=24h",
            "-local",
            "kv-v2",
        ],
        b"",
        &[],
    );
    let plain = cli(
        &address,
        &["secrets", "enable", "-version=1", "kv"],
        b"",
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(v2.code, 0, "{}", v2.stderr);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].target, "/v1/sys/mounts/team");
    assert_eq!(
        seen[0].json(),
        json!({"type": "kv", "description": "Team secrets",
               "config": {"max_lease_ttl": "24h0m0s"}, "local": true,
               "options": {"version": "2"}})
    );
    assert_eq!(
        v2.stdout,
        "Success! Enabled the kv-v2 secrets engine at: team/\n"
    );
    assert_eq!(seen[1].target, "/v1/sys/mounts/kv");
    assert_eq!(
        seen[1].json(),
        json!({"type": "kv", "options": {"version": "1"}})
    );
    assert_eq!(
        plain.stdout,
        "Success! Enabled the kv secrets engine at: kv/\n"
    );
}

fn mounts_answer() -> Value {
    json!({"request_id": "r", "data": {
        "secret/": {"type": "kv", "accessor": "kv_1", "description": "key/value secret storage",
                    "options": {"version": "2"}, "local": false,
                    "config": {"default_lease_ttl": 0, "max_lease_ttl": 0}},
        "cubbyhole/": {"type": "cubbyhole", "accessor": "cubbyhole_2",
                       "description": "per-token private secret storage", "local": true,
                       "options": null, "config": {"default_lease_ttl": 0, "max_lease_ttl": 0}}
    }, "secret/": {"type": "kv"}})
}

// `secrets list` prints the sorted table; -format=json prints the mount map.
#[test]
fn secrets_list() {
    let (address, server) = serve(vec![
        json_answer(200, mounts_answer()),
        json_answer(200, mounts_answer()),
    ]);

    let table = cli(&address, &["secrets", "list"], b"", &[]);
    let json_out = cli(&address, &["secrets", "list", "-format=json"], b"", &[]);

    let seen = server.join().unwrap();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].target, "/v1/sys/mounts");
    assert_eq!(
        table.stdout,
        "Path          Type         Accessor       Description\n\
         ----          ----         --------       -----------\n\
         cubbyhole/    cubbyhole    cubbyhole_2    per-token private secret storage\n\
         secret/       kv           kv_1           key/value secret storage\n"
    );
    let printed: Value = serde_json::from_str(&json_out.stdout).unwrap();
    assert_eq!(printed["secret/"]["options"]["version"], "2");
}

// disable, tune and move send what Vault's CLI sends and print its lines.
#[test]
fn secrets_disable_tune_move() {
    let (address, server) = serve(vec![
        empty_answer(),
        empty_answer(),
        json_answer(200, json!({"data": {"migration_id": "m-1"}})),
        json_answer(
            200,
            json!({"data": {"migration_id": "m-1", "migration_info": {
                "source_mount": "old/", "target_mount": "new/", "status": "success"}}}),
        ),
    ]);

    let disable = cli(&address, &["secrets", "disable", "team/"], b"", &[]);
    let tune = cli(
        &address,
        &[
            "secrets",
            "tune",
            "-default-lease-ttl=1h",
            "-options=version=2",
            "team",
        ],
        b"",
        &[],
    );
    let moved = cli(&address, &["secrets", "move", "old", "new/"], b"", &[]);

    let seen = server.join().unwrap();
    assert_eq!(seen[0].method, "DELETE");
    assert_eq!(seen[0].target, "/v1/sys/mounts/team");
    assert_eq!(
        disable.stdout,
        "Success! Disabled the secrets engine (if it existed) at: team/\n"
    );
    assert_eq!(seen[1].method, "POST");
    assert_eq!(seen[1].target, "/v1/sys/mounts/team/tune");
    assert_eq!(
        seen[1].json(),
        json!({"default_lease_ttl": "1h0m0s", "options": {"version": "2"}})
    );
    assert_eq!(tune.stdout, "Success! Tuned the secrets engine at: team/\n");
    assert_eq!(seen[2].target, "/v1/sys/remount");
    assert_eq!(seen[2].json(), json!({"from": "old", "to": "new"}));
    assert_eq!(seen[3].method, "GET");
    assert_eq!(seen[3].target, "/v1/sys/remount/status/m-1");
    assert_eq!(moved.code, 0, "{}", moved.stderr);
    assert_eq!(
        moved.stdout,
        "Started moving secrets engine old/ to new/, with migration ID m-1\n\
         Success! Finished moving secrets engine old/ to new/, with migration ID m-1\n"
    );
}

// auth enable/list/tune/disable use sys/auth.
#[test]
fn auth_commands() {
    let auth_list = json!({"data": {"token/": {"type": "token", "accessor": "auth_token_1",
        "description": "token based credentials", "plugin_version": "",
        "config": {"default_lease_ttl": 0, "max_lease_ttl": 0, "token_type": "default-service"}}}});
    let (address, server) = serve(vec![
        empty_answer(),
        json_answer(200, auth_list),
        empty_answer(),
        empty_answer(),
    ]);

    let enable = cli(
        &address,
        &[
            "auth",
            "enable",
            "-path=people",
            "-description=humans",
            "userpass",
        ],
        b"",
        &[],
    );
    let list = cli(&address, &["auth", "list"], b"", &[]);
    let tune = cli(
        &address,
        &["auth", "tune", "-max-lease-ttl=2h", "people"],
        b"",
        &[],
    );
    let disable = cli(&address, &["auth", "disable", "people"], b"", &[]);

    let seen = server.join().unwrap();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].target, "/v1/sys/auth/people");
    assert_eq!(
        seen[0].json(),
        json!({"type": "userpass", "description": "humans"})
    );
    assert_eq!(
        enable.stdout,
        "Success! Enabled userpass auth method at: people/\n"
    );
    assert_eq!(seen[1].target, "/v1/sys/auth");
    assert_eq!(
        list.stdout,
        "Path      Type     Accessor        Description                Version\n\
         ----      ----     --------        -----------                -------\n\
         token/    token    auth_token_1    token based credentials    n/a\n"
    );
    assert_eq!(seen[2].target, "/v1/sys/auth/people/tune");
    assert_eq!(seen[2].json(), json!({"max_lease_ttl": "2h0m0s"}));
    assert_eq!(tune.stdout, "Success! Tuned the auth method at: people/\n");
    assert_eq!(seen[3].method, "DELETE");
    assert_eq!(seen[3].target, "/v1/sys/auth/people");
    assert_eq!(
        disable.stdout,
        "Success! Disabled the auth method (if it existed) at: people/\n"
    );
}

// audit enable sends k=v pairs as string options; list and disable follow Vault.
#[test]
fn audit_commands() {
    let devices = json!({"request_id": "r", "data": {"file/": {"type": "file",
        "description": "", "local": false, "path": "file/",
        "options": {"file_path": "stdout"}}}});
    let (address, server) = serve(vec![
        empty_answer(),
        json_answer(200, devices),
        json_answer(200, json!({"request_id": "r", "data": {}})),
        empty_answer(),
    ]);

    let enable = cli(
        &address,
        &[
            "audit",
            "enable",
            "file",
            "file_path=stdout",
            "log_raw=false",
        ],
        b"",
        &[],
    );
    let list = cli(&address, &["audit", "list", "-detailed"], b"", &[]);
    let empty = cli(&address, &["audit", "list"], b"", &[]);
    let disable = cli(&address, &["audit", "disable", "file"], b"", &[]);

    let seen = server.join().unwrap();
    assert_eq!(enable.code, 0, "{}", enable.stderr);
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].target, "/v1/sys/audit/file");
    assert_eq!(
        seen[0].json(),
        json!({"type": "file", "options": {"file_path": "stdout", "log_raw": "false"}})
    );
    assert_eq!(
        enable.stdout,
        "Success! Enabled the file audit device at: file/\n"
    );
    assert_eq!(
        list.stdout,
        "Path     Type    Description    Replication    Options\n\
         ----     ----    -----------    -----------    -------\n\
         file/    file    n/a            replicated     file_path=stdout\n"
    );
    assert_eq!(empty.code, 2);
    assert_eq!(empty.stdout, "No audit devices are enabled.\n");
    assert_eq!(seen[3].method, "DELETE");
    assert_eq!(
        disable.stdout,
        "Success! Disabled audit device (if it was enabled) at: file/\n"
    );
}

// A server error on enable is exit 2 with the API error text.
#[test]
fn enable_error_is_remote() {
    let (address, server) = serve(vec![json_answer(
        400,
        json!({"errors": ["path is already in use at kv/"]}),
    )]);

    let outcome = cli(&address, &["secrets", "enable", "kv"], b"", &[]);

    server.join().unwrap();
    assert_eq!(outcome.code, 2);
    assert!(
        outcome
            .stderr
            .starts_with("Error enabling: Error making API request.")
    );
    assert!(outcome.stderr.contains("* path is already in use at kv/"));
}

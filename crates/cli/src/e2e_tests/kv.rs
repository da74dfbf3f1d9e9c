//! `kv` commands on the wire: the preflight, the version 2 path rewriting, and the output.

use super::*;

fn written_metadata() -> Value {
    json!({"request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0,
           "data": {"created_time": "2025-01-02T03:04:05Z", "custom_metadata": null,
                    "deletion_time": "", "destroyed": false, "version": 3},
           "wrap_info": null, "warnings": null, "auth": null})
}

fn v2_secret() -> Value {
    json!({"request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0,
           "data": {"data": {"foo": "bar"},
                    "metadata": {"created_time": "2025-01-02T03:04:05Z",
                                 "custom_metadata": {"owner": "ann"}, "deletion_time": "",
                                 "destroyed": false, "version": 2}},
           "wrap_info": null, "warnings": null, "auth": null})
}

// `kv put` on a version 2 mount: preflight on the typed path, then PUT data/ with options.
#[test]
fn put_v2_rewrites_path_and_prints_metadata() {
    let (address, server) = serve(vec![
        preflight("secret", "2"),
        json_answer(200, written_metadata()),
    ]);

    let outcome = cli(
        &address,
        &["kv", "put", "-cas=2", "secret/app/db", "user=ann", "n=1"],
        b"",
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].target, "/v1/sys/internal/ui/mounts/secret/app/db");
    assert_eq!(seen[0].headers["x-vault-token"], "test-token");
    assert_eq!(seen[1].method, "PUT");
    assert_eq!(seen[1].target, "/v1/secret/data/app/db");
    assert_eq!(seen[1].headers["content-type"], "application/json");
    assert_eq!(
        seen[1].json(),
        json!({"data": {"user": "ann", "n": "1"}, "options": {"cas": 2}})
    );
    assert_eq!(
        outcome.stdout,
        "=== Secret Path ===\nsecret/data/app/db\n\n\
         ======= Metadata =======\n\
         Key                Value\n\
         ---                -----\n\
         created_time       2025-01-02T03:04:05Z\n\
         custom_metadata    <nil>\n\
         deletion_time      n/a\n\
         destroyed          false\n\
         version            3\n"
    );
}

// `kv put` on version 1 sends the data as the body and prints Vault's success line.
#[test]
fn put_v1_sends_plain_data() {
    let (address, server) = serve(vec![preflight("kv", "1"), empty_answer()]);

    let outcome = cli(&address, &["kv", "put", "kv/app", "a=b"], b"", &[]);

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(seen[1].target, "/v1/kv/app");
    assert_eq!(seen[1].json(), json!({"a": "b"}));
    assert_eq!(outcome.stdout, "Success! Data written to: kv/app\n");
}

// `kv put` without data is refused locally, before the preflight.
#[test]
fn put_without_data_is_usage_error() {
    let outcome = cli("http://127.0.0.1:1", &["kv", "put", "secret/x"], b"", &[]);

    assert_eq!(outcome.code, 1);
    assert!(outcome.stderr.starts_with("Must supply data"));
}

// `kv get` on version 2 prints the path, metadata and data sections.
#[test]
fn get_v2_sections() {
    let (address, server) = serve(vec![
        preflight("secret", "2"),
        json_answer(200, v2_secret()),
    ]);

    let outcome = cli(&address, &["kv", "get", "secret/creds"], b"", &[]);

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(seen[1].method, "GET");
    assert_eq!(seen[1].target, "/v1/secret/data/creds");
    assert_eq!(
        outcome.stdout,
        "== Secret Path ==\nsecret/data/creds\n\n\
         ======= Metadata =======\n\
         Key                Value\n\
         ---                -----\n\
         created_time       2025-01-02T03:04:05Z\n\
         custom_metadata    map[owner:ann]\n\
         deletion_time      n/a\n\
         destroyed          false\n\
         version            2\n\n\
         === Data ===\n\
         Key    Value\n\
         ---    -----\n\
         foo    bar\n"
    );
}

// `-mount` preflights the mount and joins the path under it; -version and -field apply.
#[test]
fn get_with_mount_version_and_field() {
    let (address, server) = serve(vec![
        preflight("secret", "2"),
        json_answer(200, v2_secret()),
    ]);

    let outcome = cli(
        &address,
        &[
            "kv",
            "get",
            "-mount=secret",
            "-version=2",
            "-field=foo",
            "creds",
        ],
        b"",
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(seen[0].target, "/v1/sys/internal/ui/mounts/secret");
    assert_eq!(seen[1].target, "/v1/secret/data/creds?version=2");
    assert_eq!(outcome.stdout, "bar\n");
}

// A deleted version answers 404 with metadata: shown, exit 0; -field finds no data, exit 2.
#[test]
fn get_deleted_version() {
    let deleted = json!({"request_id": "r", "data": {"data": null, "metadata": {
        "created_time": "t", "custom_metadata": null,
        "deletion_time": "2025-01-02T03:04:05Z", "destroyed": false, "version": 1}}});
    let (address, server) = serve(vec![
        preflight("secret", "2"),
        json_answer(404, deleted.clone()),
        preflight("secret", "2"),
        json_answer(404, deleted),
    ]);

    let table = cli(&address, &["kv", "get", "secret/gone"], b"", &[]);
    let field = cli(
        &address,
        &["kv", "get", "-field=foo", "secret/gone"],
        b"",
        &[],
    );

    server.join().unwrap();
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(
        table
            .stdout
            .contains("deletion_time      2025-01-02T03:04:05Z")
    );
    assert!(!table.stdout.contains("Data ="));
    assert_eq!(field.code, 2);
    assert_eq!(field.stderr, "No data found at secret/data/gone\n");
}

// A plain 404 is "No value found" at the rewritten path, exit 2.
#[test]
fn get_missing() {
    let (address, server) = serve(vec![
        preflight("secret", "2"),
        json_answer(404, json!({"errors": []})),
    ]);

    let outcome = cli(&address, &["kv", "get", "secret/none"], b"", &[]);

    server.join().unwrap();
    assert_eq!(outcome.code, 2);
    assert_eq!(outcome.stderr, "No value found at secret/data/none\n");
}

// When the first preflight route is missing, the newer route is asked instead.
#[test]
fn preflight_falls_back_to_mounts_all() {
    let (address, server) = serve(vec![
        json_answer(404, json!({"errors": []})),
        preflight("secret", "2"),
        json_answer(200, v2_secret()),
    ]);

    let outcome = cli(
        &address,
        &["kv", "get", "-field=foo", "secret/creds"],
        b"",
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(seen[0].target, "/v1/sys/internal/ui/mounts/secret/creds");
    assert_eq!(seen[1].target, "/v1/sys/mounts-all/secret/creds");
    assert_eq!(seen[2].target, "/v1/secret/data/creds");
}

// With no preflight route at all the server is assumed to run KV version 1.
#[test]
fn preflight_missing_means_v1() {
    let (address, server) = serve(vec![
        json_answer(404, json!({"errors": []})),
        json_answer(404, json!({"errors": []})),
        json_answer(200, kv_answer()),
    ]);

    let outcome = cli(&address, &["kv", "get", "secret/foo"], b"", &[]);

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(seen[2].target, "/v1/secret/foo");
    assert_eq!(
        outcome.stdout,
        "=== Data ===\nKey    Value\n---    -----\nfoo    bar\n"
    );
}

// A 403 preflight stops the command with exit 2 and a hint about policies.
#[test]
fn preflight_forbidden() {
    let (address, server) = serve(vec![json_answer(
        403,
        json!({"errors": ["permission denied"]}),
    )]);

    let outcome = cli(&address, &["kv", "get", "secret/foo"], b"", &[]);

    let seen = server.join().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(outcome.code, 2);
    assert!(
        outcome
            .stderr
            .contains("preflight capability check returned 403")
    );
}

// -wrap-ttl wraps the real request but never the preflight; the wrapping token is printed.
#[test]
fn wrap_ttl_skips_preflight() {
    let wrapped = json!({"request_id": "", "lease_id": "", "renewable": false,
        "lease_duration": 0, "data": null, "warnings": null, "auth": null,
        "wrap_info": {"token": "hvs.wrapping", "accessor": "wa", "ttl": 300,
                      "creation_time": "2025-01-02T03:04:05Z",
                      "creation_path": "secret/data/creds"}});
    let (address, server) = serve(vec![
        preflight("secret", "2"),
        json_answer(200, wrapped.clone()),
        preflight("secret", "2"),
        json_answer(200, wrapped),
    ]);

    let field = cli(
        &address,
        &[
            "kv",
            "get",
            "-wrap-ttl=5m",
            "-field=wrapping_token",
            "secret/creds",
        ],
        b"",
        &[],
    );
    let table = cli(
        &address,
        &["kv", "get", "secret/creds"],
        b"",
        &[("VAULT_WRAP_TTL", "60")],
    );

    let seen = server.join().unwrap();
    assert_eq!(field.code, 0, "{}", field.stderr);
    assert_eq!(field.stdout, "hvs.wrapping\n");
    assert!(!seen[0].headers.contains_key("x-vault-wrap-ttl"));
    assert_eq!(seen[1].headers["x-vault-wrap-ttl"], "300");
    assert!(!seen[2].headers.contains_key("x-vault-wrap-ttl"));
    assert_eq!(seen[3].headers["x-vault-wrap-ttl"], "60");
    assert!(
        table
            .stdout
            .contains("wrapping_token:                  hvs.wrapping\n"),
        "{}",
        table.stdout
    );
    assert!(
        table
            .stdout
            .contains("wrapping_token_ttl:              5m\n")
    );
}

// `kv patch` sends a merge patch with its own content type, nested like a put.
#[test]
fn patch_sends_merge_patch() {
    let (address, server) = serve(vec![
        preflight("secret", "2"),
        json_answer(200, written_metadata()),
    ]);

    let outcome = cli(
        &address,
        &["kv", "patch", "-cas=2", "-format=json", "secret/app", "a=2"],
        b"",
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(seen[1].method, "PATCH");
    assert_eq!(seen[1].target, "/v1/secret/data/app");
    assert_eq!(
        seen[1].headers["content-type"],
        "application/merge-patch+json"
    );
    assert_eq!(
        seen[1].json(),
        json!({"data": {"a": "2"}, "options": {"cas": 2}})
    );
    let printed: Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(printed["data"]["version"], 3);
}

// `kv patch -method=rw` reads the latest version, merges and writes it back with its CAS.
#[test]
fn patch_read_write() {
    let (address, server) = serve(vec![
        preflight("secret", "2"),
        json_answer(200, v2_secret()),
        json_answer(200, written_metadata()),
    ]);

    let outcome = cli(
        &address,
        &["kv", "patch", "-method=rw", "secret/app", "extra=x"],
        b"",
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(seen[1].method, "GET");
    assert_eq!(seen[2].method, "PUT");
    assert_eq!(
        seen[2].json(),
        json!({"data": {"foo": "bar", "extra": "x"}, "options": {"cas": 2}})
    );
}

// Patching a version 1 mount is refused after the preflight, exit 2.
#[test]
fn patch_v1_refused() {
    let (address, server) = serve(vec![preflight("kv", "1")]);

    let outcome = cli(&address, &["kv", "patch", "kv/app", "a=1"], b"", &[]);

    let seen = server.join().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(outcome.code, 2);
    assert!(outcome.stderr.contains("must be version 2"));
}

// delete without -versions deletes the latest; with it, PUTs the list to delete/.
#[test]
fn delete_latest_and_versions() {
    let (address, server) = serve(vec![
        preflight("secret", "2"),
        empty_answer(),
        preflight("secret", "2"),
        empty_answer(),
    ]);

    let latest = cli(&address, &["kv", "delete", "secret/app"], b"", &[]);
    let some = cli(
        &address,
        &["kv", "delete", "-versions=1,3", "secret/app"],
        b"",
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(latest.code, 0, "{}", latest.stderr);
    assert_eq!(seen[1].method, "DELETE");
    assert_eq!(seen[1].target, "/v1/secret/data/app");
    assert_eq!(
        latest.stdout,
        "Success! Data deleted (if it existed) at: secret/data/app\n"
    );
    assert_eq!(seen[3].method, "PUT");
    assert_eq!(seen[3].target, "/v1/secret/delete/app");
    assert_eq!(seen[3].json(), json!({"versions": [1, 3]}));
    assert_eq!(
        some.stdout,
        "Success! Data deleted (if it existed) at: secret/delete/app\n"
    );
}

// undelete and destroy PUT the versions to their own sections.
#[test]
fn undelete_and_destroy() {
    let (address, server) = serve(vec![
        preflight("secret", "2"),
        empty_answer(),
        preflight("secret", "2"),
        empty_answer(),
    ]);

    let undelete = cli(
        &address,
        &["kv", "undelete", "-versions=2", "secret/app"],
        b"",
        &[],
    );
    let destroy = cli(
        &address,
        &["kv", "destroy", "-versions", "1,2", "secret/app"],
        b"",
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(undelete.code, 0, "{}", undelete.stderr);
    assert_eq!(seen[1].target, "/v1/secret/undelete/app");
    assert_eq!(seen[1].json(), json!({"versions": [2]}));
    assert_eq!(
        undelete.stdout,
        "Success! Data written to: secret/undelete/app\n"
    );
    assert_eq!(destroy.code, 0, "{}", destroy.stderr);
    assert_eq!(seen[3].method, "PUT");
    assert_eq!(seen[3].target, "/v1/secret/destroy/app");
    assert_eq!(seen[3].json(), json!({"versions": [1, 2]}));
}

// undelete needs -versions (usage error before any request), and KV version 2.
#[test]
fn undelete_needs_versions_and_v2() {
    let missing = cli(
        "http://127.0.0.1:1",
        &["kv", "undelete", "secret/app"],
        b"",
        &[],
    );
    let (address, server) = serve(vec![preflight("kv", "1")]);

    let v1 = cli(
        &address,
        &["kv", "destroy", "-versions=1", "kv/app"],
        b"",
        &[],
    );

    server.join().unwrap();
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("-versions"));
    assert_eq!(v1.code, 1);
    assert!(
        v1.stderr
            .starts_with("Destroy not supported on KV Version 1")
    );
}

// `kv list` on version 2 lists the metadata tree.
#[test]
fn list_v2_uses_metadata() {
    let (address, server) = serve(vec![
        preflight("secret", "2"),
        json_answer(200, json!({"data": {"keys": ["a", "b/"]}})),
    ]);

    let outcome = cli(&address, &["kv", "list", "secret/app"], b"", &[]);

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(seen[1].target, "/v1/secret/metadata/app/?list=true");
    assert_eq!(outcome.stdout, "Keys\n----\na\nb/\n");
}

// `kv metadata put` sends only the given settings; get shows the sections; delete DELETEs.
#[test]
fn metadata_commands() {
    let metadata = json!({"request_id": "r", "data": {"cas_required": false,
        "created_time": "t1", "current_version": 1, "custom_metadata": null,
        "delete_version_after": "0s", "max_versions": 0, "oldest_version": 0,
        "updated_time": "t1",
        "versions": {"1": {"created_time": "t1", "deletion_time": "", "destroyed": false}}}});
    let (address, server) = serve(vec![
        preflight("secret", "2"),
        empty_answer(),
        preflight("secret", "2"),
        json_answer(200, metadata),
        preflight("secret", "2"),
        empty_answer(),
    ]);

    let put = cli(
        &address,
        &[
            "kv",
            "metadata",
            "put",
            "-max-versions=4",
            "-cas-required",
            "-delete-version-after=30m",
            "-custom-metadata=owner=ann",
            "secret/app",
        ],
        b"",
        &[],
    );
    let get = cli(&address, &["kv", "metadata", "get", "secret/app"], b"", &[]);
    let delete = cli(
        &address,
        &["kv", "metadata", "delete", "secret/app"],
        b"",
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(put.code, 0, "{}", put.stderr);
    assert_eq!(seen[1].method, "PUT");
    assert_eq!(seen[1].target, "/v1/secret/metadata/app");
    assert_eq!(
        seen[1].json(),
        json!({"max_versions": 4, "cas_required": true, "delete_version_after": "30m0s",
               "custom_metadata": {"owner": "ann"}})
    );
    assert_eq!(
        put.stdout,
        "Success! Data written to: secret/metadata/app\n"
    );
    assert_eq!(get.code, 0, "{}", get.stderr);
    assert!(
        get.stdout
            .starts_with("== Metadata Path ==\nsecret/metadata/app\n\n")
    );
    assert!(get.stdout.contains("delete_version_after    0s\n"));
    assert!(
        get.stdout.contains("\n====== Version 1 ======\n"),
        "{}",
        get.stdout
    );
    assert_eq!(seen[5].method, "DELETE");
    assert_eq!(seen[5].target, "/v1/secret/metadata/app");
    assert_eq!(
        delete.stdout,
        "Success! Data deleted (if it existed) at: secret/metadata/app\n"
    );
}

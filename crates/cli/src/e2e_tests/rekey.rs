//! `operator rekey` and `operator init -pgp-keys` on the wire.

use base64::Engine as _;

use super::*;

fn status(progress: u32) -> Value {
    json!({"nonce": "n1", "started": true, "t": 2, "n": 2, "progress": progress, "required": 1,
           "pgp_fingerprints": ["f1", "f2"], "backup": true, "verification_required": false})
}

// `-init -pgp-keys=a,b -backup` sends the files as base64 with Vault's field names.
#[test]
fn rekey_init_sends_pgp_keys_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.pgp"), dir.path().join("b.pgp"));
    std::fs::write(&a, [0x99u8, 0x00, 0x01]).unwrap();
    std::fs::write(&b, [0x99u8, 0x00, 0x02]).unwrap();
    let keys = format!("-pgp-keys={},{}", a.display(), b.display());
    let (address, server) = serve(vec![json_answer(200, status(0))]);

    let outcome = cli(
        &address,
        &[
            "operator",
            "rekey",
            "-init",
            "-key-shares=2",
            "-key-threshold=2",
            &keys,
            "-backup",
        ],
        b"",
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].target, "/v1/sys/rekey/init");
    let b64 = base64::engine::general_purpose::STANDARD;
    assert_eq!(
        seen[0].json(),
        json!({"secret_shares": 2, "secret_threshold": 2, "backup": true,
               "require_verification": false,
               "pgp_keys": [b64.encode([0x99u8, 0, 1]), b64.encode([0x99u8, 0, 2])]})
    );
    assert!(
        outcome.stdout.contains("PGP Fingerprints"),
        "{}",
        outcome.stdout
    );
}

// Without -nonce the share is read from stdin and sent with the attempt's nonce; the
// completion prints one line per share with its fingerprint.
#[test]
fn rekey_submit_reads_stdin_and_prints_the_new_shares() {
    let done = json!({"nonce": "n1", "complete": true, "keys": ["aa", "bb"],
                      "keys_base64": ["qg==", "uw=="], "pgp_fingerprints": ["f1", "f2"],
                      "backup": true, "verification_required": false});
    let (address, server) = serve(vec![json_answer(200, status(0)), json_answer(200, done)]);

    let outcome = cli(&address, &["operator", "rekey", "-"], b"c2hhcmU=\n", &[]);

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(seen[0].target, "/v1/sys/rekey/init");
    assert_eq!(seen[1].target, "/v1/sys/rekey/update");
    assert_eq!(seen[1].json(), json!({"key": "c2hhcmU=", "nonce": "n1"}));
    assert!(
        outcome
            .stdout
            .starts_with("Key 1 fingerprint: f1; value: qg==\n")
    );
    assert!(outcome.stdout.contains("backed up"));
}

// `-backup-retrieve` reads the logical endpoint; `-backup-delete` DELETEs it.
#[test]
fn rekey_backup_retrieve_and_delete() {
    let backup =
        json!({"data": {"nonce": "n1", "keys": {"f1": ["aa"]}, "keys_base64": {"f1": ["qg=="]}}});
    let (address, server) = serve(vec![json_answer(200, backup), empty_answer()]);

    let got = cli(
        &address,
        &["operator", "rekey", "-backup-retrieve", "-format=json"],
        b"",
        &[],
    );
    let deleted = cli(&address, &["operator", "rekey", "-backup-delete"], b"", &[]);

    let seen = server.join().unwrap();
    assert_eq!(got.code, 0, "{}", got.stderr);
    assert_eq!(json_of(&got.stdout)["keys"]["f1"], json!(["aa"]));
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("GET", "/v1/sys/rekey/backup")
    );
    assert_eq!(
        (seen[1].method.as_str(), seen[1].target.as_str()),
        ("DELETE", "/v1/sys/rekey/backup")
    );
    assert_eq!(seen[1].headers["x-vault-token"], "test-token");
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
}

// `operator init -pgp-keys` sends one key per share; a count mismatch fails locally.
#[test]
fn init_sends_pgp_keys() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.b64");
    std::fs::write(&a, "mQEN\n").unwrap();
    let keys = format!("-pgp-keys={}", a.display());
    let init = json!({"keys": ["aa"], "keys_base64": ["qg=="], "root_token": "hvs.x"});
    let (address, server) = serve(vec![json_answer(200, init)]);

    let ok = cli(
        &address,
        &[
            "operator",
            "init",
            "-key-shares=1",
            "-key-threshold=1",
            &keys,
        ],
        b"",
        &[],
    );
    let mismatch = cli(
        &address,
        &[
            "operator",
            "init",
            "-key-shares=3",
            "-key-threshold=2",
            &keys,
        ],
        b"",
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(seen[0].json()["pgp_keys"], json!(["mQEN"]));
    assert_eq!(mismatch.code, 1);
    assert!(
        mismatch.stderr.contains("one key per share"),
        "{}",
        mismatch.stderr
    );
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

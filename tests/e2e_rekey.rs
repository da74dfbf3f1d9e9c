//! `operator rekey` through the real CLI against a real TLS server process, and the HTTP
//! wire answers of `sys/rekey/*` along the way.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Node;
use serde_json::Value;

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn operator_rekey_with_verification_then_only_the_new_shares_unseal() {
    // Set up: a node initialized with 3 shares, threshold 2, unsealed.
    let mut node = Node::new();
    node.start();
    let (old, root) = node.init_and_unseal(3, 2);

    // Act: init a 5-of-3 rekey with verification, give two current shares (one as an
    // argument, one on stdin), then give three new shares back to verify.
    let (code, out, err) = node.cli(
        None,
        &[
            "operator",
            "rekey",
            "-init",
            "-key-shares=5",
            "-key-threshold=3",
            "-verify",
            "-format=json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let started = json(&out);
    let nonce = started["nonce"].as_str().unwrap().to_string();
    let nonce_flag = format!("-nonce={nonce}");
    let (code, out, err) = node.cli(None, &["operator", "rekey", &nonce_flag, &old[0]]);
    assert_eq!(code, 0, "{err}");
    let first = out;
    let (code, out, err) = node.cli_stdin(
        None,
        &["operator", "rekey", &nonce_flag, "-format=json", "-"],
        &format!("{}\n", old[1]),
    );
    assert_eq!(code, 0, "{err}");
    let done = json(&out);
    let new: Vec<String> = done["keys_base64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let verify_nonce = format!("-nonce={}", done["verification_nonce"].as_str().unwrap());
    let (_, pending, _) = node.cli(
        None,
        &["operator", "rekey", "-status", "-verify", "-format=json"],
    );
    let bad = node.cli(
        None,
        &["operator", "rekey", "-verify", &nonce_flag, &new[0]],
    );
    for share in &new[..2] {
        let (code, _, err) = node.cli(
            None,
            &["operator", "rekey", "-verify", &verify_nonce, share],
        );
        assert_eq!(code, 0, "{err}");
    }
    let (code, verified, err) = node.cli(
        None,
        &["operator", "rekey", "-verify", &verify_nonce, &new[4]],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = node.cli(Some(&root), &["operator", "seal"]);
    assert_eq!(code, 0, "{err}");
    let old_unseal: Vec<_> = old
        .iter()
        .map(|k| node.cli(None, &["operator", "unseal", k]))
        .collect();
    node.cli(None, &["operator", "unseal", "-reset"]);
    let unsealed = node.unseal(&new[1..4]);

    // Assert: statuses and answers in Vault's shape; old shares refused, new ones unseal.
    assert_eq!(
        (started["t"].as_u64(), started["n"].as_u64()),
        (Some(3), Some(5))
    );
    assert_eq!(started["required"], 2);
    assert_eq!(started["verification_required"], true);
    assert!(
        first.contains("Rekey Progress") && first.contains("1/2"),
        "{first}"
    );
    assert_eq!(done["complete"], true);
    assert_eq!(new.len(), 5);
    assert_eq!(json(&pending)["progress"], 0);
    assert_eq!(
        bad.0, 2,
        "a share sent with the rekey nonce is refused: {}",
        bad.2
    );
    assert!(bad.2.contains("incorrect nonce"), "{}", bad.2);
    assert!(
        verified.contains("Rekey verification was successful"),
        "{verified}"
    );
    assert_eq!((old_unseal[0].0, old_unseal[1].0), (0, 0), "progress only");
    assert_eq!(
        old_unseal[2].0, 2,
        "three old shares no longer unseal: {}",
        old_unseal[2].1
    );
    assert_eq!(unsealed["sealed"], false, "{unsealed}");
    let seal = node
        .client()
        .get(format!("{}/v1/sys/seal-status", node.addr))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    assert_eq!((seal["t"].as_u64(), seal["n"].as_u64()), (Some(3), Some(5)));
}

#[test]
fn operator_rekey_cancel_status_and_refusals() {
    // Set up: a node with a single share.
    let mut node = Node::new();
    node.start();
    let (old, root) = node.init_and_unseal(1, 1);

    // Act.
    let keybase = node.cli(
        None,
        &[
            "operator",
            "rekey",
            "-init",
            "-key-shares=1",
            "-key-threshold=1",
            "-pgp-keys=keybase:alice",
        ],
    );
    let no_attempt = node.cli(None, &["operator", "rekey", &old[0]]);
    let (code, _, err) = node.cli(
        None,
        &[
            "operator",
            "rekey",
            "-init",
            "-key-shares=3",
            "-key-threshold=2",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (_, status, _) = node.cli(None, &["operator", "rekey", "-status"]);
    let cancel = node.cli(None, &["operator", "rekey", "-cancel"]);
    let (_, after, _) = node.cli(None, &["operator", "rekey", "-status", "-format=json"]);
    let no_backup = node.cli(Some(&root), &["operator", "rekey", "-backup-retrieve"]);

    // Assert.
    assert_eq!(keybase.0, 1, "refused locally");
    assert!(keybase.2.contains("keybase"), "{}", keybase.2);
    assert_eq!(no_attempt.0, 1);
    assert!(no_attempt.2.contains("-init"), "{}", no_attempt.2);
    assert!(
        status.contains("New Shares") && status.contains("3"),
        "{status}"
    );
    assert_eq!(cancel.0, 0, "{}", cancel.2);
    assert_eq!(json(&after)["started"], false);
    assert_eq!(no_backup.0, 2);
    assert!(
        no_backup.2.contains("no backed-up keys found"),
        "{}",
        no_backup.2
    );
}

//! How `operator rekey` shows statuses and the new shares in table format.
//!
//! The completion text is what operators copy shares from, so it follows Vault's: one
//! `Key N:` line per share (with its PGP fingerprint when encrypted), the nonce, and what to
//! do next (distribute, or verify first).

use strongroom_api::{RekeyBackup, RekeyStatus, RekeyUpdateResponse, RekeyVerificationStatus};

/// Rows of `sys/rekey/init`'s status.
pub fn status_rows(s: &RekeyStatus) -> Vec<(String, String)> {
    let mut rows = vec![
        ("Nonce".to_string(), s.nonce.clone()),
        ("Started".to_string(), s.started.to_string()),
        (
            "Rekey Progress".to_string(),
            format!("{}/{}", s.progress, s.required),
        ),
        ("New Shares".to_string(), s.n.to_string()),
        ("New Threshold".to_string(), s.t.to_string()),
        (
            "Verification Required".to_string(),
            s.verification_required.to_string(),
        ),
    ];
    if !s.verification_nonce.is_empty() {
        rows.push((
            "Verification Nonce".to_string(),
            s.verification_nonce.clone(),
        ));
    }
    if let Some(fps) = &s.pgp_fingerprints {
        rows.push((
            "PGP Fingerprints".to_string(),
            format!("[{}]", fps.join(" ")),
        ));
        rows.push(("Backup".to_string(), s.backup.to_string()));
    }
    rows
}

/// Rows of `sys/rekey/verify`'s status.
pub fn verification_rows(s: &RekeyVerificationStatus) -> Vec<(String, String)> {
    vec![
        ("Nonce".to_string(), s.nonce.clone()),
        ("Started".to_string(), s.started.to_string()),
        ("New Shares".to_string(), s.n.to_string()),
        ("New Threshold".to_string(), s.t.to_string()),
        (
            "Verification Progress".to_string(),
            format!("{}/{}", s.progress, s.t),
        ),
    ]
}

/// Rows of the backup: one per fingerprint.
pub fn backup_rows(b: &RekeyBackup) -> Vec<(String, String)> {
    let mut rows = vec![("Nonce".to_string(), b.nonce.clone())];
    rows.extend(
        b.keys
            .iter()
            .map(|(fp, keys)| (fp.clone(), format!("[{}]", keys.join(" ")))),
    );
    rows
}

/// The new shares and what to do with them.
pub fn completion(done: &RekeyUpdateResponse) -> String {
    let mut text = String::new();
    for (i, key) in done.keys_base64.iter().enumerate() {
        match done.pgp_fingerprints.as_ref().and_then(|f| f.get(i)) {
            Some(fp) => text.push_str(&format!("Key {} fingerprint: {fp}; value: {key}\n", i + 1)),
            None => text.push_str(&format!("Key {}: {key}\n", i + 1)),
        }
    }
    text.push_str(&format!("\nOperation nonce: {}\n\n", done.nonce));
    let n = done.keys_base64.len();
    if done.verification_required {
        text.push_str(&format!(
            "The unseal key was rekeyed into {n} new key shares, but the new shares are NOT \
             active yet:\nthe current shares still unseal. Give a threshold of the new shares back with\n\n    \
             strongroom operator rekey -verify -nonce={}\n\nto activate them.{}\n",
            done.verification_nonce,
            backup_note(done)
        ));
    } else {
        text.push_str(&format!(
            "The unseal key was rekeyed with {n} key shares. Distribute the shares above \
             securely;\nwhenever the server is sealed or restarted, a threshold of them is \
             needed to unseal it.{}\n",
            backup_note(done)
        ));
    }
    text
}

fn backup_note(done: &RekeyUpdateResponse) -> &'static str {
    if done.backup {
        "\nThe encrypted shares are also backed up: operator rekey -backup-retrieve."
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_lists_each_share_with_its_fingerprint() {
        // Why: operators match shares to PGP keys by these lines.
        let done = RekeyUpdateResponse {
            nonce: "n".into(),
            complete: true,
            keys: vec!["aa".into(), "bb".into()],
            keys_base64: vec!["qg==".into(), "uw==".into()],
            pgp_fingerprints: Some(vec!["f1".into(), "f2".into()]),
            ..RekeyUpdateResponse::default()
        };

        let text = completion(&done);

        assert!(text.starts_with(
            "Key 1 fingerprint: f1; value: qg==\nKey 2 fingerprint: f2; value: uw==\n"
        ));
        assert!(text.contains("Operation nonce: n"));
    }
}

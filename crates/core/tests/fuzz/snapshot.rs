//! Fuzz target: snapshot archives given to `sys/storage/raft/snapshot` restore.
//!
//! A restore replaces every key, so whatever is uploaded must either be refused before
//! anything changes or be exactly a snapshot this cluster could have written. Inputs are
//! random bytes, valid archives with compressed bytes damaged, valid archives whose tar is
//! damaged and recompressed (so the gzip layer passes and the tar and member parsers are
//! reached), and archives rebuilt around a damaged `state.bin` with matching checksums.
//! Properties: no panic or hang; every refusal is a client error with a message; after a
//! refused restore the data is unchanged.

use std::io::{Read, Write};

use proptest::prelude::*;
use serde_json::json;
use sha2::{Digest, Sha256};
use strongroom_core::{Core, Operation, Request};
use strongroom_fuzz::{config, mutate, mutations};

use crate::support::{assert_client_refusal, bounded, with_kv};

async fn put_secret(core: &Core, root: &str) {
    let data = json!({"value": "kept"}).as_object().cloned().unwrap();
    // secret/ is the KV v1 mount that `with_kv` creates
    core.handle(
        Request::new(Operation::Update, "secret/probe")
            .with_token(root)
            .with_data(data),
    )
    .await
    .unwrap();
}

/// The secret, if the core still serves it.
async fn secret(core: &Core, root: &str) -> Option<String> {
    let r = core
        .handle(Request::new(Operation::Read, "secret/probe").with_token(root))
        .await
        .ok()?;
    r.data?.get("value")?.as_str().map(str::to_owned)
}

fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(body).unwrap();
    gz.finish().unwrap()
}

fn members(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    tar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut body = Vec::new();
            e.read_to_end(&mut body).unwrap();
            (name, body)
        })
        .collect()
}

/// Rebuilds an archive from members, recomputing SHA256SUMS over meta.json and state.bin.
fn rebuild(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let get = |n: &str| {
        files
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    };
    let sums = format!(
        "{}  meta.json\n{}  state.bin\n",
        hex::encode(Sha256::digest(get("meta.json"))),
        hex::encode(Sha256::digest(get("state.bin")))
    );
    let mut tar = tar::Builder::new(Vec::new());
    for (name, body) in files {
        let body = if name == "SHA256SUMS" {
            sums.as_bytes().to_vec()
        } else {
            body.clone()
        };
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        tar.append_data(&mut header, name, body.as_slice()).unwrap();
    }
    gzip(&tar.into_inner().unwrap())
}

/// How an upload is made from a valid snapshot.
#[derive(Debug, Clone)]
enum Damage {
    /// Random bytes, no snapshot at all.
    Random(Vec<u8>),
    /// Edits to the compressed bytes.
    Compressed(Vec<strongroom_fuzz::Mutation>),
    /// Edits to the tar, recompressed.
    Tar(Vec<strongroom_fuzz::Mutation>),
    /// Edits to state.bin with checksums recomputed (only the sealed sums then disagree).
    State(Vec<strongroom_fuzz::Mutation>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600).prop_map(Damage::Random),
        mutations(4).prop_map(Damage::Compressed),
        mutations(4).prop_map(Damage::Tar),
        mutations(4).prop_map(Damage::State),
    ]
}

proptest! {
    #![proptest_config(config(128))]

    /// Why: a restore replaces everything, so a bad upload must change nothing.
    #[test]
    fn fuzz_snapshot_restore(damage in damage(), force in any::<bool>()) {
        let rt = strongroom_fuzz::runtime().unwrap();
        rt.block_on(async {
            let (core, root) = with_kv().await;
            put_secret(&core, &root).await;
            let valid = core.snapshot_save(Some(&root)).await.unwrap();
            let (upload, state_damaged) = match &damage {
                Damage::Random(bytes) => (bytes.clone(), false),
                Damage::Compressed(edits) => (mutate(valid.clone(), edits), false),
                Damage::Tar(edits) => (gzip(&mutate(gunzip(&valid), edits)), false),
                Damage::State(edits) => {
                    let mut files = members(&valid);
                    let mut changed = false;
                    for (name, body) in &mut files {
                        if name == "state.bin" {
                            let damaged = mutate(body.clone(), edits);
                            changed = damaged != *body;
                            *body = damaged;
                        }
                    }
                    // An edit may rewrite a byte with its own value: then it is no damage.
                    (rebuild(&files), changed)
                }
            };

            let got = bounded("a restore", core.snapshot_restore(Some(&root), &upload, force)).await;

            match got {
                // Refused, forced or not: nothing changed. (A rewritten state.bin that still
                // carries this cluster's keyring fails the sealed checksums even when forced.)
                Err(e) => {
                    assert_client_refusal(&e, &damage);
                    assert_eq!(secret(&core, &root).await.as_deref(), Some("kept"), "a refused restore changed data");
                }
                // Accepted: the archive passed every check, so it is this cluster's own
                // snapshot, unless its state was rewritten and forced in (then the core
                // holds whatever the operator forced: sealed or serving, never crashed).
                Ok(()) if !state_damaged => {
                    assert_eq!(secret(&core, &root).await.as_deref(), Some("kept"));
                }
                Ok(()) => assert!(force, "a rewritten state.bin was restored without force"),
            }
        });
    }
}

//! In-place upgrade of a KV v1 mount to v2: every existing key becomes version 1.
//!
//! v1 keys share the mount's key space with the v2 records (`config`, `meta/...`,
//! `versions/...`), so all v1 values are read before anything is written; the new records
//! are written before any v1 key that they do not overwrite is deleted, so a crash midway
//! leaves every secret readable in at least one layout.

use strongroom_barrier::BarrierOp;

use super::v2::model::{KeyMetadata, VersionMeta, encode, meta_key, now_nanos, version_key};
use crate::engines::View;
use crate::mounts::MountEntry;
use crate::{Core, CoreError};

/// Storage operations per batch.
const BATCH: usize = 256;

/// Migrates the data of `mount` (a v1 KV mount) into the v2 layout.
pub(crate) async fn upgrade_kv_v1_to_v2(core: &Core, mount: &MountEntry) -> Result<(), CoreError> {
    let prefix = mount.data_prefix();
    let view = View::new(&core.barrier, prefix.clone());
    let mut old_keys = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = core.storage.scan(&prefix, after.as_deref(), BATCH).await?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (full, _) in page {
            if let Some(rel) = full.strip_prefix(&prefix) {
                old_keys.push(rel.to_owned());
            }
        }
    }
    let now = now_nanos();
    let mut puts = Vec::with_capacity(old_keys.len() * 2);
    for key in &old_keys {
        let Some(raw) = view.get(key).await? else {
            continue;
        };
        let mut meta = KeyMetadata::new(now);
        meta.current_version = 1;
        meta.versions.insert(
            1,
            VersionMeta {
                created_time: now,
                deletion_time: None,
                destroyed: false,
            },
        );
        puts.push((version_key(key, 1), raw));
        puts.push((meta_key(key), encode(&meta)?));
    }
    let written: std::collections::HashSet<&str> = puts.iter().map(|(k, _)| k.as_str()).collect();
    let deletes: Vec<BarrierOp> = old_keys
        .iter()
        .filter(|k| !written.contains(k.as_str()))
        .map(|k| BarrierOp::Delete { key: k.clone() })
        .collect();
    let mut puts: Vec<BarrierOp> = puts
        .into_iter()
        .map(|(key, value)| BarrierOp::Put { key, value })
        .collect();
    while !puts.is_empty() {
        let rest = puts.split_off(puts.len().min(BATCH));
        view.write(std::mem::replace(&mut puts, rest)).await?;
    }
    for chunk in deletes.chunks(BATCH) {
        view.write(chunk.to_vec()).await?;
    }
    Ok(())
}

//! In-place upgrade of a KV v1 mount to v2: every existing key becomes version 1.
//!
//! v1 keys share the mount's key space with the v2 records (`config`, `meta/...`,
//! `versions/...`), and a v1 key may itself be named like one, so converting keys where
//! they lie could overwrite a secret not yet read. The upgrade therefore runs two passes
//! over pages of keys, holding one page at a time however large the mount:
//!
//! 1. *stage*: every v1 key `k` moves to `<staging>k`, a prefix that no v1 key occupies;
//! 2. *convert*: every staged key becomes `versions/<hash of k>/1` plus `meta/k`, and its
//!    staged copy is deleted.
//!
//! After the first pass nothing but staged keys is left, so the second cannot overwrite an
//! unconverted secret, and its records land outside the staging prefix it walks. Each key's
//! new copy is written before its old one is deleted, so a crash midway (the mount table
//! still says v1) leaves every secret readable under its old name, its staged name or both.

use strongroom_logical::{BackendError, Op, View};

use super::v2::model::{KeyMetadata, VersionMeta, encode, meta_key, now_nanos, version_key};

/// Keys read per page of the walk.
pub(crate) const PAGE: usize = 1000;

/// A write batch is flushed at this many operations...
const BATCH_OPS: usize = 256;
/// ... or once its values reach this many bytes (a Raft entry holds 1 MiB).
const BATCH_BYTES: usize = 512 * 1024;

/// Staging prefixes tried, in order, until one holds no key.
const STAGING_ATTEMPTS: usize = 100;

/// Migrates the data in `view` (a v1 KV mount's) into the v2 layout.
pub async fn upgrade_v1_to_v2(view: &View<'_>) -> Result<(), BackendError> {
    upgrade_paged(view, PAGE).await
}

/// [`upgrade_v1_to_v2`] with `page` keys per page of the walk.
pub(crate) async fn upgrade_paged(view: &View<'_>, page: usize) -> Result<(), BackendError> {
    let staging = free_staging_prefix(view).await?;
    stage(view, &staging, page).await?;
    convert(view, &staging, page).await
}

/// The first of `kv-upgrade/`, `kv-upgrade-1/`, ... under which no key exists.
async fn free_staging_prefix(view: &View<'_>) -> Result<String, BackendError> {
    for n in 0..STAGING_ATTEMPTS {
        let prefix = match n {
            0 => "kv-upgrade/".to_owned(),
            n => format!("kv-upgrade-{n}/"),
        };
        if view.scan_keys(&prefix, None, 1).await?.is_empty() {
            return Ok(prefix);
        }
    }
    Err(BackendError::Internal(format!(
        "KV upgrade found no free staging prefix after {STAGING_ATTEMPTS} tries: remove the \
         kv-upgrade*/ keys of this mount (left by interrupted upgrades) and retry"
    )))
}

/// Pass 1: moves every key outside `staging` to `staging` + key.
async fn stage(view: &View<'_>, staging: &str, page: usize) -> Result<(), BackendError> {
    let mut out = Batches::new(view);
    let mut after: Option<String> = None;
    loop {
        let keys = view.scan_keys("", after.as_deref(), page).await?;
        let Some(last) = keys.last().cloned() else {
            break;
        };
        for key in keys.into_iter().filter(|k| !k.starts_with(staging)) {
            let Some(value) = view.get(&key).await? else {
                continue;
            };
            out.push(Op::Put {
                key: format!("{staging}{key}"),
                value,
            })
            .await?;
            out.push(Op::Delete { key }).await?;
        }
        // Flushed before the next page is read, so the walk never sees a half-moved page.
        out.flush().await?;
        after = Some(last);
    }
    Ok(())
}

/// Pass 2: turns every staged key into version 1 of the v2 key of the same name.
async fn convert(view: &View<'_>, staging: &str, page: usize) -> Result<(), BackendError> {
    let now = now_nanos();
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
    let meta = encode(&meta)?;
    let mut out = Batches::new(view);
    let mut after: Option<String> = None;
    loop {
        let staged = view.scan_keys(staging, after.as_deref(), page).await?;
        let Some(last) = staged.last().cloned() else {
            break;
        };
        for full in staged {
            let Some(key) = full.strip_prefix(staging) else {
                continue;
            };
            let Some(value) = view.get(&full).await? else {
                continue;
            };
            out.push(Op::Put {
                key: version_key(key, 1),
                value,
            })
            .await?;
            out.push(Op::Put {
                key: meta_key(key),
                value: meta.clone(),
            })
            .await?;
            out.push(Op::Delete { key: full.clone() }).await?;
        }
        out.flush().await?;
        after = Some(last);
    }
    Ok(())
}

/// Ops written in order, in batches bounded by count and bytes.
struct Batches<'v, 'a> {
    view: &'v View<'a>,
    pending: Vec<Op>,
    bytes: usize,
}

impl<'v, 'a> Batches<'v, 'a> {
    fn new(view: &'v View<'a>) -> Self {
        Batches {
            view,
            pending: Vec::new(),
            bytes: 0,
        }
    }

    async fn push(&mut self, op: Op) -> Result<(), BackendError> {
        let size = match &op {
            Op::Put { key, value } => key.len() + value.len(),
            Op::Delete { key } => key.len(),
        };
        if !self.pending.is_empty()
            && (self.pending.len() >= BATCH_OPS || self.bytes + size > BATCH_BYTES)
        {
            self.flush().await?;
        }
        self.bytes += size;
        self.pending.push(op);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), BackendError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.bytes = 0;
        self.view.write(std::mem::take(&mut self.pending)).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use strongroom_logical::{Backend, Operation, Response};

    use super::*;
    use crate::kv::Kv;
    use crate::test_support::{Fixture, req};

    /// Writes `key` = `{"n": key}` to a v1 mount.
    async fn put_v1(fx: &Fixture, key: &str) {
        let body = json!({ "n": key });
        Kv.handle(&fx.ctx(), &req(Operation::Update, key, body), key)
            .await
            .unwrap();
    }

    /// Reads `key` through the v2 API of the (upgraded) mount.
    async fn read_v2(fx: &Fixture, key: &str) -> Response {
        let rest = format!("data/{key}");
        Kv.handle(&fx.ctx(), &req(Operation::Read, &rest, json!({})), &rest)
            .await
            .unwrap()
    }

    fn secret_of(resp: &Response) -> (Value, Value) {
        let data = resp.data.as_ref().unwrap();
        (
            data["data"]["n"].clone(),
            data["metadata"]["version"].clone(),
        )
    }

    #[tokio::test]
    async fn upgrade_over_several_pages_keeps_every_secret_including_lookalike_names() {
        // Why: the walk is paged, and v1 keys named like v2 records (`meta/a`, `config`,
        // `versions/...`) or like the staging area must neither be lost nor overwrite others.
        let mut fx = Fixture::kv(1);
        let keys = [
            "a",
            "meta/a",
            "meta/meta/a",
            "config",
            "versions/x/1",
            "kv-upgrade/z",
            "b/c",
            "zz",
            "m",
            "n/o/p",
        ];
        for k in keys {
            put_v1(&fx, k).await;
        }

        upgrade_paged(&fx.ctx().view, 3).await.unwrap();
        fx.kv_version = 2;

        for k in keys {
            let (n, version) = secret_of(&read_v2(&fx, k).await);
            assert_eq!((n, version), (json!(k), json!(1)), "key {k}");
        }
        let stray: Vec<String> = fx
            .store
            .keys()
            .into_iter()
            .filter_map(|k| k.strip_prefix(&fx.prefix).map(str::to_owned))
            .filter(|k| !k.starts_with("meta/") && !k.starts_with("versions/"))
            .collect();
        assert!(
            stray.is_empty(),
            "v1 or staging keys left behind: {stray:?}"
        );
        assert_eq!(fx.store.keys().len(), 2 * keys.len());
    }

    #[tokio::test]
    async fn upgrade_of_more_than_a_thousand_keys_writes_bounded_batches() {
        // Why: a large mount must upgrade in pages and batches, never as one unbounded step.
        let mut fx = Fixture::kv(1);
        let count = PAGE * 2 + 7;
        for i in 0..count {
            put_v1(&fx, &format!("k{i:05}")).await;
        }

        upgrade_v1_to_v2(&fx.ctx().view).await.unwrap();
        fx.kv_version = 2;

        assert_eq!(fx.store.keys().len(), 2 * count);
        for i in [0, PAGE - 1, PAGE, count - 1] {
            let key = format!("k{i:05}");
            assert_eq!(secret_of(&read_v2(&fx, &key).await).0, json!(key));
        }
        assert!(
            fx.store.largest_write() <= BATCH_OPS,
            "a write carried {} ops",
            fx.store.largest_write()
        );
    }

    #[tokio::test]
    async fn upgrade_of_an_empty_mount_writes_nothing() {
        // Why: enabling v2 on a fresh v1 mount must not leave staging or metadata behind.
        let fx = Fixture::kv(1);
        upgrade_v1_to_v2(&fx.ctx().view).await.unwrap();
        assert!(fx.store.keys().is_empty());
    }
}

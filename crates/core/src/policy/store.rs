//! Where policies live: one barrier record per name, the operator's text kept verbatim, and a
//! cache of parsed policies and compiled ACLs.
//!
//! Every authenticated request needs its token's ACL, so parsing and merging on each request
//! would put HCL parsing on the hot path. The cache is dropped as a whole on any policy write
//! (writes are rare) and on seal; a generation counter keeps a reader that loaded a policy
//! just before a write from re-inserting the stale copy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use strongroom_barrier::Barrier;

use super::acl::Acl;
use super::builtin::{DEFAULT, DEFAULT_POLICY, RESPONSE_WRAPPING, RESPONSE_WRAPPING_POLICY, ROOT};
use crate::CoreError;
use crate::keys::POLICY_PREFIX;
use crate::util::lock;
use strongroom_policy::{PathRule, parse_policy};

/// Compiled ACLs kept at most; past this the ACL cache starts over (token policy sets are
/// few in practice, so this only bounds pathological cases).
const MAX_CACHED_ACLS: usize = 4096;

/// A policy as stored: the name and the text exactly as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    name: String,
    policy: String,
}

/// A loaded policy: its verbatim text and its parsed rules.
#[derive(Debug, Clone)]
pub(crate) struct StoredPolicy {
    pub name: String,
    pub raw: String,
    pub rules: Vec<PathRule>,
}

#[derive(Default)]
struct Cache {
    generation: u64,
    policies: HashMap<String, Option<Arc<StoredPolicy>>>,
    acls: HashMap<Vec<String>, Acl>,
}

/// Policy storage with its cache.
#[derive(Default)]
pub(crate) struct PolicyStore {
    cache: Mutex<Cache>,
    /// Serializes writes, so creating `default` on first use never overwrites an edit.
    write: tokio::sync::Mutex<()>,
}

/// Canonical policy name (Vault lower-cases names).
pub(crate) fn canonical_name(name: &str) -> String {
    name.trim().to_lowercase()
}

fn storage_key(name: &str) -> String {
    format!("{POLICY_PREFIX}{name}")
}

fn response_wrapping_policy() -> Arc<StoredPolicy> {
    static POLICY: OnceLock<Arc<StoredPolicy>> = OnceLock::new();
    POLICY
        .get_or_init(|| {
            Arc::new(StoredPolicy {
                name: RESPONSE_WRAPPING.into(),
                raw: RESPONSE_WRAPPING_POLICY.into(),
                // Covered by a unit test; an empty rule set would only deny.
                rules: parse_policy(RESPONSE_WRAPPING_POLICY)
                    .map(|p| p.paths)
                    .unwrap_or_default(),
            })
        })
        .clone()
}

/// The stock `default` policy, parsed.
fn builtin_default() -> Result<Arc<StoredPolicy>, CoreError> {
    let rules = parse_policy(DEFAULT_POLICY)
        .map_err(|e| CoreError::Internal(format!("built-in default policy: {e}")))?
        .paths;
    Ok(Arc::new(StoredPolicy {
        name: DEFAULT.into(),
        raw: DEFAULT_POLICY.into(),
        rules,
    }))
}

impl PolicyStore {
    /// Drops every cached policy and ACL (on seal, and after every write).
    pub(crate) fn clear(&self) {
        let mut cache = lock(&self.cache);
        cache.generation = cache.generation.wrapping_add(1);
        cache.policies.clear();
        cache.acls.clear();
    }

    /// Loads a policy by (canonical) name; `root` has no stored form and yields `None`.
    /// `default` is written from the stock text the first time it is needed.
    pub(crate) async fn get(
        &self,
        barrier: &Barrier,
        name: &str,
    ) -> Result<Option<Arc<StoredPolicy>>, CoreError> {
        let name = canonical_name(name);
        if name == ROOT {
            return Ok(None);
        }
        if name == RESPONSE_WRAPPING {
            return Ok(Some(response_wrapping_policy()));
        }
        let generation = {
            let cache = lock(&self.cache);
            if let Some(hit) = cache.policies.get(&name) {
                return Ok(hit.clone());
            }
            cache.generation
        };
        let mut loaded = self.load(barrier, &name).await?;
        // A standby serving a read may not write; the stock rules are exactly right until
        // the active node stores them.
        if loaded.is_none() && name == DEFAULT && crate::ha::tracking::standby_local() {
            return Ok(Some(builtin_default()?));
        }
        if loaded.is_none() && name == DEFAULT {
            match self.create_default(barrier).await {
                Ok(created) => loaded = Some(created),
                // Storage may refuse writes here (a standby, a full disk). Nobody has edited
                // `default` (there is none stored), so the stock rules are exactly right;
                // serve them without caching and try to store them next time.
                Err(e) => {
                    tracing::warn!(error = %e, "could not store the default policy; using the built-in text");
                    return Ok(Some(builtin_default()?));
                }
            }
        }
        let mut cache = lock(&self.cache);
        if cache.generation == generation {
            cache.policies.insert(name, loaded.clone());
        }
        Ok(loaded)
    }

    async fn load(
        &self,
        barrier: &Barrier,
        name: &str,
    ) -> Result<Option<Arc<StoredPolicy>>, CoreError> {
        let Some(raw) = barrier.get(&storage_key(name)).await? else {
            return Ok(None);
        };
        let record: Record = serde_json::from_slice(&raw).map_err(|e| {
            CoreError::Internal(format!("stored policy \"{name}\" is corrupt: {e}"))
        })?;
        // The text was validated on write; failing now means storage was tampered with or a
        // newer server wrote it. Refuse loudly rather than grant a partial policy.
        let parsed = parse_policy(&record.policy).map_err(|e| {
            CoreError::Internal(format!("stored policy \"{name}\" no longer parses: {e}"))
        })?;
        Ok(Some(Arc::new(StoredPolicy {
            name: record.name,
            raw: record.policy,
            rules: parsed.paths,
        })))
    }

    /// Writes the stock `default` policy unless someone wrote one meanwhile.
    async fn create_default(&self, barrier: &Barrier) -> Result<Arc<StoredPolicy>, CoreError> {
        let _guard = self.write.lock().await;
        if let Some(existing) = self.load(barrier, DEFAULT).await? {
            return Ok(existing);
        }
        self.store(barrier, DEFAULT, DEFAULT_POLICY).await?;
        builtin_default()
    }

    async fn store(&self, barrier: &Barrier, name: &str, text: &str) -> Result<(), CoreError> {
        let record = serde_json::to_vec(&Record {
            name: name.to_owned(),
            policy: text.to_owned(),
        })
        .map_err(|e| CoreError::Internal(format!("encoding policy: {e}")))?;
        barrier.put(&storage_key(name), &record).await?;
        Ok(())
    }

    /// Validates and stores `text` under `name` (already canonical and checked writable).
    pub(crate) async fn put(
        &self,
        barrier: &Barrier,
        name: &str,
        text: &str,
    ) -> Result<(), CoreError> {
        parse_policy(text).map_err(|e| CoreError::InvalidRequest(e.to_string()))?;
        let _guard = self.write.lock().await;
        let result = self.store(barrier, name, text).await;
        self.clear();
        result
    }

    /// Deletes `name` (already canonical and checked deletable); absent is fine.
    pub(crate) async fn delete(&self, barrier: &Barrier, name: &str) -> Result<(), CoreError> {
        let _guard = self.write.lock().await;
        let result = barrier.delete(&storage_key(name)).await;
        self.clear();
        Ok(result?)
    }

    /// Every policy name, sorted; `default` and `root` are always present.
    pub(crate) async fn list(&self, barrier: &Barrier) -> Result<Vec<String>, CoreError> {
        let mut names: Vec<String> = barrier
            .list(POLICY_PREFIX)
            .await?
            .into_iter()
            .filter(|n| !n.ends_with('/'))
            .collect();
        names.push(DEFAULT.into());
        names.push(ROOT.into());
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// The compiled ACL of a set of policy names; unknown names contribute nothing.
    pub(crate) async fn acl(
        &self,
        barrier: &Barrier,
        policies: &[String],
    ) -> Result<Acl, CoreError> {
        let mut key: Vec<String> = policies.iter().map(|p| canonical_name(p)).collect();
        key.sort();
        key.dedup();
        if key.iter().any(|p| p == ROOT) {
            return Ok(Acl::root());
        }
        let generation = {
            let cache = lock(&self.cache);
            if let Some(acl) = cache.acls.get(&key) {
                return Ok(acl.clone());
            }
            cache.generation
        };
        let mut loaded = Vec::with_capacity(key.len());
        for name in &key {
            if let Some(p) = self.get(barrier, name).await? {
                loaded.push(p);
            }
        }
        let acl = Acl::compile(loaded.iter().map(|p| (p.name.as_str(), p.rules.as_slice())));
        let mut cache = lock(&self.cache);
        if cache.generation == generation {
            if cache.acls.len() >= MAX_CACHED_ACLS {
                cache.acls.clear();
            }
            cache.acls.insert(key, acl.clone());
        }
        Ok(acl)
    }
}

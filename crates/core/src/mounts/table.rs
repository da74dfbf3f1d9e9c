//! The in-memory mount table and how it is split across its four stored records.
//!
//! Secrets and auth mounts, shared and local, are stored as four records because replication
//! ships them differently (local tables never reach performance secondaries), but routing
//! needs one longest-prefix lookup over all of them, so in memory they are one list.

use serde::{Deserialize, Serialize};

use super::entry::{AUTH_PREFIX, MountEntry};
use crate::CoreError;

/// Paths that can never be mounted over by a secrets engine.
const RESERVED: &[&str] = &["sys/", "auth/", "cubbyhole/", "identity/"];

/// Every mount (secrets and auth, shared and local), ordered by path.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MountTable {
    pub entries: Vec<MountEntry>,
}

/// Which stored record an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableKind {
    Secrets,
    LocalSecrets,
    Auth,
    LocalAuth,
}

impl TableKind {
    pub(crate) const ALL: [TableKind; 4] = [
        TableKind::Secrets,
        TableKind::LocalSecrets,
        TableKind::Auth,
        TableKind::LocalAuth,
    ];

    /// The storage key of this record.
    pub(crate) fn key(self) -> &'static str {
        match self {
            TableKind::Secrets => crate::keys::MOUNTS,
            TableKind::LocalSecrets => crate::keys::LOCAL_MOUNTS,
            TableKind::Auth => crate::keys::AUTH,
            TableKind::LocalAuth => crate::keys::LOCAL_AUTH,
        }
    }

    /// The record `entry` is stored in.
    pub(crate) fn of(entry: &MountEntry) -> TableKind {
        match (entry.is_auth(), entry.local) {
            (false, false) => TableKind::Secrets,
            (false, true) => TableKind::LocalSecrets,
            (true, false) => TableKind::Auth,
            (true, true) => TableKind::LocalAuth,
        }
    }
}

impl MountTable {
    /// Finds the mount owning `path` by longest prefix; returns it and the path below it.
    pub fn resolve<'a>(&self, path: &'a str) -> Option<(&MountEntry, &'a str)> {
        self.entries
            .iter()
            .filter(|m| {
                path.starts_with(&m.path)
                    || (path.len() + 1 == m.path.len() && m.path.starts_with(path))
            })
            .max_by_key(|m| m.path.len())
            .map(|m| (m, path.get(m.path.len()..).unwrap_or("")))
    }

    /// The entry mounted exactly at `path` (normalized, with trailing slash).
    pub fn get(&self, path: &str) -> Option<&MountEntry> {
        self.entries.iter().find(|m| m.path == path)
    }

    /// Whether `path` overlaps an existing mount (one is a prefix of the other).
    pub fn conflicts(&self, path: &str) -> bool {
        self.entries
            .iter()
            .any(|m| m.path.starts_with(path) || path.starts_with(&m.path))
    }

    /// Adds an entry, keeping the table ordered by path.
    pub fn insert(&mut self, entry: MountEntry) {
        self.entries.push(entry);
        self.entries.sort_by(|a, b| a.path.cmp(&b.path));
    }

    /// The entries stored in one record.
    pub(crate) fn part(&self, kind: TableKind) -> MountTable {
        MountTable {
            entries: self
                .entries
                .iter()
                .filter(|e| TableKind::of(e) == kind)
                .cloned()
                .collect(),
        }
    }

    /// Forgets every mount (on seal).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// Normalizes a user-supplied path to `name/`, refusing empty and traversal paths.
pub(crate) fn clean_path(path: &str) -> Result<String, CoreError> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Err(CoreError::InvalidRequest(
            "mount path must not be empty".into(),
        ));
    }
    if trimmed
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(CoreError::InvalidRequest(format!(
            "invalid mount path {path:?}"
        )));
    }
    Ok(format!("{trimmed}/"))
}

/// Normalizes a secrets mount path and refuses reserved prefixes.
pub(crate) fn normalize_mount_path(path: &str) -> Result<String, CoreError> {
    let p = clean_path(path)?;
    if RESERVED.iter().any(|r| p.starts_with(r)) {
        return Err(CoreError::InvalidRequest(format!(
            "cannot mount at reserved path {p:?}"
        )));
    }
    Ok(p)
}

/// Normalizes an auth method path to its router form `auth/<name>/`.
pub(crate) fn normalize_auth_path(path: &str) -> Result<String, CoreError> {
    let p = clean_path(path)?;
    let p = p.strip_prefix(AUTH_PREFIX).unwrap_or(&p).to_owned();
    if p.is_empty() {
        return Err(CoreError::InvalidRequest(
            "auth path must not be empty".into(),
        ));
    }
    Ok(format!("{AUTH_PREFIX}{p}"))
}

/// Normalizes either kind: `auth/...` names an auth mount, anything else a secrets mount.
/// Reserved-prefix checks are left to the caller (reads and tunes of `cubbyhole/` are fine).
pub(crate) fn normalize_any(path: &str) -> Result<String, CoreError> {
    let p = clean_path(path)?;
    if p.starts_with(AUTH_PREFIX) {
        normalize_auth_path(&p)
    } else {
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mounts::MountConfig;
    use serde_json::Map;

    fn entry(path: &str, local: bool) -> MountEntry {
        MountEntry {
            path: path.into(),
            engine: "kv".into(),
            uuid: path.into(),
            accessor: String::new(),
            description: String::new(),
            options: Map::new(),
            local,
            config: MountConfig::default(),
            seal_wrap: false,
        }
    }

    #[test]
    fn resolve_picks_longest_prefix() {
        // Why: nested mounts must route to the innermost engine.
        let table = MountTable {
            entries: vec![entry("a/", false), entry("a/b/", false)],
        };
        let r = |p| {
            table
                .resolve(p)
                .map(|(m, r)| (m.path.clone(), r.to_owned()))
        };
        assert_eq!(r("a/b/c"), Some(("a/b/".into(), "c".into())));
        assert_eq!(r("a/x"), Some(("a/".into(), "x".into())));
        assert_eq!(r("a/b"), Some(("a/b/".into(), String::new())));
        assert_eq!(r("ab/x"), None);
        assert_eq!(r("zzz/x"), None);
    }

    #[test]
    fn reserved_and_malformed_paths_are_refused() {
        // Why: a mount over sys/ would shadow the control plane; `..` would escape the view.
        assert!(normalize_mount_path("sys").is_err());
        assert!(normalize_mount_path("auth/x").is_err());
        assert!(normalize_mount_path("../x").is_err());
        assert!(normalize_mount_path("a//b").is_err());
        assert_eq!(normalize_mount_path("/kv/").unwrap(), "kv/");
        assert_eq!(normalize_auth_path("userpass").unwrap(), "auth/userpass/");
        assert_eq!(normalize_auth_path("auth/up/").unwrap(), "auth/up/");
        assert_eq!(normalize_any("auth/up").unwrap(), "auth/up/");
    }

    #[test]
    fn entries_split_into_four_records() {
        // Why: local mounts must be stored where performance replication does not ship them.
        let mut t = MountTable::default();
        t.insert(entry("kv/", false));
        t.insert(entry("lkv/", true));
        t.insert(entry("auth/up/", false));
        t.insert(entry("auth/lup/", true));
        for kind in TableKind::ALL {
            assert_eq!(t.part(kind).entries.len(), 1, "{kind:?}");
        }
        assert_eq!(t.part(TableKind::LocalSecrets).entries[0].path, "lkv/");
        assert_eq!(t.part(TableKind::LocalAuth).entries[0].path, "auth/lup/");
    }
}

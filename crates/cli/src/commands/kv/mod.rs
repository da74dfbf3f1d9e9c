//! `kv ...`: the key/value commands that hide the difference between KV version 1 and 2.
//!
//! Operators type `kv get secret/app` whatever the engine version; version 2 stores the same
//! secret under `secret/data/app`, its metadata under `secret/metadata/app`, and so on. So every
//! `kv` command first asks the server which mount owns the path and which version it runs
//! (the preflight), then rewrites the path. The preflight is never wrapped, even under
//! `-wrap-ttl`, because its answer is for the CLI, not the operator.

mod delete;
mod get;
mod list;
mod metadata;
mod put;

use reqwest::Method;
use serde_json::{Value, json};

use super::{Command, sanitize_path};
use crate::args::{FlagSpec, Parsed};
use crate::client::{Body, Client};
use crate::error::CliError;

/// The `-mount` flag every `kv` command takes.
const MOUNT_FLAG: FlagSpec = FlagSpec::value(
    "mount",
    "Mount path of the KV engine; PATH is then relative to it (e.g. -mount=secret app/db).",
);

/// Every `kv` command.
pub const COMMANDS: &[Command] = &[
    get::COMMAND,
    put::PUT,
    put::PATCH,
    delete::DELETE,
    delete::UNDELETE,
    delete::DESTROY,
    list::COMMAND,
    metadata::GET,
    metadata::PUT,
    metadata::DELETE,
];

/// Where the preflight looks first (Vault 1.16's CLI) and second (newer CLIs).
const PREFLIGHT_ROUTES: [&str; 2] = ["sys/internal/ui/mounts", "sys/mounts-all"];

/// What the preflight learnt about the mount owning a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// The mount path without slashes; empty when the server could not say (an old server).
    pub mount: String,
    /// Whether the mount runs KV version 2.
    pub v2: bool,
}

/// Asks the server which mount owns `path` and its KV version, without wrapping.
///
/// A 404 from the first route tries the second; 404 from both means a server without the
/// preflight, which can only be KV version 1.
pub fn preflight(client: &mut Client, path: &str) -> Result<MountInfo, CliError> {
    let wrap = client.set_wrap_ttl(None);
    let result = preflight_unwrapped(client, path);
    client.set_wrap_ttl(wrap);
    result
}

fn preflight_unwrapped(client: &Client, path: &str) -> Result<MountInfo, CliError> {
    for route in PREFLIGHT_ROUTES {
        let answer = client.send(Method::GET, &format!("{route}/{path}"), &[], Body::None);
        match answer {
            Ok(Some(value)) => return Ok(mount_info(&value)),
            Ok(None) => break,
            Err(err) if err.status() == Some(404) => continue,
            Err(err) if err.status() == Some(403) => {
                return Err(CliError::Remote(format!(
                    "preflight capability check returned 403, please ensure client's policies \
                     grant access to path \"{path}/\""
                )));
            }
            Err(err) => {
                return Err(CliError::client(
                    "Error determining the version of the KV engine",
                    err,
                ));
            }
        }
    }
    Ok(MountInfo {
        mount: String::new(),
        v2: false,
    })
}

/// Reads `data.path` and `data.options.version` of a preflight answer.
fn mount_info(value: &Value) -> MountInfo {
    let data = value.get("data").unwrap_or(value);
    let mount = data
        .get("path")
        .and_then(Value::as_str)
        .map(sanitize_path)
        .unwrap_or_default();
    let version = match data.pointer("/options/version") {
        Some(Value::String(v)) => v.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    MountInfo {
        mount,
        v2: version == "2",
    }
}

/// A `kv` path argument resolved against its mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvPath {
    pub v2: bool,
    /// The mount, without slashes (empty if unknown).
    mount: String,
    /// The path below the mount.
    relative: String,
    /// The path as the operator gave it (joined with `-mount`), used for KV version 1.
    typed: String,
}

impl KvPath {
    /// Runs the preflight for the command's path argument (and `-mount`, if given).
    pub fn resolve(client: &mut Client, flags: &Parsed, arg: &str) -> Result<Self, CliError> {
        let arg = sanitize_path(arg);
        if let Some(mount) = flags.value("mount") {
            let mount = sanitize_path(mount);
            if mount.is_empty() {
                return Err(CliError::Usage("-mount needs a mount path".to_string()));
            }
            let info = preflight(client, &mount)?;
            let mount = if info.mount.is_empty() {
                mount
            } else {
                info.mount
            };
            return Ok(Self {
                v2: info.v2,
                typed: join(&[&mount, &arg]),
                mount,
                relative: arg,
            });
        }
        let info = preflight(client, &arg)?;
        Ok(Self::from_info(info, arg))
    }

    fn from_info(info: MountInfo, typed: String) -> Self {
        let relative = if info.mount.is_empty() {
            typed.clone()
        } else if typed == info.mount {
            String::new()
        } else {
            typed
                .strip_prefix(&format!("{}/", info.mount))
                .unwrap_or(&typed)
                .to_string()
        };
        Self {
            v2: info.v2,
            mount: info.mount,
            relative,
            typed,
        }
    }

    /// The API path: `<mount>/<section>/<path>` for KV version 2, the path itself for version 1.
    pub fn api(&self, section: &str) -> String {
        if self.v2 {
            join(&[&self.mount, section, &self.relative])
        } else {
            self.typed.clone()
        }
    }
}

fn join(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|part| !part.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/")
}

/// Parses `-versions=1,2,3` into the integer list the KV v2 endpoints take.
pub fn versions_flag(flags: &Parsed) -> Result<Vec<u64>, CliError> {
    super::list_flag(flags, "versions")
        .iter()
        .map(|raw| {
            raw.parse::<u64>().map_err(|_| {
                CliError::Usage(format!(
                    "Invalid version {raw:?} in -versions: use positive integers like -versions=1,2"
                ))
            })
        })
        .collect()
}

/// The body of `delete/`, `undelete/` and `destroy/`.
pub fn versions_body(versions: &[u64]) -> Value {
    json!({ "versions": versions })
}

/// Exactly one path argument before any data.
pub fn path_arg(flags: &Parsed) -> Result<&str, CliError> {
    flags
        .positionals
        .first()
        .map(String::as_str)
        .ok_or_else(|| CliError::Usage("Not enough arguments (expected 1, got 0)".to_string()))
}

/// Refuses a command that only KV version 2 supports.
pub fn require_v2(path: &KvPath, what: &str) -> Result<(), CliError> {
    if path.v2 {
        Ok(())
    } else {
        Err(CliError::Local(format!(
            "{what} not supported on KV Version 1"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(mount: &str, v2: bool) -> MountInfo {
        MountInfo {
            mount: mount.to_string(),
            v2,
        }
    }

    // The preflight answer decides the version; the version may arrive as a string or number.
    #[test]
    fn mount_info_from_answer() {
        let v2 = json!({"data": {"path": "secret/", "type": "kv", "options": {"version": "2"}}});
        let numeric = json!({"data": {"path": "kv/", "options": {"version": 2}}});
        let v1 = json!({"data": {"path": "old/", "type": "kv", "options": null}});

        assert_eq!(mount_info(&v2), info("secret", true));
        assert_eq!(mount_info(&numeric), info("kv", true));
        assert_eq!(mount_info(&v1), info("old", false));
    }

    // Version 2 inserts the section after the mount, including on nested mounts.
    #[test]
    fn v2_rewriting() {
        let path = KvPath::from_info(info("team/kv", true), "team/kv/app/db".to_string());

        assert_eq!(path.api("data"), "team/kv/data/app/db");
        assert_eq!(path.api("metadata"), "team/kv/metadata/app/db");
        assert_eq!(path.api("destroy"), "team/kv/destroy/app/db");
    }

    // The mount itself (for `kv list secret`) has an empty relative part.
    #[test]
    fn v2_mount_root() {
        let path = KvPath::from_info(info("secret", true), "secret".to_string());
        assert_eq!(path.api("metadata"), "secret/metadata");
    }

    // Version 1 and unknown mounts keep the typed path untouched.
    #[test]
    fn v1_keeps_path() {
        let v1 = KvPath::from_info(info("secret", false), "secret/app".to_string());
        let unknown = KvPath::from_info(info("", false), "secret/app".to_string());

        assert_eq!(v1.api("data"), "secret/app");
        assert_eq!(unknown.api("data"), "secret/app");
    }

    // A mount whose name is a prefix of another path segment is not stripped by mistake.
    #[test]
    fn prefix_is_segment_aware() {
        let path = KvPath::from_info(info("sec", true), "secret/x".to_string());
        assert_eq!(path.api("data"), "sec/data/secret/x");
    }

    // -versions accepts lists and repeats, and refuses anything but integers.
    #[test]
    fn versions_parsing() {
        let spec = &[FlagSpec::value("versions", "v")][..];
        let parse = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            crate::args::parse(&args, &[spec]).unwrap()
        };

        assert_eq!(
            versions_flag(&parse(&["-versions=1,2", "-versions=5"])).unwrap(),
            vec![1, 2, 5]
        );
        assert!(versions_flag(&parse(&["-versions=one"])).is_err());
        assert_eq!(versions_body(&[1, 2]), json!({"versions": [1, 2]}));
    }
}

//! Server configuration: Vault-compatible HCL and JSON files, merged and validated.
//!
//! Operators bring their existing Vault configuration files, so this module accepts Vault's
//! syntax and merge rules, but refuses anything it would silently misinterpret: unknown
//! settings, wrong types and unsupported features (auto-unseal, other storage backends) are
//! errors that name the file, line and setting. Harmless Vault settings that Strongroom does not
//! implement are accepted and listed in [`ServerConfig::ignored`] so the server can warn.
//!
//! Typical use:
//! ```text
//! let mut config = config::load(&paths)?;
//! config.apply_env(|name| std::env::var(name).ok())?;
//! config.validate()?;
//! ```

mod decode;
pub mod duration;
mod env;
pub mod error;
mod hcl;
mod json;
pub mod merge;
pub mod model;
mod retry_join;
mod tree;
mod validate;
mod values;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_raft;
#[cfg(test)]
mod tests_telemetry;

use std::io::Read;
use std::path::{Path, PathBuf};

pub use self::duration::parse_duration;
pub use self::error::ConfigError;
pub use self::merge::{PartialConfig, PartialTelemetry};
pub use self::model::{
    DEFAULT_AUTOPILOT_RECONCILE_INTERVAL, DEFAULT_AUTOPILOT_UPDATE_INTERVAL,
    DEFAULT_LISTENER_ADDRESS, DEFAULT_MAX_ENTRY_SIZE, DEFAULT_MAX_REQUEST_SIZE,
    DEFAULT_PROMETHEUS_RETENTION, ListenerConfig, MAX_PERFORMANCE_MULTIPLIER, RaftStorageConfig,
    ReplicationConfig, RetryJoin, ServerConfig, SourceLocation, StorageConfig, TelemetryConfig,
    TlsVersion,
};
pub use self::retry_join::{PemReader, PemSetting, PemSource, RetryJoinSpec};

/// Largest configuration file read; anything bigger is certainly not a configuration file.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Loads and merges configuration `paths` in order. Each path is a file (`.hcl` or `.json`;
/// any other name is read as JSON if it starts with `{`, else as HCL) or a directory, whose
/// `*.hcl` and `*.json` files are read in name order. Later files override earlier ones:
/// scalars are replaced, listeners appended, storage replaced, telemetry merged per setting.
///
/// The result still needs [`ServerConfig::apply_env`] and [`ServerConfig::validate`].
///
/// # Errors
///
/// Fails on unreadable paths, syntax errors, unknown or mistyped settings, unsupported features,
/// or when no file declares a storage stanza.
pub fn load(paths: &[PathBuf]) -> Result<ServerConfig, ConfigError> {
    if paths.is_empty() {
        return Err(ConfigError::global(
            None,
            "no configuration file given: pass -config=<file or directory>",
        ));
    }
    let mut merged = PartialConfig::default();
    for path in paths {
        for file in expand(path)? {
            let name = file.display().to_string();
            let text = read_file(&file, &name)?;
            merged = merged.merge(parse_str(&text, &name)?);
        }
    }
    merged.into_config()
}

/// Parses one configuration text. `source_name` is used in error messages and, by its
/// extension, to choose between HCL and JSON (otherwise JSON if the text starts with `{`).
///
/// # Errors
///
/// Fails on syntax errors, unknown or mistyped settings and unsupported features.
pub fn parse_str(text: &str, source_name: &str) -> Result<PartialConfig, ConfigError> {
    let entries = match Format::detect(source_name, text) {
        Format::Json => json::parse(text, source_name)?,
        Format::Hcl => hcl::parse(text, source_name)?,
    };
    decode::decode(&entries, source_name)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Hcl,
    Json,
}

impl Format {
    fn detect(source_name: &str, text: &str) -> Format {
        match Path::new(source_name)
            .extension()
            .and_then(|ext| ext.to_str())
        {
            Some("json") => Format::Json,
            Some("hcl") => Format::Hcl,
            _ if text.trim_start().starts_with('{') => Format::Json,
            _ => Format::Hcl,
        }
    }
}

fn io_error(name: &str, action: &str, err: &std::io::Error) -> ConfigError {
    ConfigError::new(name, None, None, format!("cannot {action}: {err}"))
}

/// The files a `-config` path stands for, in load order.
fn expand(path: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let name = path.display().to_string();
    let metadata = std::fs::metadata(path).map_err(|err| io_error(&name, "read", &err))?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for dir_entry in
        std::fs::read_dir(path).map_err(|err| io_error(&name, "list directory", &err))?
    {
        let dir_entry = dir_entry.map_err(|err| io_error(&name, "list directory", &err))?;
        let file = dir_entry.path();
        let is_config = matches!(
            file.extension().and_then(|ext| ext.to_str()),
            Some("hcl" | "json")
        );
        let is_hidden = dir_entry.file_name().to_string_lossy().starts_with('.');
        if is_config && !is_hidden && file.is_file() {
            files.push(file);
        }
    }
    if files.is_empty() {
        return Err(ConfigError::new(
            name,
            None,
            None,
            "directory contains no .hcl or .json configuration files",
        ));
    }
    files.sort();
    Ok(files)
}

fn read_file(path: &Path, name: &str) -> Result<String, ConfigError> {
    let file = std::fs::File::open(path).map_err(|err| io_error(name, "open", &err))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| io_error(name, "read", &err))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfigError::new(
            name,
            None,
            None,
            format!(
                "file is larger than {MAX_FILE_BYTES} bytes; is this really a configuration file?"
            ),
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| ConfigError::new(name, None, None, "file is not valid UTF-8"))
}

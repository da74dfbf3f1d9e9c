//! What an operator configured for one audit device, and how its options are read.
//!
//! The stored record keeps the options exactly as given (they are echoed by `GET sys/audit`),
//! while [`Settings`] is the validated interpretation used to build the device, so a bad
//! option is refused at enable time rather than discovered on the first request.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::CoreError;

/// One enabled device, as persisted in the audit table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(super) struct DeviceConfig {
    /// With trailing slash: `file/`.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub local: bool,
    /// Names this device's salt record, so re-enabling a path gets a fresh salt.
    pub uuid: String,
}

/// The persisted audit table.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(super) struct AuditTable {
    #[serde(default)]
    pub entries: Vec<DeviceConfig>,
}

impl DeviceConfig {
    /// The `GET sys/audit` view of this device.
    pub(super) fn to_json(&self) -> Value {
        json!({
            "type": self.kind,
            "description": self.description,
            "options": self.options,
            "local": self.local,
            "path": self.path,
        })
    }
}

/// Where a file device writes.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Target {
    File(PathBuf),
    Stdout,
    Discard,
}

/// The validated options of a device.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Settings {
    pub target: Target,
    /// Permission bits to apply to the file; `None` = leave as is (`"0000"`).
    pub mode: Option<u32>,
    pub log_raw: bool,
    pub hmac_accessor: bool,
    pub prefix: String,
    pub elide_list_responses: bool,
}

impl Settings {
    /// Interprets a file device's options; errors are client errors (400).
    pub(super) fn parse(options: &BTreeMap<String, String>) -> Result<Settings, CoreError> {
        let get = |k: &str| options.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let target = match get("file_path").or_else(|| get("path")) {
            None => return Err(bad("file_path is required")),
            Some("stdout") => Target::Stdout,
            Some("discard") => Target::Discard,
            Some(p) => Target::File(PathBuf::from(p)),
        };
        let m = get("mode").unwrap_or("0600");
        let mode = match u32::from_str_radix(m, 8) {
            Ok(0) => None,
            Ok(bits) if bits <= 0o777 => Some(bits),
            _ => {
                return Err(bad(&format!(
                    "invalid mode {m:?}: expected an octal permission string such as \"0600\""
                )));
            }
        };
        match get("format").unwrap_or("json") {
            "json" => {}
            other => {
                return Err(bad(&format!(
                    "unsupported audit format {other:?}: only \"json\" is supported"
                )));
            }
        }
        Ok(Settings {
            target,
            mode,
            log_raw: flag(options, "log_raw", false)?,
            hmac_accessor: flag(options, "hmac_accessor", true)?,
            prefix: options.get("prefix").cloned().unwrap_or_default(),
            elide_list_responses: flag(options, "elide_list_responses", false)?,
        })
    }
}

/// Reads the `options` object of an enable request: every value must be a scalar, kept as
/// its string form (Vault's options are a string map; clients send `true` or `"true"`).
pub(super) fn options_param(
    data: &Map<String, Value>,
) -> Result<BTreeMap<String, String>, CoreError> {
    let Some(raw) = data.get("options") else {
        return Ok(BTreeMap::new());
    };
    let obj = match raw {
        Value::Null => return Ok(BTreeMap::new()),
        Value::Object(o) => o,
        other => {
            return Err(bad(&format!(
                "invalid value for \"options\": expected an object, got {other}"
            )));
        }
    };
    obj.iter()
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                other => {
                    return Err(bad(&format!(
                        "invalid value for option \"{k}\": expected a string, got {other}"
                    )));
                }
            };
            Ok((k.clone(), s))
        })
        .collect()
}

fn flag(options: &BTreeMap<String, String>, name: &str, default: bool) -> Result<bool, CoreError> {
    match options.get(name).map(|v| v.trim()) {
        None | Some("") => Ok(default),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(other) => Err(bad(&format!(
            "invalid value {other:?} for option \"{name}\": expected a boolean"
        ))),
    }
}

fn bad(msg: &str) -> CoreError {
    CoreError::InvalidRequest(msg.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_and_legacy_path_alias() {
        // Why: hvac enables devices with the legacy `path` option and relies on the defaults.
        let s = Settings::parse(&opts(&[("path", "/tmp/a.log")])).unwrap();
        assert_eq!(s.target, Target::File(PathBuf::from("/tmp/a.log")));
        assert_eq!(s.mode, Some(0o600));
        assert!(!s.log_raw);
        assert!(s.hmac_accessor);
        assert!(!s.elide_list_responses);
        assert_eq!(s.prefix, "");
    }

    #[test]
    fn special_targets_and_options() {
        // Why: `stdout`, `discard` and `mode "0000"` have meanings beyond a file name.
        let s = Settings::parse(&opts(&[
            ("file_path", "stdout"),
            ("mode", "0000"),
            ("log_raw", "true"),
            ("hmac_accessor", "false"),
            ("prefix", "AUDIT:"),
        ]))
        .unwrap();
        assert_eq!(s.target, Target::Stdout);
        assert_eq!(s.mode, None);
        assert!(s.log_raw);
        assert!(!s.hmac_accessor);
        assert_eq!(s.prefix, "AUDIT:");
        let d = Settings::parse(&opts(&[("file_path", "discard")])).unwrap();
        assert_eq!(d.target, Target::Discard);
    }

    #[test]
    fn bad_options_are_refused() {
        // Why: a misconfigured device must fail at enable time with a clear message.
        let err = |o: &[(&str, &str)]| Settings::parse(&opts(o)).unwrap_err().to_string();
        assert_eq!(err(&[]), "file_path is required");
        assert!(err(&[("file_path", "x"), ("mode", "rw")]).contains("invalid mode"));
        assert!(err(&[("file_path", "x"), ("format", "jsonx")]).contains("unsupported"));
        assert!(err(&[("file_path", "x"), ("log_raw", "maybe")]).contains("log_raw"));
    }
}

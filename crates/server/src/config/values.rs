//! Typed reading of single setting values, shared by every stanza.
//!
//! Vault decodes configuration loosely (`"true"`, `1` and `true` are all booleans; numbers may
//! be strings), and operators expect the same here. Keeping these conversions in one place makes
//! every setting accept the same spellings and report type errors the same way.

use std::path::PathBuf;
use std::time::Duration;

use super::decode::Decoder;
use super::duration::parse_duration;
use super::error::ConfigError;
use super::model::{TlsVersion, split_host_port};
use super::tree::{Entry, Node, NodeKind};

pub(crate) const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "warning", "error"];
pub(crate) const LOG_FORMATS: &[&str] = &["standard", "json"];

impl Decoder<'_> {
    pub(crate) fn type_error(&self, setting: &str, node: &Node, expected: &str) -> ConfigError {
        self.error(
            node.line,
            setting,
            format!("expected {expected}, got {}", node.kind.describe()),
        )
    }

    /// A block or object, or a list of them (JSON `[{...}, {...}]`, repeated HCL blocks).
    pub(crate) fn objects<'n>(
        &self,
        setting: &str,
        node: &'n Node,
    ) -> Result<Vec<&'n [Entry]>, ConfigError> {
        match &node.kind {
            NodeKind::Object(entries) => Ok(vec![entries.as_slice()]),
            NodeKind::Array(items) => items
                .iter()
                .map(|item| match &item.kind {
                    NodeKind::Object(entries) => Ok(entries.as_slice()),
                    _ => Err(self.type_error(setting, item, "a block/object")),
                })
                .collect(),
            _ => Err(self.type_error(setting, node, "a block/object")),
        }
    }

    /// Vault's loose booleans: true/false, 1/0, and Go's `strconv.ParseBool` strings.
    pub(crate) fn boolean(&self, setting: &str, node: &Node) -> Result<bool, ConfigError> {
        let expected = "a boolean (true/false)";
        match &node.kind {
            NodeKind::Bool(value) => Ok(*value),
            NodeKind::Number(number) => match number.as_u64() {
                Some(1) => Ok(true),
                Some(0) => Ok(false),
                _ => Err(self.type_error(setting, node, expected)),
            },
            NodeKind::String(text) => {
                parse_loose_bool(text).ok_or_else(|| self.type_error(setting, node, expected))
            }
            _ => Err(self.type_error(setting, node, expected)),
        }
    }

    /// A string; numbers are accepted and kept as written, as Vault's weak decoding does.
    pub(crate) fn string(&self, setting: &str, node: &Node) -> Result<String, ConfigError> {
        match &node.kind {
            NodeKind::String(text) => Ok(text.clone()),
            NodeKind::Number(number) => Ok(number.to_string()),
            _ => Err(self.type_error(setting, node, "a string")),
        }
    }

    pub(crate) fn path(&self, setting: &str, node: &Node) -> Result<PathBuf, ConfigError> {
        let text = self.string(setting, node)?;
        if text.is_empty() {
            return Err(self.error(node.line, setting, "path must not be empty"));
        }
        Ok(PathBuf::from(text))
    }

    pub(crate) fn unsigned(&self, setting: &str, node: &Node) -> Result<u64, ConfigError> {
        let expected = "a non-negative integer";
        match &node.kind {
            NodeKind::Number(number) => number
                .as_u64()
                .ok_or_else(|| self.type_error(setting, node, expected)),
            NodeKind::String(text) => text
                .trim()
                .parse()
                .map_err(|_| self.type_error(setting, node, expected)),
            _ => Err(self.type_error(setting, node, expected)),
        }
    }

    pub(crate) fn signed(&self, setting: &str, node: &Node) -> Result<i64, ConfigError> {
        let expected = "an integer";
        match &node.kind {
            NodeKind::Number(number) => number
                .as_i64()
                .ok_or_else(|| self.type_error(setting, node, expected)),
            NodeKind::String(text) => text
                .trim()
                .parse()
                .map_err(|_| self.type_error(setting, node, expected)),
            _ => Err(self.type_error(setting, node, expected)),
        }
    }

    /// A duration string (`"30s"`, `"1h30m"`) or an integer number of seconds.
    pub(crate) fn duration(&self, setting: &str, node: &Node) -> Result<Duration, ConfigError> {
        match &node.kind {
            NodeKind::Number(number) => number.as_u64().map(Duration::from_secs).ok_or_else(|| {
                self.type_error(setting, node, "a non-negative whole number of seconds")
            }),
            NodeKind::String(text) => {
                parse_duration(text).map_err(|message| self.error(node.line, setting, message))
            }
            _ => Err(self.type_error(setting, node, "a duration such as \"30s\" or \"1h\"")),
        }
    }

    pub(crate) fn one_of(
        &self,
        setting: &str,
        node: &Node,
        allowed: &[&str],
    ) -> Result<String, ConfigError> {
        let value = self.string(setting, node)?.to_ascii_lowercase();
        if allowed.contains(&value.as_str()) {
            Ok(value)
        } else {
            Err(self.error(
                node.line,
                setting,
                format!(
                    "invalid value \"{value}\": use one of {}",
                    allowed.join(", ")
                ),
            ))
        }
    }

    pub(crate) fn address(&self, setting: &str, node: &Node) -> Result<String, ConfigError> {
        let text = self.string(setting, node)?;
        split_host_port(&text).map_err(|message| self.error(node.line, setting, message))?;
        Ok(text)
    }

    pub(crate) fn url(&self, setting: &str, node: &Node) -> Result<String, ConfigError> {
        let text = self.string(setting, node)?;
        check_url(&text).map_err(|message| self.error(node.line, setting, message))?;
        Ok(text)
    }

    pub(crate) fn tls_version(
        &mut self,
        setting: &str,
        node: &Node,
        is_minimum: bool,
    ) -> Result<TlsVersion, ConfigError> {
        let text = self.string(setting, node)?;
        match parse_tls_version(&text) {
            Ok(version) => Ok(version),
            Err(TlsVersionError::Obsolete) if is_minimum => {
                // hvac's own fixture says tls10; refusing it would break that harness, and
                // raising the floor only makes the listener stricter.
                let at = match node.line {
                    Some(line) => format!("{}:{line}", self.file),
                    None => self.file.to_owned(),
                };
                self.out.warnings.push(format!(
                    "{setting} ({at}): \"{text}\" is not supported; using tls12 as the minimum"
                ));
                Ok(TlsVersion::Tls12)
            }
            Err(TlsVersionError::Obsolete) => Err(self.error(
                node.line,
                setting,
                format!("\"{text}\" is not supported: use tls12 or tls13"),
            )),
            Err(TlsVersionError::Unknown) => Err(self.error(
                node.line,
                setting,
                format!("invalid TLS version \"{text}\": use tls12 or tls13"),
            )),
        }
    }
}

/// Go's `strconv.ParseBool`, which Vault uses for string booleans in files and environment.
pub(crate) fn parse_loose_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

enum TlsVersionError {
    Obsolete,
    Unknown,
}

fn parse_tls_version(text: &str) -> Result<TlsVersion, TlsVersionError> {
    match text {
        "tls12" => Ok(TlsVersion::Tls12),
        "tls13" => Ok(TlsVersion::Tls13),
        "tls10" | "tls11" => Err(TlsVersionError::Obsolete),
        _ => Err(TlsVersionError::Unknown),
    }
}

/// Checks an advertised address such as `https://10.0.0.1:8200`.
pub(crate) fn check_url(text: &str) -> Result<(), String> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or_else(|| {
            format!("invalid address \"{text}\": use a URL such as \"https://10.0.0.1:8200\"")
        })?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.contains(char::is_whitespace) {
        return Err(format!(
            "invalid address \"{text}\": missing host, use a URL such as \"https://10.0.0.1:8200\""
        ));
    }
    Ok(())
}

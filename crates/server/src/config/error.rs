//! One error type for every way a configuration can be rejected.
//!
//! Operators fix configuration files by hand, so every error must point at the exact place to
//! edit: the file, the line and the dotted setting name (`listener.tcp.tls_cert_file`). Callers
//! only print these errors, so a single struct with optional location parts is enough; the
//! message text says what is wrong and what to do.

use std::fmt;

/// A configuration file (or environment variable) was unreadable, malformed or invalid.
///
/// Displayed as `error loading configuration: {file}:{line}: {setting}: {message}`, leaving out
/// the parts that are unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (as named by the operator) or other source (`environment`) that was rejected.
    /// Empty when the problem concerns the merged configuration as a whole.
    pub file: String,
    /// One-based line number inside `file`, when known.
    pub line: Option<usize>,
    /// Dotted setting name, e.g. `listener.tcp.tls_disable`.
    pub setting: Option<String>,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl ConfigError {
    /// Builds an error with every location part given explicitly.
    pub fn new(
        file: impl Into<String>,
        line: Option<usize>,
        setting: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            line,
            setting,
            message: message.into(),
        }
    }

    /// An error about the merged configuration, not tied to a file.
    pub fn global(setting: Option<&str>, message: impl Into<String>) -> Self {
        Self::new(String::new(), None, setting.map(str::to_owned), message)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("error loading configuration: ")?;
        match (self.file.is_empty(), self.line) {
            (false, Some(line)) => write!(f, "{}:{line}: ", self.file)?,
            (false, None) => write!(f, "{}: ", self.file)?,
            (true, Some(line)) => write!(f, "line {line}: ")?,
            (true, None) => {}
        }
        if let Some(setting) = &self.setting {
            write!(f, "{setting}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    // The operator-facing format is part of the contract: every part present.
    #[test]
    fn display_with_all_parts() {
        let err = ConfigError::new(
            "config.hcl",
            Some(7),
            Some("listener.tcp.tls_cert_fil".into()),
            "unknown setting",
        );

        let text = err.to_string();

        assert_eq!(
            text,
            "error loading configuration: config.hcl:7: listener.tcp.tls_cert_fil: unknown setting"
        );
    }

    // Missing parts must be left out rather than printed as empty separators.
    #[test]
    fn display_omits_missing_parts() {
        let no_line = ConfigError::new("a.json", None, None, "not valid UTF-8");
        let global = ConfigError::global(Some("listener"), "at least one listener is required");

        assert_eq!(
            no_line.to_string(),
            "error loading configuration: a.json: not valid UTF-8"
        );
        assert_eq!(
            global.to_string(),
            "error loading configuration: listener: at least one listener is required"
        );
    }
}

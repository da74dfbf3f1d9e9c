//! Why a policy document was refused, and where.

use thiserror::Error;

/// A policy document that could not be understood; the message names the line when known.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("failed to parse policy: {}{message}", location(*line, *column))]
pub struct PolicyError {
    /// 1-based line of the offending text, when it could be located.
    pub line: Option<usize>,
    /// 1-based column, for syntax errors.
    pub column: Option<usize>,
    pub message: String,
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("line {l}, column {c}: "),
        (Some(l), None) => format!("line {l}: "),
        _ => String::new(),
    }
}

impl PolicyError {
    /// The message with its location but without the "failed to parse policy" prefix.
    pub fn detail(&self) -> String {
        format!("{}{}", location(self.line, self.column), self.message)
    }

    pub(crate) fn at(line: Option<usize>, message: impl Into<String>) -> Self {
        PolicyError {
            line,
            column: None,
            message: message.into(),
        }
    }

    pub(crate) fn syntax(line: usize, column: usize, message: impl Into<String>) -> Self {
        PolicyError {
            line: Some(line),
            column: Some(column),
            message: message.into(),
        }
    }
}

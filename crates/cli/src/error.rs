//! The CLI's error type and its mapping to exit codes.
//!
//! Scripts (and Vault's own docs) rely on the exit code to tell a typo on the operator's side
//! (1) from a failure reported by the server (2). Every failure is therefore classified once,
//! here, instead of each command picking numbers.

use thiserror::Error;

use crate::args::ArgsError;
use crate::client::ClientError;

/// Exit code for success.
pub const EXIT_OK: i32 = 0;
/// Exit code for local and usage errors.
pub const EXIT_LOCAL: i32 = 1;
/// Exit code for errors reported by (or while talking to) the server, and for "not found".
pub const EXIT_REMOTE: i32 = 2;

/// A failed command. The message is printed to stderr as is.
#[derive(Debug, Error)]
pub enum CliError {
    /// The command line is wrong; the command's usage hint follows the message.
    #[error("{0}")]
    Usage(String),
    /// Something on this machine failed (a file, the terminal, the configuration).
    #[error("{0}")]
    Local(String),
    /// The server answered with an error or could not be reached.
    #[error("{0}")]
    Remote(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) | CliError::Local(_) => EXIT_LOCAL,
            CliError::Remote(_) => EXIT_REMOTE,
        }
    }

    /// Wraps a client error with what the command was doing, Vault style:
    /// `Error reading secret/foo: Error making API request. ...`.
    pub fn client(context: impl std::fmt::Display, err: ClientError) -> Self {
        let message = format!("{context}: {err}");
        if err.is_local() {
            CliError::Local(message)
        } else {
            CliError::Remote(message)
        }
    }
}

impl From<ArgsError> for CliError {
    fn from(err: ArgsError) -> Self {
        CliError::Usage(err.to_string())
    }
}

impl From<std::io::Error> for CliError {
    fn from(err: std::io::Error) -> Self {
        CliError::Local(format!("I/O error: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ApiError;

    // Usage and local failures exit 1, server failures exit 2: scripts depend on the split.
    #[test]
    fn exit_codes() {
        assert_eq!(CliError::Usage("x".into()).exit_code(), 1);
        assert_eq!(CliError::Local("x".into()).exit_code(), 1);
        assert_eq!(CliError::Remote("x".into()).exit_code(), 2);
    }

    // An API error keeps its Vault-style text and maps to exit 2; a config error maps to 1.
    #[test]
    fn client_errors_are_classified() {
        let api = ClientError::Api(Box::new(ApiError {
            method: "PUT".into(),
            url: "https://127.0.0.1:8200/v1/secret/foo".into(),
            status: 400,
            errors: vec!["missing data".into()],
            raw: String::new(),
            body: Vec::new(),
        }));
        let err = CliError::client("Error writing data to secret/foo", api);
        assert_eq!(err.exit_code(), 2);
        assert_eq!(
            err.to_string(),
            "Error writing data to secret/foo: Error making API request.\n\n\
             URL: PUT https://127.0.0.1:8200/v1/secret/foo\n\
             Code: 400. Errors:\n\n* missing data"
        );

        let local = CliError::client("Error", ClientError::Config("bad address".into()));
        assert_eq!(local.exit_code(), 1);
    }

    // A bad flag becomes a usage error (exit 1) that names the flag.
    #[test]
    fn args_errors_are_usage_errors() {
        let err: CliError = ArgsError::UnknownFlag("bogus".into()).into();
        assert_eq!(err.exit_code(), 1);
        assert!(err.to_string().contains("-bogus"));
    }
}

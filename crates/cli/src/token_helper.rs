//! The default token helper: `~/.vault-token`.
//!
//! `login` stores the token here and every later command reads it back, exactly like Vault's
//! built-in helper, so existing shell habits and tools that read the file keep working. The file
//! holds a live credential, so it is written owner-only and replaced atomically.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::CliError;

/// The token file inside the user's home directory.
#[derive(Debug, Clone)]
pub struct TokenHelper {
    path: PathBuf,
}

impl TokenHelper {
    /// The helper for `$HOME/.vault-token`, or `None` when `HOME` is not set.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<Self> {
        let home = env("HOME").filter(|home| !home.is_empty())?;
        Some(Self {
            path: Path::new(&home).join(".vault-token"),
        })
    }

    /// A helper backed by an explicit file.
    #[cfg(test)]
    pub fn at(path: PathBuf) -> Self {
        Self { path }
    }

    /// The stored token, trimmed; `None` when the file is absent or empty.
    pub fn get(&self) -> Result<Option<Zeroizing<String>>, CliError> {
        let raw = match fs::read(&self.path) {
            Ok(raw) => Zeroizing::new(raw),
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
            Err(err) => {
                return Err(CliError::Local(format!(
                    "Error reading token from {}: {err}",
                    self.path.display()
                )));
            }
        };
        let text = std::str::from_utf8(&raw).map_err(|_| {
            CliError::Local(format!(
                "Error reading token from {}: the file is not UTF-8; delete it and log in again",
                self.path.display()
            ))
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Ok(None);
        }
        Ok(Some(Zeroizing::new(token.to_string())))
    }

    /// Stores `token` with mode 0600, replacing any previous token atomically.
    pub fn store(&self, token: &str) -> Result<(), CliError> {
        let fail = |err: std::io::Error| {
            CliError::Local(format!(
                "Error storing token in {}: {err}",
                self.path.display()
            ))
        };
        let tmp = self
            .path
            .with_extension(format!("tmp.{}", std::process::id()));
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(fail)?;
        let written = file
            .set_permissions(fs::Permissions::from_mode(0o600))
            .and_then(|()| file.write_all(token.as_bytes()))
            .and_then(|()| file.sync_all())
            .and_then(|()| fs::rename(&tmp, &self.path));
        if let Err(err) = written {
            // Best effort: the temporary file holds the token and must not linger.
            let _ = fs::remove_file(&tmp);
            return Err(fail(err));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The token file holds a credential: it must be owner-only and round-trip exactly.
    #[test]
    fn store_then_get_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let helper = TokenHelper::at(dir.path().join(".vault-token"));

        helper.store("hvs.abc").unwrap();
        helper.store("hvs.def").unwrap();

        assert_eq!(
            helper.get().unwrap().as_deref().map(String::as_str),
            Some("hvs.def")
        );
        let mode = fs::metadata(dir.path().join(".vault-token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A missing or blank file means "no token", and a trailing newline is not part of it.
    #[test]
    fn missing_blank_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".vault-token");
        let helper = TokenHelper::at(path.clone());
        assert!(helper.get().unwrap().is_none());

        fs::write(&path, "  \n").unwrap();
        assert!(helper.get().unwrap().is_none());

        fs::write(&path, "root\n").unwrap();
        assert_eq!(
            helper.get().unwrap().as_deref().map(String::as_str),
            Some("root")
        );
    }

    // HOME decides where the helper lives; without it there is no helper.
    #[test]
    fn from_env_uses_home() {
        let helper = TokenHelper::from_env(&|key| (key == "HOME").then(|| "/h".to_string()));
        assert_eq!(helper.unwrap().path, PathBuf::from("/h/.vault-token"));
        assert!(TokenHelper::from_env(&|_| None).is_none());
    }
}

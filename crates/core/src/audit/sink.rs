//! Where a device's lines go: an append-only file, stdout, or nowhere.
//!
//! Durability policy: each line is assembled in memory and handed to the kernel with a single
//! append `write` (flush per line, no fsync), which keeps concurrent writers — including other
//! servers sharing the file — from interleaving partial lines, and costs one syscall. Like
//! Vault, a line is "recorded" once the kernel accepted it; only a failing write makes the
//! request fail.
//!
//! The file is re-checked on every line: if the path no longer names the file we hold open
//! (rotated away, deleted, replaced), it is reopened. That makes log rotation work without a
//! signal, and it makes a vanished log directory a write failure instead of lines silently
//! going to an unlinked inode — the property fail-closed auditing depends on.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::config::Target;

/// An open output.
pub(super) enum Sink {
    File(FileSink),
    Stdout,
    Discard,
}

impl Sink {
    /// Opens `target`; a file that cannot be opened for appending is an error now, at enable
    /// or load time.
    pub(super) fn open(target: &Target, mode: Option<u32>) -> std::io::Result<Sink> {
        Ok(match target {
            Target::File(path) => Sink::File(FileSink::open(path.clone(), mode)?),
            Target::Stdout => Sink::Stdout,
            Target::Discard => Sink::Discard,
        })
    }

    /// Writes one complete line (the caller includes the newline).
    pub(super) fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::File(f) => f.write_line(line),
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(line)?;
                out.flush()
            }
            Sink::Discard => Ok(()),
        }
    }
}

/// An append-mode file that follows its path.
pub(super) struct FileSink {
    path: PathBuf,
    mode: Option<u32>,
    open: Mutex<OpenFile>,
}

struct OpenFile {
    file: File,
    /// (device, inode) of `file`, to notice when the path names another file.
    identity: (u64, u64),
}

impl FileSink {
    fn open(path: PathBuf, mode: Option<u32>) -> std::io::Result<FileSink> {
        let open = open_file(&path, mode)?;
        Ok(FileSink {
            path,
            mode,
            open: Mutex::new(open),
        })
    }

    fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
        let mut guard = crate::util::lock(&self.open);
        let current = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if current != Some(guard.identity) {
            *guard = open_file(&self.path, self.mode)?;
        }
        guard.file.write_all(line)?;
        guard.file.flush()
    }
}

fn open_file(path: &Path, mode: Option<u32>) -> std::io::Result<OpenFile> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(mode.unwrap_or(0o600))
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    if let Some(bits) = mode
        && meta.permissions().mode() & 0o777 != bits
    {
        file.set_permissions(std::fs::Permissions::from_mode(bits))?;
    }
    Ok(OpenFile {
        file,
        identity: (meta.dev(), meta.ino()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_lines_and_applies_mode() {
        // Why: lines must accumulate (never truncate an existing log) with the asked-for mode.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, b"old\n").unwrap();
        let sink = Sink::open(&Target::File(path.clone()), Some(0o640)).unwrap();
        sink.write_line(b"a\n").unwrap();
        sink.write_line(b"b\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\na\nb\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn follows_rotation_and_fails_when_the_directory_is_gone() {
        // Why: rotated logs must keep receiving lines, and a vanished log must be an error,
        // not lines written into an unlinked file.
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("logs");
        std::fs::create_dir(&sub).unwrap();
        let path = sub.join("audit.log");
        let sink = Sink::open(&Target::File(path.clone()), None).unwrap();
        std::fs::rename(&path, sub.join("audit.log.1")).unwrap();
        sink.write_line(b"after rotation\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "after rotation\n");
        std::fs::remove_dir_all(&sub).unwrap();
        assert!(sink.write_line(b"lost\n").is_err());
    }

    #[test]
    fn a_directory_is_not_a_log_file() {
        // Why: enabling a device on a directory must fail at enable time.
        let dir = tempfile::tempdir().unwrap();
        assert!(Sink::open(&Target::File(dir.path().to_path_buf()), None).is_err());
    }
}

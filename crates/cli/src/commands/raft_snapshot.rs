//! `operator raft snapshot save | restore`.
//!
//! A snapshot is the only backup of the whole cluster, so `save` never leaves a partial file
//! under the requested name: it streams to a temporary file next to it, checks that the archive
//! is complete (gzip → tar with a non-empty `SHA256SUMS.sealed`, the contract Vault's client
//! enforces), and only then renames it into place.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use super::{Command, Ctx, expect_args};
use crate::args::{FlagKind, FlagSpec, Parsed};
use crate::config::HTTP_FLAGS;
use crate::error::{CliError, EXIT_OK};

/// The archive member whose presence marks a complete snapshot.
const SEALED_SUMS: &str = "SHA256SUMS.sealed";
const INCOMPLETE: &str = "incomplete snapshot, unable to read SHA256SUMS.sealed file";

pub const SAVE: Command = Command {
    words: &["operator", "raft", "snapshot", "save"],
    args: "FILE",
    synopsis: "Save a snapshot of the raft cluster to a file.",
    flags: &[HTTP_FLAGS],
    run: save,
};

const RESTORE_FLAGS: &[FlagSpec] = &[FlagSpec {
    name: "force",
    aliases: &["f"],
    kind: FlagKind::Bool,
    help: "Install the snapshot even if it was taken from a cluster with other keys.",
}];

pub const RESTORE: Command = Command {
    words: &["operator", "raft", "snapshot", "restore"],
    args: "FILE",
    synopsis: "Restore the raft cluster from a snapshot file.",
    flags: &[HTTP_FLAGS, RESTORE_FLAGS],
    run: restore,
};

/// Checks that `reader` is a gzip-compressed tar holding a non-empty `SHA256SUMS.sealed`.
pub fn verify_snapshot(reader: impl Read) -> Result<(), CliError> {
    let incomplete = || CliError::Remote(INCOMPLETE.to_string());
    let mut archive = tar::Archive::new(GzDecoder::new(reader));
    for entry in archive.entries().map_err(|_| incomplete())? {
        let mut entry = entry.map_err(|_| incomplete())?;
        let is_sums = entry
            .path()
            .map(|path| path.as_ref() == Path::new(SEALED_SUMS))
            .unwrap_or(false);
        if is_sums {
            let mut contents = Vec::new();
            entry.read_to_end(&mut contents).map_err(|_| incomplete())?;
            return if contents.is_empty() {
                Err(incomplete())
            } else {
                Ok(())
            };
        }
    }
    Err(incomplete())
}

/// Removes the temporary file unless the save completed.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            // Best effort: a leftover temp file is harmless but untidy.
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn save(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 1)?;
    let target = PathBuf::from(&flags.positionals[0]);
    let name = target
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or_else(|| {
            CliError::Usage(format!("Invalid snapshot file name {}", target.display()))
        })?;
    let dir = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let client = ctx.connect(flags)?;

    let mut temp = TempFile {
        path: dir.join(format!(".{name}.{}.tmp", std::process::id())),
        keep: false,
    };
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp.path)
        .map_err(|err| {
            CliError::Local(format!(
                "Error creating temporary snapshot file {}: {err}",
                temp.path.display()
            ))
        })?;
    let mut writer = BufWriter::new(file);
    client
        .download("sys/storage/raft/snapshot", &mut writer)
        .map_err(|err| CliError::client("Error taking the snapshot", err))?;
    let file = writer
        .into_inner()
        .map_err(|err| CliError::Local(format!("Error writing the snapshot: {}", err.error())))?;
    file.sync_all()
        .map_err(|err| CliError::Local(format!("Error writing the snapshot: {err}")))?;
    drop(file);

    let check = File::open(&temp.path)
        .map_err(|err| CliError::Local(format!("Error reading back the snapshot: {err}")))?;
    verify_snapshot(check)?;

    fs::rename(&temp.path, &target).map_err(|err| {
        CliError::Local(format!(
            "Error moving the snapshot into place at {}: {err}",
            target.display()
        ))
    })?;
    temp.keep = true;
    Ok(EXIT_OK)
}

fn restore(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 1)?;
    let path = &flags.positionals[0];
    let file = File::open(path)
        .map_err(|err| CliError::Local(format!("Error opening snapshot file {path}: {err}")))?;
    let client = ctx.connect(flags)?;
    let endpoint = if flags.switch("force") {
        "sys/storage/raft/snapshot-force"
    } else {
        "sys/storage/raft/snapshot"
    };
    client
        .upload(endpoint, file)
        .map_err(|err| CliError::client("Error installing the snapshot", err))?;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;

    fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        for (name, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o600);
            header.set_cksum();
            builder.append_data(&mut header, name, *data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    // A complete snapshot (Vault's layout) passes.
    #[test]
    fn complete_snapshot_passes() {
        let bytes = archive(&[
            ("meta.json", b"{}"),
            ("state.bin", b"data"),
            ("SHA256SUMS", b"sums"),
            ("SHA256SUMS.sealed", b"sealed-sums"),
        ]);

        assert!(verify_snapshot(&bytes[..]).is_ok());
    }

    // Missing or empty checksum files, truncation and non-gzip data all fail with Vault's message.
    #[test]
    fn incomplete_snapshots_fail() {
        let missing = archive(&[("state.bin", b"data")]);
        let empty = archive(&[("SHA256SUMS.sealed", b"")]);
        let full = archive(&[("state.bin", &[7u8; 4096]), ("SHA256SUMS.sealed", b"x")]);
        let truncated = &full[..full.len() / 2];

        for bytes in [&missing[..], &empty[..], truncated, b"not gzip at all"] {
            let err = verify_snapshot(bytes).unwrap_err();
            assert_eq!(err.to_string(), INCOMPLETE);
            assert_eq!(err.exit_code(), 2);
        }
    }

    // The temporary file disappears when a save fails part-way.
    #[test]
    fn temp_file_is_removed_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".snap.tmp");
        fs::write(&path, b"partial").unwrap();

        drop(TempFile {
            path: path.clone(),
            keep: false,
        });

        assert!(!path.exists());
    }
}

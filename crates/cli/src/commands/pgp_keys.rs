//! `-pgp-keys` and `-root-token-pgp-key`: operators' OpenPGP public keys read from files.
//!
//! The server wants each key as base64 of the binary public key, as Vault does. Operators
//! usually hold an exported key file: binary (`gpg --export`), ASCII-armored
//! (`gpg --export --armor`, sent as base64 of the armored text, which the server also
//! reads), or already base64. Keybase lookups (`keybase:name`) need a network service this
//! CLI does not call, so they are refused with what to do instead.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::args::Parsed;
use crate::error::CliError;

/// Reads a comma-separated list of key files into the base64 strings the API takes.
pub fn read_key_list(flag: &str, raw: &str) -> Result<Vec<String>, CliError> {
    raw.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|path| read_key_file(flag, path))
        .collect()
}

/// The `-pgp-keys` flag's keys, which must be one per share when given at all.
pub fn share_keys(flags: &Parsed, shares: u32) -> Result<Vec<String>, CliError> {
    let keys = match flags.value("pgp-keys") {
        Some(list) => read_key_list("pgp-keys", list)?,
        None => return Ok(Vec::new()),
    };
    if keys.len() != shares as usize {
        return Err(CliError::Usage(format!(
            "-pgp-keys names {} keys but -key-shares is {shares}: give one key per share",
            keys.len()
        )));
    }
    Ok(keys)
}

/// Reads one key file into base64.
pub fn read_key_file(flag: &str, path: &str) -> Result<String, CliError> {
    if path.starts_with("keybase:") {
        return Err(CliError::Usage(format!(
            "-{flag}: keybase lookups ({path}) are not supported; export the key \
             (gpg --export NAME > name.pgp) and pass the file path"
        )));
    }
    let bytes = std::fs::read(path)
        .map_err(|err| CliError::Local(format!("Error reading PGP key file {path}: {err}")))?;
    let text = std::str::from_utf8(&bytes).map(str::trim).unwrap_or("");
    if text.starts_with("-----BEGIN PGP") {
        return Ok(STANDARD.encode(text));
    }
    if !text.is_empty() && STANDARD.decode(text).is_ok() {
        return Ok(text.to_string());
    }
    if bytes.is_empty() {
        return Err(CliError::Local(format!("PGP key file {path} is empty")));
    }
    Ok(STANDARD.encode(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_armored_and_base64_files_all_become_base64() {
        // Why: operators export keys in all three forms; each must reach the server intact.
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("k.pgp");
        let armored = dir.path().join("k.asc");
        let b64 = dir.path().join("k.b64");
        std::fs::write(&binary, [0x99u8, 0x01, 0xff]).unwrap();
        std::fs::write(&armored, "-----BEGIN PGP PUBLIC KEY BLOCK-----\nabc\n").unwrap();
        std::fs::write(&b64, "mQEN\n").unwrap();
        let list = format!(
            "{},{}, {}",
            binary.display(),
            armored.display(),
            b64.display()
        );

        let keys = read_key_list("pgp-keys", &list).unwrap();

        assert_eq!(STANDARD.decode(&keys[0]).unwrap(), [0x99, 0x01, 0xff]);
        assert!(
            STANDARD
                .decode(&keys[1])
                .unwrap()
                .starts_with(b"-----BEGIN PGP")
        );
        assert_eq!(keys[2], "mQEN");
    }

    #[test]
    fn keybase_and_missing_files_are_refused() {
        // Why: a silent fallback would send shares unencrypted or to nobody.
        let keybase = read_key_list("pgp-keys", "keybase:alice");
        let missing = read_key_list("pgp-keys", "/nonexistent/key.pgp");

        assert!(matches!(keybase, Err(CliError::Usage(m)) if m.contains("keybase")));
        assert!(matches!(missing, Err(CliError::Local(_))));
    }
}

//! `retry_join` stanzas of `storage "raft"`: decoding, the per-stanza rules, and reading the
//! certificate files they name.
//!
//! Decoding checks what one stanza alone can get wrong (unknown settings, file paths mixed
//! with inline PEM, `leader_api_addr` with `auto_join`, a client certificate without its key)
//! and keeps file paths unread, so that parsing a text never touches the filesystem. The files
//! are read once the configuration is assembled ([`super::PartialConfig::into_config`]), and a
//! file that cannot be read names both the configuration file and the certificate file.

use std::io::Read;
use std::path::{Path, PathBuf};

use strongroom_api::SecretString;

use super::decode::Decoder;
use super::error::ConfigError;
use super::model::{RetryJoin, SourceLocation};
use super::tree::Entry;

/// Largest certificate or key file read: PEM files are a few KiB.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// Where a PEM text comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum PemSource {
    /// A `leader_*_file` path, read at load time.
    File(PathBuf),
    /// An inline `leader_*` PEM text.
    Inline(SecretString),
}

impl std::fmt::Debug for PemSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PemSource::File(path) => f.debug_tuple("File").field(path).finish(),
            PemSource::Inline(_) => f.write_str("Inline(<pem>)"),
        }
    }
}

/// One PEM setting of a stanza, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemSetting {
    pub source: PemSource,
    /// Dotted setting name, for errors.
    pub setting: String,
    pub line: Option<usize>,
}

/// A decoded `retry_join` stanza whose files are not read yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryJoinSpec {
    pub leader_api_addr: String,
    pub tls_servername: Option<String>,
    pub ca_cert: Option<PemSetting>,
    pub client_cert: Option<PemSetting>,
    pub client_key: Option<PemSetting>,
    pub defined_at: SourceLocation,
}

/// The three PEM settings, each by file or inline.
const PEM_SETTINGS: [(&str, &str); 3] = [
    ("leader_ca_cert_file", "leader_ca_cert"),
    ("leader_client_cert_file", "leader_client_cert"),
    ("leader_client_key_file", "leader_client_key"),
];

impl Decoder<'_> {
    /// Decodes every stanza of one `retry_join` entry (a block, or a JSON list of objects).
    pub(crate) fn retry_join(
        &mut self,
        prefix: &str,
        entry: &Entry,
    ) -> Result<Vec<RetryJoinSpec>, ConfigError> {
        let stanza = format!("{prefix}.retry_join");
        let mut out = Vec::new();
        for body in self.objects(&stanza, &entry.value)? {
            out.push(self.retry_join_stanza(&stanza, body, entry.line)?);
        }
        Ok(out)
    }

    fn retry_join_stanza(
        &mut self,
        stanza: &str,
        body: &[Entry],
        line: Option<usize>,
    ) -> Result<RetryJoinSpec, ConfigError> {
        let mut leader_api_addr = None;
        let mut auto_join: Option<Option<usize>> = None;
        let mut auto_join_extras = Vec::new();
        let mut tls_servername = None;
        let mut pems: [Option<PemSetting>; 3] = [None, None, None];
        for item in body {
            let setting = format!("{stanza}.{}", item.key);
            let value = &item.value;
            let key = item.key.as_str();
            if let Some(index) = PEM_SETTINGS
                .iter()
                .position(|(file, inline)| key == *file || key == *inline)
            {
                let source = if key.ends_with("_file") {
                    PemSource::File(self.path(&setting, value)?)
                } else {
                    let text = self.string(&setting, value)?;
                    if !text.contains("-----BEGIN ") {
                        return Err(self.error(
                            item.line,
                            &setting,
                            "expected PEM text (-----BEGIN ...); to name a file use the _file setting",
                        ));
                    }
                    PemSource::Inline(SecretString::new(text))
                };
                pems[index] = Some(PemSetting {
                    source,
                    setting,
                    line: item.line,
                });
                continue;
            }
            match key {
                "leader_api_addr" => leader_api_addr = Some(self.url(&setting, value)?),
                "leader_tls_servername" => {
                    tls_servername = Some(self.string(&setting, value)?).filter(|s| !s.is_empty());
                }
                "auto_join" => {
                    self.string(&setting, value)?;
                    auto_join = Some(item.line);
                }
                "auto_join_scheme" => {
                    self.one_of(&setting, value, &["http", "https"])?;
                    auto_join_extras.push((setting, item.line));
                }
                "auto_join_port" => {
                    let port = self.unsigned(&setting, value)?;
                    if u16::try_from(port).is_err() {
                        return Err(self.error(item.line, &setting, "must be a port, 0-65535"));
                    }
                    auto_join_extras.push((setting, item.line));
                }
                _ => return Err(self.error(item.line, &setting, "unknown setting")),
            }
        }

        if let Some(auto_line) = auto_join {
            let setting = format!("{stanza}.auto_join");
            return Err(if leader_api_addr.is_some() {
                self.error(
                    auto_line,
                    &setting,
                    "leader_api_addr and auto_join are mutually exclusive: keep only one",
                )
            } else {
                self.error(
                    auto_line,
                    &setting,
                    "cloud auto-join is not supported by Strongroom: give the node's address in leader_api_addr instead",
                )
            });
        }
        let Some(leader_api_addr) = leader_api_addr else {
            return Err(self.error(
                line,
                stanza,
                "leader_api_addr is required: the API address of a cluster node, e.g. leader_api_addr = \"https://node-1.example.com:8200\"",
            ));
        };
        for (setting, at) in auto_join_extras {
            self.ignore_with(&setting, at, "has no effect without auto_join, ignored");
        }

        let by_file: Vec<&PemSetting> = pems
            .iter()
            .flatten()
            .filter(|p| matches!(p.source, PemSource::File(_)))
            .collect();
        let inline = pems
            .iter()
            .flatten()
            .find(|p| matches!(p.source, PemSource::Inline(_)));
        if let (Some(file), Some(inline)) = (by_file.first(), inline) {
            return Err(self.error(
                inline.line,
                &inline.setting,
                format!(
                    "file paths and inline PEM cannot be mixed in one retry_join stanza ({} is a file path): use only leader_*_file settings or only inline leader_ca_cert/leader_client_cert/leader_client_key",
                    file.setting.rsplit('.').next().unwrap_or_default()
                ),
            ));
        }
        let [ca_cert, client_cert, client_key] = pems;
        if client_cert.is_some() != client_key.is_some() {
            let (given, at) = match (&client_cert, &client_key) {
                (Some(p), None) | (None, Some(p)) => (p.setting.clone(), p.line),
                _ => (stanza.to_owned(), line),
            };
            return Err(self.error(
                at,
                &given,
                "a client certificate needs its key: give both the client certificate and the client key",
            ));
        }
        Ok(RetryJoinSpec {
            leader_api_addr,
            tls_servername,
            ca_cert,
            client_cert,
            client_key,
            defined_at: SourceLocation {
                file: self.file.to_owned(),
                line,
            },
        })
    }
}

/// Reads PEM files for [`RetryJoinSpec::resolve`]; tests and fuzzing pass their own.
pub type PemReader<'a> = &'a dyn Fn(&Path) -> Result<String, String>;

/// Reads a certificate or key file from disk: a regular file of at most 1 MiB.
pub(crate) fn read_pem_file(path: &Path) -> Result<String, String> {
    let metadata = std::fs::metadata(path).map_err(|err| err.to_string())?;
    if !metadata.is_file() {
        return Err("not a regular file".to_string());
    }
    let file = std::fs::File::open(path).map_err(|err| err.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| err.to_string())?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(format!(
            "larger than {MAX_PEM_BYTES} bytes; is this a PEM file?"
        ));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text; expected a PEM file".to_string())
}

impl RetryJoinSpec {
    /// Reads the files the stanza names and gives the model's [`RetryJoin`].
    ///
    /// # Errors
    ///
    /// Names the configuration file, line and setting, and the certificate file with the
    /// reason, when a file cannot be read or holds no PEM data.
    pub fn resolve(&self, read: PemReader<'_>) -> Result<RetryJoin, ConfigError> {
        let file = &self.defined_at.file;
        let load = |pem: &Option<PemSetting>| -> Result<Option<SecretString>, ConfigError> {
            let Some(pem) = pem else {
                return Ok(None);
            };
            match &pem.source {
                PemSource::Inline(text) => Ok(Some(text.clone())),
                PemSource::File(path) => {
                    let fail = |why: String| {
                        ConfigError::new(
                            file.clone(),
                            pem.line,
                            Some(pem.setting.clone()),
                            format!("cannot read {}: {why}", path.display()),
                        )
                    };
                    let text = SecretString::new(read(path).map_err(fail)?);
                    if !text.expose().contains("-----BEGIN ") {
                        return Err(fail("no PEM data (-----BEGIN ...) in the file".to_string()));
                    }
                    Ok(Some(text))
                }
            }
        };
        let plain = |secret: Option<SecretString>| secret.map(|s| s.expose().to_owned());
        Ok(RetryJoin {
            leader_api_addr: self.leader_api_addr.clone(),
            tls_servername: self.tls_servername.clone(),
            ca_cert_pem: plain(load(&self.ca_cert)?),
            client_cert_pem: plain(load(&self.client_cert)?),
            client_key_pem: load(&self.client_key)?,
            defined_at: self.defined_at.clone(),
        })
    }
}

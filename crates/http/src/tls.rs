//! TLS for the API listener: rustls on the ring provider, a certificate reloadable on SIGHUP,
//! and Vault's client-certificate policy.
//!
//! Certificates rotate without restarts (Vault reloads `tls_cert_file`/`tls_key_file` on
//! SIGHUP), so the server config resolves its certificate through [`ReloadableCert`] on every
//! handshake instead of fixing it at startup. Client certificates follow Vault: by default they
//! are requested but neither required nor verified, because clients such as hvac present
//! certificates from unrelated CAs and must not be rejected for it (see `client_cert.rs`, which
//! also reads the X.509 v1 certificates webpki refuses). `tls_client_ca_file` alone only names
//! the CAs; as in Vault, chains are verified with `tls_require_and_verify_client_cert`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

use crate::HttpError;
use crate::client_cert::{ChainCheck, ClientCertPolicy};

/// A TLS protocol version accepted in `tls_min_version`/`tls_max_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl FromStr for TlsVersion {
    type Err = HttpError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tls12" => Ok(TlsVersion::Tls12),
            "tls13" => Ok(TlsVersion::Tls13),
            "tls10" | "tls11" => Err(HttpError::TlsConfig(format!(
                "{s} is not supported: the oldest accepted version is tls12"
            ))),
            other => Err(HttpError::TlsConfig(format!(
                "unknown TLS version {other:?}: use \"tls12\" or \"tls13\""
            ))),
        }
    }
}

/// TLS settings of one listener (the `tls_*` keys of `listener "tcp"`).
#[derive(Debug, Clone)]
pub struct TlsOptions {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: Option<PathBuf>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// Refuse clients without a certificate signed by `client_ca_file`.
    pub require_and_verify_client_cert: bool,
    /// Do not even ask clients for a certificate.
    pub disable_client_certs: bool,
}

impl TlsOptions {
    /// Vault's defaults (TLS 1.2–1.3, client certificates requested but not verified).
    pub fn new(cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        TlsOptions {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            client_ca_file: None,
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
            require_and_verify_client_cert: false,
            disable_client_certs: false,
        }
    }
}

/// The listener's certificate and key, swappable while the server runs.
pub struct ReloadableCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for ReloadableCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableCert")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl ReloadableCert {
    /// Loads the pair once; fails (naming the file) if either is unreadable or they mismatch.
    pub fn load(
        cert_file: &Path,
        key_file: &Path,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, HttpError> {
        let key = load_certified_key(cert_file, key_file, &provider)?;
        Ok(ReloadableCert {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            provider,
            current: RwLock::new(Arc::new(key)),
        })
    }

    /// Re-reads both files. On error the previous certificate stays in use, so a botched
    /// rotation never takes the listener down.
    pub fn reload(&self) -> Result<(), HttpError> {
        let key = load_certified_key(&self.cert_file, &self.key_file, &self.provider)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
        tracing::info!(cert_file = %self.cert_file.display(), "reloaded the TLS certificate");
        Ok(())
    }

    /// The certificate chain currently served (leaf first).
    pub fn current_chain(&self) -> Vec<CertificateDer<'static>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .cert
            .clone()
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// The ring provider: the only one compiled in (two providers make rustls panic).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls server config for `opts`, and the reloadable certificate it serves.
pub fn server_config(
    opts: &TlsOptions,
) -> Result<(Arc<ServerConfig>, Arc<ReloadableCert>), HttpError> {
    if opts.min_version > opts.max_version {
        return Err(HttpError::TlsConfig(
            "tls_min_version is newer than tls_max_version".into(),
        ));
    }
    if opts.require_and_verify_client_cert && opts.disable_client_certs {
        return Err(HttpError::TlsConfig(
            "tls_require_and_verify_client_cert and tls_disable_client_certs cannot both be set"
                .into(),
        ));
    }
    let provider = provider();
    let cert = Arc::new(ReloadableCert::load(
        &opts.cert_file,
        &opts.key_file,
        provider.clone(),
    )?);
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (opts.min_version..=opts.max_version).contains(v))
    .map(|(_, p)| p)
    .collect();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| HttpError::TlsConfig(e.to_string()))?;
    let client_ca = opts.client_ca_file.as_deref().map(load_roots).transpose()?;
    let algorithms = provider.signature_verification_algorithms;
    let builder = if opts.disable_client_certs {
        builder.with_no_client_auth()
    } else if opts.require_and_verify_client_cert {
        let (store, roots) = client_ca.ok_or_else(|| {
            HttpError::TlsConfig(
                "tls_require_and_verify_client_cert needs tls_client_ca_file".into(),
            )
        })?;
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider.clone())
                .build()
                .map_err(|e| HttpError::TlsConfig(format!("client CA: {e}")))?;
        let chain = ChainCheck { verifier, roots };
        builder
            .with_client_cert_verifier(Arc::new(ClientCertPolicy::verify_chain(algorithms, chain)))
    } else {
        builder.with_client_cert_verifier(Arc::new(ClientCertPolicy::accept_any(algorithms)))
    };
    let mut config = builder.with_cert_resolver(cert.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), cert))
}

fn read(what: &'static str, path: &Path) -> Result<Zeroizing<Vec<u8>>, HttpError> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|source| HttpError::ReadFile {
            what,
            path: path.to_owned(),
            source,
        })
}

fn load_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, HttpError> {
    let pem = read(what, path)?;
    let invalid = |detail: String| HttpError::InvalidPem {
        what,
        path: path.to_owned(),
        detail,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(e.to_string()))?;
    if certs.is_empty() {
        return Err(invalid("no PEM CERTIFICATE block found".into()));
    }
    Ok(certs)
}

fn load_certified_key(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, HttpError> {
    let certs = load_certs("certificate", cert_file)?;
    let pem = read("key", key_file)?;
    let invalid_key = |detail: String| HttpError::InvalidPem {
        what: "key",
        path: key_file.to_owned(),
        detail,
    };
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| invalid_key(format!("no usable private key: {e}")))?;
    CertifiedKey::from_der(certs, key, provider)
        .map_err(|e| invalid_key(format!("{e} (does it match {}?)", cert_file.display())))
}

/// The client CAs of `path`, as a webpki trust store and as the certificates themselves.
fn load_roots(path: &Path) -> Result<(RootCertStore, Vec<CertificateDer<'static>>), HttpError> {
    let certs = load_certs("client CA", path)?;
    let mut store = RootCertStore::empty();
    for cert in &certs {
        store.add(cert.clone()).map_err(|e| HttpError::InvalidPem {
            what: "client CA",
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
    }
    Ok((store, certs))
}

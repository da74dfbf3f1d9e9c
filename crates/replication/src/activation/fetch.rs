//! Fetching the activation bundle from the primary's API (`sys/wrapping/unwrap`).
//!
//! The secondary has no trust relationship with the primary yet: the only link is the
//! activation token and the TLS roots the operator names (`ca_file`, `ca_path`, else the
//! system bundle). The call uses our own rustls configuration (ring provider) so it needs no
//! platform TLS library. What the bundle means is core's business: this returns the unwrapped
//! `data` object as the primary sent it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Map, Value};

use super::ActivationError;

/// How long the unwrap call may take.
const UNWRAP_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer accepted (a bundle is a few KiB).
const MAX_BODY: usize = 1024 * 1024;
/// Where distributions keep the system CA bundle.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// TLS material for the unwrap call, from the request parameters.
#[derive(Default)]
pub struct UnwrapTls {
    pub ca_file: Option<String>,
    pub ca_path: Option<String>,
    pub client_cert_file: Option<String>,
    pub client_key_file: Option<String>,
}

fn bad(msg: String) -> ActivationError {
    ActivationError::Invalid(msg)
}

fn certs_in(path: &Path) -> Result<Vec<CertificateDer<'static>>, ActivationError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            bad(format!(
                "reading CA certificates from {}: {e}",
                path.display()
            ))
        })?;
    Ok(certs)
}

fn roots(tls: &UnwrapTls) -> Result<RootCertStore, ActivationError> {
    let mut roots = RootCertStore::empty();
    if let Some(file) = &tls.ca_file {
        for cert in certs_in(Path::new(file))? {
            roots
                .add(cert)
                .map_err(|e| bad(format!("invalid CA certificate in {file}: {e}")))?;
        }
    } else if let Some(dir) = &tls.ca_path {
        let entries =
            std::fs::read_dir(dir).map_err(|e| bad(format!("reading ca_path {dir}: {e}")))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file()
                && let Ok(certs) = certs_in(&path)
            {
                roots.add_parsable_certificates(certs);
            }
        }
    } else if let Some(bundle) = SYSTEM_BUNDLES.iter().map(Path::new).find(|p| p.is_file())
        && let Ok(certs) = certs_in(bundle)
    {
        roots.add_parsable_certificates(certs);
    }
    Ok(roots)
}

fn client(tls: &UnwrapTls, https: bool) -> Result<reqwest::Client, ActivationError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = roots(tls)?;
    if https && roots.is_empty() {
        return Err(bad(
            "no CA certificates found to verify the primary's API: set ca_file or ca_path".into(),
        ));
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ActivationError::Internal(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots);
    let config = match (&tls.client_cert_file, &tls.client_key_file) {
        (Some(cert), Some(key)) => {
            let chain = certs_in(Path::new(cert))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| bad(format!("reading client_key_file {key}: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| bad(format!("using the client certificate: {e}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(bad(
                "client_cert_file and client_key_file must be given together".into(),
            ));
        }
    };
    reqwest::Client::builder()
        .timeout(UNWRAP_TIMEOUT)
        .tls_backend_preconfigured(config)
        .build()
        .map_err(|e| ActivationError::Internal(format!("building the HTTP client: {e}")))
}

/// Whether `base` is plain HTTP to this host (127.0.0.0/8, ::1 or localhost).
fn is_loopback_http(base: &str) -> bool {
    let Some(rest) = base.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or("");
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Unwraps `token` at `api_addr` and returns the `data` object of the answer.
pub async fn fetch_wrapped_data(
    api_addr: &str,
    token: &str,
    tls: &UnwrapTls,
) -> Result<Map<String, Value>, ActivationError> {
    let base = api_addr.trim_end_matches('/');
    // The bundle carries the primary's root key and a client key: it only travels over TLS,
    // except to a loopback address (a dev server on the same host).
    if !base.starts_with("https://") && !is_loopback_http(base) {
        return Err(bad(format!(
            "primary API address {base:?} must start with https:// (the activation bundle carries key material); set primary_api_addr"
        )));
    }
    let client = client(tls, base.starts_with("https://"))?;
    let url = format!("{base}/v1/sys/wrapping/unwrap");
    let resp = client
        .put(&url)
        .header("X-Vault-Token", token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .map_err(|e| {
            bad(format!(
                "error unwrapping the activation token at {url}: {e}; check primary_api_addr and ca_file"
            ))
        })?;
    let status = resp.status();
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(bad(format!("the unwrap answer from {url} is too large")));
    }
    // Read in chunks and stop at the cap: the address may come from an unverified claim.
    let mut resp = resp;
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| bad(format!("error reading the unwrap answer from {url}: {e}")))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(bad(format!("the unwrap answer from {url} is too large")));
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        let detail = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("errors").cloned())
            .map(|e| e.to_string())
            .unwrap_or_default();
        return Err(bad(format!(
            "error response unwrapping secondary token; status code is {} {detail}",
            status.as_u16()
        )));
    }
    let envelope: Value = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("the unwrap answer from {url} is not JSON: {e}")))?;
    match envelope {
        Value::Object(mut top) => match top.remove("data") {
            Some(Value::Object(data)) => Ok(data),
            _ => Err(bad("the unwrap answer carries no data".into())),
        },
        _ => Err(bad(format!(
            "the unwrap answer from {url} is not a JSON object"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback_http;

    #[test]
    fn plain_http_is_allowed_only_to_this_host() {
        // Why: the activation bundle holds key material; only TLS may carry it off the host.
        assert!(is_loopback_http("http://127.0.0.1:8200"));
        assert!(is_loopback_http("http://[::1]:8200"));
        assert!(is_loopback_http("http://localhost:8200"));
        assert!(!is_loopback_http("http://10.0.0.1:8200"));
        assert!(!is_loopback_http("http://127.0.0.1.evil.example:8200"));
        assert!(!is_loopback_http("https://127.0.0.1:8200"));
    }
}

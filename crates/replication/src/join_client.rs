//! The joining node's calls to a leader's API for the two-phase Raft join.
//!
//! A joiner has nothing of the cluster yet, so the only trust it has is what the operator
//! gives the join (`leader_ca_cert`, a client certificate, a server name) or the system CA
//! bundle. Answers are read with a cap, since the address is the operator's input and the
//! node at it is not yet trusted.

use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// How long one call to the leader may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer accepted (a challenge or a certificate is a few KiB).
const MAX_BODY: usize = 1024 * 1024;
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How the joiner reaches and trusts the leader's API (`retry_join` / `sys/storage/raft/join`).
#[derive(Clone, Default)]
pub struct LeaderTls {
    /// PEM of the CA that signed the leader's API certificate (else the system bundle).
    pub ca_cert_pem: Option<String>,
    /// PEM client certificate and key for a leader that asks for one.
    pub client_cert_pem: Option<String>,
    pub client_key_pem: Option<Zeroizing<String>>,
    /// The name to verify on the leader's certificate, when it differs from the address.
    pub tls_servername: Option<String>,
}

impl std::fmt::Debug for LeaderTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderTls")
            .field("ca_cert_pem", &self.ca_cert_pem.is_some())
            .field("client_cert_pem", &self.client_cert_pem.is_some())
            .field("tls_servername", &self.tls_servername)
            .finish_non_exhaustive()
    }
}

fn roots(tls: &LeaderTls) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = match &tls.ca_cert_pem {
        Some(pem) => CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("leader_ca_cert is not PEM certificates: {e}"))?,
        None => CertificateDer::pem_file_iter(SYSTEM_BUNDLE)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .unwrap_or_default(),
    };
    roots.add_parsable_certificates(certs);
    if roots.is_empty() {
        return Err("no CA certificate to verify the leader's API: set leader_ca_cert".into());
    }
    Ok(roots)
}

async fn client(
    leader_api_addr: &str,
    tls: &LeaderTls,
) -> Result<(reqwest::Client, String), String> {
    let base = leader_api_addr.trim().trim_end_matches('/').to_owned();
    if !base.starts_with("https://") {
        return Err(format!(
            "leader API address {base:?} must start with https:// (the join carries key material)"
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots(tls)?);
    let config = match (&tls.client_cert_pem, &tls.client_key_pem) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("leader_client_cert is not PEM: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                .map_err(|e| format!("leader_client_key is not a PEM private key: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("using the leader client certificate: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("leader_client_cert and leader_client_key must be given together".into()),
    };
    let mut http = reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .tls_backend_preconfigured(config);
    let mut url_base = base.clone();
    // A server name other than the address: connect to the address, verify the name.
    if let Some(name) = tls.tls_servername.as_deref().filter(|n| !n.is_empty()) {
        let hostport = base.trim_start_matches("https://");
        let hostport = hostport.split('/').next().unwrap_or(hostport);
        let addr = tokio::net::lookup_host(hostport)
            .await
            .map_err(|e| format!("resolving the leader address {hostport}: {e}"))?
            .next()
            .ok_or_else(|| format!("the leader address {hostport} resolves to nothing"))?;
        http = http.resolve(name, addr);
        url_base = format!("https://{name}:{}", addr.port());
    }
    let http = http
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))?;
    Ok((http, url_base))
}

/// POSTs `body` to `path` (under `/v1/`) on the leader and returns the answer's `data`.
pub async fn post_to_leader(
    leader_api_addr: &str,
    tls: &LeaderTls,
    path: &str,
    body: &Value,
) -> Result<Map<String, Value>, String> {
    let (http, base) = client(leader_api_addr, tls).await?;
    let url = format!("{base}/v1/{path}");
    let mut resp = http
        .post(&url)
        .json(body)
        .send()
        .await
        .map_err(|e| format!("calling {url}: {e}"))?;
    let status = resp.status();
    let mut raw = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading the answer of {url}: {e}"))?
    {
        if raw.len() + chunk.len() > MAX_BODY {
            return Err(format!("the answer of {url} is too large"));
        }
        raw.extend_from_slice(&chunk);
    }
    let parsed: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    if !status.is_success() {
        let detail = parsed
            .get("errors")
            .map(Value::to_string)
            .unwrap_or_default();
        return Err(format!("{url} answered {} {detail}", status.as_u16()));
    }
    match parsed {
        Value::Object(mut top) => match top.remove("data") {
            Some(Value::Object(data)) => Ok(data),
            _ => Err(format!("the answer of {url} carries no data")),
        },
        _ => Err(format!("the answer of {url} is not a JSON object")),
    }
}

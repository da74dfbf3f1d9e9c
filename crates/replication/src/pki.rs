//! The primary's private replication CA.
//!
//! Replication trusts nothing but this CA: a secondary is exactly "whoever holds a client
//! certificate this primary issued for its id", so revoking an id (refused at the listener
//! by the registry) cuts that secondary off, and a certificate from another primary's CA is
//! useless here. The CA key never leaves the primary; it is zeroized when dropped.

use std::fmt;
use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use zeroize::Zeroizing;

use crate::error::ReplicationError;

/// A replication CA: its certificate and private key, both PEM.
pub struct ReplicationCa {
    pub ca_cert_pem: String,
    /// The CA private key (PKCS#8 PEM). Secret: store it only in the barrier.
    pub ca_key_pem: Zeroizing<String>,
}

impl fmt::Debug for ReplicationCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicationCa")
            .field("ca_cert_pem", &self.ca_cert_pem)
            .field("ca_key_pem", &"<redacted>")
            .finish()
    }
}

/// A certificate and its private key, both PEM. The key is zeroized when dropped.
pub type CertAndKey = (String, Zeroizing<String>);

impl ReplicationCa {
    /// Creates a fresh CA for the replication set `cluster_id`.
    pub fn generate(cluster_id: &str) -> Result<Self, ReplicationError> {
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| ReplicationError::pki("preparing the replication CA", e))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name.push(
            DnType::CommonName,
            format!("strongroom replication CA {cluster_id}"),
        );
        let key = KeyPair::generate()
            .map_err(|e| ReplicationError::pki("generating the replication CA key", e))?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| ReplicationError::pki("self-signing the replication CA", e))?;
        Ok(ReplicationCa {
            ca_cert_pem: cert.pem(),
            ca_key_pem: Zeroizing::new(key.serialize_pem()),
        })
    }

    /// Restores a CA saved from [`ReplicationCa::generate`]; checks that both parse.
    pub fn from_pem(ca_cert_pem: &str, ca_key_pem: &str) -> Result<Self, ReplicationError> {
        let ca = ReplicationCa {
            ca_cert_pem: ca_cert_pem.to_owned(),
            ca_key_pem: Zeroizing::new(ca_key_pem.to_owned()),
        };
        ca.issuer()?;
        Ok(ca)
    }

    /// Issues the client certificate a secondary presents on the cluster port. The id is the
    /// certificate's common name and DNS SAN, which is where the primary reads it back.
    pub fn issue_client_cert(&self, secondary_id: &str) -> Result<CertAndKey, ReplicationError> {
        if !is_valid_secondary_id(secondary_id) {
            return Err(ReplicationError::Tls(format!(
                "secondary id {secondary_id:?} is not usable in a certificate: use 1-64 ASCII \
                 letters, digits, '-', '_' or '.'"
            )));
        }
        let mut params = CertificateParams::new(vec![secondary_id.to_owned()])
            .map_err(|e| ReplicationError::pki("preparing a secondary certificate", e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, secondary_id.to_owned());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params, "issuing a secondary certificate")
    }

    /// Issues the server certificate of the primary's cluster port; `hosts` are the IPs or DNS
    /// names secondaries dial (ports and `https://` prefixes are stripped).
    pub fn issue_server_cert(&self, hosts: &[String]) -> Result<CertAndKey, ReplicationError> {
        let mut sans = Vec::new();
        for host in hosts {
            let bare = host_of(host);
            if bare.is_empty() {
                return Err(ReplicationError::Address(host.clone()));
            }
            let san = match bare.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    bare.to_owned()
                        .try_into()
                        .map_err(|e| ReplicationError::pki("naming the cluster port host", e))?,
                ),
            };
            if !sans.contains(&san) {
                sans.push(san);
            }
        }
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        params
            .distinguished_name
            .push(DnType::CommonName, "strongroom replication primary");
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params, "issuing the cluster port certificate")
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, ReplicationError> {
        let key = KeyPair::from_pem(&self.ca_key_pem)
            .map_err(|e| ReplicationError::pki("loading the replication CA key", e))?;
        Issuer::from_ca_cert_pem(&self.ca_cert_pem, key)
            .map_err(|e| ReplicationError::pki("loading the replication CA certificate", e))
    }

    fn sign(&self, params: CertificateParams, what: &str) -> Result<CertAndKey, ReplicationError> {
        let issuer = self.issuer()?;
        let key = KeyPair::generate().map_err(|e| ReplicationError::pki(what, e))?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| ReplicationError::pki(what, e))?;
        Ok((cert.pem(), Zeroizing::new(key.serialize_pem())))
    }
}

/// Whether `id` can name a secondary in a certificate and in metrics labels.
pub fn is_valid_secondary_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The host part of `host`, `host:port`, `[v6]:port` or `https://host:port`.
pub(crate) fn host_of(addr: &str) -> &str {
    let rest = addr
        .strip_prefix("https://")
        .or_else(|| addr.strip_prefix("http://"))
        .unwrap_or(addr);
    let rest = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = rest.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    if rest.parse::<IpAddr>().is_ok() {
        return rest;
    }
    match rest.rsplit_once(':') {
        Some((host, _port)) => host,
        None => rest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_strips_scheme_and_port() {
        // Why: the server certificate must name the host secondaries dial, not the URL.
        assert_eq!(host_of("https://10.0.0.1:8201"), "10.0.0.1");
        assert_eq!(host_of("vault.example:8201"), "vault.example");
        assert_eq!(host_of("[::1]:8201"), "::1");
        assert_eq!(host_of("::1"), "::1");
        assert_eq!(host_of("node1"), "node1");
    }

    #[test]
    fn restored_ca_issues_certificates() {
        // Why: the CA is persisted and reloaded across primary restarts; issuing must still work.
        let ca = ReplicationCa::generate("cluster-1").unwrap();
        let restored = ReplicationCa::from_pem(&ca.ca_cert_pem, &ca.ca_key_pem).unwrap();
        let (cert, key) = restored.issue_client_cert("dr-east").unwrap();
        assert!(cert.contains("BEGIN CERTIFICATE"));
        assert!(key.contains("PRIVATE KEY"));
        assert!(restored.issue_client_cert("bad id with spaces").is_err());
        assert!(ReplicationCa::from_pem(&ca.ca_cert_pem, "not a key").is_err());
    }
}

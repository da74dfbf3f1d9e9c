//! The cluster-internal CA: who may speak Raft and forward requests inside one cluster.
//!
//! It is deliberately a different CA from the replication CA. A DR secondary holds a
//! certificate from its primary's replication CA; if the same CA vouched for Raft peers, that
//! secondary could dial the primary's Raft port and take part in its consensus. With two CAs,
//! a replication peer can never speak Raft, and a node of one cluster cannot join another by
//! accident (each cluster's CA is generated at `operator init` and travels only to nodes that
//! join it).
//!
//! Leaf certificates are long-lived (ten years) on purpose: a node's identity is its
//! membership, which changes by `remove-peer` and not by a clock; an expired certificate in
//! the middle of the night would split the cluster with no operator error to point at. Trust
//! is cut by rotating the CA, not by waiting for expiry.

use std::fmt;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::ReplicationError;

/// The DNS name every node certificate carries and every dialer verifies as the server
/// name: nodes dial each other by whatever address the Raft membership holds (IP, DNS name,
/// load-balanced or not), so the name checked cannot be the address.
pub const CLUSTER_SERVER_NAME: &str = "strongroom-cluster";

/// How long a node certificate (and the CA) stays valid: ten years.
const VALIDITY_DAYS: i64 = 3650;

/// A cluster-internal CA: its certificate and private key, both PEM.
///
/// Serializable so core can keep it in the barrier (cluster-local, never replicated).
#[derive(Clone, Serialize, Deserialize)]
pub struct ClusterCa {
    pub ca_cert_pem: String,
    /// The CA private key (PKCS#8 PEM). Secret: store it only in the barrier.
    #[serde(with = "zeroizing_string")]
    pub ca_key_pem: Zeroizing<String>,
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa")
            .field("ca_cert_pem", &self.ca_cert_pem)
            .field("ca_key_pem", &"<redacted>")
            .finish()
    }
}

/// One node's identity on the cluster port: its certificate, key and the CA they chain to.
///
/// The leader sends it to a joining node; the node presents it both as a server (listener)
/// and as a client (dialer).
#[derive(Clone, Serialize, Deserialize)]
pub struct NodeCert {
    pub cert_pem: String,
    /// The node's private key (PKCS#8 PEM). Secret.
    #[serde(with = "zeroizing_string")]
    pub key_pem: Zeroizing<String>,
    pub ca_cert_pem: String,
}

impl fmt::Debug for NodeCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .field("ca_cert_pem", &self.ca_cert_pem)
            .finish()
    }
}

impl ClusterCa {
    /// Creates a fresh CA for the cluster `cluster_id`.
    pub fn generate(cluster_id: &str) -> Result<Self, ReplicationError> {
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| ReplicationError::pki("preparing the cluster CA", e))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name.push(
            DnType::CommonName,
            format!("strongroom cluster CA {cluster_id}"),
        );
        set_validity(&mut params);
        let key = KeyPair::generate()
            .map_err(|e| ReplicationError::pki("generating the cluster CA key", e))?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| ReplicationError::pki("self-signing the cluster CA", e))?;
        Ok(ClusterCa {
            ca_cert_pem: cert.pem(),
            ca_key_pem: Zeroizing::new(key.serialize_pem()),
        })
    }

    /// Restores a CA saved from [`ClusterCa::generate`]; checks that both parse.
    pub fn from_pem(ca_cert_pem: &str, ca_key_pem: &str) -> Result<Self, ReplicationError> {
        let ca = ClusterCa {
            ca_cert_pem: ca_cert_pem.to_owned(),
            ca_key_pem: Zeroizing::new(ca_key_pem.to_owned()),
        };
        ca.issuer()?;
        Ok(ca)
    }

    /// Issues `node_id`'s certificate: the id is its common name and first DNS SAN (where the
    /// listener reads it back), [`CLUSTER_SERVER_NAME`] its second SAN, and it may serve and
    /// dial (server and client auth).
    pub fn issue_node(&self, node_id: &str) -> Result<NodeCert, ReplicationError> {
        if !is_valid_node_id(node_id) {
            return Err(ReplicationError::Tls(format!(
                "node id {node_id:?} is not usable in a certificate: use 1-64 ASCII letters, \
                 digits, '-' or '.', not starting or ending with '-' or '.'"
            )));
        }
        let mut sans = vec![node_id.to_owned()];
        if node_id != CLUSTER_SERVER_NAME {
            sans.push(CLUSTER_SERVER_NAME.to_owned());
        }
        let mut params = CertificateParams::new(sans)
            .map_err(|e| ReplicationError::pki("preparing a node certificate", e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, node_id.to_owned());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        set_validity(&mut params);
        let issuer = self.issuer()?;
        let key =
            KeyPair::generate().map_err(|e| ReplicationError::pki("generating a node key", e))?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| ReplicationError::pki("signing a node certificate", e))?;
        Ok(NodeCert {
            cert_pem: cert.pem(),
            key_pem: Zeroizing::new(key.serialize_pem()),
            ca_cert_pem: self.ca_cert_pem.clone(),
        })
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, ReplicationError> {
        let key = KeyPair::from_pem(&self.ca_key_pem)
            .map_err(|e| ReplicationError::pki("loading the cluster CA key", e))?;
        Issuer::from_ca_cert_pem(&self.ca_cert_pem, key)
            .map_err(|e| ReplicationError::pki("loading the cluster CA certificate", e))
    }
}

/// Whether `id` can name a node in a certificate: a DNS-name-shaped token, because it is
/// also a DNS SAN (which verifiers parse strictly).
pub fn is_valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
        && !id.starts_with(['-', '.'])
        && !id.ends_with(['-', '.'])
        && !id.contains("..")
}

fn set_validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    // A day of slack for nodes whose clocks lag the issuing node's.
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(VALIDITY_DAYS);
}

/// Serde for a zeroized string: written as a plain string, read straight into `Zeroizing`.
mod zeroizing_string {
    use serde::{Deserialize, Deserializer, Serializer};
    use zeroize::Zeroizing;

    pub fn serialize<S: Serializer>(value: &Zeroizing<String>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Zeroizing<String>, D::Error> {
        String::deserialize(d).map(Zeroizing::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_certificates_carry_the_id_and_the_cluster_name() {
        // Why: the listener reads the peer's node id from the CN, and dialers verify the fixed
        // cluster name; both must be in every leaf.
        let ca = ClusterCa::generate("c1").unwrap();
        let node = ca.issue_node("node-1").unwrap();
        use rustls::pki_types::pem::PemObject;
        let der = rustls::pki_types::CertificateDer::from_pem_slice(node.cert_pem.as_bytes());
        let der = der.unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let cn = parsed.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), "node-1");
        let san = parsed.subject_alternative_name().unwrap().unwrap();
        let names: Vec<String> = san
            .value
            .general_names
            .iter()
            .map(|n| format!("{n:?}"))
            .collect();
        assert!(names.iter().any(|n| n.contains("node-1")), "{names:?}");
        assert!(names.iter().any(|n| n.contains(CLUSTER_SERVER_NAME)));
        let not_after = parsed.validity().not_after.timestamp();
        let now = parsed.validity().not_before.timestamp();
        assert!(not_after - now > 9 * 365 * 86_400, "a long-lived leaf");
        assert_eq!(node.ca_cert_pem, ca.ca_cert_pem);
    }

    #[test]
    fn ca_and_node_cert_round_trip_through_serde_and_keys_stay_out_of_debug() {
        // Why: core stores the CA in the barrier and sends node certs to joining nodes; a
        // debug print in a log line must never reveal a key.
        let ca = ClusterCa::generate("c1").unwrap();
        let json = serde_json::to_string(&ca).unwrap();
        let back: ClusterCa = serde_json::from_str(&json).unwrap();
        let restored = ClusterCa::from_pem(&back.ca_cert_pem, &back.ca_key_pem).unwrap();
        let node = restored.issue_node("n2").unwrap();
        let node_json = serde_json::to_string(&node).unwrap();
        let node_back: NodeCert = serde_json::from_str(&node_json).unwrap();
        assert_eq!(*node_back.key_pem, *node.key_pem);
        assert!(!format!("{ca:?}").contains("PRIVATE KEY"));
        assert!(!format!("{node:?}").contains("PRIVATE KEY"));
        assert!(format!("{node:?}").contains("<redacted>"));
    }

    #[test]
    fn unusable_node_ids_are_refused() {
        // Why: the id becomes a DNS SAN; a malformed one would make verifiers reject the cert.
        let ca = ClusterCa::generate("c1").unwrap();
        for bad in ["", "has space", "-lead", "trail.", "a..b", "under_score"] {
            assert!(ca.issue_node(bad).is_err(), "{bad:?}");
        }
        assert!(ClusterCa::from_pem(&ca.ca_cert_pem, "not a key").is_err());
    }
}

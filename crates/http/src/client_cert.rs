//! The API listener's client-certificate policy, reading certificates as Go's TLS stack does.
//!
//! Vault asks every client for a certificate and, unless `tls_require_and_verify_client_cert`
//! is set, accepts whatever it gets: the API authenticates with tokens, so a certificate
//! grants nothing by itself. rustls' stock helpers parse the peer certificate with webpki,
//! which refuses X.509 version 1 (no extensions), so a v1 client that Vault serves would fail
//! here with `certificate unknown`. This verifier therefore takes the public key out of the
//! certificate with x509-parser, which reads v1, and checks the handshake signature against
//! that key itself: a client still cannot present a certificate whose key it does not hold.
//!
//! When client certificates are required, the chain is verified by webpki against
//! `tls_client_ca_file`. A v1 leaf, which webpki cannot read, is accepted only if it is
//! signed directly by one of those CAs and is within its validity period (Go's verifier also
//! accepts v1 leaves; a v1 leaf under an intermediate is refused here).

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls13_signature_with_raw_key};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, PeerMisbehaved,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, SubjectPublicKeyInfoDer, UnixTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;
use x509_parser::x509::X509Version;

/// Why a client certificate could not be used, as the handshake error reports it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientCertError {
    #[error("the client certificate is not a valid DER X.509 certificate: {0}")]
    Malformed(String),
    #[error("the client certificate has {0} trailing bytes after its DER encoding")]
    TrailingData(usize),
    #[error("the client certificate's public key cannot be used: {0}")]
    UnusableKey(String),
}

impl From<ClientCertError> for Error {
    /// A certificate that does not parse is `BadEncoding` (the client gets a `decode_error`
    /// alert); the detail goes to the server's debug log, since rustls prints errors terse.
    fn from(e: ClientCertError) -> Self {
        tracing::debug!(error = %e, "refused a client certificate");
        match e {
            ClientCertError::Malformed(_) | ClientCertError::TrailingData(_) => {
                Error::InvalidCertificate(CertificateError::BadEncoding)
            }
            ClientCertError::UnusableKey(_) => {
                Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
            }
        }
    }
}

/// Requests a client certificate, reads any version of it, and verifies its chain only when
/// the listener is configured to (`chain`).
#[derive(Debug)]
pub(crate) struct ClientCertPolicy {
    algorithms: WebPkiSupportedAlgorithms,
    chain: Option<ChainCheck>,
}

/// Chain verification against `tls_client_ca_file`.
#[derive(Debug)]
pub(crate) struct ChainCheck {
    /// webpki's verifier over the configured roots (v3 chains, with intermediates).
    pub(crate) verifier: Arc<dyn ClientCertVerifier>,
    /// The configured CA certificates, for v1 leaves they signed directly.
    pub(crate) roots: Vec<CertificateDer<'static>>,
}

impl ClientCertPolicy {
    /// Vault's default: ask for a certificate, accept any or none.
    pub(crate) fn accept_any(algorithms: WebPkiSupportedAlgorithms) -> Self {
        ClientCertPolicy {
            algorithms,
            chain: None,
        }
    }

    /// `tls_require_and_verify_client_cert`: a certificate chaining to `chain`'s roots.
    pub(crate) fn verify_chain(algorithms: WebPkiSupportedAlgorithms, chain: ChainCheck) -> Self {
        ClientCertPolicy {
            algorithms,
            chain: Some(chain),
        }
    }
}

/// Parses one DER certificate of any version, refusing trailing bytes.
fn parse(cert: &[u8]) -> Result<X509Certificate<'_>, ClientCertError> {
    let (rest, parsed) =
        X509Certificate::from_der(cert).map_err(|e| ClientCertError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(ClientCertError::TrailingData(rest.len()));
    }
    Ok(parsed)
}

/// The certificate's SubjectPublicKeyInfo, as DER.
fn public_key(cert: &CertificateDer<'_>) -> Result<SubjectPublicKeyInfoDer<'static>, Error> {
    let parsed = parse(cert.as_ref())?;
    Ok(SubjectPublicKeyInfoDer::from(
        parsed.public_key().raw.to_vec(),
    ))
}

/// Whether `leaf` is a v1 certificate signed directly by one of `roots` and valid at `now`.
fn v1_signed_by_a_root(leaf: &[u8], roots: &[CertificateDer<'_>], now: UnixTime) -> bool {
    let Ok(leaf) = parse(leaf) else {
        return false;
    };
    if leaf.version() != X509Version::V1 {
        return false;
    }
    let now = i64::try_from(now.as_secs())
        .ok()
        .map(ASN1Time::from_timestamp);
    let Some(Ok(now)) = now else {
        return false;
    };
    if !leaf.validity().is_valid_at(now) {
        return false;
    }
    roots
        .iter()
        .filter_map(|r| parse(r.as_ref()).ok())
        .any(|root| {
            root.subject().as_raw() == leaf.issuer().as_raw()
                && leaf.verify_signature(Some(root.public_key())).is_ok()
        })
}

/// Whether `scheme` is one TLS 1.2 can sign a handshake with (RSA, ECDSA, EdDSA).
fn usable_in_tls12(scheme: SignatureScheme) -> bool {
    use SignatureScheme as S;
    matches!(
        scheme,
        S::RSA_PKCS1_SHA1
            | S::RSA_PKCS1_SHA256
            | S::RSA_PKCS1_SHA384
            | S::RSA_PKCS1_SHA512
            | S::RSA_PSS_SHA256
            | S::RSA_PSS_SHA384
            | S::RSA_PSS_SHA512
            | S::ECDSA_SHA1_Legacy
            | S::ECDSA_NISTP256_SHA256
            | S::ECDSA_NISTP384_SHA384
            | S::ECDSA_NISTP521_SHA512
            | S::ED25519
            | S::ED448
    )
}

/// The webpki error for a failed signature check, as a rustls handshake error.
fn signature_error(e: webpki::Error) -> Error {
    match e {
        webpki::Error::InvalidSignatureForPublicKey => {
            Error::InvalidCertificate(CertificateError::BadSignature)
        }
        webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_)
        | webpki::Error::UnsupportedSignatureAlgorithmContext(_) => {
            Error::InvalidCertificate(CertificateError::BadSignature)
        }
        other => ClientCertError::UnusableKey(format!("{other:?}")).into(),
    }
}

impl ClientCertVerifier for ClientCertPolicy {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.chain
            .as_ref()
            .is_some_and(|c| c.verifier.client_auth_mandatory())
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        match &self.chain {
            Some(c) => c.verifier.root_hint_subjects(),
            None => &[],
        }
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        parse(end_entity.as_ref())?;
        let Some(chain) = &self.chain else {
            return Ok(ClientCertVerified::assertion());
        };
        match chain
            .verifier
            .verify_client_cert(end_entity, intermediates, now)
        {
            Ok(verified) => Ok(verified),
            Err(_) if v1_signed_by_a_root(end_entity.as_ref(), &chain.roots, now) => {
                Ok(ClientCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        // TLS 1.2 names only the hash, so every algorithm of the scheme is tried in turn.
        let unadvertised = || Error::from(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme);
        if !usable_in_tls12(dss.scheme) {
            return Err(unadvertised());
        }
        let candidates = self
            .algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algs)| *algs)
            .ok_or_else(unadvertised)?;
        let spki = public_key(cert)?;
        let key = webpki::RawPublicKeyEntity::try_from(&spki).map_err(signature_error)?;
        for alg in candidates {
            match key.verify_signature(*alg, message, dss.signature()) {
                Ok(()) => return Ok(HandshakeSignatureValid::assertion()),
                // This algorithm is for another key type: try the scheme's next one.
                Err(webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_)) => {}
                Err(e) => return Err(signature_error(e)),
            }
        }
        Err(Error::InvalidCertificate(CertificateError::BadSignature))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let spki = public_key(cert)?;
        verify_tls13_signature_with_raw_key(message, &spki, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed_v3() -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["client".to_owned()]).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn malformed_certificates_are_typed_errors() {
        let good = self_signed_v3();
        let mut trailing = good.clone();
        trailing.extend_from_slice(&[0, 0]);

        let truncated = parse(&good[..good.len() - 1]).map(|_| ()).unwrap_err();
        let trailing = parse(&trailing).map(|_| ()).unwrap_err();
        let empty = parse(&[]).map(|_| ()).unwrap_err();

        assert!(
            matches!(truncated, ClientCertError::Malformed(_)),
            "{truncated}"
        );
        assert!(
            matches!(trailing, ClientCertError::TrailingData(2)),
            "{trailing}"
        );
        assert!(matches!(empty, ClientCertError::Malformed(_)), "{empty}");
        assert!(
            empty
                .to_string()
                .contains("not a valid DER X.509 certificate")
        );
        assert_eq!(
            Error::from(empty),
            Error::InvalidCertificate(CertificateError::BadEncoding)
        );
    }

    #[test]
    fn the_public_key_is_the_certificates_spki() {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["client".to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();

        let spki = public_key(cert.der()).unwrap();

        assert_eq!(
            spki.as_ref(),
            rcgen::PublicKeyData::subject_public_key_info(&key)
        );
    }
}

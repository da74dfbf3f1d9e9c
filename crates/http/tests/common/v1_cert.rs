//! X.509 version 1 certificates, built by hand: rcgen emits only v3.
//!
//! A v1 certificate is a v3 one without the `[0] version` field and without extensions:
//! `Certificate ::= SEQUENCE { tbs, signatureAlgorithm, signature BIT STRING }` with
//! `tbs ::= SEQUENCE { serial, signature, issuer, validity, subject, subjectPublicKeyInfo }`.
//! Keys are rcgen's default ECDSA P-256, so every signature is ecdsa-with-SHA256.

use base64::Engine;
use rcgen::{KeyPair, PublicKeyData, SigningKey};
use x509_parser::prelude::{FromDer, X509Certificate};

/// A validity period (UTCTime) containing today and the coming decades.
pub const VALID_NOW: (&str, &str) = ("200101000000Z", "491231235959Z");
/// A validity period that ended in 2021.
pub const EXPIRED: (&str, &str) = ("200101000000Z", "210101000000Z");

/// ecdsa-with-SHA256, 1.2.840.10045.4.3.2.
const ECDSA_WITH_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
/// id-at-commonName, 2.5.4.3.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// One DER element: tag, definite length, contents.
fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
    out
}

fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// `Name` with a single common name.
fn name(common_name: &str) -> Vec<u8> {
    let attribute = sequence(&[&tlv(0x06, COMMON_NAME), &tlv(0x0c, common_name.as_bytes())]);
    sequence(&[&tlv(0x31, &attribute)])
}

/// The raw `subject` Name of `cert`, to name it as an issuer byte for byte.
pub fn subject_of(cert: &[u8]) -> Vec<u8> {
    let (_, parsed) = X509Certificate::from_der(cert).unwrap();
    parsed.subject().as_raw().to_vec()
}

/// A v1 certificate for `subject_key`, signed by `issuer` (its Name DER and key) or, without
/// one, self-signed.
pub fn build(
    common_name: &str,
    subject_key: &KeyPair,
    issuer: Option<(Vec<u8>, &KeyPair)>,
    (not_before, not_after): (&str, &str),
) -> Vec<u8> {
    let subject = name(common_name);
    let (issuer_name, signer) = match issuer {
        Some((issuer_name, key)) => (issuer_name, key),
        None => (subject.clone(), subject_key),
    };
    let algorithm = sequence(&[&tlv(0x06, ECDSA_WITH_SHA256)]);
    let serial: u64 = rand_serial();
    let validity = sequence(&[
        &tlv(0x17, not_before.as_bytes()),
        &tlv(0x17, not_after.as_bytes()),
    ]);
    let tbs = sequence(&[
        &tlv(0x02, &serial.to_be_bytes()),
        &algorithm,
        &issuer_name,
        &validity,
        &subject,
        &subject_key.subject_public_key_info(),
    ]);
    let signature = signer.sign(&tbs).unwrap();
    let bits = [&[0x00][..], &signature].concat();
    sequence(&[&tbs, &algorithm, &tlv(0x03, &bits)])
}

/// A serial number distinct enough for tests, whose 8 big-endian bytes are minimal DER for a
/// positive INTEGER (first byte neither 0x00 nor above 0x7f).
fn rand_serial() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    (nanos & 0x00ff_ffff_ffff_ffff) | 0x0100_0000_0000_0000
}

/// `der` as a PEM CERTIFICATE block.
pub fn pem(der: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

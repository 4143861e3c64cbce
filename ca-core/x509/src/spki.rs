//! The DER SubjectPublicKeyInfo (RFC 5280 section 4.1.2.7) of a subject key, as the CA writes
//! it into certificates, and its SHA-256: the identity of a key for the block list of keys
//! reported compromised (CA/Browser Forum Baseline Requirements section 6.1.1.3 item 4).
//!
//! One encoder for both uses, so that the hash of a CSR's key and the hash of the same key in
//! a certificate this CA issued are the same by construction: [`write_spki`] appends the
//! encoding to a buffer (the certificate template can write it in place), [`SubjectKey::spki_der`]
//! and [`SubjectKey::spki_sha256`] return it or its hash. The encoding is canonical whatever
//! the CSR sent (RSA parameters NULL, EC parameters a named curve, Ed25519 without
//! parameters), so the same key always hashes alike.

use der::asn1::{Null, ObjectIdentifier};
use der::{Encode, Header, Length, Tag};
use sha2::{Digest, Sha256};

use crate::csr::{SubjectKey, SubjectKeyType};
use crate::der_util::encoding;
use crate::error::CaError;
use crate::oid;

/// Appends the DER SubjectPublicKeyInfo of `key` to `out`: `SEQUENCE { AlgorithmIdentifier,
/// BIT STRING }` with the algorithm of the key's type (RFC 5480 for EC keys with a named
/// curve, RFC 8410 for Ed25519 without parameters, RFC 3279 for RSA with NULL parameters) and
/// the key's bits.
pub fn write_spki(out: &mut Vec<u8>, key: &SubjectKey) -> Result<(), CaError> {
    let (algorithm, parameters) = key_algorithm(key.key_type);
    let mut alg = Vec::with_capacity(24);
    algorithm.encode_to_vec(&mut alg).map_err(encoding)?;
    match parameters {
        Some(Parameters::Curve(curve)) => curve.encode_to_vec(&mut alg).map(drop),
        Some(Parameters::Null) => Null.encode_to_vec(&mut alg).map(drop),
        None => Ok(()),
    }
    .map_err(encoding)?;
    let alg_len = header_len(alg.len())? + alg.len();
    let bits_len = key.bits.len() + 1;
    let content = alg_len + header_len(bits_len)? + bits_len;
    out.reserve(header_len(content)? + content);
    header(out, Tag::Sequence, content)?;
    header(out, Tag::Sequence, alg.len())?;
    out.extend_from_slice(&alg);
    header(out, Tag::BitString, bits_len)?;
    out.push(0); // no unused bits
    out.extend_from_slice(&key.bits);
    Ok(())
}

impl SubjectKey {
    /// The DER SubjectPublicKeyInfo the CA writes for this key ([`write_spki`]).
    pub fn spki_der(&self) -> Result<Vec<u8>, CaError> {
        let mut out = Vec::new();
        write_spki(&mut out, self)?;
        Ok(out)
    }

    /// SHA-256 of [`SubjectKey::spki_der`]: the key's identity on the block list of keys
    /// reported compromised.
    pub fn spki_sha256(&self) -> Result<[u8; 32], CaError> {
        Ok(Sha256::digest(self.spki_der()?).into())
    }
}

/// The [`SubjectKey::spki_sha256`] of the key a DER certificate certifies. A key of a type the
/// CA does not certify (a certificate from elsewhere, e.g. an imported chain) is hashed as
/// its SubjectPublicKeyInfo is encoded in the certificate: no request can carry it anyway.
pub fn certificate_key_sha256(certificate_der: &[u8]) -> Result<[u8; 32], CaError> {
    let (_, cert) = x509_parser::parse_x509_certificate(certificate_der)
        .map_err(|e| CaError::Storage(format!("a stored certificate does not parse: {e}")))?;
    let spki = cert.public_key();
    match crate::csr::subject_key(spki) {
        Ok(key) => key.spki_sha256(),
        Err(_) => Ok(Sha256::digest(spki.raw).into()),
    }
}

/// The parameters of a subject key's AlgorithmIdentifier.
enum Parameters {
    /// A named curve (RFC 5480 section 2.1.1).
    Curve(ObjectIdentifier),
    /// NULL (RFC 3279 section 2.3.1).
    Null,
}

fn key_algorithm(key_type: SubjectKeyType) -> (ObjectIdentifier, Option<Parameters>) {
    match key_type {
        SubjectKeyType::EcP256 => (
            oid::ID_EC_PUBLIC_KEY,
            Some(Parameters::Curve(oid::SECP256R1)),
        ),
        SubjectKeyType::EcP384 => (
            oid::ID_EC_PUBLIC_KEY,
            Some(Parameters::Curve(oid::SECP384R1)),
        ),
        SubjectKeyType::Ed25519 => (oid::ID_ED25519, None),
        SubjectKeyType::Rsa(_) => (oid::RSA_ENCRYPTION, Some(Parameters::Null)),
    }
}

fn header(out: &mut Vec<u8>, tag: Tag, len: usize) -> Result<(), CaError> {
    Header::new(tag, Length::try_from(len).map_err(encoding)?)
        .and_then(|h| h.encode_to_vec(out))
        .map(drop)
        .map_err(encoding)
}

/// Octets of a DER tag and definite length for content of `len` octets.
fn header_len(len: usize) -> Result<usize, CaError> {
    let length = Length::try_from(len).map_err(encoding)?;
    let encoded = length.encoded_len().map_err(encoding)?;
    usize::try_from(encoded)
        .map(|n| n + 1)
        .map_err(|_| CaError::internal("a DER length does not fit usize", None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csr::key_from_spki_der;
    use rcgen::PublicKeyData;

    /// SubjectPublicKeyInfos as other encoders write them (rcgen, through ring and the
    /// RustCrypto crates), one per key type the CA certifies.
    fn foreign_spkis() -> Vec<(&'static str, Vec<u8>)> {
        let mut out = Vec::new();
        for (name, alg) in [
            ("ec-p256", &rcgen::PKCS_ECDSA_P256_SHA256),
            ("ec-p384", &rcgen::PKCS_ECDSA_P384_SHA384),
            ("ed25519", &rcgen::PKCS_ED25519),
        ] {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            out.push((name, key.subject_public_key_info()));
        }
        let rsa = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let der = rsa::pkcs8::EncodePublicKey::to_public_key_der(&rsa.to_public_key()).unwrap();
        out.push(("rsa-2048", der.as_bytes().to_vec()));
        out
    }

    #[test]
    fn the_encoding_is_the_usual_one_for_every_key_type() {
        for (name, spki) in foreign_spkis() {
            let key = key_from_spki_der(&spki).unwrap();
            assert_eq!(key.key_type.name(), name);
            assert_eq!(key.spki_der().unwrap(), spki, "{name}");
            let hash: [u8; 32] = Sha256::digest(&spki).into();
            assert_eq!(key.spki_sha256().unwrap(), hash, "{name}");
            // Appended after what the buffer holds.
            let mut out = vec![0xaa];
            write_spki(&mut out, &key).unwrap();
            assert_eq!(out[1..], spki[..], "{name}");
        }
    }

    #[test]
    fn a_certificate_hashes_its_key_as_a_request_for_it_does() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let params = rcgen::CertificateParams::new(vec!["a.example".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let from_request = key_from_spki_der(&key.subject_public_key_info())
            .unwrap()
            .spki_sha256()
            .unwrap();
        assert_eq!(certificate_key_sha256(cert.der()).unwrap(), from_request);
        assert!(certificate_key_sha256(b"not a certificate").is_err());
    }
}

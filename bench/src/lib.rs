//! Fixtures shared by the benchmarks and the load generator: a CA and CSRs, made through the
//! public APIs of `keys` and `ca-core` only.

#![deny(missing_docs)]

pub mod limit;

use std::sync::Arc;

use ca_core::authority::{create_root, CertificateAuthority, Urls};
use ca_core::name::parse_rfc4514;
use ca_core::profile::Profile;
use ca_core::{CaError, Serial};
use keys::{KeyAlgorithm, Signer, SoftwareKey};

/// Creates an in-memory root CA with a key of the given algorithm and the built-in profiles.
pub fn authority(algorithm: KeyAlgorithm) -> Result<Arc<CertificateAuthority>, CaError> {
    let der = keys::generate_pkcs8(algorithm).map_err(|e| CaError::Signing(e.to_string()))?;
    let signer: Arc<dyn Signer> =
        Arc::new(SoftwareKey::from_pkcs8(&der).map_err(|e| CaError::Signing(e.to_string()))?);
    let subject = parse_rfc4514("CN=Bench CA")?;
    let serial = Serial::random(&ring::rand::SystemRandom::new())
        .map_err(|_| CaError::Signing("rng".into()))?;
    let root = create_root(signer.clone(), &subject, 365, serial)?;
    let urls = Urls {
        crl: vec!["http://ca.bench/crl".into()],
        ocsp: vec!["http://ca.bench/ocsp".into()],
        ca_issuers: vec!["http://ca.bench/ca.der".into()],
    };
    Ok(Arc::new(CertificateAuthority::new(
        signer,
        vec![root],
        &Profile::builtin(),
        &urls,
    )?))
}

/// The subject key types CSRs can be made with here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CsrKey {
    /// ECDSA P-256.
    EcP256,
    /// ECDSA P-384.
    EcP384,
    /// Ed25519.
    Ed25519,
}

/// Makes a DER CSR for one DNS name with a fresh key, as an RA's subscriber would.
pub fn csr_der(key: CsrKey, host: &str) -> Result<Vec<u8>, rcgen::Error> {
    let alg = match key {
        CsrKey::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        CsrKey::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        CsrKey::Ed25519 => &rcgen::PKCS_ED25519,
    };
    let pair = rcgen::KeyPair::generate_for(alg)?;
    let mut params = rcgen::CertificateParams::new(vec![host.to_string()])?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    Ok(params.serialize_request(&pair)?.der().to_vec())
}

//! CA signing keys: generate, load, store and sign.
//!
//! This crate owns the CA's private key material and nothing else. Keys live in PKCS#8
//! (RFC 5958) PEM files that are created with mode 0600 and refused when group or others may
//! read them. Everything above this crate signs through the [`Signer`] trait, which a PKCS#11
//! (HSM) implementation can satisfy later in the same way rustls' `CryptoProvider` abstracts its
//! back ends.
//!
//! Supported CA key algorithms: ECDSA P-256 and P-384, Ed25519 (all through `ring`) and RSA
//! 3072/4096 (generated with the `rsa` crate, signed through `ring`).

#![deny(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod algorithm;
mod error;
mod file;
mod software;

pub use algorithm::{KeyAlgorithm, SignatureScheme};
pub use error::KeyError;
pub use file::{load_key_file, load_pkcs8_file, write_key_file};
pub use software::{generate_pkcs8, generate_rsa_pkcs8, SoftwareKey};

/// A key that signs on behalf of the CA.
///
/// Implementations must be usable from many threads at once: the issuance engine signs
/// certificates on a worker pool.
pub trait Signer: Send + Sync {
    /// The signature scheme this key produces (it fixes the certificate's
    /// `signatureAlgorithm`, RFC 5280 section 4.1.1.2).
    fn scheme(&self) -> SignatureScheme;

    /// The DER of the key's SubjectPublicKeyInfo (RFC 5280 section 4.1.2.7).
    fn spki_der(&self) -> &[u8];

    /// The content of the SubjectPublicKeyInfo's `subjectPublicKey` BIT STRING: the EC point,
    /// the Ed25519 key, or the PKCS#1 `RSAPublicKey`.
    fn public_key_bits(&self) -> &[u8];

    /// Signs `message` and returns the signature in the encoding X.509 expects (DER
    /// `ECDSA-Sig-Value` for ECDSA, raw for Ed25519 and RSA PKCS#1 v1.5).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError>;
}

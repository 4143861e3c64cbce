//! CA signing keys: generate, load, store and sign.
//!
//! This crate owns the CA's private key material and nothing else. Keys live in PKCS#8
//! (RFC 5958) PEM files that are created with mode 0600 and refused when group or others may
//! read them. Everything above this crate signs through the [`Signer`] trait and draws its
//! randomness from a [`SecureRandom`], both obtained from a [`KeyProvider`], in the way
//! rustls's `CryptoProvider` carries a key loader and `secure_random`: a PKCS#11 (HSM)
//! provider satisfies the same traits. A signer says whether a signature is computation or a
//! wait on a device ([`SignerLatency`]), which decides where the issuance engine asks for it,
//! and its failures say whether trying again may help ([`SignError::is_retryable`]).
//!
//! Supported CA key algorithms: ECDSA P-256 and P-384, Ed25519 (all through `ring`) and RSA
//! 3072/4096 (generated with the `rsa` crate, signed through `ring`).

#![deny(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod algorithm;
mod error;
mod file;
pub mod oid;
mod provider;
mod random;
mod software;

pub use algorithm::{KeyAlgorithm, SignatureScheme};
pub use error::{KeyError, RandomError, SignError};
pub use file::{load_key_file, load_pkcs8_file, write_key_file};
pub use provider::{KeyProvider, SoftwareKeys};
pub use random::{SecureRandom, SystemRandom};
pub use software::{generate_pkcs8, generate_rsa_pkcs8, SoftwareKey};

/// How long a signature takes, which decides where the issuance engine asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignerLatency {
    /// Signing is computation on the calling thread, in microseconds (a key in process
    /// memory): the engine signs on the worker that built the certificate.
    Computation,
    /// Signing waits on a device or the network, for milliseconds (an HSM): the engine
    /// hands certificates to a signing stage whose threads keep many signatures in flight.
    Device,
}

/// A key that signs on behalf of the CA.
///
/// Implementations must be usable from many threads at once: the issuance engine signs
/// certificates on its workers, or from its signing stage when [`Signer::latency`] says a
/// signature is a wait on a device.
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
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError>;

    /// Whether a signature is computation or a wait ([`SignerLatency`]); computation unless
    /// the implementation says otherwise.
    fn latency(&self) -> SignerLatency {
        SignerLatency::Computation
    }
}

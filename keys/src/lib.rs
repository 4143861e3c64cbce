//! CA signing keys: generate, load, store and sign.
//!
//! This crate owns the CA's private key material and nothing else. It has two back ends:
//!
//! * **Software keys** ([`SoftwareKey`]): PKCS#8 (RFC 5958) PEM files that are created with
//!   mode 0600 and refused when group or others may read them, signing in process memory.
//! * **PKCS#11 tokens** ([`pkcs11::Pkcs11Signer`]): keys generated and kept inside an HSM (or
//!   SoftHSM2), reached through the vendor's PKCS#11 module with a pool of sessions, signing
//!   on the device.
//!
//! Everything above this crate signs through the [`Signer`] trait and draws its randomness
//! from a [`SecureRandom`], both obtained from a [`KeyProvider`], in the way rustls's
//! `CryptoProvider` carries a key loader and `secure_random`: the PKCS#11 signer satisfies
//! the same traits (it is also a [`SecureRandom`] drawing from the token). A signer says
//! whether a signature is computation or a wait on a device ([`SignerLatency`]), which
//! decides where the issuance engine asks for it, and its failures say whether trying again
//! may help ([`SignError::is_retryable`]).
//!
//! Supported CA key algorithms: ECDSA P-256 and P-384, Ed25519 (all through `ring`) and RSA
//! 3072/4096 (generated with the `rsa` crate, signed through `ring`); in a token, the same
//! five through `CKM_ECDSA`, `CKM_EDDSA` and `CKM_SHA256_RSA_PKCS`.

#![deny(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod algorithm;
mod error;
mod file;
pub mod oid;
pub mod pkcs11;
mod provider;
mod random;
mod software;

pub use algorithm::{KeyAlgorithm, SignatureScheme};
pub use error::{KeyError, Pkcs11Failure, RandomError, SignError};
pub use file::{load_key_file, load_pkcs8_file, read_secret_file, write_key_file};
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

    /// Whether the key can sign with `scheme`: its own [`Signer::scheme`], and for an RSA key
    /// also [`SignatureScheme::RsaPssSha256`], which a profile may ask for.
    fn supports(&self, scheme: SignatureScheme) -> bool {
        scheme == self.scheme()
    }

    /// Signs `message` with `scheme`, one the key [`supports`](Signer::supports); the
    /// encoding is [`Signer::sign`]'s (RSASSA-PSS signatures are raw, as PKCS#1 v1.5 ones).
    fn sign_with(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>, SignError> {
        if scheme == self.scheme() {
            self.sign(message)
        } else {
            Err(SignError::unsupported(scheme))
        }
    }

    /// Whether a signature is computation or a wait ([`SignerLatency`]); computation unless
    /// the implementation says otherwise.
    fn latency(&self) -> SignerLatency {
        SignerLatency::Computation
    }

    /// Whether the key can sign now: a device-backed key asks its device (a cheap call that
    /// reopens lost sessions as a signature would), a key in memory always can. Readiness
    /// checks (`/readyz`) call it; it may block for as long as the device takes to answer.
    fn check(&self) -> Result<(), SignError> {
        Ok(())
    }

    /// The session pool of a key in a device (its size and the sessions signing now), for
    /// metrics; `None` for a key in memory.
    fn sessions(&self) -> Option<SessionPool> {
        None
    }
}

/// A device-backed signer's sessions: one signature in flight per session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionPool {
    /// Sessions the pool holds (open or to be opened).
    pub size: usize,
    /// Sessions signing right now.
    pub in_use: usize,
}

//! Key algorithms and the signature schemes they produce.

use std::fmt;
use std::str::FromStr;

use pkcs8::der::asn1::{AnyRef, BitStringRef};
use pkcs8::der::Encode;
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};

use crate::oid::{ID_EC_PUBLIC_KEY, ID_ED25519, RSA_ENCRYPTION, SECP256R1, SECP384R1};
use crate::KeyError;

/// A CA key algorithm and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 (RFC 5480).
    EcdsaP256,
    /// ECDSA on NIST P-384 (RFC 5480).
    EcdsaP384,
    /// Ed25519 (RFC 8410).
    Ed25519,
    /// RSA with a 3072-bit modulus (RFC 8017).
    Rsa3072,
    /// RSA with a 4096-bit modulus (RFC 8017).
    Rsa4096,
}

impl KeyAlgorithm {
    /// Every supported CA key algorithm.
    pub const ALL: [KeyAlgorithm; 5] = [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Ed25519,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
    ];

    /// The name used in configuration and on the command line (`ec-p256`, `rsa-3072`, ...).
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ec-p256",
            KeyAlgorithm::EcdsaP384 => "ec-p384",
            KeyAlgorithm::Ed25519 => "ed25519",
            KeyAlgorithm::Rsa3072 => "rsa-3072",
            KeyAlgorithm::Rsa4096 => "rsa-4096",
        }
    }

    /// The signature scheme a key of this algorithm signs certificates with.
    pub fn scheme(self) -> SignatureScheme {
        match self {
            KeyAlgorithm::EcdsaP256 => SignatureScheme::EcdsaP256Sha256,
            KeyAlgorithm::EcdsaP384 => SignatureScheme::EcdsaP384Sha384,
            KeyAlgorithm::Ed25519 => SignatureScheme::Ed25519,
            KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => SignatureScheme::RsaPkcs1Sha256,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyAlgorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = KeyAlgorithm::ALL.iter().map(|a| a.name()).collect();
                format!(
                    "unknown key type {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// The signature algorithm a [`crate::Signer`] produces (RFC 5758, RFC 8410, RFC 4055).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignatureScheme {
    /// ecdsa-with-SHA256 on P-256.
    EcdsaP256Sha256,
    /// ecdsa-with-SHA384 on P-384.
    EcdsaP384Sha384,
    /// Ed25519 (PureEdDSA).
    Ed25519,
    /// sha256WithRSAEncryption (PKCS#1 v1.5).
    RsaPkcs1Sha256,
    /// RSASSA-PSS with SHA-256, MGF1 with SHA-256 and a 32-byte salt (RFC 4055 section 3.1,
    /// RFC 8017 section 8.1): what an RSA key signs with for a profile that asks for it.
    RsaPssSha256,
}

impl SignatureScheme {
    /// Whether a key whose own scheme is `own` can sign with this scheme: its own, and for
    /// an RSA key either RSA scheme (a profile may ask for RSASSA-PSS).
    pub fn signable_by(self, own: SignatureScheme) -> bool {
        self == own || (self.is_rsa() && own.is_rsa())
    }

    fn is_rsa(self) -> bool {
        matches!(
            self,
            SignatureScheme::RsaPkcs1Sha256 | SignatureScheme::RsaPssSha256
        )
    }
}

/// The SubjectPublicKeyInfo (RFC 5280 section 4.1.2.7) of a key of `algorithm` whose
/// `subjectPublicKey` is `bits`: the curve OID as parameters for EC (RFC 5480), none for
/// Ed25519 (RFC 8410), NULL for RSA (RFC 3279). Keys in memory and in a token use it alike,
/// so that the same key has the same bytes wherever it lives.
pub(crate) fn encode_spki(algorithm: KeyAlgorithm, bits: &[u8]) -> Result<Vec<u8>, KeyError> {
    let (oid, parameters) = match algorithm {
        KeyAlgorithm::EcdsaP256 => (ID_EC_PUBLIC_KEY, Some(AnyRef::from(&SECP256R1))),
        KeyAlgorithm::EcdsaP384 => (ID_EC_PUBLIC_KEY, Some(AnyRef::from(&SECP384R1))),
        KeyAlgorithm::Ed25519 => (ID_ED25519, None),
        KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => (RSA_ENCRYPTION, Some(AnyRef::NULL)),
    };
    let spki = SubjectPublicKeyInfoRef {
        algorithm: AlgorithmIdentifierRef { oid, parameters },
        subject_public_key: BitStringRef::from_bytes(bits)
            .map_err(|_| KeyError::Malformed("public key"))?,
    };
    spki.to_der()
        .map_err(|_| KeyError::Malformed("public key encoding"))
}

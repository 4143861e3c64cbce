//! Key algorithms and the signature schemes they produce.

use std::fmt;
use std::str::FromStr;

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
}

//! The object identifiers of the key algorithms this crate reads and writes, in PKCS#8
//! `PrivateKeyInfo` and SubjectPublicKeyInfo AlgorithmIdentifiers. Each is defined here once;
//! the X.509 layer (`ca_x509::oid`) re-exports them beside its own.

use pkcs8::der::asn1::ObjectIdentifier;

/// id-ecPublicKey, RFC 5480 section 2.1.1: an elliptic-curve public key, whose parameters
/// name the curve.
pub const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// secp256r1 (NIST P-256), RFC 5480 section 2.1.1.1.
pub const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// secp384r1 (NIST P-384), RFC 5480 section 2.1.1.1.
pub const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// id-Ed25519, RFC 8410 section 3: an Ed25519 key, and the algorithm of Ed25519 signatures;
/// its parameters are absent.
pub const ID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// rsaEncryption, RFC 8017 appendix A.1 (RFC 3279 section 2.3.1): an RSA public key; its
/// parameters are NULL.
pub const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

//! Password-based MAC protection (RFC 9810 section 5.1.3.1): the MAC of the DER of
//! ProtectedPart under a key derived from the shared secret, by one of two key derivations
//! (RFC 9481 section 6.1):
//! - id-PasswordBasedMac (RFC 4211 section 4.4): the key is OWF^iterationCount(secret ||
//!   salt);
//! - PBMAC1 (RFC 8018 section 7.1, RFC 9481 section 6.1.1): the key is PBKDF2 (RFC 8018
//!   section 5.2) of the secret with an HMAC as PRF.

use std::num::NonZeroU32;

use crmf::pop::PbmParameter;
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode, Sequence};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use spki::AlgorithmIdentifierOwned;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::CmpError;

/// id-PasswordBasedMac (RFC 4211 section 4.4).
pub const PASSWORD_BASED_MAC: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113533.7.66.13");
/// id-PBMAC1 (RFC 8018 appendix A.5).
pub const PBMAC1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.14");
/// id-PBKDF2 (RFC 8018 appendix A.2): the only key derivation PBMAC1 has.
pub const PBKDF2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.12");

/// Fewest iterations accepted (RFC 4211 section 4.4's minimum, for both derivations).
pub const MIN_ITERATIONS: u64 = 100;
/// Most iterations this server computes for one message: the client chooses the count, and
/// each costs the server a hash (PBKDF2: an HMAC), so it is bounded (a request above it is
/// `badAlg`).
pub const MAX_ITERATIONS: u64 = 100_000;
/// Shortest and longest salt accepted.
const SALT_LEN: std::ops::RangeInclusive<usize> = 8..=64;
/// Shortest and longest PBKDF2 key accepted, bytes.
const KEY_LEN: std::ops::RangeInclusive<u32> = 16..=64;

/// Whether a protectionAlg is a password-based MAC (id-PasswordBasedMac or PBMAC1): keyed by
/// a shared secret, not a signature.
pub fn is_password_mac(algorithm: &AlgorithmIdentifierOwned) -> bool {
    algorithm.oid == PASSWORD_BASED_MAC || algorithm.oid == PBMAC1
}

/// A one-way function of PBMParameter.owf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owf {
    /// SHA-1 (1.3.14.3.2.26), OpenSSL's historical default.
    Sha1,
    /// SHA-256 (2.16.840.1.101.3.4.2.1).
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

/// An HMAC: the MAC of PBMParameter.mac, and PBMAC1's messageAuthScheme and PBKDF2's PRF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacAlg {
    /// HMAC-SHA1 (1.3.6.1.5.5.8.1.2 or 1.2.840.113549.2.7): `openssl cmp`'s default, and
    /// PBKDF2's default PRF.
    HmacSha1,
    /// HMAC-SHA256 (1.2.840.113549.2.9).
    HmacSha256,
    /// HMAC-SHA384 (1.2.840.113549.2.10).
    HmacSha384,
    /// HMAC-SHA512 (1.2.840.113549.2.11).
    HmacSha512,
}

impl MacAlg {
    /// The output length, bytes: PBKDF2's key length when PBKDF2-params has none.
    fn output_len(self) -> u32 {
        match self {
            MacAlg::HmacSha1 => 20,
            MacAlg::HmacSha256 => 32,
            MacAlg::HmacSha384 => 48,
            MacAlg::HmacSha512 => 64,
        }
    }

    /// HMAC of `data` under `key`.
    fn compute(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            MacAlg::HmacSha1 => hmac::<Hmac<Sha1>>(key, data),
            MacAlg::HmacSha256 => hmac::<Hmac<Sha256>>(key, data),
            MacAlg::HmacSha384 => hmac::<Hmac<Sha384>>(key, data),
            MacAlg::HmacSha512 => hmac::<Hmac<Sha512>>(key, data),
        }
    }
}

const OWFS: [(&str, Owf); 4] = [
    ("1.3.14.3.2.26", Owf::Sha1),
    ("2.16.840.1.101.3.4.2.1", Owf::Sha256),
    ("2.16.840.1.101.3.4.2.2", Owf::Sha384),
    ("2.16.840.1.101.3.4.2.3", Owf::Sha512),
];

const MACS: [(&str, MacAlg); 5] = [
    ("1.3.6.1.5.5.8.1.2", MacAlg::HmacSha1),
    ("1.2.840.113549.2.7", MacAlg::HmacSha1),
    ("1.2.840.113549.2.9", MacAlg::HmacSha256),
    ("1.2.840.113549.2.10", MacAlg::HmacSha384),
    ("1.2.840.113549.2.11", MacAlg::HmacSha512),
];

/// PBMAC1-params (RFC 8018 appendix A.5).
#[derive(Clone, Debug, Sequence)]
pub struct Pbmac1Params {
    /// id-PBKDF2 with its PBKDF2-params.
    pub key_derivation_func: AlgorithmIdentifierOwned,
    /// The HMAC computed with the derived key.
    pub message_auth_scheme: AlgorithmIdentifierOwned,
}

/// PBKDF2-params (RFC 8018 appendix A.2), with the salt `specified` (the only choice RFC 9481
/// section 6.1.1 uses).
#[derive(Clone, Debug, Sequence)]
pub struct Pbkdf2Params {
    /// The salt.
    pub salt: OctetString,
    /// The iteration count.
    pub iteration_count: u32,
    /// The derived key's length, bytes; the MAC's output length when absent.
    #[asn1(optional = "true")]
    pub key_length: Option<u32>,
    /// The PRF; HMAC-SHA1 when absent (its DEFAULT).
    #[asn1(optional = "true")]
    pub prf: Option<AlgorithmIdentifierOwned>,
}

/// How the MAC key is derived from the shared secret.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kdf {
    /// OWF^iterations(secret || salt) (RFC 4211 section 4.4).
    Pbm {
        salt: Vec<u8>,
        owf: Owf,
        iterations: u64,
    },
    /// PBKDF2 (RFC 8018 section 5.2).
    Pbkdf2 {
        salt: Vec<u8>,
        iterations: NonZeroU32,
        key_len: u32,
        prf: MacAlg,
    },
}

/// The parameters of one password-based MAC, as a protectionAlg carries them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordMac {
    kdf: Kdf,
    mac: MacAlg,
    /// The AlgorithmIdentifier as received, to protect the answer with the same parameters.
    algorithm: AlgorithmIdentifierOwned,
}

impl PasswordMac {
    /// Reads a protectionAlg: id-PasswordBasedMac with a PBMParameter, or id-PBMAC1 with
    /// PBMAC1-params of PBKDF2, whose functions, iteration count, salt and key length this
    /// server accepts; anything else is `badAlg`.
    pub fn from_algorithm(algorithm: &AlgorithmIdentifierOwned) -> Result<PasswordMac, CmpError> {
        let params = || {
            algorithm
                .parameters
                .as_ref()
                .ok_or_else(|| CmpError::BadAlg(format!("{} without parameters", algorithm.oid)))
                .and_then(|p| Ok(p.to_der()?))
        };
        let (kdf, mac) = if algorithm.oid == PASSWORD_BASED_MAC {
            let params = PbmParameter::from_der(&params()?)
                .map_err(|e| CmpError::BadAlg(format!("malformed PBMParameter: {e}")))?;
            let owf = lookup(&OWFS, &params.owf.oid)
                .ok_or_else(|| CmpError::BadAlg(format!("one-way function {}", params.owf.oid)))?;
            let mac = lookup(&MACS, &params.mac.oid)
                .ok_or_else(|| CmpError::BadAlg(format!("MAC algorithm {}", params.mac.oid)))?;
            let kdf = Kdf::Pbm {
                salt: salt(params.salt.as_bytes())?,
                owf,
                iterations: iterations(params.iteration_count)?,
            };
            (kdf, mac)
        } else if algorithm.oid == PBMAC1 {
            let params = Pbmac1Params::from_der(&params()?)
                .map_err(|e| CmpError::BadAlg(format!("malformed PBMAC1-params: {e}")))?;
            let mac = hmac_of(&params.message_auth_scheme)?;
            let kdf = &params.key_derivation_func;
            if kdf.oid != PBKDF2 {
                return Err(CmpError::BadAlg(format!(
                    "PBMAC1 key derivation {} is not PBKDF2",
                    kdf.oid
                )));
            }
            let kdf_params = kdf
                .parameters
                .as_ref()
                .ok_or_else(|| CmpError::BadAlg("PBKDF2-params missing".into()))?
                .to_der()?;
            let kdf_params = Pbkdf2Params::from_der(&kdf_params)
                .map_err(|e| CmpError::BadAlg(format!("malformed PBKDF2-params: {e}")))?;
            let prf = kdf_params
                .prf
                .as_ref()
                .map_or(Ok(MacAlg::HmacSha1), hmac_of)?;
            let key_len = kdf_params.key_length.unwrap_or(mac.output_len());
            if !KEY_LEN.contains(&key_len) {
                return Err(CmpError::BadAlg(format!("PBKDF2 key length {key_len}")));
            }
            let count = iterations(u64::from(kdf_params.iteration_count))?;
            let kdf = Kdf::Pbkdf2 {
                salt: salt(kdf_params.salt.as_bytes())?,
                iterations: NonZeroU32::new(count as u32)
                    .ok_or_else(|| CmpError::BadAlg("iteration count 0".into()))?,
                key_len,
                prf,
            };
            (kdf, mac)
        } else {
            return Err(CmpError::BadAlg(format!(
                "protection algorithm {} is not a password-based MAC",
                algorithm.oid
            )));
        };
        Ok(PasswordMac {
            kdf,
            mac,
            algorithm: algorithm.clone(),
        })
    }

    /// id-PasswordBasedMac parameters of our own (a client's, or a test's): `salt`, SHA-256,
    /// `iterations`, HMAC-SHA256.
    pub fn new(salt: &[u8], iterations: u64) -> Result<PasswordMac, CmpError> {
        let params = PbmParameter {
            salt: OctetString::new(salt)?,
            owf: AlgorithmIdentifierOwned {
                oid: ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1"),
                parameters: None,
            },
            iteration_count: iterations,
            mac: AlgorithmIdentifierOwned {
                oid: ObjectIdentifier::new_unwrap("1.2.840.113549.2.9"),
                parameters: None,
            },
        };
        let algorithm = AlgorithmIdentifierOwned {
            oid: PASSWORD_BASED_MAC,
            parameters: Some(der::Any::from_der(&params.to_der()?)?),
        };
        PasswordMac::from_algorithm(&algorithm)
    }

    /// PBMAC1 parameters of our own (a client's, or a test's, RFC 9481 section 6.1.1): PBKDF2
    /// with HMAC-`prf`, `salt`, `iterations` and a key of the MAC's length, then HMAC-`mac`.
    pub fn pbmac1(
        salt: &[u8],
        iterations: u32,
        prf: MacAlg,
        mac: MacAlg,
    ) -> Result<PasswordMac, CmpError> {
        let hmac_id = |alg: MacAlg| -> Result<AlgorithmIdentifierOwned, CmpError> {
            let (oid, _) = MACS[1..]
                .iter()
                .find(|(_, a)| *a == alg)
                .ok_or_else(|| CmpError::BadAlg("no such HMAC".into()))?;
            Ok(AlgorithmIdentifierOwned {
                oid: ObjectIdentifier::new(oid).map_err(|e| CmpError::Encoding(e.to_string()))?,
                parameters: Some(der::Any::from(der::asn1::Null)),
            })
        };
        let kdf = Pbkdf2Params {
            salt: OctetString::new(salt)?,
            iteration_count: iterations,
            key_length: Some(mac.output_len()),
            prf: Some(hmac_id(prf)?),
        };
        let params = Pbmac1Params {
            key_derivation_func: AlgorithmIdentifierOwned {
                oid: PBKDF2,
                parameters: Some(der::Any::from_der(&kdf.to_der()?)?),
            },
            message_auth_scheme: hmac_id(mac)?,
        };
        PasswordMac::from_algorithm(&AlgorithmIdentifierOwned {
            oid: PBMAC1,
            parameters: Some(der::Any::from_der(&params.to_der()?)?),
        })
    }

    /// The protectionAlg these parameters came in (or make).
    pub fn algorithm(&self) -> &AlgorithmIdentifierOwned {
        &self.algorithm
    }

    /// The MAC of `data` under `secret`.
    pub fn compute(&self, secret: &[u8], data: &[u8]) -> Vec<u8> {
        self.mac.compute(&self.key(secret), data)
    }

    /// Whether `tag` is the MAC of `data` under `secret`, compared in constant time.
    pub fn verify(&self, secret: &[u8], data: &[u8], tag: &[u8]) -> bool {
        bool::from(self.compute(secret, data).ct_eq(tag))
    }

    /// The MAC key derived from `secret`.
    fn key(&self, secret: &[u8]) -> Zeroizing<Vec<u8>> {
        match &self.kdf {
            Kdf::Pbm {
                salt,
                owf,
                iterations,
            } => match owf {
                Owf::Sha1 => iterate::<Sha1>(secret, salt, *iterations),
                Owf::Sha256 => iterate::<Sha256>(secret, salt, *iterations),
                Owf::Sha384 => iterate::<Sha384>(secret, salt, *iterations),
                Owf::Sha512 => iterate::<Sha512>(secret, salt, *iterations),
            },
            Kdf::Pbkdf2 {
                salt,
                iterations,
                key_len,
                prf,
            } => {
                let algorithm = match prf {
                    MacAlg::HmacSha1 => ring::pbkdf2::PBKDF2_HMAC_SHA1,
                    MacAlg::HmacSha256 => ring::pbkdf2::PBKDF2_HMAC_SHA256,
                    MacAlg::HmacSha384 => ring::pbkdf2::PBKDF2_HMAC_SHA384,
                    MacAlg::HmacSha512 => ring::pbkdf2::PBKDF2_HMAC_SHA512,
                };
                let mut key = Zeroizing::new(vec![0u8; *key_len as usize]);
                ring::pbkdf2::derive(algorithm, *iterations, salt, secret, &mut key);
                key
            }
        }
    }
}

/// OWF^iterations(secret || salt) (RFC 4211 section 4.4).
fn iterate<D: Digest>(secret: &[u8], salt: &[u8], iterations: u64) -> Zeroizing<Vec<u8>> {
    let mut key = Zeroizing::new(
        D::new()
            .chain_update(secret)
            .chain_update(salt)
            .finalize()
            .to_vec(),
    );
    for _ in 1..iterations {
        key = Zeroizing::new(D::digest(key.as_slice()).to_vec());
    }
    key
}

fn salt(salt: &[u8]) -> Result<Vec<u8>, CmpError> {
    if !SALT_LEN.contains(&salt.len()) {
        return Err(CmpError::BadAlg(format!("salt of {} bytes", salt.len())));
    }
    Ok(salt.to_vec())
}

fn iterations(count: u64) -> Result<u64, CmpError> {
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&count) {
        return Err(CmpError::BadAlg(format!(
            "iteration count {count} outside {MIN_ITERATIONS}..={MAX_ITERATIONS}"
        )));
    }
    Ok(count)
}

/// The HMAC an AlgorithmIdentifier names (its parameters absent or NULL).
fn hmac_of(algorithm: &AlgorithmIdentifierOwned) -> Result<MacAlg, CmpError> {
    lookup(&MACS, &algorithm.oid)
        .ok_or_else(|| CmpError::BadAlg(format!("MAC algorithm {}", algorithm.oid)))
}

fn lookup<T: Copy>(table: &[(&str, T)], oid: &ObjectIdentifier) -> Option<T> {
    table
        .iter()
        .find(|(text, _)| ObjectIdentifier::new(text).ok().as_ref() == Some(oid))
        .map(|(_, value)| *value)
}

fn hmac<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length (RFC 2104 section 2).
    match <M as hmac::digest::KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_its_own_mac_and_refuses_another_secret() {
        let pbm = PasswordMac::new(&[7; 16], 500).unwrap();
        let tag = pbm.compute(b"secret", b"data");
        assert!(pbm.verify(b"secret", b"data", &tag));
        assert!(!pbm.verify(b"secreT", b"data", &tag));
        assert!(!pbm.verify(b"secret", b"datA", &tag));
    }

    #[test]
    fn key_is_the_iterated_hash_of_secret_and_salt() {
        // RFC 4211 section 4.4: two iterations are SHA-256(SHA-256(secret || salt)).
        let pbm = PasswordMac::new(&[1; 8], 100).unwrap();
        let mut expected = Sha256::new()
            .chain_update(b"pw")
            .chain_update([1; 8])
            .finalize();
        for _ in 1..100 {
            expected = Sha256::digest(expected);
        }
        assert_eq!(*pbm.key(b"pw"), expected.to_vec());
    }

    /// PBMAC1 against OpenSSL: `openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt
    /// pass:0123-4567-89AB-CDEF -kdfopt hexsalt:01010101010101010101010101010101 -kdfopt
    /// iter:1000 PBKDF2`, then `openssl dgst -sha256 -mac HMAC -macopt hexkey:KEY` of the data.
    #[test]
    fn pbmac1_matches_openssl() {
        let pbm =
            PasswordMac::pbmac1(&[1; 16], 1000, MacAlg::HmacSha256, MacAlg::HmacSha256).unwrap();
        assert_eq!(
            hex(&pbm.key(b"0123-4567-89AB-CDEF")),
            "b2f5865d5ca731adec36a2973c4f7845f233c340a03c6803e32a85be7d97d258"
        );
        let tag = pbm.compute(b"0123-4567-89AB-CDEF", b"protected part");
        assert_eq!(
            hex(&tag),
            "afff4a7bda1858d30860f97d530bd1ec4809f8629c116874084bb49b0e29b829"
        );
        assert!(pbm.verify(b"0123-4567-89AB-CDEF", b"protected part", &tag));
        assert!(!pbm.verify(b"0123-4567-89AB-CDEG", b"protected part", &tag));
        assert_eq!(
            PasswordMac::from_algorithm(pbm.algorithm()).unwrap(),
            pbm,
            "the parameters read back as written"
        );
    }

    /// PBKDF2's PRF defaults to HMAC-SHA1 and the key length to the MAC's output (RFC 8018
    /// appendix A.2); against `openssl kdf -keylen 20 -kdfopt digest:SHA1 ... iter:100`.
    #[test]
    fn pbmac1_defaults_are_hmac_sha1_and_the_mac_length() {
        let kdf = Pbkdf2Params {
            salt: OctetString::new([2u8; 8]).unwrap(),
            iteration_count: 100,
            key_length: None,
            prf: None,
        };
        let params = Pbmac1Params {
            key_derivation_func: AlgorithmIdentifierOwned {
                oid: PBKDF2,
                parameters: Some(der::Any::from_der(&kdf.to_der().unwrap()).unwrap()),
            },
            message_auth_scheme: AlgorithmIdentifierOwned {
                oid: ObjectIdentifier::new_unwrap("1.2.840.113549.2.7"),
                parameters: None,
            },
        };
        let pbm = PasswordMac::from_algorithm(&AlgorithmIdentifierOwned {
            oid: PBMAC1,
            parameters: Some(der::Any::from_der(&params.to_der().unwrap()).unwrap()),
        })
        .unwrap();
        assert_eq!(
            hex(&pbm.compute(b"0123-4567-89AB-CDEF", b"protected part")),
            "5ed6723f5c9b0c6f1db702e4dd58070b38395c0f"
        );
    }

    #[test]
    fn pbmac1_refuses_what_it_does_not_accept() {
        let bad = |salt: &[u8], iterations: u32| {
            matches!(
                PasswordMac::pbmac1(salt, iterations, MacAlg::HmacSha256, MacAlg::HmacSha256),
                Err(CmpError::BadAlg(_))
            )
        };
        assert!(bad(&[1; 16], 99));
        assert!(bad(&[1; 16], MAX_ITERATIONS as u32 + 1));
        assert!(bad(&[1; 7], 1000));
        // Another key derivation than PBKDF2.
        let params = Pbmac1Params {
            key_derivation_func: AlgorithmIdentifierOwned {
                oid: PASSWORD_BASED_MAC,
                parameters: None,
            },
            message_auth_scheme: AlgorithmIdentifierOwned {
                oid: ObjectIdentifier::new_unwrap("1.2.840.113549.2.9"),
                parameters: None,
            },
        };
        let algorithm = AlgorithmIdentifierOwned {
            oid: PBMAC1,
            parameters: Some(der::Any::from_der(&params.to_der().unwrap()).unwrap()),
        };
        assert!(matches!(
            PasswordMac::from_algorithm(&algorithm),
            Err(CmpError::BadAlg(_))
        ));
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn refuses_iteration_counts_outside_the_bounds() {
        assert!(matches!(
            PasswordMac::new(&[1; 16], 99),
            Err(CmpError::BadAlg(_))
        ));
        assert!(matches!(
            PasswordMac::new(&[1; 16], MAX_ITERATIONS + 1),
            Err(CmpError::BadAlg(_))
        ));
        assert!(matches!(
            PasswordMac::new(&[1; 4], 500),
            Err(CmpError::BadAlg(_))
        ));
    }
}

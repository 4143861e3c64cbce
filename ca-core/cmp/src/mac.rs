//! Password-based MAC protection (RFC 9810 section 5.1.3.1, RFC 4211 section 4.4): the
//! protection key is OWF^iterationCount(secret || salt), the MAC is computed with it over the
//! DER of ProtectedPart.

use crmf::pop::PbmParameter;
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
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

/// Fewest iterations RFC 4211 section 4.4 allows.
pub const MIN_ITERATIONS: u64 = 100;
/// Most iterations this server computes for one message: the client chooses the count, and
/// each costs the server a hash, so it is bounded (a request above it is `badAlg`).
pub const MAX_ITERATIONS: u64 = 100_000;
/// Shortest and longest salt accepted.
const SALT_LEN: std::ops::RangeInclusive<usize> = 8..=64;

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

/// The MAC of PBMParameter.mac.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacAlg {
    /// HMAC-SHA1 (1.3.6.1.5.5.8.1.2 or 1.2.840.113549.2.7): `openssl cmp`'s default.
    HmacSha1,
    /// HMAC-SHA256 (1.2.840.113549.2.9).
    HmacSha256,
    /// HMAC-SHA384 (1.2.840.113549.2.10).
    HmacSha384,
    /// HMAC-SHA512 (1.2.840.113549.2.11).
    HmacSha512,
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

/// The parameters of one password-based MAC, as a protectionAlg carries them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pbm {
    salt: Vec<u8>,
    owf: Owf,
    iterations: u64,
    mac: MacAlg,
    /// The AlgorithmIdentifier as received, to protect the answer with the same parameters.
    algorithm: AlgorithmIdentifierOwned,
}

impl Pbm {
    /// Reads a protectionAlg: id-PasswordBasedMac with a PBMParameter whose OWF, MAC,
    /// iteration count and salt length this server accepts; anything else is `badAlg`.
    pub fn from_algorithm(algorithm: &AlgorithmIdentifierOwned) -> Result<Pbm, CmpError> {
        if algorithm.oid != PASSWORD_BASED_MAC {
            return Err(CmpError::BadAlg(format!(
                "protection algorithm {} is not password-based MAC",
                algorithm.oid
            )));
        }
        let params = algorithm
            .parameters
            .as_ref()
            .ok_or_else(|| CmpError::BadAlg("PBMParameter missing".into()))?;
        let params = PbmParameter::from_der(&params.to_der()?)
            .map_err(|e| CmpError::BadAlg(format!("malformed PBMParameter: {e}")))?;
        let owf = lookup(&OWFS, &params.owf.oid)
            .ok_or_else(|| CmpError::BadAlg(format!("one-way function {}", params.owf.oid)))?;
        let mac = lookup(&MACS, &params.mac.oid)
            .ok_or_else(|| CmpError::BadAlg(format!("MAC algorithm {}", params.mac.oid)))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&params.iteration_count) {
            return Err(CmpError::BadAlg(format!(
                "iteration count {} outside {MIN_ITERATIONS}..={MAX_ITERATIONS}",
                params.iteration_count
            )));
        }
        let salt = params.salt.as_bytes().to_vec();
        if !SALT_LEN.contains(&salt.len()) {
            return Err(CmpError::BadAlg(format!("salt of {} bytes", salt.len())));
        }
        Ok(Pbm {
            salt,
            owf,
            iterations: params.iteration_count,
            mac,
            algorithm: algorithm.clone(),
        })
    }

    /// Parameters of our own (a client's, or a test's): `salt`, SHA-256, `iterations`,
    /// HMAC-SHA256.
    pub fn new(salt: &[u8], iterations: u64) -> Result<Pbm, CmpError> {
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
        Pbm::from_algorithm(&algorithm)
    }

    /// The protectionAlg these parameters came in (or make).
    pub fn algorithm(&self) -> &AlgorithmIdentifierOwned {
        &self.algorithm
    }

    /// The MAC of `data` under `secret`.
    pub fn compute(&self, secret: &[u8], data: &[u8]) -> Vec<u8> {
        let key = self.key(secret);
        match self.mac {
            MacAlg::HmacSha1 => hmac::<Hmac<Sha1>>(&key, data),
            MacAlg::HmacSha256 => hmac::<Hmac<Sha256>>(&key, data),
            MacAlg::HmacSha384 => hmac::<Hmac<Sha384>>(&key, data),
            MacAlg::HmacSha512 => hmac::<Hmac<Sha512>>(&key, data),
        }
    }

    /// Whether `tag` is the MAC of `data` under `secret`, compared in constant time.
    pub fn verify(&self, secret: &[u8], data: &[u8], tag: &[u8]) -> bool {
        bool::from(self.compute(secret, data).ct_eq(tag))
    }

    /// OWF^iterations(secret || salt) (RFC 4211 section 4.4).
    fn key(&self, secret: &[u8]) -> Zeroizing<Vec<u8>> {
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
        match self.owf {
            Owf::Sha1 => iterate::<Sha1>(secret, &self.salt, self.iterations),
            Owf::Sha256 => iterate::<Sha256>(secret, &self.salt, self.iterations),
            Owf::Sha384 => iterate::<Sha384>(secret, &self.salt, self.iterations),
            Owf::Sha512 => iterate::<Sha512>(secret, &self.salt, self.iterations),
        }
    }
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
        let pbm = Pbm::new(&[7; 16], 500).unwrap();
        let tag = pbm.compute(b"secret", b"data");
        assert!(pbm.verify(b"secret", b"data", &tag));
        assert!(!pbm.verify(b"secreT", b"data", &tag));
        assert!(!pbm.verify(b"secret", b"datA", &tag));
    }

    #[test]
    fn key_is_the_iterated_hash_of_secret_and_salt() {
        // RFC 4211 section 4.4: two iterations are SHA-256(SHA-256(secret || salt)).
        let pbm = Pbm::new(&[1; 8], 100).unwrap();
        let mut expected = Sha256::new()
            .chain_update(b"pw")
            .chain_update([1; 8])
            .finalize();
        for _ in 1..100 {
            expected = Sha256::digest(expected);
        }
        assert_eq!(*pbm.key(b"pw"), expected.to_vec());
    }

    #[test]
    fn refuses_iteration_counts_outside_the_bounds() {
        assert!(matches!(Pbm::new(&[1; 16], 99), Err(CmpError::BadAlg(_))));
        assert!(matches!(
            Pbm::new(&[1; 16], MAX_ITERATIONS + 1),
            Err(CmpError::BadAlg(_))
        ));
        assert!(matches!(Pbm::new(&[1; 4], 500), Err(CmpError::BadAlg(_))));
    }
}

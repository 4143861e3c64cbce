//! Software keys held in memory, signing through `ring`.

use pkcs8::PrivateKeyInfo;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING,
    ECDSA_P384_SHA384_ASN1_SIGNING, RSA_PKCS1_SHA256, RSA_PSS_SHA256,
};
use zeroize::Zeroizing;

// The algorithm OIDs under the names this module matches on.
use crate::algorithm::encode_spki;
use crate::oid::{
    ID_EC_PUBLIC_KEY as OID_EC_PUBLIC_KEY, ID_ED25519 as OID_ED25519, RSA_ENCRYPTION as OID_RSA,
    SECP256R1 as OID_P256, SECP384R1 as OID_P384,
};
use crate::{KeyAlgorithm, KeyError, SignError, SignatureScheme, Signer};

/// Generates a new CA key and returns it as PKCS#8 DER (zeroized on drop).
///
/// EC and Ed25519 keys come from `ring`; RSA keys from the `rsa` crate, since `ring` does not
/// generate RSA keys.
pub fn generate_pkcs8(algorithm: KeyAlgorithm) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let rng = SystemRandom::new();
    let der = match algorithm {
        KeyAlgorithm::EcdsaP256 => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                .map_err(|_| KeyError::Generation)?
                .as_ref()
                .to_vec()
        }
        KeyAlgorithm::EcdsaP384 => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, &rng)
                .map_err(|_| KeyError::Generation)?
                .as_ref()
                .to_vec()
        }
        KeyAlgorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| KeyError::Generation)?
            .as_ref()
            .to_vec(),
        KeyAlgorithm::Rsa3072 => return generate_rsa_pkcs8(3072).map(|(key, _)| key),
        KeyAlgorithm::Rsa4096 => return generate_rsa_pkcs8(4096).map(|(key, _)| key),
    };
    Ok(Zeroizing::new(der))
}

/// Generates an RSA key of `bits` (2048 to 4096; also the 2048-bit subscriber keys a CA may
/// generate for enrollment, which are not CA keys) and returns its PKCS#8 DER (zeroized on
/// drop) and its SubjectPublicKeyInfo DER.
pub fn generate_rsa_pkcs8(bits: usize) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), KeyError> {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
    if !(2048..=4096).contains(&bits) {
        return Err(KeyError::Generation);
    }
    let key =
        rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, bits).map_err(|_| KeyError::Generation)?;
    let pkcs8 = key.to_pkcs8_der().map_err(|_| KeyError::Generation)?;
    let spki = key
        .to_public_key()
        .to_public_key_der()
        .map_err(|_| KeyError::Generation)?;
    Ok((
        Zeroizing::new(pkcs8.as_bytes().to_vec()),
        spki.as_bytes().to_vec(),
    ))
}

enum Inner {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// A CA key held in process memory (`ring` keeps the secret; its types are not `Debug`).
pub struct SoftwareKey {
    inner: Inner,
    algorithm: KeyAlgorithm,
    spki: Vec<u8>,
    rng: SystemRandom,
}

impl std::fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl SoftwareKey {
    /// Loads a key from PKCS#8 DER (v1 as OpenSSL writes it, or v2 as `ring` writes it).
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, KeyError> {
        let info =
            PrivateKeyInfo::try_from(der).map_err(|_| KeyError::Malformed("invalid PKCS#8"))?;
        let oid = info.algorithm.oid;
        let rng = SystemRandom::new();
        let (inner, algorithm) = if oid == OID_EC_PUBLIC_KEY {
            let curve = info
                .algorithm
                .parameters_oid()
                .map_err(|_| KeyError::Malformed("EC key without a named curve"))?;
            let (alg, signing) = if curve == OID_P256 {
                (KeyAlgorithm::EcdsaP256, &ECDSA_P256_SHA256_ASN1_SIGNING)
            } else if curve == OID_P384 {
                (KeyAlgorithm::EcdsaP384, &ECDSA_P384_SHA384_ASN1_SIGNING)
            } else {
                return Err(KeyError::Unsupported(format!("EC curve {curve}")));
            };
            let pair = EcdsaKeyPair::from_pkcs8(signing, der, &rng)
                .map_err(|_| KeyError::Malformed("invalid EC key"))?;
            (Inner::Ecdsa(pair), alg)
        } else if oid == OID_ED25519 {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .map_err(|_| KeyError::Malformed("invalid Ed25519 key"))?;
            (Inner::Ed25519(pair), KeyAlgorithm::Ed25519)
        } else if oid == OID_RSA {
            let pair =
                RsaKeyPair::from_pkcs8(der).map_err(|_| KeyError::Malformed("invalid RSA key"))?;
            let alg = match pair.public().modulus_len() * 8 {
                3072 => KeyAlgorithm::Rsa3072,
                4096 => KeyAlgorithm::Rsa4096,
                bits => {
                    return Err(KeyError::Unsupported(format!(
                        "RSA-{bits}: a CA key must be RSA 3072 or 4096"
                    )))
                }
            };
            (Inner::Rsa(pair), alg)
        } else {
            return Err(KeyError::Unsupported(format!("key algorithm {oid}")));
        };
        let mut key = SoftwareKey {
            inner,
            algorithm,
            spki: Vec::new(),
            rng,
        };
        key.spki = encode_spki(key.algorithm, key.public_key_bits())?;
        Ok(key)
    }

    /// The key's algorithm and size.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }
}

impl Signer for SoftwareKey {
    fn scheme(&self) -> SignatureScheme {
        self.algorithm.scheme()
    }

    fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    fn public_key_bits(&self) -> &[u8] {
        match &self.inner {
            Inner::Ecdsa(k) => k.public_key().as_ref(),
            Inner::Ed25519(k) => k.public_key().as_ref(),
            Inner::Rsa(k) => k.public_key().as_ref(),
        }
    }

    fn supports(&self, scheme: SignatureScheme) -> bool {
        scheme.signable_by(self.scheme())
    }

    fn sign_with(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match (&self.inner, scheme) {
            (Inner::Rsa(k), SignatureScheme::RsaPssSha256) => {
                self.rsa_sign(k, &RSA_PSS_SHA256, message)
            }
            _ if scheme == self.scheme() => self.sign(message),
            _ => Err(SignError::unsupported(scheme)),
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.inner {
            Inner::Ecdsa(k) => k
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|e| SignError::permanent("ECDSA signing failed", format!("ring: {e}"))),
            Inner::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
            Inner::Rsa(k) => self.rsa_sign(k, &RSA_PKCS1_SHA256, message),
        }
    }
}

impl SoftwareKey {
    /// An RSA signature of `message` with `padding` (PKCS#1 v1.5 or PSS, both over SHA-256).
    fn rsa_sign(
        &self,
        key: &RsaKeyPair,
        padding: &'static dyn ring::signature::RsaEncoding,
        message: &[u8],
    ) -> Result<Vec<u8>, SignError> {
        let mut sig = vec![0u8; key.public().modulus_len()];
        key.sign(padding, &self.rng, message, &mut sig)
            .map_err(|e| SignError::permanent("RSA signing failed", format!("ring: {e}")))?;
        Ok(sig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ED25519};

    #[test]
    fn signatures_verify_with_the_public_key() {
        let key =
            SoftwareKey::from_pkcs8(&generate_pkcs8(KeyAlgorithm::EcdsaP256).unwrap()).unwrap();
        let sig = key.sign(b"tbs").unwrap();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.public_key_bits())
            .verify(b"tbs", &sig)
            .unwrap();
        let key = SoftwareKey::from_pkcs8(&generate_pkcs8(KeyAlgorithm::Ed25519).unwrap()).unwrap();
        let sig = key.sign(b"tbs").unwrap();
        UnparsedPublicKey::new(&ED25519, key.public_key_bits())
            .verify(b"tbs", &sig)
            .unwrap();
        assert_eq!(key.spki_der().len(), 44);
    }

    #[test]
    fn rsa_3072_generates_loads_and_signs() {
        let key = SoftwareKey::from_pkcs8(&generate_pkcs8(KeyAlgorithm::Rsa3072).unwrap()).unwrap();
        assert_eq!(key.algorithm(), KeyAlgorithm::Rsa3072);
        assert_eq!(key.sign(b"tbs").unwrap().len(), 384);
    }

    /// An RSA key also signs RSASSA-PSS (for a profile that asks), verifiable as such and not
    /// as PKCS#1 v1.5; an ECDSA key refuses the scheme.
    #[test]
    fn rsa_keys_sign_pss_on_request_and_others_refuse() {
        use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256};
        let key = SoftwareKey::from_pkcs8(&generate_pkcs8(KeyAlgorithm::Rsa3072).unwrap()).unwrap();
        assert!(key.supports(SignatureScheme::RsaPssSha256));
        let sig = key
            .sign_with(SignatureScheme::RsaPssSha256, b"tbs")
            .unwrap();
        UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, key.public_key_bits())
            .verify(b"tbs", &sig)
            .unwrap();
        assert!(
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.public_key_bits())
                .verify(b"tbs", &sig)
                .is_err()
        );
        let ec =
            SoftwareKey::from_pkcs8(&generate_pkcs8(KeyAlgorithm::EcdsaP256).unwrap()).unwrap();
        assert!(!ec.supports(SignatureScheme::RsaPssSha256));
        assert!(ec.sign_with(SignatureScheme::RsaPssSha256, b"tbs").is_err());
    }
}

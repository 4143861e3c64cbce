//! Shared by the test binaries: keys generated with `ring`, their JWKs, and request bodies
//! built from a header, a payload and a signer.

#![allow(dead_code)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use serde_json::{json, Value};

/// A 2048-bit RSA key made with `openssl genpkey` for these tests only (PKCS#8 DER).
pub const TEST_RSA_PKCS8: &[u8] = include_bytes!("../fixtures/test-only-rsa2048.pk8.der");

pub const NONCE: &str = "bm9uY2Utb25l";
pub const URL: &str = "https://ca.test/acme/new-order";
pub const KID: &str = "https://ca.test/acme/acct/1";

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

/// A private key of each accepted type, able to sign and to show its public JWK.
pub enum TestKey {
    P256(EcdsaKeyPair),
    P384(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl TestKey {
    pub fn p256() -> Self {
        Self::P256(ecdsa(&signature::ECDSA_P256_SHA256_FIXED_SIGNING))
    }

    pub fn p384() -> Self {
        Self::P384(ecdsa(&signature::ECDSA_P384_SHA384_FIXED_SIGNING))
    }

    pub fn rsa() -> Self {
        Self::Rsa(RsaKeyPair::from_pkcs8(TEST_RSA_PKCS8).unwrap())
    }

    pub fn ed25519() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Self::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
    }

    /// One key of each type.
    pub fn all() -> Vec<Self> {
        vec![Self::p256(), Self::p384(), Self::rsa(), Self::ed25519()]
    }

    /// The JWS `alg` this key signs with.
    pub fn alg(&self) -> &'static str {
        match self {
            Self::P256(_) => "ES256",
            Self::P384(_) => "ES384",
            Self::Rsa(_) => "RS256",
            Self::Ed25519(_) => "EdDSA",
        }
    }

    /// The public JWK, with its members in a non-canonical order.
    pub fn jwk(&self) -> Value {
        match self {
            Self::P256(key) | Self::P384(key) => {
                let point = key.public_key().as_ref();
                let size = (point.len() - 1) / 2;
                let crv = if size == 32 { "P-256" } else { "P-384" };
                json!({
                    "kty": "EC",
                    "crv": crv,
                    "x": b64(&point[1..1 + size]),
                    "y": b64(&point[1 + size..]),
                })
            }
            Self::Rsa(key) => {
                let public = signature::RsaPublicKeyComponents::<Vec<u8>>::from(key.public());
                json!({"kty": "RSA", "n": b64(&public.n), "e": b64(&public.e)})
            }
            Self::Ed25519(key) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(key.public_key().as_ref())})
            }
        }
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Self::P256(key) | Self::P384(key) => key.sign(&rng, message).unwrap().as_ref().to_vec(),
            Self::Rsa(key) => {
                let mut signature = vec![0; key.public().modulus_len()];
                key.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .unwrap();
                signature
            }
            Self::Ed25519(key) => key.sign(message).as_ref().to_vec(),
        }
    }

    /// The usual header of the `jwk` form: alg, nonce, url, jwk.
    pub fn jwk_header(&self) -> Value {
        json!({"alg": self.alg(), "nonce": NONCE, "url": URL, "jwk": self.jwk()})
    }

    /// The usual header of the `kid` form: alg, nonce, url, kid.
    pub fn kid_header(&self) -> Value {
        json!({"alg": self.alg(), "nonce": NONCE, "url": URL, "kid": KID})
    }

    /// A flattened JWS of `header` and `payload`, signed with this key.
    pub fn jws(&self, header: &Value, payload: &[u8]) -> Vec<u8> {
        let protected = b64(header.to_string().as_bytes());
        let payload = b64(payload);
        let signature = self.sign(format!("{protected}.{payload}").as_bytes());
        flattened(&protected, &payload, &b64(&signature))
    }
}

fn ecdsa(alg: &'static signature::EcdsaSigningAlgorithm) -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap()
}

/// The flattened serialization of three base64url parts, as received.
pub fn flattened(protected: &str, payload: &str, signature: &str) -> Vec<u8> {
    json!({"protected": protected, "payload": payload, "signature": signature})
        .to_string()
        .into_bytes()
}

/// The body as a JSON object, to edit a member.
pub fn members(body: &[u8]) -> serde_json::Map<String, Value> {
    match serde_json::from_slice(body).unwrap() {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

/// Replaces member `name` of a body with `f` applied to its decoded bytes.
pub fn edit_part(body: &[u8], name: &str, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut map = members(body);
    let mut bytes = unb64(map[name].as_str().unwrap());
    f(&mut bytes);
    map.insert(name.into(), Value::String(b64(&bytes)));
    Value::Object(map).to_string().into_bytes()
}

//! Account keys: public JWKs (RFC 7517) of the key types RFC 7518 section 6 and RFC 8037
//! section 2 define, their RFC 7638 thumbprints, and JWS signature verification with `ring`.

use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{Map, Value};

use crate::alg::JwsAlgorithm;
use crate::b64;
use crate::problem::{quote, Problem};

/// The JWK members that carry private or symmetric key material (RFC 7518 sections 6.2.2,
/// 6.3.2 and 6.4.1, RFC 8037 section 2). A JWK with any of them is refused: an account key is
/// public, and a client that sends its private key has leaked it.
pub const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Smallest RSA modulus accepted, in bits (the floor of `ring`'s RS256 verifier).
pub const RSA_MIN_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (the ceiling of `ring`'s RS256 verifier).
pub const RSA_MAX_BITS: usize = 8192;
/// Largest RSA public exponent `ring` verifies with, 2^33 - 1.
const RSA_MAX_EXPONENT: u64 = (1 << 33) - 1;

/// The type of an account key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccountKeyKind {
    /// ECDSA on P-256 (`kty` `EC`, `crv` `P-256`, RFC 7518 section 6.2).
    P256,
    /// ECDSA on P-384 (`kty` `EC`, `crv` `P-384`, RFC 7518 section 6.2).
    P384,
    /// RSA (`kty` `RSA`, RFC 7518 section 6.3), of 2048 to 8192 bits.
    Rsa,
    /// Ed25519 (`kty` `OKP`, `crv` `Ed25519`, RFC 8037 section 2).
    Ed25519,
}

impl AccountKeyKind {
    /// The one JWS algorithm a key of this type signs with (RFC 7518 section 3.1, RFC 8037
    /// section 3.1).
    pub fn algorithm(self) -> JwsAlgorithm {
        match self {
            Self::P256 => JwsAlgorithm::Es256,
            Self::P384 => JwsAlgorithm::Es384,
            Self::Rsa => JwsAlgorithm::Rs256,
            Self::Ed25519 => JwsAlgorithm::EdDsa,
        }
    }
}

#[derive(Clone)]
enum Material {
    /// The uncompressed point `04 || x || y` (SEC 1 section 2.3.3), as `ring` takes it.
    Ec {
        kind: AccountKeyKind,
        point: Vec<u8>,
    },
    /// Big-endian modulus and exponent, without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The 32-byte public key of RFC 8032 section 5.1.5.
    Ed25519 { x: Vec<u8> },
}

/// An ACME account's public key, parsed from a JWK (RFC 7517 section 4, RFC 8555 section
/// 6.2): an EC key on P-256 or P-384, an RSA key of 2048 to 8192 bits, or an Ed25519 key.
///
/// Two keys are equal when their RFC 7638 thumbprints are.
#[derive(Clone)]
pub struct AccountKey {
    material: Material,
    canonical: String,
    thumbprint: [u8; 32],
}

impl AccountKey {
    /// Parses a public JWK given as JSON text (the `jwk` of a request, or the
    /// [`to_canonical_json`](Self::to_canonical_json) of a stored key).
    pub fn from_json(json: &[u8]) -> Result<Self, Problem> {
        let value: Value =
            serde_json::from_slice(json).map_err(|_| Problem::malformed("the JWK is not JSON"))?;
        Self::from_jwk(&value)
    }

    /// Parses a public JWK (RFC 7517 section 4).
    ///
    /// The members RFC 7518 section 6 and RFC 8037 section 2 require for the key type must
    /// be strings of unpadded base64url (RFC 7515 section 2); other public members (`kid`,
    /// `use`, `alg`, ...) are ignored, as RFC 7517 section 4 allows. Refused: anything but a
    /// JSON object or a string `kty` (`malformed`); a private member ([`PRIVATE_MEMBERS`]), a
    /// key type or curve other than those above, EC coordinates that are not the full size of
    /// the curve (RFC 7518 section 6.2.1.2), an Ed25519 key that is not 32 bytes (RFC 8037
    /// section 2), an RSA modulus or exponent with leading zero octets (RFC 7518 section
    /// 6.3.1), a modulus outside 2048..=8192 bits, an even exponent or one below 3 or above
    /// 2^33 - 1 (`badPublicKey`). An EC point off its curve passes here and fails
    /// [`verify`](Self::verify): `ring` checks the point when it verifies.
    pub fn from_jwk(jwk: &Value) -> Result<Self, Problem> {
        let Value::Object(members) = jwk else {
            return Err(Problem::malformed("the JWK is not a JSON object"));
        };
        if let Some(name) = PRIVATE_MEMBERS.iter().find(|m| members.contains_key(**m)) {
            return Err(Problem::bad_public_key(format!(
                "the JWK has the private member \"{name}\": an account key must be public"
            )));
        }
        let kty = string_member(members, "kty")?;
        let material = match kty {
            "EC" => {
                let crv = string_member(members, "crv")?;
                let (kind, size) = match crv {
                    "P-256" => (AccountKeyKind::P256, 32),
                    "P-384" => (AccountKeyKind::P384, 48),
                    other => {
                        return Err(Problem::bad_public_key(format!(
                            "EC curve \"{}\" is not supported (P-256, P-384)",
                            quote(other)
                        )))
                    }
                };
                let x = bytes_member(members, "x")?;
                let y = bytes_member(members, "y")?;
                if x.len() != size || y.len() != size {
                    return Err(Problem::bad_public_key(format!(
                        "{crv} coordinates must be {size} bytes each"
                    )));
                }
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Material::Ec { kind, point }
            }
            "RSA" => {
                let n = bytes_member(members, "n")?;
                let e = bytes_member(members, "e")?;
                check_rsa(&n, &e)?;
                Material::Rsa { n, e }
            }
            "OKP" => {
                let crv = string_member(members, "crv")?;
                if crv != "Ed25519" {
                    return Err(Problem::bad_public_key(format!(
                        "OKP curve \"{}\" is not supported (Ed25519)",
                        quote(crv)
                    )));
                }
                let x = bytes_member(members, "x")?;
                if x.len() != 32 {
                    return Err(Problem::bad_public_key("an Ed25519 key must be 32 bytes"));
                }
                Material::Ed25519 { x }
            }
            other => {
                return Err(Problem::bad_public_key(format!(
                    "key type \"{}\" is not supported (EC, RSA, OKP)",
                    quote(other)
                )))
            }
        };
        let canonical = canonical_json(&material);
        let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
        let mut thumbprint = [0u8; 32];
        thumbprint.copy_from_slice(digest.as_ref());
        Ok(Self {
            material,
            canonical,
            thumbprint,
        })
    }

    /// The key's type.
    pub fn kind(&self) -> AccountKeyKind {
        match &self.material {
            Material::Ec { kind, .. } => *kind,
            Material::Rsa { .. } => AccountKeyKind::Rsa,
            Material::Ed25519 { .. } => AccountKeyKind::Ed25519,
        }
    }

    /// Whether a JWS signed with `alg` may be verified with this key: ES256 with P-256, ES384
    /// with P-384, RS256 with RSA, EdDSA with Ed25519 (RFC 7518 section 3.1, RFC 8037
    /// section 3.1). Anything else is `badSignatureAlgorithm` (RFC 8555 section 6.2).
    pub fn alg_allowed(&self, alg: JwsAlgorithm) -> bool {
        self.kind().algorithm() == alg
    }

    /// The JWK Thumbprint (RFC 7638 section 3): SHA-256 of [`to_canonical_json`].
    ///
    /// [`to_canonical_json`]: Self::to_canonical_json
    pub fn thumbprint(&self) -> [u8; 32] {
        self.thumbprint
    }

    /// The thumbprint in base64url without padding, as key authorizations use it (RFC 8555
    /// section 8.1).
    pub fn thumbprint_b64(&self) -> String {
        b64::encode(&self.thumbprint)
    }

    /// The key as RFC 7638 section 3.2 writes it for the thumbprint: only the required
    /// members, in lexicographic order, no whitespace. It is a public JWK that
    /// [`from_json`](Self::from_json) reads back, so it is also how an account's key is
    /// stored.
    pub fn to_canonical_json(&self) -> &str {
        &self.canonical
    }

    /// Verifies a JWS signature (RFC 7515 section 5.2 step 8) over `signing_input` with this
    /// key: ECDSA signatures are the fixed-size `r || s` of RFC 7518 section 3.4, RSA ones
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 section 3.3), Ed25519 ones those of RFC 8037
    /// section 3.1.
    ///
    /// An algorithm that does not go with the key is `badSignatureAlgorithm`; a signature
    /// that does not verify is `malformed` (see [`crate::jws::ParsedJws::verify`]).
    pub fn verify(
        &self,
        alg: JwsAlgorithm,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<(), Problem> {
        if !self.alg_allowed(alg) {
            return Err(Problem::bad_signature_algorithm(format!(
                "{alg} does not go with a {:?} key (it signs with {})",
                self.kind(),
                self.kind().algorithm()
            )));
        }
        let verified = match &self.material {
            Material::Ec { kind, point } => {
                let algorithm = match kind {
                    AccountKeyKind::P384 => &signature::ECDSA_P384_SHA384_FIXED,
                    _ => &signature::ECDSA_P256_SHA256_FIXED,
                };
                UnparsedPublicKey::new(algorithm, point).verify(signing_input, signature)
            }
            Material::Rsa { n, e } => RsaPublicKeyComponents { n, e }.verify(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                signing_input,
                signature,
            ),
            Material::Ed25519 { x } => {
                UnparsedPublicKey::new(&signature::ED25519, x).verify(signing_input, signature)
            }
        };
        verified.map_err(|_| Problem::malformed("the JWS signature does not verify"))
    }
}

impl PartialEq for AccountKey {
    fn eq(&self, other: &Self) -> bool {
        self.thumbprint == other.thumbprint
    }
}

impl Eq for AccountKey {}

impl std::hash::Hash for AccountKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.thumbprint.hash(state);
    }
}

impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountKey")
            .field("kind", &self.kind())
            .field("thumbprint", &self.thumbprint_b64())
            .finish()
    }
}

fn string_member<'a>(members: &'a Map<String, Value>, name: &str) -> Result<&'a str, Problem> {
    match members.get(name) {
        Some(Value::String(value)) => Ok(value),
        Some(_) => Err(Problem::malformed(format!(
            "the JWK member \"{name}\" is not a string"
        ))),
        None => Err(Problem::malformed(format!(
            "the JWK has no \"{name}\" member"
        ))),
    }
}

fn bytes_member(members: &Map<String, Value>, name: &str) -> Result<Vec<u8>, Problem> {
    b64::decode(
        &format!("the JWK member \"{name}\""),
        string_member(members, name)?,
    )
}

/// The RSA rules of [`AccountKey::from_jwk`]: RFC 7518 section 6.3.1 (minimal big-endian
/// encodings), the modulus size `ring` verifies, an odd exponent in 3..=2^33-1.
fn check_rsa(n: &[u8], e: &[u8]) -> Result<(), Problem> {
    let Some((&first, _)) = n.split_first() else {
        return Err(Problem::bad_public_key("the RSA modulus is empty"));
    };
    if first == 0 {
        return Err(Problem::bad_public_key(
            "the RSA modulus has a leading zero octet (RFC 7518 section 6.3.1.1)",
        ));
    }
    let bits = n.len() * 8 - first.leading_zeros() as usize;
    if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
        return Err(Problem::bad_public_key(format!(
            "an RSA modulus of {bits} bits is not accepted ({RSA_MIN_BITS} to {RSA_MAX_BITS})"
        )));
    }
    if e.first() == Some(&0) {
        return Err(Problem::bad_public_key(
            "the RSA exponent has a leading zero octet (RFC 7518 section 6.3.1.2)",
        ));
    }
    let exponent = if e.is_empty() || e.len() > 8 {
        None
    } else {
        Some(e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    };
    match exponent {
        Some(value) if value % 2 == 1 && (3..=RSA_MAX_EXPONENT).contains(&value) => Ok(()),
        _ => Err(Problem::bad_public_key(
            "the RSA exponent must be odd, at least 3 and at most 2^33 - 1",
        )),
    }
}

/// RFC 7638 section 3.2: the required members only, lexicographic order, no whitespace. The
/// values are base64url and fixed names, so nothing needs escaping.
fn canonical_json(material: &Material) -> String {
    match material {
        Material::Ec { kind, point } => {
            let size = (point.len() - 1) / 2;
            let crv = if *kind == AccountKeyKind::P384 {
                "P-384"
            } else {
                "P-256"
            };
            format!(
                r#"{{"crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#,
                b64::encode(&point[1..1 + size]),
                b64::encode(&point[1 + size..])
            )
        }
        Material::Rsa { n, e } => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            b64::encode(e),
            b64::encode(n)
        ),
        Material::Ed25519 { x } => {
            format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                b64::encode(x)
            )
        }
    }
}

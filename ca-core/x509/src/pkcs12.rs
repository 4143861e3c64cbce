//! PKCS#12 (RFC 7292) files for keys the CA generates on behalf of a subscriber.
//!
//! [`build_pfx`] packs a private key, its certificate and the issuing chain into one
//! password-protected file as current OpenSSL (3.x) and Windows write and read it:
//!
//! - the private key, as a PKCS#8 v1 `PrivateKeyInfo`, in a `pkcs8ShroudedKeyBag` (RFC 7292
//!   section 4.2.2), an `EncryptedPrivateKeyInfo` (RFC 5958 section 3) encrypted with PBES2
//!   (RFC 8018 section 6.2),
//!   PBKDF2-HMAC-SHA256 and AES-256-CBC (RFC 8018 appendices A.2 and B.2.5, RFC 3565);
//! - the leaf and chain certificates in `certBag`s (RFC 7292 section 4.2.3) inside an
//!   `EncryptedData` (RFC 5652 section 8) protected the same way;
//! - the key bag and the leaf certificate bag both carrying `friendlyName` and the same
//!   `localKeyId` (PKCS#9, RFC 2985 sections 5.5.1 and 5.5.2), the SHA-256 of the leaf
//!   certificate, so that readers pair them;
//! - an HMAC-SHA256 over the whole (password integrity mode, RFC 7292 section 5 and
//!   appendix B).
//!
//! The ASN.1 structures are the typed ones of the RustCrypto `pkcs12`, `cms` and `pkcs5` crates;
//! nothing is encoded by hand.

use ::pkcs12::cms::cert::x509::attr::{Attribute, Attributes};
use ::pkcs12::cms::cert::x509::spki::AlgorithmIdentifierOwned;
use ::pkcs12::cms::content_info::{CmsVersion, ContentInfo};
use ::pkcs12::cms::encrypted_data::EncryptedData;
use ::pkcs12::cms::enveloped_data::EncryptedContentInfo;
use ::pkcs12::kdf::{derive_key_utf8, Pkcs12KeyType};
use ::pkcs12::pbe_params::EncryptedPrivateKeyInfo;
use ::pkcs12::pfx::{Pfx, Version};
use ::pkcs12::{CertBag, DigestInfo, MacData, SafeBag};
use pkcs5::der::asn1::{BmpString, ObjectIdentifier, OctetString, SetOfVec};
use pkcs5::der::{Any, Encode, EncodeValue, Tagged};
use pkcs5::pbes2;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac};
use zeroize::Zeroizing;

use crate::error::CaError;
use crate::oid;

/// Iterations of PBKDF2 (each encryption) and of the PKCS#12 MAC key derivation.
///
/// The password is all that protects a file in transit, so the count is far above OpenSSL's
/// default of 2,048, while each derivation stays well under the iteration limits that readers
/// enforce against hostile files (.NET's PKCS#12 loader, for one, caps them) and the three
/// together take a fraction of a second.
const PFX_ITERATIONS: u32 = 100_000;

/// Salt length of each derivation; RFC 8018 section 4.1 asks for at least 8 bytes.
const SALT_LEN: usize = 16;

/// The longest [`Pkcs12Password`], in characters.
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// The longest [`FriendlyName`], in characters; a longer name is cut.
pub const MAX_FRIENDLY_NAME_CHARS: usize = 256;

/// A password that can protect a PKCS#12 file: checked once, when it is made, so that
/// [`build_pfx`] cannot refuse it.
///
/// Its rules: at least the configured number of characters (and at least one), at most
/// [`MAX_PASSWORD_CHARS`]; every character in Unicode's Basic Multilingual Plane, since the
/// MAC key derivation takes the password as a BMPString (RFC 7292 appendix B.1); no control
/// characters, which no PKCS#12 reader lets a person type (OpenSSL stops at a NUL). The text is
/// wiped on drop and never shows in `Debug` output.
pub struct Pkcs12Password(Zeroizing<String>);

impl Pkcs12Password {
    /// Checks `password` against the rules above, `min_chars` being the configured minimum:
    /// [`CaError::PasswordTooShort`] below it, [`CaError::PasswordNotAllowed`] for the others.
    /// The errors never quote the password.
    pub fn new(password: Zeroizing<String>, min_chars: usize) -> Result<Self, CaError> {
        let min = min_chars.max(1);
        let chars = password.chars().count();
        if chars < min {
            return Err(CaError::PasswordTooShort(min));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(CaError::PasswordNotAllowed(format!(
                "a PKCS#12 password may have at most {MAX_PASSWORD_CHARS} characters"
            )));
        }
        if password.chars().any(char::is_control) {
            return Err(CaError::PasswordNotAllowed(
                "a PKCS#12 password may not hold control characters".into(),
            ));
        }
        if BmpString::from_utf8(&password).is_err() {
            return Err(CaError::PasswordNotAllowed(
                "a PKCS#12 password may only hold characters of Unicode's Basic Multilingual \
                 Plane (U+0000 to U+FFFF; RFC 7292 appendix B.1 encodes it as a BMPString), \
                 so no emoji"
                    .into(),
            ));
        }
        Ok(Pkcs12Password(password))
    }

    /// The password as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Pkcs12Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pkcs12Password(<redacted>)")
    }
}

/// The `friendlyName` of a PKCS#12 file (PKCS#9, RFC 2985 section 5.5.1, a BMPString): made
/// from any text without failing, so that [`build_pfx`] cannot refuse it.
///
/// A character outside the Basic Multilingual Plane, or a control character, becomes U+FFFD
/// (the replacement character); the name is cut after [`MAX_FRIENDLY_NAME_CHARS`] characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FriendlyName(String);

impl FriendlyName {
    /// The friendly name for `text` (usually the certificate's subject, RFC 4514).
    pub fn new(text: &str) -> Self {
        FriendlyName(
            text.chars()
                .take(MAX_FRIENDLY_NAME_CHARS)
                .map(|c| {
                    if u32::from(c) > 0xFFFF || c.is_control() {
                        char::REPLACEMENT_CHARACTER
                    } else {
                        c
                    }
                })
                .collect(),
        )
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Builds a password-protected PKCS#12 file (RFC 7292) holding `key_pkcs8_der`, its
/// certificate `cert_der` and the issuing chain `chain_der` (nearest issuer first; may be
/// empty).
///
/// - `key_pkcs8_der`: the private key as PKCS#8 DER (RFC 5958, v1 or v2): ECDSA P-256 or
///   P-384, Ed25519 or RSA. It must be the key of `cert_der`: the algorithms must agree and,
///   where the PKCS#8 carries the public key (EC keys; Ed25519 v2; RSA always), the public key
///   too. It is stored as PKCS#8 v1 (RFC 5208): a v2 `publicKey`, as `ring` writes for
///   Ed25519, is dropped, since OpenSSL 3.0 cannot read v2. The function's own copies of the
///   key are zeroized once encrypted.
/// - `password`: checked by [`Pkcs12Password::new`]. PBES2 takes its UTF-8 bytes (RFC 8018
///   section 6.2), the MAC derivation its BMPString form (RFC 7292 appendix B.1), as OpenSSL 3
///   does.
/// - `friendly_name`: the label shown by Windows and the Keychain, set on the key bag and the
///   leaf certificate bag (omitted when empty).
///
/// The only refusals are [`CaError::Crypto`], for a key or certificate that does not parse, a
/// key that is not the certificate's, or a failure of randomness or encoding: none depends on
/// what a client chose.
pub fn build_pfx(
    key_pkcs8_der: &[u8],
    cert_der: &[u8],
    chain_der: &[Vec<u8>],
    password: &Pkcs12Password,
    friendly_name: &FriendlyName,
) -> Result<Vec<u8>, CaError> {
    let (password, friendly_name) = (password.as_str(), friendly_name.as_str());
    let key = check_key_matches_certificate(key_pkcs8_der, cert_der)?;
    let key_v1 = pkcs8_v1(&key)?;
    for (i, cert) in chain_der.iter().enumerate() {
        parse_certificate(cert)
            .map_err(|e| CaError::Crypto(format!("chain certificate {i} does not parse: {e}")))?;
    }

    let rng = SystemRandom::new();
    let local_key_id = digest::digest(&digest::SHA256, cert_der);
    let mut attributes = Attributes::new();
    if !friendly_name.is_empty() {
        let name = BmpString::from_utf8(friendly_name).map_err(encoding)?;
        attributes
            .insert(attribute(oid::PKCS_9_AT_FRIENDLY_NAME, &name)?)
            .map_err(encoding)?;
    }
    let key_id = OctetString::new(local_key_id.as_ref()).map_err(encoding)?;
    attributes
        .insert(attribute(oid::PKCS_9_AT_LOCAL_KEY_ID, &key_id)?)
        .map_err(encoding)?;

    // The certificates: the leaf with the attributes, then the chain without, encrypted.
    let mut cert_bags = Vec::with_capacity(1 + chain_der.len());
    cert_bags.push(cert_bag(cert_der, Some(attributes.clone()))?);
    for cert in chain_der {
        cert_bags.push(cert_bag(cert, None)?);
    }
    let cert_contents = cert_bags.to_der().map_err(encoding)?;
    let (cert_alg, cert_ciphertext) = encrypt(&rng, password, &cert_contents)?;
    let encrypted_certs = EncryptedData {
        version: CmsVersion::V0,
        enc_content_info: EncryptedContentInfo {
            content_type: oid::ID_DATA,
            content_enc_alg: cert_alg,
            encrypted_content: Some(OctetString::new(cert_ciphertext).map_err(encoding)?),
        },
        unprotected_attrs: None,
    };
    let certs_safe = ContentInfo {
        content_type: oid::ID_ENCRYPTED_DATA,
        content: Any::encode_from(&encrypted_certs).map_err(encoding)?,
    };

    // The key: a shrouded key bag, itself in plain data (its content is encrypted already).
    let (key_alg, key_ciphertext) = encrypt(&rng, password, &key_v1)?;
    let shrouded = EncryptedPrivateKeyInfo {
        encryption_algorithm: key_alg,
        encrypted_data: OctetString::new(key_ciphertext).map_err(encoding)?,
    };
    let key_bag = SafeBag {
        bag_id: oid::PKCS8_SHROUDED_KEY_BAG,
        bag_value: shrouded.to_der().map_err(encoding)?,
        bag_attributes: Some(attributes),
    };
    let key_contents = vec![key_bag].to_der().map_err(encoding)?;
    let key_safe = data_content_info(key_contents)?;

    // The authenticated safe, and the MAC over its octets (RFC 7292 section 5.1, appendix B).
    let auth_safe_der = vec![certs_safe, key_safe].to_der().map_err(encoding)?;
    let mac_data = mac(&rng, password, &auth_safe_der)?;
    let pfx = Pfx {
        version: Version::V3,
        auth_safe: data_content_info(auth_safe_der)?,
        mac_data: Some(mac_data),
    };
    pfx.to_der().map_err(encoding)
}

/// A failure of DER encoding, which only a bug or an absurd size can cause.
fn encoding(e: impl std::fmt::Display) -> CaError {
    CaError::Crypto(format!("encoding the PKCS#12 file: {e}"))
}

/// A PKCS#9 attribute with one value.
fn attribute(
    oid: ObjectIdentifier,
    value: &(impl EncodeValue + Tagged),
) -> Result<Attribute, CaError> {
    let value = Any::encode_from(value).map_err(encoding)?;
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value]).map_err(encoding)?,
    })
}

/// A `certBag` holding an X.509 certificate.
fn cert_bag(cert_der: &[u8], attributes: Option<Attributes>) -> Result<SafeBag, CaError> {
    let bag = CertBag {
        cert_id: oid::X509_CERTIFICATE,
        cert_value: OctetString::new(cert_der).map_err(encoding)?,
    };
    Ok(SafeBag {
        bag_id: oid::CERT_BAG,
        bag_value: bag.to_der().map_err(encoding)?,
        bag_attributes: attributes,
    })
}

/// A `ContentInfo` of type `id-data` around `content`.
fn data_content_info(content: Vec<u8>) -> Result<ContentInfo, CaError> {
    let octets = OctetString::new(content).map_err(encoding)?;
    Ok(ContentInfo {
        content_type: oid::ID_DATA,
        content: Any::encode_from(&octets).map_err(encoding)?,
    })
}

fn random<const N: usize>(rng: &SystemRandom) -> Result<[u8; N], CaError> {
    let mut bytes = [0u8; N];
    rng.fill(&mut bytes)
        .map_err(|_| CaError::Crypto("the system random generator failed".into()))?;
    Ok(bytes)
}

/// Encrypts `plaintext` with PBES2, PBKDF2-HMAC-SHA256 and AES-256-CBC under a fresh salt
/// and IV, returning the algorithm identifier and the ciphertext.
///
/// The plaintext is copied once, into a buffer that is encrypted in place and zeroized on
/// drop, so no copy of a private key outlives the call in this module.
fn encrypt(
    rng: &SystemRandom,
    password: &str,
    plaintext: &[u8],
) -> Result<(AlgorithmIdentifierOwned, Vec<u8>), CaError> {
    let salt: [u8; SALT_LEN] = random(rng)?;
    let iv: [u8; 16] = random(rng)?;
    let params = pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(PFX_ITERATIONS, &salt, iv)
        .map_err(|e| CaError::Crypto(format!("PBES2 parameters: {e}")))?;
    // Room for the CBC padding (RFC 8018 section 6.1.1, step 4): at most one block.
    let mut buffer = Zeroizing::new(vec![0u8; plaintext.len() + 16]);
    buffer[..plaintext.len()].copy_from_slice(plaintext);
    let ciphertext = params
        .encrypt_in_place(password.as_bytes(), &mut buffer, plaintext.len())
        .map_err(|e| CaError::Crypto(format!("PBES2 encryption: {e}")))?
        .to_vec();
    let algorithm = AlgorithmIdentifierOwned {
        oid: pbes2::PBES2_OID,
        parameters: Some(Any::encode_from(&params).map_err(encoding)?),
    };
    Ok((algorithm, ciphertext))
}

/// The `MacData` of password integrity mode: HMAC-SHA256 keyed by the PKCS#12 key derivation
/// (RFC 7292 appendix B.2, ID 3) of the password, over the authenticated safe's octets.
fn mac(rng: &SystemRandom, password: &str, auth_safe: &[u8]) -> Result<MacData, CaError> {
    let salt: [u8; SALT_LEN] = random(rng)?;
    let iterations = i32::try_from(PFX_ITERATIONS).map_err(encoding)?;
    let key = Zeroizing::new(
        derive_key_utf8::<sha2_v011::Sha256>(
            password,
            &salt,
            Pkcs12KeyType::Mac,
            iterations,
            digest::SHA256_OUTPUT_LEN,
        )
        .map_err(|e| CaError::Crypto(format!("PKCS#12 MAC key derivation: {e}")))?,
    );
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), auth_safe);
    Ok(MacData {
        mac: DigestInfo {
            algorithm: AlgorithmIdentifierOwned {
                oid: ObjectIdentifier::from_bytes(oid::ID_SHA256.as_bytes()).map_err(encoding)?,
                parameters: None,
            },
            digest: OctetString::new(tag.as_ref()).map_err(encoding)?,
        },
        mac_salt: OctetString::new(salt.as_slice()).map_err(encoding)?,
        iterations,
    })
}

fn parse_certificate(cert_der: &[u8]) -> Result<x509_cert::Certificate, der::Error> {
    use der::Decode;
    x509_cert::Certificate::from_der(cert_der)
}

/// The key as a PKCS#8 v1 `PrivateKeyInfo` (RFC 5208 section 5), in a buffer zeroized on drop.
///
/// The optional `publicKey` of a v2 `OneAsymmetricKey` (RFC 5958 section 2), which `ring` writes
/// for Ed25519, is left out: OpenSSL 3.0 cannot read v2 and refuses the whole file. The public
/// key is in the certificate anyway.
fn pkcs8_v1(key: &pkcs8::PrivateKeyInfo<'_>) -> Result<Zeroizing<Vec<u8>>, CaError> {
    use der::Encode as _;
    let v1 = pkcs8::PrivateKeyInfo {
        algorithm: key.algorithm,
        private_key: key.private_key,
        public_key: None,
    };
    let len = v1
        .encoded_len()
        .and_then(usize::try_from)
        .map_err(encoding)?;
    let mut buffer = Zeroizing::new(vec![0u8; len]);
    v1.encode_to_slice(&mut buffer).map_err(encoding)?;
    Ok(buffer)
}

/// Checks that `key_pkcs8_der` is PKCS#8 and the private key of `cert_der`, without copying
/// the key: the parsers borrow from the caller's buffer.
fn check_key_matches_certificate<'a>(
    key_pkcs8_der: &'a [u8],
    cert_der: &[u8],
) -> Result<pkcs8::PrivateKeyInfo<'a>, CaError> {
    let mismatch = || CaError::Crypto("the private key is not the certificate's key".into());
    let key = pkcs8::PrivateKeyInfo::try_from(key_pkcs8_der)
        .map_err(|_| CaError::Crypto("the private key is not PKCS#8 DER".into()))?;
    let cert = parse_certificate(cert_der)
        .map_err(|e| CaError::Crypto(format!("the certificate does not parse: {e}")))?;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    if key.algorithm.oid != spki.algorithm.oid {
        return Err(mismatch());
    }
    let spki_bits = spki.subject_public_key.raw_bytes();
    if key.algorithm.oid == oid::RSA_ENCRYPTION {
        let private = pkcs1::RsaPrivateKey::try_from(key.private_key)
            .map_err(|_| CaError::Crypto("the RSA private key does not parse".into()))?;
        let public = pkcs1::RsaPublicKey::try_from(spki_bits)
            .map_err(|_| CaError::Crypto("the certificate's RSA key does not parse".into()))?;
        if private.modulus != public.modulus || private.public_exponent != public.public_exponent {
            return Err(mismatch());
        }
        return Ok(key);
    }
    if key.algorithm.oid == oid::ID_EC_PUBLIC_KEY {
        let key_curve = key.algorithm.parameters_oid().ok();
        let cert_curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<pkcs8::ObjectIdentifier>().ok());
        if key_curve.is_none() || key_curve != cert_curve {
            return Err(mismatch());
        }
        let private = sec1::EcPrivateKey::try_from(key.private_key)
            .map_err(|_| CaError::Crypto("the EC private key does not parse".into()))?;
        if private.public_key.is_some_and(|point| point != spki_bits) {
            return Err(mismatch());
        }
        return Ok(key);
    }
    // Ed25519 and others: compare the public key when the PKCS#8 v2 carries it.
    if key.public_key.is_some_and(|public| public != spki_bits) {
        return Err(mismatch());
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keys::KeyAlgorithm;
    use std::path::Path;
    use std::process::{Command, Output};

    const PASSWORD: &str = "correct horse battery staple";

    /// [`super::build_pfx`] with a password and a friendly name as text.
    fn build_pfx(
        key: &[u8],
        cert: &[u8],
        chain: &[Vec<u8>],
        password: &str,
        name: &str,
    ) -> Result<Vec<u8>, CaError> {
        let password = Pkcs12Password::new(Zeroizing::new(password.to_string()), 1)?;
        super::build_pfx(key, cert, chain, &password, &FriendlyName::new(name))
    }

    /// A key of `algorithm` (PKCS#8 DER) and a self-signed certificate for it.
    fn self_signed(pkcs8: &[u8], cn: &str) -> (rcgen::KeyPair, rcgen::CertificateParams, Vec<u8>) {
        let key = rcgen::KeyPair::try_from(pkcs8).unwrap();
        let mut params = rcgen::CertificateParams::new(vec![format!("{cn}.example")]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.self_signed(&key).unwrap();
        (key, params, cert.der().to_vec())
    }

    /// A leaf key and certificate signed by a fresh CA (ECDSA P-256); returns the leaf key,
    /// the leaf certificate and the CA certificate.
    fn leaf_with_ca(leaf_pkcs8: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let ca_pkcs8 = keys::generate_pkcs8(KeyAlgorithm::EcdsaP256).unwrap();
        let (ca_key, mut ca_params, _) = self_signed(&ca_pkcs8, "Test Root");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap().der().to_vec();
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let leaf_key = rcgen::KeyPair::try_from(leaf_pkcs8).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["device.example".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "device-42");
        let leaf = params.signed_by(&leaf_key, &issuer).unwrap();
        (leaf.der().to_vec(), ca_cert)
    }

    fn rsa_2048_pkcs8() -> Vec<u8> {
        use rsa::pkcs8::EncodePrivateKey;
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        key.to_pkcs8_der().unwrap().as_bytes().to_vec()
    }

    /// The key as `build_pfx` stores it: PKCS#8 v1, without the v2 public key.
    fn as_v1(key: &[u8]) -> Vec<u8> {
        use der::Encode as _;
        let info = pkcs8::PrivateKeyInfo::try_from(key).unwrap();
        let v1 = pkcs8::PrivateKeyInfo {
            public_key: None,
            ..info
        };
        v1.to_der().unwrap()
    }

    fn openssl(args: &[&str]) -> Output {
        Command::new("openssl")
            .args(args)
            .output()
            .expect("the openssl command runs")
    }

    fn text(output: &Output) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    fn path(p: &Path) -> &str {
        p.to_str().unwrap()
    }

    /// Writes the file, reads it with OpenSSL 3 and p12-keystore, and checks what both see.
    fn check_with_openssl(key: &[u8], cert: &[u8], chain: &[Vec<u8>], password: &str) -> String {
        let pfx = build_pfx(key, cert, chain, password, "My device key").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.p12");
        std::fs::write(&file, &pfx).unwrap();
        let passin = format!("pass:{password}");

        // The structure: PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC, MAC SHA-256.
        let info = openssl(&[
            "pkcs12",
            "-in",
            path(&file),
            "-passin",
            &passin,
            "-info",
            "-noout",
        ]);
        let info_text = text(&info);
        assert!(info.status.success(), "{info_text}");
        assert!(info_text.contains("MAC: sha256"), "{info_text}");
        assert!(
            info_text.contains(
                "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 100000, PRF hmacWithSHA256"
            ),
            "{info_text}"
        );
        assert!(
            info_text.contains("PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, Iteration 100000, PRF hmacWithSHA256"),
            "{info_text}"
        );

        // The content: the key and every certificate, with the bag attributes.
        let out = openssl(&["pkcs12", "-in", path(&file), "-passin", &passin, "-nodes"]);
        let out_text = text(&out);
        assert!(out.status.success(), "{out_text}");
        assert_eq!(
            out_text.matches("-----BEGIN PRIVATE KEY-----").count(),
            1,
            "{out_text}"
        );
        assert_eq!(
            out_text.matches("-----BEGIN CERTIFICATE-----").count(),
            1 + chain.len(),
            "{out_text}"
        );
        assert_eq!(
            out_text.matches("friendlyName: My device key").count(),
            2,
            "{out_text}"
        );
        let key_id = hex::encode_upper(digest::digest(&digest::SHA256, cert).as_ref());
        let key_id = key_id
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(
            out_text.matches(&format!("localKeyID: {key_id}")).count(),
            2,
            "{out_text}"
        );

        // The key OpenSSL extracts is the certificate's.
        let key_pem = dir.path().join("key.pem");
        let cert_pem = dir.path().join("cert.pem");
        let extract = |extra: &[&str], to: &Path| {
            let mut args = vec![
                "pkcs12",
                "-in",
                path(&file),
                "-passin",
                &passin,
                "-out",
                path(to),
            ];
            args.extend_from_slice(extra);
            let out = openssl(&args);
            assert!(out.status.success(), "{}", text(&out));
        };
        extract(&["-nocerts", "-nodes"], &key_pem);
        extract(&["-clcerts", "-nokeys"], &cert_pem);
        let from_key = openssl(&["pkey", "-in", path(&key_pem), "-pubout"]);
        let from_cert = openssl(&["x509", "-in", path(&cert_pem), "-pubkey", "-noout"]);
        assert!(from_key.status.success() && from_cert.status.success());
        assert!(from_key.stdout.starts_with(b"-----BEGIN PUBLIC KEY-----"));
        assert_eq!(from_key.stdout, from_cert.stdout);

        // A wrong password fails.
        let wrong = openssl(&[
            "pkcs12",
            "-in",
            path(&file),
            "-passin",
            "pass:wrong",
            "-nodes",
        ]);
        assert!(!wrong.status.success(), "{}", text(&wrong));
        assert!(
            text(&wrong).contains("Mac verify error"),
            "{}",
            text(&wrong)
        );

        // An independent reading with p12-keystore.
        let archive = p12_keystore::Pkcs12Archive::from_pkcs12(&pfx, password).unwrap();
        assert_eq!(archive.keys.len(), 1);
        assert_eq!(archive.keys[0].key.as_der(), as_v1(key));
        assert_eq!(
            archive.keys[0].friendly_name.as_deref(),
            Some("My device key")
        );
        let key_id = digest::digest(&digest::SHA256, cert);
        assert_eq!(
            archive.keys[0].local_key_id.as_ref().map(|id| id.as_ref()),
            Some(key_id.as_ref())
        );
        assert_eq!(archive.certs.len(), 1 + chain.len());
        assert_eq!(archive.certs[0].cert.as_der(), cert);
        assert_eq!(
            archive.certs[0].friendly_name.as_deref(),
            Some("My device key")
        );
        assert_eq!(
            archive.certs[0].local_key_id.as_deref(),
            Some(key_id.as_ref())
        );
        for (bag, want) in archive.certs[1..].iter().zip(chain) {
            assert_eq!(bag.cert.as_der(), want.as_slice());
            assert!(bag.local_key_id.is_none() && bag.friendly_name.is_none());
        }
        assert!(p12_keystore::Pkcs12Archive::from_pkcs12(&pfx, "wrong").is_err());
        info_text
    }

    fn round_trip(algorithm: KeyAlgorithm) {
        let key = keys::generate_pkcs8(algorithm).unwrap();
        let (_, _, cert) = self_signed(&key, "device-42");
        check_with_openssl(&key, &cert, &[], PASSWORD);
    }

    #[test]
    fn ecdsa_p256_opens_in_openssl() {
        round_trip(KeyAlgorithm::EcdsaP256);
    }

    #[test]
    fn ecdsa_p384_opens_in_openssl() {
        round_trip(KeyAlgorithm::EcdsaP384);
    }

    #[test]
    fn ed25519_opens_in_openssl() {
        // ring writes Ed25519 as PKCS#8 v2, with the public key, which OpenSSL 3.0 cannot read.
        let key = keys::generate_pkcs8(KeyAlgorithm::Ed25519).unwrap();
        let info = pkcs8::PrivateKeyInfo::try_from(key.as_slice()).unwrap();
        assert!(info.public_key.is_some());
        let (_, _, cert) = self_signed(&key, "device-42");
        check_with_openssl(&key, &cert, &[], PASSWORD);
    }

    #[test]
    fn an_empty_friendly_name_is_left_out() {
        let key = keys::generate_pkcs8(KeyAlgorithm::EcdsaP256).unwrap();
        let (_, _, cert) = self_signed(&key, "device");
        let pfx = build_pfx(&key, &cert, &[], PASSWORD, "").unwrap();
        let archive = p12_keystore::Pkcs12Archive::from_pkcs12(&pfx, PASSWORD).unwrap();
        assert!(archive.keys[0].friendly_name.is_none());
        assert!(archive.certs[0].friendly_name.is_none());
        assert!(archive.keys[0].local_key_id.is_some());
    }

    #[test]
    fn rsa_2048_with_chain_opens_in_openssl() {
        // keys::generate_pkcs8 makes CA keys (RSA 3072 and 4096 only); a subscriber's RSA-2048
        // key comes from the rsa crate the same way.
        let key = rsa_2048_pkcs8();
        let (leaf, ca) = leaf_with_ca(&key);
        let info = check_with_openssl(&key, &leaf, &[ca], PASSWORD);
        println!("openssl pkcs12 -info -noout:\n{info}");
    }

    #[test]
    fn rsa_3072_from_the_keys_crate_opens_in_openssl() {
        round_trip(KeyAlgorithm::Rsa3072);
    }

    #[test]
    fn ec_leaf_with_chain_and_unicode_password() {
        let key = keys::generate_pkcs8(KeyAlgorithm::EcdsaP256).unwrap();
        let (leaf, ca) = leaf_with_ca(&key);
        check_with_openssl(&key, &leaf, &[ca.clone(), ca], "pässwört-€-鍵");
    }

    #[test]
    fn ed25519_v1_pkcs8_is_accepted() {
        // OpenSSL writes Ed25519 keys as PKCS#8 v1 (no public key inside).
        let dir = tempfile::tempdir().unwrap();
        let der = dir.path().join("ed.der");
        let gen = openssl(&[
            "genpkey",
            "-algorithm",
            "ed25519",
            "-outform",
            "DER",
            "-out",
            path(&der),
        ]);
        assert!(gen.status.success(), "{}", text(&gen));
        let key = std::fs::read(&der).unwrap();
        let (_, _, cert) = self_signed(&key, "device-v1");
        check_with_openssl(&key, &cert, &[], PASSWORD);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
            let key = keys::generate_pkcs8(algorithm).unwrap();
            let other = keys::generate_pkcs8(algorithm).unwrap();
            let (_, _, cert) = self_signed(&other, "other");
            let err = build_pfx(&key, &cert, &[], PASSWORD, "x").unwrap_err();
            assert!(matches!(err, CaError::Crypto(_)), "{err}");
        }
        let p256 = keys::generate_pkcs8(KeyAlgorithm::EcdsaP256).unwrap();
        let p384 = keys::generate_pkcs8(KeyAlgorithm::EcdsaP384).unwrap();
        let (_, _, cert) = self_signed(&p384, "p384");
        assert!(build_pfx(&p256, &cert, &[], PASSWORD, "x").is_err());
        let rsa_a = rsa_2048_pkcs8();
        let rsa_b = rsa_2048_pkcs8();
        let (_, _, cert) = self_signed(&rsa_b, "rsa");
        assert!(build_pfx(&rsa_a, &cert, &[], PASSWORD, "x").is_err());
        assert!(build_pfx(&rsa_b, &cert, &[], PASSWORD, "x").is_ok());
    }

    #[test]
    fn malformed_input_and_passwords_are_refused() {
        let key = keys::generate_pkcs8(KeyAlgorithm::EcdsaP256).unwrap();
        let (_, _, cert) = self_signed(&key, "device");
        let bad = |r: Result<Vec<u8>, CaError>| r.unwrap_err().code();
        assert_eq!(
            bad(build_pfx(b"junk", &cert, &[], PASSWORD, "x")),
            "crypto_error"
        );
        assert_eq!(
            bad(build_pfx(&key, b"junk", &[], PASSWORD, "x")),
            "crypto_error"
        );
        assert_eq!(
            bad(build_pfx(&key, &cert, &[b"junk".to_vec()], PASSWORD, "x")),
            "crypto_error"
        );
        assert_eq!(
            bad(build_pfx(&key, &cert, &[], "", "x")),
            "password_too_short"
        );
    }

    #[test]
    fn passwords_are_checked_when_made() {
        let password = |text: &str, min: usize| {
            Pkcs12Password::new(Zeroizing::new(text.to_string()), min).map(|_| ())
        };
        let code = |r: Result<(), CaError>| r.unwrap_err().code();
        assert!(password("a long passphrase", 8).is_ok());
        // The BMP's last characters and non-Latin scripts are fine.
        assert!(password("пароль密码\u{FFFD}\u{FFEE}", 8).is_ok());
        assert_eq!(code(password("short", 8)), "password_too_short");
        assert_eq!(code(password("", 0)), "password_too_short");
        for bad in [
            "a long passphrase 😀",
            "a long passphrase \u{10000}",
            "a long\u{0}passphrase",
            "a long\npassphrase",
            "a long\u{7f}passphrase",
            "a long\u{85}passphrase",
        ] {
            let e = Pkcs12Password::new(Zeroizing::new(bad.to_string()), 8).unwrap_err();
            assert_eq!(e.code(), "password_not_allowed", "{bad:?}");
            assert!(!e.to_string().contains("passphrase"), "{e}");
        }
        assert!(password(&"x".repeat(MAX_PASSWORD_CHARS), 8).is_ok());
        assert_eq!(
            code(password(&"x".repeat(MAX_PASSWORD_CHARS + 1), 8)),
            "password_not_allowed"
        );
        let p = Pkcs12Password::new(Zeroizing::new("a long passphrase".into()), 8).unwrap();
        assert!(!format!("{p:?}").contains("passphrase"));
    }

    #[test]
    fn any_text_makes_a_friendly_name_that_build_pfx_takes() {
        assert_eq!(
            FriendlyName::new("CN=Maria Silva").as_str(),
            "CN=Maria Silva"
        );
        assert_eq!(
            FriendlyName::new("CN=Maria 😀\u{0} Silva").as_str(),
            "CN=Maria \u{FFFD}\u{FFFD} Silva"
        );
        let long = "é".repeat(MAX_FRIENDLY_NAME_CHARS + 10);
        assert_eq!(
            FriendlyName::new(&long).as_str().chars().count(),
            MAX_FRIENDLY_NAME_CHARS
        );
        let key = keys::generate_pkcs8(KeyAlgorithm::EcdsaP256).unwrap();
        let (_, _, cert) = self_signed(&key, "device");
        let pfx = build_pfx(&key, &cert, &[], PASSWORD, "CN=🔑 device").unwrap();
        let archive = p12_keystore::Pkcs12Archive::from_pkcs12(&pfx, PASSWORD).unwrap();
        assert_eq!(
            archive.keys[0].friendly_name.as_deref(),
            Some("CN=\u{FFFD} device")
        );
    }

    #[test]
    fn files_differ_by_salt_and_iv() {
        let key = keys::generate_pkcs8(KeyAlgorithm::EcdsaP256).unwrap();
        let (_, _, cert) = self_signed(&key, "device");
        let a = build_pfx(&key, &cert, &[], PASSWORD, "x").unwrap();
        let b = build_pfx(&key, &cert, &[], PASSWORD, "x").unwrap();
        assert_ne!(a, b);
        // The private scalar does not appear in clear.
        let info = pkcs8::PrivateKeyInfo::try_from(key.as_slice()).unwrap();
        let scalar = sec1::EcPrivateKey::try_from(info.private_key)
            .unwrap()
            .private_key;
        assert_eq!(scalar.len(), 32);
        assert!(!a.windows(scalar.len()).any(|w| w == scalar));
    }
}

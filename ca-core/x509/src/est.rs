//! The message formats of EST, Enrollment over Secure Transport (RFC 7030, with the
//! clarifications of RFC 8951), with no HTTP and no storage: the base64 bodies, the
//! certs-only CMS answers, the CSR attributes answer, the `multipart/mixed` answer of
//! server-side key generation, and HTTP Basic credentials (RFC 7617), which EST clients use to
//! present an enrolment's one-time code.
//!
//! Every structure is typed ASN.1 (the RustCrypto `cms`, `x509-cert` and `der` crates).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use der::asn1::{Any, ObjectIdentifier, SetOfVec};
use der::{Choice, Decode, Encode};
use zeroize::Zeroizing;

use crate::csr::{SubjectKeyType, MAX_CSR_DER};
use crate::error::CaError;
use crate::oid::{
    ID_AA_ASYMM_DECRYPT_KEY_ID, ID_AA_DECRYPT_KEY_ID, ID_EC_PUBLIC_KEY, ID_ED25519, RSA_ENCRYPTION,
    SECP256R1, SECP384R1,
};

/// Largest base64 body accepted, in bytes of text: a [`MAX_CSR_DER`] request in base64 with a
/// line break every 64 characters, and room for CRLFs.
pub const MAX_BODY: usize = MAX_CSR_DER / 3 * 4 + MAX_CSR_DER / 16 + 1024;

/// Why an EST request body or header is refused; each is a 400 (or 401 for credentials) in
/// plain text, never a server error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EstBodyError {
    /// The body is empty (or only white space).
    #[error("the body is empty; send the base64 DER of a PKCS#10 request")]
    Empty,
    /// The body is larger than [`MAX_BODY`].
    #[error("the body exceeds {MAX_BODY} bytes")]
    TooLarge,
    /// The body is not base64 (RFC 4648 section 4; white space and line breaks are allowed,
    /// RFC 8951 section 3.1).
    #[error("the body is not base64 (RFC 8951): {0}")]
    Base64(String),
    /// The decoded body is not one PKCS#10 request (RFC 2986).
    #[error("the body is not a DER PKCS#10 request: {0}")]
    NotPkcs10(String),
    /// A key identifier attribute of a `serverkeygen` request (RFC 7030 section 4.4.1) does
    /// not hold one non-empty OCTET STRING, or the request has more than one.
    #[error(
        "the request's DecryptKeyIdentifier or AsymmetricDecryptKeyIdentifier attribute is not \
         one non-empty OCTET STRING, or there are several (RFC 7030 section 4.4.1)"
    )]
    KeyIdentifier,
    /// The `Authorization` header is not `Basic` with base64 `user:password` (RFC 7617).
    #[error("the Authorization header is not HTTP Basic credentials (RFC 7617)")]
    Credentials,
}

/// Decodes an EST base64 body (RFC 7030 section 4 with RFC 8951 section 3.1: base64 whatever
/// the `Content-Transfer-Encoding` header says or whether it is present; white space and line
/// breaks anywhere are ignored).
pub fn decode_base64_body(body: &[u8]) -> Result<Vec<u8>, EstBodyError> {
    if body.len() > MAX_BODY {
        return Err(EstBodyError::TooLarge);
    }
    let text: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if text.is_empty() {
        return Err(EstBodyError::Empty);
    }
    STANDARD
        .decode(&text)
        .map_err(|e| EstBodyError::Base64(e.to_string()))
}

/// Decodes an EST PKCS#10 body (`application/pkcs10`, RFC 7030 section 4.2.1) to the DER of
/// the request, checking that it is exactly one `CertificationRequest` (RFC 2986 section 4.2);
/// its signature and contents are the CSR parser's ([`crate::csr`]) to check.
pub fn decode_pkcs10_body(body: &[u8]) -> Result<Vec<u8>, EstBodyError> {
    let der = decode_base64_body(body)?;
    if der.len() > MAX_CSR_DER {
        return Err(EstBodyError::TooLarge);
    }
    x509_cert::request::CertReq::from_der(&der)
        .map_err(|e| EstBodyError::NotPkcs10(e.to_string()))?;
    Ok(der)
}

/// Encodes DER as an EST base64 body: RFC 4648 base64 in lines of 64 characters ending in
/// CRLF (RFC 2045 section 6.8 allows at most 76).
pub fn encode_base64_body(der: &[u8]) -> String {
    let text = STANDARD.encode(der);
    let mut out = String::with_capacity(text.len() + text.len() / 32 + 2);
    for line in text.as_bytes().chunks(64) {
        // base64 is ASCII: every chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(line));
        out.push_str("\r\n");
    }
    out
}

/// A certs-only CMS message (RFC 7030 section 4.1.3, RFC 5751 section 3.2.2): a degenerate
/// `SignedData` (RFC 5652 section 5) with no content and no signers, carrying `certificates`
/// (DER each). This is the body of `application/pkcs7-mime; smime-type=certs-only`, before
/// base64.
pub fn certs_only(certificates: &[Vec<u8>]) -> Result<Vec<u8>, CaError> {
    use ::pkcs12::cms::cert::x509::Certificate;
    use ::pkcs12::cms::content_info::ContentInfo;
    use pkcs5::der::{Decode as _, Encode as _};
    let failed = |e: pkcs5::der::Error| CaError::Crypto(format!("certs-only CMS: {e}"));
    let certs = certificates
        .iter()
        .map(|der| Certificate::from_der(der))
        .collect::<Result<Vec<_>, _>>()
        .map_err(failed)?;
    ContentInfo::try_from(certs)
        .and_then(|info| info.to_der())
        .map_err(failed)
}

/// One element of a CSR attributes answer (RFC 7030 section 4.5.2, RFC 9908 section 3):
/// `AttrOrOID ::= CHOICE { oid OBJECT IDENTIFIER, attribute Attribute }`.
#[derive(Clone, Debug, PartialEq, Eq, Choice)]
pub enum AttrOrOid {
    /// An object identifier the request should use (a key algorithm, say).
    Oid(ObjectIdentifier),
    /// An attribute with the values the request should use (a key algorithm's parameters).
    Attribute(x509_cert::attr::Attribute),
}

/// The CSR attributes answer (RFC 7030 section 4.5.2, `CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF
/// AttrOrOID`) for a profile's key types: `rsaEncryption` and `id-Ed25519` as OIDs, and
/// `id-ecPublicKey` as an attribute whose values are the allowed curves (RFC 9908 section
/// 3.2 form). `None` when there is nothing to say (RFC 7030: answered 204).
pub fn csr_attrs(key_types: &[SubjectKeyType]) -> Result<Option<Vec<u8>>, CaError> {
    let failed = |e: der::Error| CaError::Crypto(format!("CSR attributes: {e}"));
    let mut attrs = Vec::new();
    let mut curves = SetOfVec::new();
    for key in key_types {
        match key {
            SubjectKeyType::EcP256 => curves
                .insert(Any::encode_from(&SECP256R1).map_err(failed)?)
                .map_err(failed)?,
            SubjectKeyType::EcP384 => curves
                .insert(Any::encode_from(&SECP384R1).map_err(failed)?)
                .map_err(failed)?,
            SubjectKeyType::Ed25519 => attrs.push(AttrOrOid::Oid(ID_ED25519)),
            SubjectKeyType::Rsa(_) => {
                if !attrs.contains(&AttrOrOid::Oid(RSA_ENCRYPTION)) {
                    attrs.push(AttrOrOid::Oid(RSA_ENCRYPTION));
                }
            }
        }
    }
    if !curves.is_empty() {
        attrs.push(AttrOrOid::Attribute(x509_cert::attr::Attribute {
            oid: ID_EC_PUBLIC_KEY,
            values: curves,
        }));
    }
    if attrs.is_empty() {
        return Ok(None);
    }
    attrs.to_der().map(Some).map_err(failed)
}

/// How a `serverkeygen` request asks for its server-generated key to be protected (RFC 7030
/// section 4.4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyEncryption {
    /// No encryption attribute: the key is protected by TLS alone (section 4.4.2).
    None,
    /// `DecryptKeyIdentifier` (section 4.4.1.1): a symmetric key shared with the server.
    Symmetric,
    /// `AsymmetricDecryptKeyIdentifier` (section 4.4.1.2): the subjectKeyIdentifier of the
    /// public key to encrypt to.
    Asymmetric(Vec<u8>),
}

/// Which encryption a PKCS#10 request (DER) asks for its server-generated key (RFC 7030
/// section 4.4.1.1 and 4.4.1.2): the `DecryptKeyIdentifier` or
/// `AsymmetricDecryptKeyIdentifier` attribute, each with exactly one OCTET STRING value
/// (`AsymmetricDecryptKeyIdentifier ::= OCTET STRING`, RFC 5958 appendix A; the symmetric
/// one is RFC 6032's `KeyIdentifier`, also an OCTET STRING), and not both.
pub fn key_encryption(csr_der: &[u8]) -> Result<KeyEncryption, EstBodyError> {
    let req = x509_cert::request::CertReq::from_der(csr_der)
        .map_err(|e| EstBodyError::NotPkcs10(e.to_string()))?;
    let mut asked = KeyEncryption::None;
    for attribute in req.info.attributes.iter() {
        let symmetric = attribute.oid == ID_AA_DECRYPT_KEY_ID;
        if !symmetric && attribute.oid != ID_AA_ASYMM_DECRYPT_KEY_ID {
            continue;
        }
        let identifier = match attribute.values.as_slice() {
            [value] => value
                .decode_as::<der::asn1::OctetString>()
                .ok()
                .filter(|id| !id.as_bytes().is_empty()),
            _ => None,
        }
        .ok_or(EstBodyError::KeyIdentifier)?;
        if asked != KeyEncryption::None {
            return Err(EstBodyError::KeyIdentifier);
        }
        asked = if symmetric {
            KeyEncryption::Symmetric
        } else {
            KeyEncryption::Asymmetric(identifier.as_bytes().to_vec())
        };
    }
    Ok(asked)
}

/// The boundary of [`serverkeygen_multipart`]: `-` and `_` never occur in base64, so it
/// cannot occur in a part.
pub const MULTIPART_BOUNDARY: &str = "est-ca_server-boundary";

/// The media type of the key part of a `serverkeygen` answer protected by TLS alone (RFC
/// 7030 section 4.4.2).
pub const PKCS8: &str = "application/pkcs8";
/// The media type of an encrypted key part of a `serverkeygen` answer (RFC 7030 section
/// 4.4.2): a CMS SignedData over an EnvelopedData ([`crate::server_key`]).
pub const SERVER_GENERATED_KEY: &str = "application/pkcs7-mime; smime-type=server-generated-key";

/// The `multipart/mixed` body of a server-side key generation answer (RFC 7030 section
/// 4.4.2, RFC 2046 section 5.1.1): the private key part of media type `key_type` ([`PKCS8`]:
/// unencrypted PKCS#8, which travels only inside TLS; [`SERVER_GENERATED_KEY`]: encrypted),
/// base64 DER `key`, then the certificate as `application/pkcs7-mime;
/// smime-type=certs-only` (base64 DER). The caller answers it with `Content-Type:
/// multipart/mixed; boundary=` [`MULTIPART_BOUNDARY`]. The key's text is wiped when the
/// answer is dropped.
pub fn serverkeygen_multipart(key_type: &str, key: &[u8], certs_only: &[u8]) -> Zeroizing<Vec<u8>> {
    let key = Zeroizing::new(encode_base64_body(key));
    let cert = encode_base64_body(certs_only);
    let b = MULTIPART_BOUNDARY;
    let mut body = Zeroizing::new(Vec::with_capacity(key.len() + cert.len() + 512));
    for part in [
        format!("--{b}\r\nContent-Type: {key_type}\r\nContent-Transfer-Encoding: base64\r\n\r\n")
            .as_bytes(),
        key.as_bytes(),
        format!(
            "--{b}\r\nContent-Type: application/pkcs7-mime; smime-type=certs-only\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n"
        )
        .as_bytes(),
        cert.as_bytes(),
        format!("--{b}--\r\n").as_bytes(),
    ] {
        body.extend_from_slice(part);
    }
    body
}

/// HTTP Basic credentials (RFC 7617): the user name and the password, wiped on drop.
pub struct BasicCredentials {
    /// The user name (for EST enrolment: the enrolment's id in hex).
    pub user: String,
    /// The password (the one-time code).
    pub password: Zeroizing<String>,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Longest `Authorization` header value read, in bytes.
const MAX_CREDENTIALS: usize = 1024;

/// Parses an `Authorization` header value of scheme `Basic` (RFC 7617 section 2: the scheme
/// is case-insensitive; the user name ends at the first colon; both are UTF-8). `Ok(None)`
/// when the scheme is another (a bearer token, say).
pub fn parse_basic(value: &[u8]) -> Result<Option<BasicCredentials>, EstBodyError> {
    if value.len() > MAX_CREDENTIALS {
        return Err(EstBodyError::Credentials);
    }
    let text = std::str::from_utf8(value).map_err(|_| EstBodyError::Credentials)?;
    let (scheme, rest) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = Zeroizing::new(
        STANDARD
            .decode(rest.trim())
            .map_err(|_| EstBodyError::Credentials)?,
    );
    let text = std::str::from_utf8(&decoded).map_err(|_| EstBodyError::Credentials)?;
    let (user, password) = text.split_once(':').ok_or(EstBodyError::Credentials)?;
    if user.chars().any(char::is_control) {
        return Err(EstBodyError::Credentials);
    }
    Ok(Some(BasicCredentials {
        user: user.to_string(),
        password: Zeroizing::new(password.to_string()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_bodies_ignore_white_space_and_refuse_garbage() {
        let der = b"\x30\x03\x02\x01\x05".to_vec();
        let text = encode_base64_body(&der);
        assert!(text.ends_with("\r\n"));
        assert_eq!(decode_base64_body(text.as_bytes()), Ok(der.clone()));
        assert_eq!(decode_base64_body(b" MAMC\r\nAQU=\n"), Ok(der));
        assert_eq!(decode_base64_body(b" \r\n"), Err(EstBodyError::Empty));
        assert!(matches!(
            decode_base64_body(b"not base64!"),
            Err(EstBodyError::Base64(_))
        ));
        assert!(matches!(
            decode_pkcs10_body(b"MAMCAQU="),
            Err(EstBodyError::NotPkcs10(_))
        ));
        assert_eq!(
            decode_base64_body(&vec![b'A'; MAX_BODY + 1]),
            Err(EstBodyError::TooLarge)
        );
    }

    #[test]
    fn basic_credentials_split_at_the_first_colon() {
        let header = format!("basic {}", STANDARD.encode("0a1b:co:de"));
        let c = parse_basic(header.as_bytes()).unwrap().unwrap();
        assert_eq!(c.user, "0a1b");
        assert_eq!(c.password.as_str(), "co:de");
        assert!(parse_basic(b"Bearer abc").unwrap().is_none());
        assert_eq!(
            parse_basic(b"Basic !!!").unwrap_err(),
            EstBodyError::Credentials
        );
        let no_colon = format!("Basic {}", STANDARD.encode("user"));
        assert!(parse_basic(no_colon.as_bytes()).is_err());
        assert!(!format!("{c:?}").contains("co:de"));
    }

    #[test]
    fn csr_attrs_name_the_key_algorithms_and_nothing_is_none() {
        assert_eq!(csr_attrs(&[]).unwrap(), None);
        let der = csr_attrs(&[
            SubjectKeyType::EcP256,
            SubjectKeyType::Rsa(2048),
            SubjectKeyType::Rsa(3072),
        ])
        .unwrap()
        .unwrap();
        let parsed = Vec::<AttrOrOid>::from_der(&der).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0], AttrOrOid::Oid(RSA_ENCRYPTION));
        assert!(
            matches!(&parsed[1], AttrOrOid::Attribute(ec)
                if ec.oid == ID_EC_PUBLIC_KEY && ec.values.len() == 1),
            "{parsed:?}"
        );
    }

    /// A DER PKCS#10 request (its signature is not the parser's concern here) with
    /// `attributes`, each an OID and its values.
    fn request_with(attributes: &[(ObjectIdentifier, Vec<Any>)]) -> Vec<u8> {
        use x509_cert::request::{CertReq, CertReqInfo, Version};
        let mut set = SetOfVec::new();
        for (oid, values) in attributes {
            set.insert(x509_cert::attr::Attribute {
                oid: *oid,
                values: SetOfVec::try_from(values.clone()).unwrap(),
            })
            .unwrap();
        }
        let spki = spki::SubjectPublicKeyInfoOwned {
            algorithm: spki::AlgorithmIdentifierOwned {
                oid: ID_ED25519,
                parameters: None,
            },
            subject_public_key: der::asn1::BitString::from_bytes(&[0; 32]).unwrap(),
        };
        CertReq {
            info: CertReqInfo {
                version: Version::V1,
                subject: Default::default(),
                public_key: spki,
                attributes: set,
            },
            algorithm: spki::AlgorithmIdentifierOwned {
                oid: ID_ED25519,
                parameters: None,
            },
            signature: der::asn1::BitString::from_bytes(&[0; 64]).unwrap(),
        }
        .to_der()
        .unwrap()
    }

    #[test]
    fn key_encryption_attributes_are_read_and_malformed_ones_refused() {
        let id =
            |bytes: &[u8]| Any::encode_from(&der::asn1::OctetString::new(bytes).unwrap()).unwrap();
        assert_eq!(key_encryption(&request_with(&[])), Ok(KeyEncryption::None));
        assert_eq!(
            key_encryption(&request_with(&[(
                ID_AA_ASYMM_DECRYPT_KEY_ID,
                vec![id(b"ski")]
            )])),
            Ok(KeyEncryption::Asymmetric(b"ski".to_vec()))
        );
        assert_eq!(
            key_encryption(&request_with(&[(ID_AA_DECRYPT_KEY_ID, vec![id(b"kek")])])),
            Ok(KeyEncryption::Symmetric)
        );
        for bad in [
            vec![(ID_AA_ASYMM_DECRYPT_KEY_ID, vec![id(b"")])],
            vec![(ID_AA_ASYMM_DECRYPT_KEY_ID, vec![id(b"a"), id(b"b")])],
            vec![(
                ID_AA_ASYMM_DECRYPT_KEY_ID,
                vec![Any::encode_from(&ID_ED25519).unwrap()],
            )],
            vec![
                (ID_AA_ASYMM_DECRYPT_KEY_ID, vec![id(b"a")]),
                (ID_AA_DECRYPT_KEY_ID, vec![id(b"b")]),
            ],
        ] {
            assert_eq!(
                key_encryption(&request_with(&bad)),
                Err(EstBodyError::KeyIdentifier),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_multipart_answer_has_both_parts_and_a_closing_boundary() {
        let body = serverkeygen_multipart(PKCS8, b"key", b"cert");
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert_eq!(text.matches(MULTIPART_BOUNDARY).count(), 3);
        assert!(text.contains("application/pkcs8\r\n"));
        assert!(text.contains(&encode_base64_body(b"key")));
        assert!(text.ends_with(&format!("--{MULTIPART_BOUNDARY}--\r\n")));
    }
}

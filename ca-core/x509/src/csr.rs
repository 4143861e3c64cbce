//! PKCS#10 certificate signing requests (RFC 2986): parse once, verify the self-signature
//! with `ring` (Ed25519 signatures of several requests together, with `ed25519-dalek`'s batch
//! verification), and extract what the profile check needs.
//!
//! Only the subject, the public key and the subject alternative names of the
//! `extensionRequest` attribute (RFC 2985 section 5.4.2) are taken from a CSR. Every other
//! requested extension is ignored: the profile, not the applicant, decides key usage,
//! extended key usage and the rest.

use std::net::IpAddr;

use der::Decode as _;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{self as oids, Oid};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::X509Name;

use crate::error::CaError;

/// Largest CSR accepted, in bytes of DER. An RSA-4096 CSR with a hundred SANs is ~6 KiB.
pub const MAX_CSR_DER: usize = 64 * 1024;

/// The subject key's type and size, named as in profiles (`ec-p256`, `rsa-3072`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubjectKeyType {
    /// ECDSA on P-256.
    EcP256,
    /// ECDSA on P-384.
    EcP384,
    /// Ed25519.
    Ed25519,
    /// RSA with the given modulus size in bits.
    Rsa(u32),
}

/// The key types a profile's `key_types` may name, as shown in messages.
pub const KEY_TYPE_NAMES: &str =
    "ec-p256, ec-p384, ed25519, rsa-BITS (BITS from 2048 to 8192, e.g. \
                                  rsa-2048, rsa-3072, rsa-4096)";

/// Smallest RSA modulus a CSR may carry, in bits.
pub const MIN_RSA_BITS: u32 = 2048;
/// Largest RSA modulus a CSR may carry, in bits (`ring` verifies RSA signatures up to it).
pub const MAX_RSA_BITS: u32 = 8192;

impl SubjectKeyType {
    /// Parses a profile name (`ec-p256`, `ec-p384`, `ed25519`, `rsa-BITS` with BITS from 2048
    /// to 8192); `None` for anything else.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ec-p256" => Some(SubjectKeyType::EcP256),
            "ec-p384" => Some(SubjectKeyType::EcP384),
            "ed25519" => Some(SubjectKeyType::Ed25519),
            _ => {
                let digits = name.strip_prefix("rsa-")?;
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let bits: u32 = digits.parse().ok()?;
                (MIN_RSA_BITS..=MAX_RSA_BITS)
                    .contains(&bits)
                    .then_some(SubjectKeyType::Rsa(bits))
            }
        }
    }

    /// The profile name of this key type.
    pub fn name(&self) -> String {
        match self {
            SubjectKeyType::EcP256 => "ec-p256".into(),
            SubjectKeyType::EcP384 => "ec-p384".into(),
            SubjectKeyType::Ed25519 => "ed25519".into(),
            SubjectKeyType::Rsa(bits) => format!("rsa-{bits}"),
        }
    }
}

impl std::fmt::Display for SubjectKeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// Written as its profile name (`ec-p256`, `rsa-3072`, ...).
impl serde::Serialize for SubjectKeyType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name())
    }
}

/// Read from its profile name; any other string is an error that lists the allowed names.
impl<'de> serde::Deserialize<'de> for SubjectKeyType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        SubjectKeyType::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown key type {name:?} (allowed: {KEY_TYPE_NAMES})"
            ))
        })
    }
}

/// A subject public key taken from a verified CSR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectKey {
    /// The key's type and size.
    pub key_type: SubjectKeyType,
    /// The content of the `subjectPublicKey` BIT STRING.
    pub bits: Vec<u8>,
}

/// The RSA public exponent F4 = 2^16 + 1, which profiles with `rsa_require_f4` ask for.
pub const RSA_F4: u64 = 65_537;

/// p = 2^255 - 19, little-endian: an Ed25519 point encoding whose y (the low 255 bits) is
/// at least this is non-canonical (RFC 8032 section 5.1.3).
const ED25519_P: [u8; 32] = {
    let mut p = [0xff; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};

impl SubjectKey {
    /// Refuses a key that no CA should certify, whatever the profile, with
    /// [`CaError::WeakKey`]: an Ed25519 key whose encoding is non-canonical or is a point of
    /// small order (RFC 8032 section 5.1.3; such a key "verifies" forged signatures such as
    /// R = B, s = 1 for any message), an EC point at infinity (SEC 1 section 2.3.4; points
    /// off the curve are refused by `ring` when the CSR's signature is verified), an RSA
    /// modulus that is even, an RSA public exponent that is even or below 3 (RFC 8017 section
    /// 3.1, CA/Browser Forum Baseline Requirements section 6.1.6). An RSA modulus whose
    /// factors can be computed is refused with its own error by [`crate::weak_rsa::check`]
    /// (Baseline Requirements section 6.1.1.3): one with a factor below 1000
    /// ([`CaError::WeakKeySmallFactor`]), the ROCA fingerprint ([`CaError::WeakKeyRoca`]),
    /// primes close enough for Fermat's method ([`CaError::WeakKeyFermat`]).
    pub fn check_strength(&self) -> Result<(), CaError> {
        self.checked_ed25519().map(drop)
    }

    /// [`SubjectKey::check_strength`], returning the decoded key when it is Ed25519 (so that
    /// batch verification need not decode it again).
    fn checked_ed25519(&self) -> Result<Option<ed25519_dalek::VerifyingKey>, CaError> {
        match self.key_type {
            SubjectKeyType::Ed25519 => ed25519_key(&self.bits).map(Some),
            SubjectKeyType::EcP256 | SubjectKeyType::EcP384 => {
                if self.bits.first() == Some(&0) {
                    return Err(CaError::WeakKey(
                        "the EC public key is the point at infinity".into(),
                    ));
                }
                Ok(None)
            }
            SubjectKeyType::Rsa(_) => check_rsa(&self.bits).map(|_| None),
        }
    }

    /// The RSA public exponent, when this is an RSA key whose exponent fits 64 bits.
    pub fn rsa_exponent(&self) -> Option<u64> {
        if !matches!(self.key_type, SubjectKeyType::Rsa(_)) {
            return None;
        }
        let key = pkcs1::RsaPublicKey::from_der(&self.bits).ok()?;
        be_u64(key.public_exponent.as_bytes())
    }
}

fn be_u64(bytes: &[u8]) -> Option<u64> {
    (bytes.len() <= 8).then(|| bytes.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b)))
}

/// Decodes an Ed25519 public key (RFC 8032 section 5.1.3), refusing a non-canonical
/// encoding (y not below p) and a point of small order.
fn ed25519_key(bits: &[u8]) -> Result<ed25519_dalek::VerifyingKey, CaError> {
    let bytes: [u8; 32] = bits
        .try_into()
        .map_err(|_| CaError::CsrMalformed("an Ed25519 public key has 32 octets".into()))?;
    let mut y = bytes;
    y[31] &= 0x7f;
    // Little-endian comparison of y with p, from the most significant octet.
    if y.iter().rev().cmp(ED25519_P.iter().rev()) != std::cmp::Ordering::Less {
        return Err(CaError::WeakKey(
            "the Ed25519 public key is not canonically encoded (y is not below 2^255 - 19)".into(),
        ));
    }
    let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| {
        CaError::WeakKey("the Ed25519 public key is not a point on the curve".into())
    })?;
    if key.is_weak() {
        return Err(CaError::WeakKey(
            "the Ed25519 public key is a point of small order, for which forged signatures \
             verify"
                .into(),
        ));
    }
    Ok(key)
}

/// Checks an RSAPublicKey (RFC 8017 appendix A.1.1): the modulus odd and none of the weak
/// moduli of [`crate::weak_rsa`], the exponent odd and at least 3.
fn check_rsa(bits: &[u8]) -> Result<(), CaError> {
    let key = pkcs1::RsaPublicKey::from_der(bits)
        .map_err(|e| CaError::CsrMalformed(format!("invalid RSA public key: {e}")))?;
    let n = key.modulus.as_bytes();
    if n.last().is_none_or(|b| b % 2 == 0) {
        return Err(CaError::WeakKey("the RSA modulus is even".into()));
    }
    crate::weak_rsa::check(n)?;
    let e = key.public_exponent.as_bytes();
    if e.last().is_none_or(|b| b % 2 == 0) {
        return Err(CaError::WeakKey("the RSA public exponent is even".into()));
    }
    if be_u64(e).is_some_and(|e| e < 3) {
        return Err(CaError::WeakKey(
            "the RSA public exponent is below 3".into(),
        ));
    }
    Ok(())
}

/// A subject attribute type this CA can carry into a certificate (RFC 5280 section 4.1.2.4,
/// RFC 4519).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttributeKind {
    /// commonName (2.5.4.3).
    CommonName,
    /// countryName (2.5.4.6), two letters.
    Country,
    /// stateOrProvinceName (2.5.4.8).
    State,
    /// localityName (2.5.4.7).
    Locality,
    /// organizationName (2.5.4.10).
    Organization,
    /// organizationalUnitName (2.5.4.11).
    OrganizationalUnit,
    /// serialNumber (2.5.4.5), e.g. a national identity number.
    SerialNumber,
    /// givenName (2.5.4.42).
    GivenName,
    /// surname (2.5.4.4).
    Surname,
    /// pseudonym (2.5.4.65).
    Pseudonym,
    /// organizationIdentifier (2.5.4.97), e.g. `VATBE-0123456789` (ETSI EN 319 412-1
    /// section 5.1.4).
    OrganizationIdentifier,
}

impl AttributeKind {
    /// Every supported attribute.
    pub const ALL: [AttributeKind; 11] = [
        AttributeKind::CommonName,
        AttributeKind::Country,
        AttributeKind::State,
        AttributeKind::Locality,
        AttributeKind::Organization,
        AttributeKind::OrganizationalUnit,
        AttributeKind::SerialNumber,
        AttributeKind::GivenName,
        AttributeKind::Surname,
        AttributeKind::Pseudonym,
        AttributeKind::OrganizationIdentifier,
    ];

    /// The RFC 4514 short name (`CN`, `O`, ...), also used in profiles.
    pub fn short_name(self) -> &'static str {
        match self {
            AttributeKind::CommonName => "CN",
            AttributeKind::Country => "C",
            AttributeKind::State => "ST",
            AttributeKind::Locality => "L",
            AttributeKind::Organization => "O",
            AttributeKind::OrganizationalUnit => "OU",
            AttributeKind::SerialNumber => "serialNumber",
            AttributeKind::GivenName => "GN",
            AttributeKind::Surname => "SN",
            AttributeKind::Pseudonym => "pseudonym",
            AttributeKind::OrganizationIdentifier => "organizationIdentifier",
        }
    }

    /// The attribute type's OID (RFC 4519 section 2, from [`crate::oid`]).
    pub fn object_identifier(self) -> der::asn1::ObjectIdentifier {
        match self {
            AttributeKind::CommonName => crate::oid::ID_AT_COMMON_NAME,
            AttributeKind::Country => crate::oid::ID_AT_COUNTRY_NAME,
            AttributeKind::State => crate::oid::ID_AT_STATE_OR_PROVINCE_NAME,
            AttributeKind::Locality => crate::oid::ID_AT_LOCALITY_NAME,
            AttributeKind::Organization => crate::oid::ID_AT_ORGANIZATION_NAME,
            AttributeKind::OrganizationalUnit => crate::oid::ID_AT_ORGANIZATIONAL_UNIT_NAME,
            AttributeKind::SerialNumber => crate::oid::ID_AT_SERIAL_NUMBER,
            AttributeKind::GivenName => crate::oid::ID_AT_GIVEN_NAME,
            AttributeKind::Surname => crate::oid::ID_AT_SURNAME,
            AttributeKind::Pseudonym => crate::oid::ID_AT_PSEUDONYM,
            AttributeKind::OrganizationIdentifier => crate::oid::ID_AT_ORGANIZATION_IDENTIFIER,
        }
    }

    /// The attribute type's OID as arcs, the form rcgen's `DnType::CustomDnType` takes.
    pub fn oid(self) -> Vec<u64> {
        self.object_identifier().arcs().map(u64::from).collect()
    }

    /// The upper bound on the value's length (RFC 5280 appendix A.1).
    pub fn max_len(self) -> usize {
        match self {
            AttributeKind::Country => 2,
            AttributeKind::State | AttributeKind::Locality => 128,
            AttributeKind::SerialNumber => 64,
            AttributeKind::GivenName | AttributeKind::Surname => 32768,
            AttributeKind::Pseudonym => 128,
            _ => 64,
        }
    }

    /// Looks an attribute up by its short name (case-insensitive) or OID arcs.
    pub fn from_short_name(name: &str) -> Option<Self> {
        AttributeKind::ALL
            .into_iter()
            .find(|k| k.short_name().eq_ignore_ascii_case(name))
    }

    fn from_oid(oid: &Oid<'_>) -> Option<Self> {
        AttributeKind::ALL
            .into_iter()
            .find(|k| k.object_identifier().as_bytes() == oid.as_bytes())
    }
}

/// One subject attribute, in the order it appears.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectAttribute {
    /// Which attribute.
    pub kind: AttributeKind,
    /// Its value as text.
    pub value: String,
}

/// A subject alternative name requested in a CSR (RFC 5280 section 4.2.1.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum San {
    /// dNSName.
    Dns(String),
    /// iPAddress.
    Ip(IpAddr),
    /// rfc822Name (an e-mail address).
    Email(String),
    /// uniformResourceIdentifier.
    Uri(String),
    /// otherName: a type OID and a value whose syntax a profile declares. A CSR's otherNames
    /// are never certified; the RA asserts them in the request's `identity`.
    OtherName(OtherName),
    /// Any other form, described for the error message; no profile allows these.
    Other(String),
}

/// How an otherName's value is encoded inside its `[0] EXPLICIT` wrapper (RFC 5280 section
/// 4.2.1.6): the type a profile's `san.other_names` rule declares.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum OtherNameEncoding {
    /// UTF8String.
    #[default]
    Utf8,
    /// PrintableString.
    Printable,
    /// IA5String.
    Ia5,
    /// OCTET STRING holding the value's ASCII octets (ICP-Brasil DOC-ICP-04 section 7.1.3).
    OctetString,
}

/// An otherName SAN (RFC 5280 section 4.2.1.6) whose value is text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherName {
    /// The type-id.
    pub type_id: der::asn1::ObjectIdentifier,
    /// The value as text.
    pub value: String,
    /// How the value is encoded.
    pub encoding: OtherNameEncoding,
}

impl OtherName {
    /// The prefix of an otherName in the API's list of SANs: `otherName:OID:value`.
    pub const PREFIX: &'static str = "otherName:";

    /// Reads `OID:value` (after [`OtherName::PREFIX`]); the encoding is the default until a
    /// profile's rule sets it.
    fn parse(s: &str) -> Option<OtherName> {
        let (oid, value) = s.split_once(':')?;
        Some(OtherName {
            type_id: der::asn1::ObjectIdentifier::new(oid).ok()?,
            value: value.to_string(),
            encoding: OtherNameEncoding::default(),
        })
    }

    /// Decodes the `[0] EXPLICIT` value of an otherName as x509-parser hands it over: one of
    /// the text types of [`OtherNameEncoding`].
    fn decode(type_id: &Oid<'_>, explicit: &[u8]) -> Result<OtherName, CaError> {
        use der::Decode;
        let bad = || CaError::CsrMalformed(format!("otherName {type_id} has no text value"));
        let outer = der::asn1::AnyRef::from_der(explicit).map_err(|_| bad())?;
        let inner = der::asn1::AnyRef::from_der(outer.value()).map_err(|_| bad())?;
        let encoding = match der::Tagged::tag(&inner) {
            der::Tag::Utf8String => OtherNameEncoding::Utf8,
            der::Tag::PrintableString => OtherNameEncoding::Printable,
            der::Tag::Ia5String => OtherNameEncoding::Ia5,
            der::Tag::OctetString => OtherNameEncoding::OctetString,
            _ => return Err(bad()),
        };
        let value = String::from_utf8(inner.value().to_vec()).map_err(|_| bad())?;
        let type_id =
            der::asn1::ObjectIdentifier::from_bytes(type_id.as_bytes()).map_err(|_| bad())?;
        Ok(OtherName {
            type_id,
            value,
            encoding,
        })
    }
}

impl San {
    /// The name's value as the API shows it: a host name, an IP address, an e-mail address,
    /// a URI, or `otherName:OID:value`.
    pub fn value(&self) -> String {
        match self {
            San::Dns(d) | San::Email(d) | San::Uri(d) | San::Other(d) => d.clone(),
            San::Ip(ip) => ip.to_string(),
            San::OtherName(o) => format!("{}{}:{}", OtherName::PREFIX, o.type_id, o.value),
        }
    }

    /// Reads a SAN as the API writes it: `otherName:OID:value`, an IP address if it parses
    /// as one, a URI if it holds `:` (no host name or mailbox does), an e-mail address if it
    /// holds `@`, a DNS name otherwise.
    pub fn from_value(s: &str) -> San {
        if let Some(rest) = s.strip_prefix(OtherName::PREFIX) {
            match OtherName::parse(rest) {
                Some(o) => San::OtherName(o),
                None => San::Other(s.chars().take(80).collect()),
            }
        } else if let Ok(ip) = s.parse::<IpAddr>() {
            San::Ip(ip)
        } else if s.contains(':') {
            San::Uri(s.to_string())
        } else if s.contains('@') {
            San::Email(s.to_string())
        } else {
            San::Dns(s.to_string())
        }
    }
}

impl std::fmt::Display for San {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            San::Dns(d) => write!(f, "DNS:{d}"),
            San::Ip(ip) => write!(f, "IP:{ip}"),
            San::Email(e) => write!(f, "email:{e}"),
            San::Uri(u) => write!(f, "URI:{u}"),
            San::OtherName(o) => write!(f, "otherName:{}", o.type_id),
            San::Other(o) => f.write_str(o),
        }
    }
}

/// A CSR whose self-signature verified: proof that the applicant holds the private key.
#[derive(Clone, Debug)]
pub struct VerifiedCsr {
    /// The subject key.
    pub key: SubjectKey,
    /// The subject, in order.
    pub subject: Vec<SubjectAttribute>,
    /// The requested subject alternative names.
    pub sans: Vec<San>,
}

/// Turns a PEM `CERTIFICATE REQUEST` (or `NEW CERTIFICATE REQUEST`) or raw DER into DER.
pub fn decode_input(input: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, CaError> {
    let trimmed = input.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN") {
        let pem =
            pem::parse(trimmed).map_err(|e| CaError::CsrMalformed(format!("invalid PEM: {e}")))?;
        if pem.tag() != "CERTIFICATE REQUEST" && pem.tag() != "NEW CERTIFICATE REQUEST" {
            return Err(CaError::CsrMalformed(format!(
                "expected a CERTIFICATE REQUEST PEM block, found {:?}",
                pem.tag()
            )));
        }
        Ok(std::borrow::Cow::Owned(pem.into_contents()))
    } else {
        Ok(std::borrow::Cow::Borrowed(input))
    }
}

/// Parses a CSR (PEM or DER), verifies its self-signature and extracts its subject, key and
/// subject alternative names.
pub fn parse_and_verify(input: &[u8]) -> Result<VerifiedCsr, CaError> {
    parse(input)?.verify()
}

/// A CSR that parsed, whose self-signature is still to be verified: [`ParsedCsr::verify`]
/// one at a time, or [`verify_all`] for several at once. Only verification yields the
/// [`VerifiedCsr`] that issuance needs.
pub struct ParsedCsr {
    key: SubjectKey,
    /// The decoded key of an Ed25519 request, checked not to be weak.
    ed25519_key: Option<ed25519_dalek::VerifyingKey>,
    /// The subject and SANs, or why they are refused (reported after the signature, so that
    /// a tampered request is `csr_signature_invalid` whatever else is wrong with it).
    names: Result<(Vec<SubjectAttribute>, Vec<San>), CaError>,
    algorithm: &'static dyn VerificationAlgorithm,
    /// The DER of certificationRequestInfo: what the signature covers.
    message: Vec<u8>,
    signature: Vec<u8>,
}

impl std::fmt::Debug for ParsedCsr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedCsr")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Parses a CSR (PEM or DER) and checks everything but its self-signature.
pub fn parse(input: &[u8]) -> Result<ParsedCsr, CaError> {
    let der = decode_input(input)?;
    if der.len() > MAX_CSR_DER {
        return Err(CaError::CsrMalformed(format!(
            "CSR of {} bytes exceeds the limit of {MAX_CSR_DER}",
            der.len()
        )));
    }
    let (rest, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|e| CaError::CsrMalformed(format!("not a PKCS#10 request: {e}")))?;
    if !rest.is_empty() {
        return Err(CaError::CsrMalformed(
            "trailing bytes after the request".into(),
        ));
    }
    let info = &csr.certification_request_info;
    if info.version.0 != 0 {
        return Err(CaError::CsrMalformed(format!(
            "unsupported version {}",
            info.version.0
        )));
    }
    let key = subject_key(&info.subject_pki)?;
    let ed25519_key = key.checked_ed25519()?;
    let algorithm = signature_algorithm(&csr, &key)?;
    let names =
        subject_attributes(&info.subject).and_then(|subject| Ok((subject, requested_sans(&csr)?)));
    Ok(ParsedCsr {
        algorithm,
        message: info.raw.to_vec(),
        signature: csr.signature_value.data.to_vec(),
        names,
        key,
        ed25519_key,
    })
}

impl ParsedCsr {
    /// Verifies the self-signature (proof of possession) with `ring`.
    pub fn verify(self) -> Result<VerifiedCsr, CaError> {
        UnparsedPublicKey::new(self.algorithm, &self.key.bits)
            .verify(&self.message, &self.signature)
            .map_err(|_| CaError::CsrSignatureInvalid)?;
        self.verified()
    }

    /// The request, once its signature has been verified.
    fn verified(self) -> Result<VerifiedCsr, CaError> {
        let (subject, sans) = self.names?;
        Ok(VerifiedCsr {
            key: self.key,
            subject,
            sans,
        })
    }

    /// The Ed25519 key and signature, in `ed25519-dalek`'s types, when this is an Ed25519
    /// request (whose key [`parse`] checked not to be of small order).
    fn ed25519(&self) -> Option<(ed25519_dalek::VerifyingKey, ed25519_dalek::Signature)> {
        let key = self.ed25519_key?;
        let signature = ed25519_dalek::Signature::from_slice(&self.signature).ok()?;
        Some((key, signature))
    }
}

/// Fewest Ed25519 requests worth verifying as a batch; below it each is verified alone.
const MIN_ED25519_BATCH: usize = 4;

/// Verifies the self-signatures of several requests; the results are in the same order.
///
/// Ed25519 signatures (RFC 8032 section 5.1.7) of at least [`MIN_ED25519_BATCH`] requests are
/// verified together with `ed25519-dalek`'s batch verification, which on this project's
/// machine costs about half of verifying each one (bench/RESULTS.md). If the batch fails,
/// each of its requests is verified alone, so one bad request refuses only itself. Batch
/// verification checks one random linear combination of the signatures' equations; it can
/// accept a signature that single verification refuses only when the signature was built
/// with small-order components, which takes the private key, so it proves possession just
/// the same. Weak (small-order) keys never get this far: [`parse`] refuses them. Other key
/// types are verified one by one with `ring`.
pub fn verify_all(requests: Vec<ParsedCsr>) -> Vec<Result<VerifiedCsr, CaError>> {
    let batchable: Vec<_> = requests.iter().map(ParsedCsr::ed25519).collect();
    let in_batch = batchable.iter().filter(|b| b.is_some()).count();
    let batch_ok = in_batch >= MIN_ED25519_BATCH && {
        let mut messages = Vec::with_capacity(in_batch);
        let mut signatures = Vec::with_capacity(in_batch);
        let mut keys = Vec::with_capacity(in_batch);
        for (request, (key, signature)) in requests
            .iter()
            .zip(&batchable)
            .filter_map(|(r, b)| Some((r, (*b)?)))
        {
            messages.push(request.message.as_slice());
            signatures.push(signature);
            keys.push(key);
        }
        ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
    };
    requests
        .into_iter()
        .zip(batchable)
        .map(|(request, batched)| {
            if batch_ok && batched.is_some() {
                request.verified()
            } else {
                request.verify()
            }
        })
        .collect()
}

/// The subject and SANs a CRMF certTemplate asks for (RFC 4211 section 5), read as a CSR's
/// are: `subject` the DER of its Name (absent: an empty subject), `subject_alt_name` the DER of
/// its SubjectAltName extension's value (absent: no SANs).
pub fn template_names(
    subject: Option<&[u8]>,
    subject_alt_name: Option<&[u8]>,
) -> Result<(Vec<SubjectAttribute>, Vec<San>), CaError> {
    let subject = match subject {
        Some(der) => {
            let (rest, name) = X509Name::from_der(der)
                .map_err(|e| CaError::CsrMalformed(format!("malformed subject: {e}")))?;
            if !rest.is_empty() {
                return Err(CaError::CsrMalformed(
                    "trailing bytes after the subject".into(),
                ));
            }
            subject_attributes(&name)?
        }
        None => Vec::new(),
    };
    let sans = match subject_alt_name {
        Some(der) => {
            let (rest, names) = x509_parser::extensions::SubjectAlternativeName::from_der(der)
                .map_err(|e| CaError::CsrMalformed(format!("malformed subjectAltName: {e}")))?;
            if !rest.is_empty() {
                return Err(CaError::CsrMalformed(
                    "trailing bytes after the subjectAltName".into(),
                ));
            }
            names
                .general_names
                .iter()
                .map(san_from)
                .collect::<Result<Vec<_>, _>>()?
        }
        None => Vec::new(),
    };
    Ok((subject, sans))
}

/// The subject key of a DER SubjectPublicKeyInfo (RFC 5280 section 4.1.2.7), e.g. of a key
/// the CA generated for a subscriber, checked as [`SubjectKey::check_strength`] does.
pub fn key_from_spki_der(spki: &[u8]) -> Result<SubjectKey, CaError> {
    use x509_parser::prelude::FromDer;
    let (rest, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki)
        .map_err(|e| CaError::InvalidRequest(format!("malformed public key: {e}")))?;
    if !rest.is_empty() {
        return Err(CaError::InvalidRequest(
            "trailing data after the public key".into(),
        ));
    }
    let key = subject_key(&info)?;
    key.check_strength()?;
    Ok(key)
}

/// The key of a SubjectPublicKeyInfo (RFC 5280 section 4.1.2.7), as the profiles check it:
/// its type and size, and its DER. Refuses key types the CA does not accept.
pub fn subject_key(
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
) -> Result<SubjectKey, CaError> {
    let bits = spki.subject_public_key.data.to_vec();
    let alg = &spki.algorithm.algorithm;
    let key_type = if *alg == oids::OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .ok_or_else(|| CaError::CsrMalformed("EC key without a named curve".into()))?;
        if curve == oids::OID_EC_P256 {
            SubjectKeyType::EcP256
        } else if curve == oids::OID_NIST_EC_P384 {
            SubjectKeyType::EcP384
        } else {
            return Err(unsupported_key(format!(
                "{} ({})",
                curve_name(&curve),
                curve.to_id_string()
            )));
        }
    } else if *alg == oids::OID_SIG_ED25519 {
        SubjectKeyType::Ed25519
    } else if *alg == oids::OID_PKCS1_RSAENCRYPTION {
        match spki.parsed() {
            // ring verifies RSA signatures of 2048 to 8192 bits only; anything else is refused
            // as a key type before its signature is looked at.
            Ok(PublicKey::RSA(rsa)) => match rsa.key_size() as u32 {
                bits @ 2048..=8192 => SubjectKeyType::Rsa(bits),
                bits => return Err(unsupported_key(format!("rsa-{bits}"))),
            },
            _ => return Err(CaError::CsrMalformed("invalid RSA public key".into())),
        }
    } else {
        let name = x509_parser::objects::oid2sn(alg, x509_parser::objects::oid_registry())
            .unwrap_or("an unknown algorithm");
        return Err(unsupported_key(format!("{name} ({})", alg.to_id_string())));
    };
    Ok(SubjectKey { key_type, bits })
}

fn unsupported_key(key: String) -> CaError {
    CaError::KeyTypeNotAllowed {
        key,
        profile: "this CA".into(),
        allowed: KEY_TYPE_NAMES.into(),
    }
}

/// The name users know an elliptic curve by (RFC 5480 section 2.1.1.1, SEC 2), for messages.
fn curve_name(curve: &x509_parser::der_parser::oid::Oid<'_>) -> String {
    [
        (crate::oid::SECP521R1, "P-521"),
        (crate::oid::SECP224R1, "P-224"),
        (crate::oid::SECP192R1, "P-192"),
        (crate::oid::SECP256K1, "secp256k1"),
    ]
    .into_iter()
    .find(|(oid, _)| oid.as_bytes() == curve.as_bytes())
    .map_or_else(
        || {
            x509_parser::objects::oid2sn(curve, x509_parser::objects::oid_registry())
                .map_or_else(|_| "an unknown curve".into(), str::to_string)
        },
        |(_, name)| name.to_string(),
    )
}

/// The signature algorithm of a CSR, which must fit its key.
fn signature_algorithm(
    csr: &X509CertificationRequest<'_>,
    key: &SubjectKey,
) -> Result<&'static dyn VerificationAlgorithm, CaError> {
    verification_algorithm(&csr.signature_algorithm.algorithm, key)
}

/// Verifies `signature` over `message` by `key` with the signature algorithm whose OID's
/// content octets are `sig_oid` (one a CSR may use, fitting the key): the proof of possession
/// of a CRMF request (RFC 4211 section 4.1) and a CMP message's signature protection (RFC
/// 9810 section 5.1.3.3). [`CaError::CsrSignatureAlgorithm`] for an algorithm that does not
/// fit, [`CaError::CsrSignatureInvalid`] for a signature that does not verify.
pub fn verify_signature(
    sig_oid: &[u8],
    key: &SubjectKey,
    message: &[u8],
    signature: &[u8],
) -> Result<(), CaError> {
    let oid = x509_parser::der_parser::oid::Oid::new(std::borrow::Cow::Borrowed(sig_oid));
    UnparsedPublicKey::new(verification_algorithm(&oid, key)?, &key.bits)
        .verify(message, signature)
        .map_err(|_| CaError::CsrSignatureInvalid)
}

/// The verification algorithm of signature algorithm `sig_oid` for `key`, which must fit it.
fn verification_algorithm(
    sig_oid: &x509_parser::der_parser::oid::Oid<'_>,
    key: &SubjectKey,
) -> Result<&'static dyn VerificationAlgorithm, CaError> {
    Ok(match key.key_type {
        SubjectKeyType::EcP256 if *sig_oid == oids::OID_SIG_ECDSA_WITH_SHA256 => {
            &signature::ECDSA_P256_SHA256_ASN1
        }
        SubjectKeyType::EcP256 if *sig_oid == oids::OID_SIG_ECDSA_WITH_SHA384 => {
            &signature::ECDSA_P256_SHA384_ASN1
        }
        SubjectKeyType::EcP384 if *sig_oid == oids::OID_SIG_ECDSA_WITH_SHA384 => {
            &signature::ECDSA_P384_SHA384_ASN1
        }
        SubjectKeyType::EcP384 if *sig_oid == oids::OID_SIG_ECDSA_WITH_SHA256 => {
            &signature::ECDSA_P384_SHA256_ASN1
        }
        SubjectKeyType::Ed25519 if *sig_oid == oids::OID_SIG_ED25519 => &signature::ED25519,
        SubjectKeyType::Rsa(_) if *sig_oid == oids::OID_PKCS1_SHA256WITHRSA => {
            &signature::RSA_PKCS1_2048_8192_SHA256
        }
        SubjectKeyType::Rsa(_) if *sig_oid == oids::OID_PKCS1_SHA384WITHRSA => {
            &signature::RSA_PKCS1_2048_8192_SHA384
        }
        SubjectKeyType::Rsa(_) if *sig_oid == oids::OID_PKCS1_SHA512WITHRSA => {
            &signature::RSA_PKCS1_2048_8192_SHA512
        }
        _ => {
            return Err(CaError::CsrSignatureAlgorithm(format!(
                "{} with a {} key",
                sig_oid.to_id_string(),
                key.key_type.name()
            )))
        }
    })
}

pub(crate) fn subject_attributes(name: &X509Name<'_>) -> Result<Vec<SubjectAttribute>, CaError> {
    let mut out = Vec::new();
    for rdn in name.iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err(CaError::SubjectNotAllowed(
                "multi-valued or empty relative distinguished names are not supported".into(),
            ));
        };
        let kind = AttributeKind::from_oid(attr.attr_type()).ok_or_else(|| {
            let oid = attr.attr_type();
            let name = match x509_parser::objects::oid2sn(oid, x509_parser::objects::oid_registry())
            {
                Ok(short) => format!("{short} ({})", oid.to_id_string()),
                Err(_) => oid.to_id_string(),
            };
            let supported: Vec<&str> = AttributeKind::ALL.iter().map(|k| k.short_name()).collect();
            CaError::SubjectNotAllowed(format!(
                "attribute {name} is not supported (supported: {})",
                supported.join(", ")
            ))
        })?;
        let value = attr.as_str().map_err(|_| {
            CaError::CsrMalformed(format!(
                "subject attribute {} is not a text string",
                kind.short_name()
            ))
        })?;
        out.push(SubjectAttribute {
            kind,
            value: value.to_owned(),
        });
    }
    Ok(out)
}

fn requested_sans(csr: &X509CertificationRequest<'_>) -> Result<Vec<San>, CaError> {
    let mut sans = Vec::new();
    let Some(extensions) = csr.requested_extensions() else {
        return Ok(sans);
    };
    for ext in extensions {
        match ext {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    sans.push(san_from(name)?);
                }
            }
            ParsedExtension::ParseError { error } => {
                return Err(CaError::CsrMalformed(format!(
                    "malformed requested extension: {error}"
                )))
            }
            _ => {}
        }
    }
    Ok(sans)
}

pub(crate) fn san_from(name: &GeneralName<'_>) -> Result<San, CaError> {
    Ok(match name {
        GeneralName::DNSName(d) => San::Dns((*d).to_owned()),
        GeneralName::RFC822Name(e) => San::Email((*e).to_owned()),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => San::Ip(IpAddr::from(
                <[u8; 4]>::try_from(*bytes).unwrap_or_default(),
            )),
            16 => San::Ip(IpAddr::from(
                <[u8; 16]>::try_from(*bytes).unwrap_or_default(),
            )),
            n => {
                return Err(CaError::CsrMalformed(format!(
                    "iPAddress SAN of {n} octets"
                )))
            }
        },
        GeneralName::URI(u) => San::Uri((*u).to_owned()),
        GeneralName::OtherName(type_id, explicit) => {
            San::OtherName(OtherName::decode(type_id, explicit)?)
        }
        GeneralName::Invalid(..) => {
            return Err(CaError::CsrMalformed(
                "invalid subject alternative name".into(),
            ))
        }
        other => San::Other(format!("{other:?}").chars().take(80).collect()),
    })
}

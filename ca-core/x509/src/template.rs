//! Per-profile DER templates of the certificates the CA issues (RFC 5280 section 4.1):
//! end-entity certificates, and subordinate CA certificates for a CA profile.
//!
//! Everything a profile fixes is encoded once, when the CA starts: the signature algorithm,
//! the issuer, and the extensions that are the same in every certificate of the profile
//! (authority key identifier, key usage, extended key usage, CRL distribution points, basic
//! constraints, authority information access, OCSP no-check). Issuing writes only what
//! differs per certificate (serial, validity, subject, subject public key, subject key
//! identifier, subject alternative names) between those pre-encoded runs, into one buffer,
//! signs the TBSCertificate where it lies and appends the signature.
//!
//! The extensions stand in the order rcgen writes them; the unit tests compare the output
//! with rcgen's, for every built-in profile and key type, byte for byte.

use der::asn1::{
    Ia5String, Ia5StringRef, ObjectIdentifier, OctetString, PrintableStringRef, Utf8StringRef,
};
use der::{Encode, Header, Length, Tag, TagNumber};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages,
};

use crate::conformance::reserved_policy;
use crate::csr::{AttributeKind, OtherName, OtherNameEncoding, San, SubjectAttribute, SubjectKey};
use crate::der_util::{self, encoding};
use crate::error::CaError;
use crate::oid;
use crate::policy::{certificate_policies, PolicyConfig, PolicyError};
use crate::profile::{self, Profile, Validation};
use crate::serial::Serial;
use crate::urls::Urls;

/// What a certificate holds beyond the parts its buffer is sized by (headers, version,
/// serial, validity, the subject key identifier), at most: the buffer is allocated once.
const FIXED_OVERHEAD: usize = 192;
/// The largest CA signature: RSA-4096.
const MAX_SIGNATURE: usize = 512;

/// What the CA contributes to every certificate it signs, whatever the profile: encoded once.
#[derive(Debug)]
pub(crate) struct IssuerParts {
    /// The signature's AlgorithmIdentifier (RFC 5280 sections 4.1.1.2 and 4.1.2.3).
    signature_algorithm: Vec<u8>,
    /// The issuer Name: the CA certificate's subject, byte for byte (RFC 5280 section 4.1.2.4).
    name: Vec<u8>,
    /// The authorityKeyIdentifier extension: the CA's subject key identifier (section 4.2.1.1).
    authority_key_id: Vec<u8>,
}

impl IssuerParts {
    /// The parts of the CA whose certificate has `subject_der` and `key_id` (its subject key
    /// identifier), signing with `signature_algorithm` (DER).
    pub(crate) fn new(
        signature_algorithm: Vec<u8>,
        subject_der: &[u8],
        key_id: &[u8],
    ) -> Result<Self, CaError> {
        let aki = AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(key_id).map_err(encoding)?),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        };
        Ok(IssuerParts {
            signature_algorithm,
            name: subject_der.to_vec(),
            authority_key_id: extension_der(oid::ID_CE_AUTHORITY_KEY_IDENTIFIER, false, &aki)?,
        })
    }
}

/// The URL-bearing extensions shared by every profile, DER-encoded (RFC 5280 sections
/// 4.2.1.13 and 4.2.2.1).
#[derive(Clone, Debug, Default)]
pub(crate) struct UrlExtensions {
    /// cRLDistributionPoints, when there are CRL URLs: one distribution point naming them all.
    crl_distribution_points: Option<Vec<u8>>,
    /// authorityInfoAccess, when there are OCSP or CA-issuer URLs.
    authority_info_access: Option<Vec<u8>>,
}

impl UrlExtensions {
    /// The extensions for these URLs.
    pub(crate) fn new(urls: &Urls) -> Result<Self, CaError> {
        let crl_distribution_points = if urls.crl.is_empty() {
            None
        } else {
            let points = CrlDistributionPoints(vec![DistributionPoint {
                distribution_point: Some(DistributionPointName::FullName(
                    urls.crl
                        .iter()
                        .map(|url| uri(url))
                        .collect::<Result<_, _>>()?,
                )),
                reasons: None,
                crl_issuer: None,
            }]);
            Some(extension_der(
                oid::ID_CE_CRL_DISTRIBUTION_POINTS,
                false,
                &points,
            )?)
        };
        let authority_info_access = authority_info_access(urls)?
            .map(|aia| extension_der(oid::ID_PE_AUTHORITY_INFO_ACCESS, false, &aia))
            .transpose()?;
        Ok(UrlExtensions {
            crl_distribution_points,
            authority_info_access,
        })
    }
}

/// The authorityInfoAccess content for the OCSP and CA-issuer URLs (RFC 5280 section
/// 4.2.2.1), when there are any.
fn authority_info_access(urls: &Urls) -> Result<Option<AuthorityInfoAccessSyntax>, CaError> {
    let mut access = Vec::new();
    for (method, list) in [
        (oid::ID_AD_OCSP, &urls.ocsp),
        (oid::ID_AD_CA_ISSUERS, &urls.ca_issuers),
    ] {
        for url in list {
            access.push(AccessDescription {
                access_method: method,
                access_location: uri(url)?,
            });
        }
    }
    Ok((!access.is_empty()).then_some(AuthorityInfoAccessSyntax(access)))
}

/// A uniformResourceIdentifier GeneralName.
fn uri(url: &str) -> Result<GeneralName, CaError> {
    Ia5String::new(url)
        .map(GeneralName::UniformResourceIdentifier)
        .map_err(|e| CaError::ca_material_from(format!("URL {url:?} is not IA5 text"), e))
}

/// One profile's template: the extensions it fixes, pre-encoded in rcgen's order around the
/// per-certificate ones, then the policy extensions.
#[derive(Debug)]
pub(crate) struct CertTemplate {
    /// keyUsage, extendedKeyUsage, nameConstraints (CA profiles) and cRLDistributionPoints:
    /// between subjectAltName and subjectKeyIdentifier.
    middle: Vec<u8>,
    /// Whether the certificate carries a subjectKeyIdentifier.
    subject_key_identifier: bool,
    /// basicConstraints (cA false, or true for a CA profile), authorityInfoAccess and
    /// id-pkix-ocsp-nocheck: after subjectKeyIdentifier.
    tail: Vec<u8>,
    /// certificatePolicies for each [`Validation`]: the standard's reserved OID, then the
    /// profile's.
    policies: [Vec<u8>; 2],
    /// qcStatements and the operator's extra extensions, last.
    end: Vec<u8>,
    /// The subject attributes written as PrintableString besides countryName and
    /// serialNumber.
    printable: Vec<AttributeKind>,
}

/// The per-certificate fields of a TBSCertificate.
pub(crate) struct CertFields<'a> {
    /// serialNumber (section 4.1.2.2).
    pub(crate) serial: &'a Serial,
    /// notBefore, seconds since the Unix epoch (section 4.1.2.5).
    pub(crate) not_before: i64,
    /// notAfter, seconds since the Unix epoch.
    pub(crate) not_after: i64,
    /// The subject, in order (section 4.1.2.6).
    pub(crate) subject: &'a [SubjectAttribute],
    /// The subject alternative names (section 4.2.1.6).
    pub(crate) sans: &'a [San],
    /// The subject public key (section 4.1.2.7).
    pub(crate) key: &'a SubjectKey,
    /// How the subject was validated: picks the certificatePolicies.
    pub(crate) validation: Validation,
}

impl CertTemplate {
    /// Encodes what `profile` fixes, with the CA's URL extensions. A CA profile
    /// ([`Profile::ca`]) writes its own keyUsage (keyCertSign, cRLSign), nameConstraints and
    /// basicConstraints (cA true, its path length), and always a subjectKeyIdentifier (RFC
    /// 5280 section 4.2.1.2: MUST in a CA certificate).
    pub(crate) fn new(profile: &Profile, urls: &UrlExtensions) -> Result<Self, CaError> {
        let mut middle = Vec::new();
        let ca = profile.ca.as_ref();
        if let Some(ca) = ca {
            middle.extend(ca.key_usage_extension()?);
        } else if !profile.key_usage.is_empty() {
            let usages = profile
                .key_usage
                .iter()
                .fold(der::flagset::FlagSet::default(), |set, ku| {
                    set | key_usage_flag(*ku)
                });
            // "When present, conforming CAs SHOULD mark this extension as critical."
            middle.extend(extension_der(
                oid::ID_CE_KEY_USAGE,
                true,
                &KeyUsage(usages),
            )?);
        }
        if !profile.extended_key_usage.is_empty() {
            let eku = ExtendedKeyUsage(
                profile
                    .extended_key_usage
                    .iter()
                    .map(|eku| extended_key_usage_oid(*eku))
                    .collect(),
            );
            middle.extend(extension_der(oid::ID_CE_EXT_KEY_USAGE, false, &eku)?);
        }
        if let Some(constraints) = ca
            .map(|ca| ca.name_constraints_extension())
            .transpose()?
            .flatten()
        {
            middle.extend(constraints);
        }
        if let (Some(crl_dp), true) = (
            &urls.crl_distribution_points,
            profile.crl_distribution_points,
        ) {
            middle.extend(crl_dp);
        }
        let mut tail = match ca {
            Some(ca) => ca.basic_constraints_extension()?,
            None => extension_der(
                oid::ID_CE_BASIC_CONSTRAINTS,
                true,
                &BasicConstraints {
                    ca: false,
                    path_len_constraint: None,
                },
            )?,
        };
        if let (Some(aia), true) = (&urls.authority_info_access, profile.authority_info_access) {
            tail.extend(aia);
        }
        if profile
            .extended_key_usage
            .contains(&profile::ExtendedKeyUsage::OcspSigning)
        {
            // id-pkix-ocsp-nocheck (RFC 6960 section 4.2.2.2.1): NULL, not critical.
            tail.extend(extension_der(
                oid::ID_PKIX_OCSP_NOCHECK,
                false,
                &der::asn1::Null,
            )?);
        }
        let policy = |e: PolicyError| CaError::ca_material_from("a profile's policies", e);
        let policies = [false, true].map(|individual| {
            let mut list: Vec<PolicyConfig> = reserved_policy(profile.standard, individual)
                .map(|oid| PolicyConfig {
                    oid: oid.to_string(),
                    cps: None,
                    notice: None,
                })
                .into_iter()
                .collect();
            list.extend(profile.certificate_policies.iter().cloned());
            if list.is_empty() {
                Ok(Vec::new())
            } else {
                certificate_policies(&list).map_err(policy)
            }
        });
        let [basic, individual] = policies;
        let mut end = Vec::new();
        if let Some(qc) = &profile.qc_statements {
            end.extend(qc.extension().map_err(policy)?);
        }
        for extra in &profile.extra_extensions {
            end.extend(extra.encode().map_err(policy)?);
        }
        let printable = profile
            .subject
            .printable
            .iter()
            .filter_map(|a| AttributeKind::from_short_name(a))
            .collect();
        Ok(CertTemplate {
            middle,
            subject_key_identifier: profile.subject_key_identifier || ca.is_some(),
            tail,
            policies: [basic?, individual?],
            end,
            printable,
        })
    }

    /// Encodes the certificate's TBSCertificate from this template and `fields`, followed by
    /// the signatureAlgorithm, in a buffer sized for the whole Certificate (RFC 5280 section
    /// 4.1), ready for [`ToBeSigned::assemble`] once the signature exists.
    pub(crate) fn to_be_signed(
        &self,
        issuer: &IssuerParts,
        fields: &CertFields<'_>,
    ) -> Result<ToBeSigned, CaError> {
        let subject: usize = fields.subject.iter().map(|a| a.value.len() + 16).sum();
        let sans: usize = fields.sans.iter().map(|s| san_len(s) + 4).sum();
        let mut buf = Vec::with_capacity(
            FIXED_OVERHEAD
                + 2 * issuer.signature_algorithm.len()
                + issuer.name.len()
                + issuer.authority_key_id.len()
                + self.middle.len()
                + self.tail.len()
                + self.policies[fields.validation as usize].len()
                + self.end.len()
                + fields.key.bits.len()
                + subject
                + sans
                + MAX_SIGNATURE,
        );
        buf.resize(ToBeSigned::HEADER_ROOM, 0);
        nested(&mut buf, Tag::Sequence, |out| {
            self.write_tbs(out, issuer, fields)
        })?;
        let tbs_end = buf.len();
        buf.extend_from_slice(&issuer.signature_algorithm);
        Ok(ToBeSigned { buf, tbs_end })
    }

    fn write_tbs(
        &self,
        out: &mut Vec<u8>,
        issuer: &IssuerParts,
        fields: &CertFields<'_>,
    ) -> Result<(), CaError> {
        // version [0] EXPLICIT INTEGER v3 (2)
        out.extend_from_slice(&[0xa0, 0x03, 0x02, 0x01, 0x02]);
        // The serial is 16 octets whose top bits are 01: a positive INTEGER as it stands.
        tlv(out, Tag::Integer, fields.serial.as_bytes())?;
        out.extend_from_slice(&issuer.signature_algorithm);
        out.extend_from_slice(&issuer.name);
        nested(out, Tag::Sequence, |out| {
            time(out, fields.not_before)?;
            time(out, fields.not_after)
        })?;
        name(out, fields.subject, &self.printable)?;
        crate::spki::write_spki(out, fields.key)?;
        let explicit3 = Tag::ContextSpecific {
            constructed: true,
            number: TagNumber::N3,
        };
        nested(out, explicit3, |out| {
            nested(out, Tag::Sequence, |out| {
                out.extend_from_slice(&issuer.authority_key_id);
                if !fields.sans.is_empty() {
                    // Critical when the subject is empty (RFC 5280 section 4.2.1.6).
                    subject_alt_name(out, fields.sans, fields.subject.is_empty())?;
                }
                out.extend_from_slice(&self.middle);
                if self.subject_key_identifier {
                    subject_key_identifier(out, &fields.key.bits)?;
                }
                out.extend_from_slice(&self.tail);
                out.extend_from_slice(&self.policies[fields.validation as usize]);
                out.extend_from_slice(&self.end);
                Ok(())
            })
        })
    }
}

/// A certificate's TBSCertificate (RFC 5280 section 4.1.1.1) waiting for its signature: the
/// bytes the CA key signs, already in the buffer that becomes the Certificate, so signing
/// may happen on another thread (a signing stage) without copying or re-encoding.
#[derive(Debug)]
pub struct ToBeSigned {
    /// [`ToBeSigned::HEADER_ROOM`] octets for the Certificate's header, the TBSCertificate,
    /// then the signatureAlgorithm.
    buf: Vec<u8>,
    tbs_end: usize,
}

impl ToBeSigned {
    /// Octets kept in front of the TBSCertificate for the Certificate SEQUENCE's header: a
    /// certificate of 256 to 65,535 octets, i.e. every ordinary one, needs exactly these.
    const HEADER_ROOM: usize = 4;

    /// The DER of the TBSCertificate: what the CA key signs.
    pub fn message(&self) -> &[u8] {
        &self.buf[Self::HEADER_ROOM..self.tbs_end]
    }

    /// Appends `signature` as the signatureValue BIT STRING and returns the Certificate's
    /// DER (RFC 5280 section 4.1.1.3).
    pub fn assemble(self, signature: &[u8]) -> Result<Vec<u8>, CaError> {
        let ToBeSigned { mut buf, .. } = self;
        bit_string(&mut buf, signature)?;
        let len = buf.len() - Self::HEADER_ROOM;
        let mut header = [0u8; 8];
        let header_len = Header::new(Tag::Sequence, Length::try_from(len).map_err(encoding)?)
            .and_then(|h| h.encode_to_slice(&mut header).map(|b| b.len()))
            .map_err(encoding)?;
        match Self::HEADER_ROOM.checked_sub(header_len) {
            Some(start) => {
                buf[start..Self::HEADER_ROOM].copy_from_slice(&header[..header_len]);
                buf.drain(..start);
            }
            None => {
                buf.splice(..Self::HEADER_ROOM, header[..header_len].iter().copied());
            }
        }
        Ok(buf)
    }
}

/// The subject key identifier of RFC 7093 section 2 method 1: the leftmost 160 bits of the
/// SHA-256 of the subjectPublicKey BIT STRING's value.
pub(crate) fn key_identifier(public_key_bits: &[u8]) -> [u8; 20] {
    let digest = ring::digest::digest(&ring::digest::SHA256, public_key_bits);
    let mut id = [0u8; 20];
    id.copy_from_slice(&digest.as_ref()[..20]);
    id
}

fn key_usage_flag(ku: profile::KeyUsage) -> KeyUsages {
    match ku {
        profile::KeyUsage::DigitalSignature => KeyUsages::DigitalSignature,
        profile::KeyUsage::NonRepudiation => KeyUsages::NonRepudiation,
        profile::KeyUsage::KeyEncipherment => KeyUsages::KeyEncipherment,
        profile::KeyUsage::KeyAgreement => KeyUsages::KeyAgreement,
        profile::KeyUsage::DataEncipherment => KeyUsages::DataEncipherment,
    }
}

/// The key purpose OIDs of RFC 5280 section 4.2.1.12.
fn extended_key_usage_oid(eku: profile::ExtendedKeyUsage) -> ObjectIdentifier {
    use profile::ExtendedKeyUsage as E;
    match eku {
        E::ServerAuth => oid::ID_KP_SERVER_AUTH,
        E::ClientAuth => oid::ID_KP_CLIENT_AUTH,
        E::CodeSigning => oid::ID_KP_CODE_SIGNING,
        E::EmailProtection => oid::ID_KP_EMAIL_PROTECTION,
        E::TimeStamping => oid::ID_KP_TIME_STAMPING,
        E::OcspSigning => oid::ID_KP_OCSP_SIGNING,
    }
}

/// A Name of one attribute per RDN: PrintableString for countryName and serialNumber (RFC 5280
/// appendix A.1) and the attributes in `printable`, UTF8String for the rest (section 4.1.2.6).
fn name(
    out: &mut Vec<u8>,
    subject: &[SubjectAttribute],
    printable: &[AttributeKind],
) -> Result<(), CaError> {
    nested(out, Tag::Sequence, |out| {
        for attr in subject {
            nested(out, Tag::Set, |out| {
                nested(out, Tag::Sequence, |out| {
                    attr.kind
                        .object_identifier()
                        .encode_to_vec(out)
                        .map_err(encoding)?;
                    let as_printable = match attr.kind {
                        AttributeKind::Country | AttributeKind::SerialNumber => true,
                        kind => printable.contains(&kind),
                    };
                    if as_printable {
                        PrintableStringRef::new(&attr.value)
                            .map_err(|_| {
                                CaError::SubjectNotAllowed(format!(
                                    "{} must be a PrintableString",
                                    attr.kind.short_name()
                                ))
                            })?
                            .encode_to_vec(out)
                    } else {
                        Utf8StringRef::new(&attr.value).and_then(|s| s.encode_to_vec(out))
                    }
                    .map(drop)
                    .map_err(encoding)
                })
            })?;
        }
        Ok(())
    })
}

fn san_len(san: &San) -> usize {
    match san {
        San::Dns(s) | San::Email(s) | San::Uri(s) | San::Other(s) => s.len(),
        San::OtherName(o) => o.value.len() + 32,
        San::Ip(_) => 16,
    }
}

fn subject_alt_name(out: &mut Vec<u8>, sans: &[San], critical: bool) -> Result<(), CaError> {
    nested(out, Tag::Sequence, |out| {
        oid::ID_CE_SUBJECT_ALT_NAME
            .encode_to_vec(out)
            .map_err(encoding)?;
        if critical {
            true.encode_to_vec(out).map_err(encoding)?;
        }
        nested(out, Tag::OctetString, |out| {
            nested(out, Tag::Sequence, |out| {
                for san in sans {
                    general_name(out, san)?;
                }
                Ok(())
            })
        })
    })
}

/// One GeneralName (RFC 5280 section 4.2.1.6), implicitly tagged.
fn general_name(out: &mut Vec<u8>, san: &San) -> Result<(), CaError> {
    let tag = |number| Tag::ContextSpecific {
        constructed: false,
        number,
    };
    let ia5 = |s: &str| {
        Ia5StringRef::new(s)
            .map(drop)
            .map_err(|_| CaError::SanNotAllowed(format!("{san} (not IA5 text)")))
    };
    match san {
        San::Dns(d) => {
            ia5(d)?;
            tlv(out, tag(TagNumber::N2), d.as_bytes())
        }
        San::Email(e) => {
            ia5(e)?;
            tlv(out, tag(TagNumber::N1), e.as_bytes())
        }
        San::Ip(std::net::IpAddr::V4(ip)) => tlv(out, tag(TagNumber::N7), &ip.octets()),
        San::Ip(std::net::IpAddr::V6(ip)) => tlv(out, tag(TagNumber::N7), &ip.octets()),
        San::Uri(u) => {
            ia5(u)?;
            tlv(out, tag(TagNumber::N6), u.as_bytes())
        }
        San::OtherName(other) => other_name(out, other),
        San::Other(_) => Err(CaError::SanNotAllowed(san.to_string())),
    }
}

/// An otherName: `[0] IMPLICIT SEQUENCE { type-id, [0] EXPLICIT value }` (RFC 5280 section
/// 4.2.1.6), the value in the encoding its profile rule declares.
fn other_name(out: &mut Vec<u8>, other: &OtherName) -> Result<(), CaError> {
    let context = |number| Tag::ContextSpecific {
        constructed: true,
        number,
    };
    let refused = || CaError::SanNotAllowed(format!("otherName {} (not encodable)", other.type_id));
    nested(out, context(TagNumber::N0), |out| {
        other.type_id.encode_to_vec(out).map_err(encoding)?;
        nested(out, context(TagNumber::N0), |out| {
            let value = other.value.as_str();
            match other.encoding {
                OtherNameEncoding::Utf8 => {
                    Utf8StringRef::new(value).and_then(|s| s.encode_to_vec(out))
                }
                OtherNameEncoding::Printable => PrintableStringRef::new(value)
                    .map_err(|_| refused())?
                    .encode_to_vec(out),
                OtherNameEncoding::Ia5 => Ia5StringRef::new(value)
                    .map_err(|_| refused())?
                    .encode_to_vec(out),
                OtherNameEncoding::OctetString => der::asn1::OctetStringRef::new(value.as_bytes())
                    .and_then(|s| s.encode_to_vec(out)),
            }
            .map(drop)
            .map_err(encoding)
        })
    })
}

fn subject_key_identifier(out: &mut Vec<u8>, public_key_bits: &[u8]) -> Result<(), CaError> {
    nested(out, Tag::Sequence, |out| {
        oid::ID_CE_SUBJECT_KEY_IDENTIFIER
            .encode_to_vec(out)
            .map_err(encoding)?;
        nested(out, Tag::OctetString, |out| {
            tlv(out, Tag::OctetString, &key_identifier(public_key_bits))
        })
    })
}

/// A validity time (RFC 5280 section 4.1.2.5).
fn time(out: &mut Vec<u8>, unix: i64) -> Result<(), CaError> {
    der_util::time(unix)?
        .encode_to_vec(out)
        .map(drop)
        .map_err(encoding)
}

/// A BIT STRING with no unused bits.
fn bit_string(out: &mut Vec<u8>, bits: &[u8]) -> Result<(), CaError> {
    header(out, Tag::BitString, bits.len() + 1)?;
    out.push(0);
    out.extend_from_slice(bits);
    Ok(())
}

/// A TLV of `tag` around `content`.
fn tlv(out: &mut Vec<u8>, tag: Tag, content: &[u8]) -> Result<(), CaError> {
    header(out, tag, content.len())?;
    out.extend_from_slice(content);
    Ok(())
}

fn header(out: &mut Vec<u8>, tag: Tag, len: usize) -> Result<(), CaError> {
    Header::new(tag, Length::try_from(len).map_err(encoding)?)
        .and_then(|h| h.encode_to_vec(out))
        .map(drop)
        .map_err(encoding)
}

/// A TLV of `tag` around what `content` appends: the header is written once the length is
/// known (DER's definite length, X.690 section 8.1.3), moving the content when the length
/// takes more than one octet.
fn nested(
    out: &mut Vec<u8>,
    tag: Tag,
    content: impl FnOnce(&mut Vec<u8>) -> Result<(), CaError>,
) -> Result<(), CaError> {
    let start = out.len();
    out.extend_from_slice(&[0, 0]);
    content(out)?;
    let len = out.len() - start - 2;
    let mut buf = [0u8; 8];
    let header = Header::new(tag, Length::try_from(len).map_err(encoding)?)
        .and_then(|h| h.encode_to_slice(&mut buf).map(|b| b.len()))
        .map_err(encoding)?;
    out.splice(start..start + 2, buf[..header].iter().copied());
    Ok(())
}

/// An Extension (RFC 5280 section 4.1) of `value`'s DER, itself DER-encoded.
fn extension_der(
    oid: ObjectIdentifier,
    critical: bool,
    value: &impl Encode,
) -> Result<Vec<u8>, CaError> {
    der_util::extension(oid, critical, value)?
        .to_der()
        .map_err(encoding)
}

#[cfg(test)]
mod tests {
    //! The template's output against rcgen's for the same fields: rcgen, which built every
    //! certificate before the templates, is the reference.

    use std::collections::BTreeMap;
    use std::sync::Arc;

    use keys::SystemRandom;
    use keys::{KeyAlgorithm, Signer, SoftwareKey};
    use rcgen::{
        CertificateParams, CidrSubnet, CrlDistributionPoint, CustomExtension,
        ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyIdMethod, KeyUsagePurpose,
        SanType, SerialNumber, SignatureAlgorithm,
    };
    use time::{Duration, OffsetDateTime};
    use x509_parser::prelude::FromDer;

    use super::*;
    use crate::authority::{
        create_root, distinguished_name, CertificateAuthority, SignerKey, BACKDATE,
    };
    use crate::ca_profile::{CaRules, Subtree};
    use crate::csr::SubjectKeyType;
    use crate::profile::{ExtendedKeyUsage, KeyUsage, ValidatedRequest, Validation};

    /// One URL of each kind (what the standards the built-in profiles claim need), or
    /// several.
    fn urls(full: bool) -> Urls {
        if !full {
            return Urls {
                crl: vec!["http://ca.test/crl".into()],
                ocsp: vec!["http://ca.test/ocsp".into()],
                ca_issuers: Vec::new(),
            };
        }
        Urls {
            crl: vec![
                "http://ca.test/crl".into(),
                "http://mirror.test/ca.crl".into(),
            ],
            ocsp: vec!["http://ca.test/ocsp".into()],
            ca_issuers: vec!["http://ca.test/ca.cer".into()],
        }
    }

    /// The built-in profiles with a subject key identifier (rcgen always writes one; the
    /// profiles without it are compared in `no_subject_key_identifier_when_the_profile_says`),
    /// and profiles that exercise every key usage, OCSP signing, policies with qualifiers,
    /// qcStatements, extra extensions and subordinate CAs (path length, name constraints of
    /// every kind, a CA key usage with and without digitalSignature).
    fn profiles() -> BTreeMap<String, Profile> {
        let mut profiles = Profile::builtin();
        for p in profiles.values_mut() {
            p.subject_key_identifier = true;
        }
        profiles.insert(
            "policies".into(),
            Profile {
                certificate_policies: vec![crate::policy::PolicyConfig {
                    oid: "1.3.6.1.4.1.55555.1.1".into(),
                    cps: Some("https://ca.test/cps".into()),
                    notice: Some("Test certificates only".into()),
                }],
                qc_statements: Some(crate::policy::QcStatementsConfig {
                    compliance: true,
                    qc_type: vec![crate::policy::QcType::Esign],
                    ..Default::default()
                }),
                extra_extensions: vec![crate::policy::ExtraExtension {
                    oid: "1.3.6.1.4.1.55555.2".into(),
                    critical: false,
                    der: "0c0474657374".into(),
                }],
                ..Profile::default()
            },
        );
        profiles.insert(
            "ocsp-responder".into(),
            Profile {
                key_usage: vec![KeyUsage::DigitalSignature],
                extended_key_usage: vec![ExtendedKeyUsage::OcspSigning],
                ..Profile::default()
            },
        );
        profiles.insert(
            "everything".into(),
            Profile {
                key_usage: vec![
                    KeyUsage::DigitalSignature,
                    KeyUsage::NonRepudiation,
                    KeyUsage::KeyEncipherment,
                    KeyUsage::DataEncipherment,
                    KeyUsage::KeyAgreement,
                ],
                extended_key_usage: vec![
                    ExtendedKeyUsage::ServerAuth,
                    ExtendedKeyUsage::ClientAuth,
                    ExtendedKeyUsage::EmailProtection,
                    ExtendedKeyUsage::CodeSigning,
                    ExtendedKeyUsage::TimeStamping,
                ],
                ..Profile::default()
            },
        );
        profiles.insert(
            "bare".into(),
            Profile {
                key_usage: Vec::new(),
                ..Profile::default()
            },
        );
        // Subordinate CAs: one with a path length and every kind of name constraint, one with
        // neither, without digitalSignature.
        profiles.insert(
            "sub-ca".into(),
            Profile {
                extended_key_usage: vec![
                    ExtendedKeyUsage::ServerAuth,
                    ExtendedKeyUsage::ClientAuth,
                ],
                ca: Some(CaRules {
                    path_len: Some(0),
                    permitted_dns: vec!["example.com".into(), ".example.org".into()],
                    excluded_dns: vec!["bad.example.com".into()],
                    permitted_ip: vec!["192.0.2.0/24".into(), "2001:db8::/32".into()],
                    excluded_ip: vec!["0.0.0.0/0".into()],
                    permitted_email: vec!["example.com".into()],
                    excluded_email: vec!["ceo@example.com".into()],
                    permitted_dirname: vec!["O=Example,C=PT".into()],
                    ..CaRules::default()
                }),
                ..Profile::default()
            },
        );
        profiles.insert(
            "open-ca".into(),
            Profile {
                subject_key_identifier: false,
                ca: Some(CaRules {
                    digital_signature: false,
                    ..CaRules::default()
                }),
                ..Profile::default()
            },
        );
        profiles
    }

    fn attr(kind: AttributeKind, value: &str) -> SubjectAttribute {
        SubjectAttribute {
            kind,
            value: value.into(),
        }
    }

    fn subjects() -> Vec<Vec<SubjectAttribute>> {
        vec![
            vec![attr(AttributeKind::CommonName, "www.example.com")],
            AttributeKind::ALL
                .into_iter()
                .map(|kind| {
                    let value = match kind {
                        AttributeKind::Country => "PT".to_string(),
                        AttributeKind::SerialNumber => "IDCPT-12345678".to_string(),
                        // UTF-8 beyond ASCII, and long enough for a two-octet length.
                        other => format!("Maria João {}", "x".repeat(130 + other.max_len() % 7)),
                    };
                    attr(kind, &value)
                })
                .collect(),
            Vec::new(),
        ]
    }

    fn san_sets() -> Vec<Vec<San>> {
        vec![
            Vec::new(),
            vec![San::Dns("www.example.com".into())],
            vec![
                San::Dns("*.example.com".into()),
                San::Ip("192.0.2.7".parse().unwrap()),
                San::Ip("2001:db8::1".parse().unwrap()),
                San::Email("maria@example.com".into()),
            ],
        ]
    }

    fn keys() -> Vec<SubjectKey> {
        let key = |key_type, len: usize| SubjectKey {
            key_type,
            bits: (0..len).map(|i| (i * 7 + 3) as u8).collect(),
        };
        vec![
            key(SubjectKeyType::EcP256, 65),
            key(SubjectKeyType::EcP384, 97),
            key(SubjectKeyType::Ed25519, 32),
            key(SubjectKeyType::Rsa(2048), 270),
        ]
    }

    /// An OID's arcs, as rcgen takes them.
    fn arcs(oid: ObjectIdentifier) -> Vec<u64> {
        oid.arcs().map(u64::from).collect()
    }

    /// The rcgen parameters that issued every certificate before the templates.
    fn reference(profile: &Profile, urls: &Urls, req: &ValidatedRequest) -> CertificateParams {
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = profile
            .key_usage
            .iter()
            .map(|ku| match ku {
                KeyUsage::DigitalSignature => KeyUsagePurpose::DigitalSignature,
                KeyUsage::NonRepudiation => KeyUsagePurpose::ContentCommitment,
                KeyUsage::KeyEncipherment => KeyUsagePurpose::KeyEncipherment,
                KeyUsage::KeyAgreement => KeyUsagePurpose::KeyAgreement,
                KeyUsage::DataEncipherment => KeyUsagePurpose::DataEncipherment,
            })
            .collect();
        if let Some(ca) = &profile.ca {
            params.is_ca = IsCa::Ca(match ca.path_len {
                Some(n) => rcgen::BasicConstraints::Constrained(n),
                None => rcgen::BasicConstraints::Unconstrained,
            });
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            if ca.digital_signature {
                params.key_usages.push(KeyUsagePurpose::DigitalSignature);
            }
            let subtrees = |list: Vec<Subtree>| {
                list.into_iter()
                    .map(|s| match s {
                        Subtree::Dns(d) => GeneralSubtree::DnsName(d),
                        Subtree::Email(e) => GeneralSubtree::Rfc822Name(e),
                        Subtree::Ip { address, prefix } => {
                            GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(address, prefix))
                        }
                        Subtree::DirName(attrs) => {
                            GeneralSubtree::DirectoryName(distinguished_name(&attrs).unwrap())
                        }
                    })
                    .collect()
            };
            let constraints = ca.name_constraints().unwrap();
            if !constraints.is_empty() {
                params.name_constraints = Some(rcgen::NameConstraints {
                    permitted_subtrees: subtrees(constraints.permitted),
                    excluded_subtrees: subtrees(constraints.excluded),
                });
            }
        }
        params.extended_key_usages = profile
            .extended_key_usage
            .iter()
            .map(|eku| match eku {
                ExtendedKeyUsage::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsage::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
                ExtendedKeyUsage::EmailProtection => ExtendedKeyUsagePurpose::EmailProtection,
                ExtendedKeyUsage::CodeSigning => ExtendedKeyUsagePurpose::CodeSigning,
                ExtendedKeyUsage::TimeStamping => ExtendedKeyUsagePurpose::TimeStamping,
                ExtendedKeyUsage::OcspSigning => ExtendedKeyUsagePurpose::OcspSigning,
            })
            .collect();
        if !urls.crl.is_empty() {
            params.crl_distribution_points = vec![CrlDistributionPoint {
                uris: urls.crl.clone(),
            }];
        }
        if let Some(aia) = authority_info_access(urls).unwrap() {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    &arcs(oid::ID_PE_AUTHORITY_INFO_ACCESS),
                    aia.to_der().unwrap(),
                ));
        }
        if profile
            .extended_key_usage
            .contains(&ExtendedKeyUsage::OcspSigning)
        {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    &arcs(oid::ID_PKIX_OCSP_NOCHECK),
                    vec![0x05, 0x00],
                ));
        }
        params.distinguished_name = distinguished_name(&req.subject).unwrap();
        params.subject_alt_names = req
            .sans
            .iter()
            .map(|san| match san {
                San::Dns(d) => SanType::DnsName(d.as_str().try_into().unwrap()),
                San::Email(e) => SanType::Rfc822Name(e.as_str().try_into().unwrap()),
                San::Ip(ip) => SanType::IpAddress(*ip),
                San::Uri(u) => SanType::URI(u.as_str().try_into().unwrap()),
                San::OtherName(_) | San::Other(_) => unreachable!(),
            })
            .collect();
        // rcgen writes custom extensions last, where the template writes the policy
        // extensions.
        let individual = req.validation == crate::profile::Validation::Individual;
        let mut policies: Vec<crate::policy::PolicyConfig> =
            crate::conformance::reserved_policy(profile.standard, individual)
                .map(|oid| crate::policy::PolicyConfig {
                    oid: oid.to_string(),
                    cps: None,
                    notice: None,
                })
                .into_iter()
                .collect();
        policies.extend(profile.certificate_policies.iter().cloned());
        let mut last = Vec::new();
        if !policies.is_empty() {
            last.push(crate::policy::certificate_policies(&policies).unwrap());
        }
        if let Some(qc) = &profile.qc_statements {
            last.push(qc.extension().unwrap());
        }
        for extra in &profile.extra_extensions {
            last.push(extra.encode().unwrap());
        }
        for der in last {
            let ext = <x509_cert::ext::Extension as der::Decode>::from_der(&der).unwrap();
            let mut custom = CustomExtension::from_oid_content(
                &arcs(ext.extn_id),
                ext.extn_value.as_bytes().to_vec(),
            );
            custom.set_criticality(ext.critical);
            params.custom_extensions.push(custom);
        }
        params.key_identifier_method =
            KeyIdMethod::PreSpecified(key_identifier(&req.key.bits).to_vec());
        params
    }

    /// The rcgen view of a subject key: only its SubjectPublicKeyInfo is written.
    struct SubjectPublicKey<'a>(&'a SubjectKey);

    impl rcgen::PublicKeyData for SubjectPublicKey<'_> {
        fn der_bytes(&self) -> &[u8] {
            &self.0.bits
        }

        fn algorithm(&self) -> &'static SignatureAlgorithm {
            match self.0.key_type {
                SubjectKeyType::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
                SubjectKeyType::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
                SubjectKeyType::Ed25519 => &rcgen::PKCS_ED25519,
                SubjectKeyType::Rsa(_) => &rcgen::PKCS_RSA_SHA256,
            }
        }
    }

    /// A signer of `algorithm` and its self-signed root certificate.
    fn root_ca(algorithm: KeyAlgorithm) -> (Arc<dyn Signer>, Vec<u8>) {
        let der = keys::generate_pkcs8(algorithm).unwrap();
        let signer: Arc<dyn Signer> = Arc::new(SoftwareKey::from_pkcs8(&der).unwrap());
        let subject = vec![
            attr(AttributeKind::Country, "PT"),
            attr(AttributeKind::CommonName, "Template Test CA"),
        ];
        let serial = Serial::random(&SystemRandom::new()).unwrap();
        // Long enough for the leaves of 10,000 days (GeneralizedTime), which end before it.
        let root = create_root(signer.clone(), &subject, 12_000, serial).unwrap();
        (signer, root)
    }

    fn tbs(der: &[u8]) -> Vec<u8> {
        let (rest, cert) = x509_parser::certificate::X509Certificate::from_der(der).unwrap();
        assert!(rest.is_empty());
        cert.tbs_certificate.as_ref().to_vec()
    }

    /// Every profile, URL set, subject, SAN set, subject key type and validity (UTCTime and
    /// GeneralizedTime), under CA keys of each kind of signature: the same certificate as
    /// rcgen's, to the byte where the signature is deterministic (Ed25519, RSA PKCS#1 v1.5),
    /// the same TBSCertificate where it is not (ECDSA).
    #[test]
    fn same_certificates_as_rcgen() {
        let rng = SystemRandom::new();
        let profiles = profiles();
        for algorithm in [
            KeyAlgorithm::Ed25519,
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::Rsa3072,
        ] {
            let (signer, root) = root_ca(algorithm);
            let rcgen_issuer =
                Issuer::from_ca_cert_der(&root.as_slice().into(), SignerKey(signer.clone()))
                    .unwrap();
            let deterministic = algorithm != KeyAlgorithm::EcdsaP256;
            let mut compared = 0;
            for full_urls in [false, true] {
                let urls = urls(full_urls);
                let ca =
                    CertificateAuthority::new(signer.clone(), vec![root.clone()], &profiles, &urls)
                        .unwrap();
                for (name, profile) in &profiles {
                    for subject in subjects() {
                        for sans in san_sets() {
                            for (i, key) in keys().into_iter().enumerate() {
                                let validity_days = if i == 0 { 10_000 } else { 90 };
                                let req = ValidatedRequest {
                                    subject: subject.clone(),
                                    sans: sans.clone(),
                                    key,
                                    validity_days,
                                    validation: if i % 2 == 0 {
                                        Validation::Basic
                                    } else {
                                        Validation::Individual
                                    },
                                };
                                let serial = Serial::random(&rng).unwrap();
                                let now = OffsetDateTime::now_utc();
                                let ours = ca.sign(name, serial, &req, now).unwrap();
                                let mut params = reference(profile, &urls, &req);
                                params.serial_number =
                                    Some(SerialNumber::from_slice(serial.as_bytes()));
                                params.not_before = ours.not_before;
                                params.not_after = ours.not_after;
                                let theirs = params
                                    .signed_by(&SubjectPublicKey(&req.key), &rcgen_issuer)
                                    .unwrap();
                                let context = format!(
                                    "{algorithm:?} {name} urls={full_urls} subject={} sans={} \
                                     key={:?}",
                                    req.subject.len(),
                                    req.sans.len(),
                                    req.key.key_type
                                );
                                if deterministic {
                                    assert_eq!(ours.der, theirs.der().as_ref(), "{context}");
                                } else {
                                    assert_eq!(tbs(&ours.der), tbs(theirs.der()), "{context}");
                                }
                                assert_eq!(
                                    ours.not_before,
                                    now.replace_nanosecond(0).unwrap() - BACKDATE
                                );
                                assert_eq!(
                                    ours.not_after,
                                    ours.not_before + Duration::days(validity_days.into())
                                        - Duration::seconds(1)
                                );
                                compared += 1;
                            }
                        }
                    }
                }
            }
            assert_eq!(compared, 2 * profiles.len() * 3 * 3 * 4);
        }
    }

    /// A profile without a subject key identifier issues exactly the certificate of the same
    /// profile with one, less that extension; the built-in TLS profile has none (BR
    /// 7.1.2.7.6) and carries the domain-validated policy.
    #[test]
    fn no_subject_key_identifier_when_the_profile_says() {
        let rng = SystemRandom::new();
        let (signer, root) = root_ca(KeyAlgorithm::Ed25519);
        let mut profiles = Profile::builtin();
        let without = profiles["tls-server"].clone();
        assert!(!without.subject_key_identifier);
        let mut with = without.clone();
        with.subject_key_identifier = true;
        profiles.insert("with-ski".into(), with);
        let ca = CertificateAuthority::new(signer, vec![root], &profiles, &urls(true)).unwrap();
        let req = ValidatedRequest {
            subject: Vec::new(),
            sans: san_sets()[1].clone(),
            key: keys()[0].clone(),
            validity_days: 90,
            validation: Validation::Basic,
        };
        let serial = Serial::random(&rng).unwrap();
        let now = OffsetDateTime::now_utc();
        let plain = ca.sign("tls-server", serial, &req, now).unwrap();
        let ski = ca.sign("with-ski", serial, &req, now).unwrap();
        let extensions = |der: &[u8]| {
            let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).unwrap();
            cert.extensions()
                .iter()
                .map(|e| (e.oid.to_id_string(), e.value.to_vec()))
                .collect::<Vec<_>>()
        };
        let mut expected = extensions(&ski.der);
        expected.retain(|(oid, _)| oid != "2.5.29.14");
        assert_eq!(extensions(&plain.der), expected);
        assert!(expected.iter().any(|(oid, value)| oid == "2.5.29.32"
            && value
                .windows(6)
                .any(|w| w == [0x06, 0x06, 0x67, 0x81, 0x0c, 0x01])));
    }

    /// The signature covers the TBSCertificate as written, under the CA's key.
    #[test]
    fn signature_verifies_under_the_ca_key() {
        let rng = SystemRandom::new();
        let (signer, root) = root_ca(KeyAlgorithm::EcdsaP256);
        let ca = CertificateAuthority::new(signer.clone(), vec![root], &profiles(), &urls(true))
            .unwrap();
        let req = ValidatedRequest {
            subject: subjects()[0].clone(),
            sans: san_sets()[1].clone(),
            key: keys()[0].clone(),
            validity_days: 90,
            validation: Validation::Basic,
        };
        let cert = ca
            .sign(
                "tls-server",
                Serial::random(&rng).unwrap(),
                &req,
                OffsetDateTime::now_utc(),
            )
            .unwrap();
        let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(&cert.der).unwrap();
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            signer.public_key_bits(),
        )
        .verify(
            parsed.tbs_certificate.as_ref(),
            &parsed.signature_value.data,
        )
        .unwrap();
    }

    /// What a name cannot carry is refused with the error the API reports, not encoded.
    #[test]
    fn unencodable_names_are_refused() {
        let rng = SystemRandom::new();
        let (signer, root) = root_ca(KeyAlgorithm::Ed25519);
        let ca = CertificateAuthority::new(signer, vec![root], &profiles(), &urls(false)).unwrap();
        let sign = |subject: Vec<SubjectAttribute>, sans: Vec<San>| {
            let req = ValidatedRequest {
                subject,
                sans,
                key: keys()[2].clone(),
                validity_days: 90,
                validation: Validation::Basic,
            };
            let serial = Serial::random(&rng).unwrap();
            ca.sign("personal", serial, &req, OffsetDateTime::now_utc())
        };
        assert!(matches!(
            sign(vec![attr(AttributeKind::Country, "P_")], Vec::new()),
            Err(CaError::SubjectNotAllowed(_))
        ));
        assert!(matches!(
            sign(Vec::new(), vec![San::Dns("bücher.example".into())]),
            Err(CaError::SanNotAllowed(_))
        ));
        assert!(matches!(
            sign(Vec::new(), vec![San::Email("maría@example.com".into())]),
            Err(CaError::SanNotAllowed(_))
        ));
        assert!(matches!(
            sign(Vec::new(), vec![San::Other("X400Address".into())]),
            Err(CaError::SanNotAllowed(_))
        ));
        assert!(matches!(
            sign(Vec::new(), vec![San::Uri("http://bücher.example/".into())]),
            Err(CaError::SanNotAllowed(_))
        ));
        assert!(sign(Vec::new(), vec![San::Dns("ok.example".into())]).is_ok());
    }
}

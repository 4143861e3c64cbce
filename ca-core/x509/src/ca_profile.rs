//! CA profiles: a profile with a `[profiles.NAME.ca]` table issues subordinate CA
//! certificates instead of end-entity ones.
//!
//! [`CaRules`] holds what such a certificate fixes beyond an end-entity certificate's: the
//! path length (RFC 5280 section 4.2.1.9), the name constraints (section 4.2.1.10) and whether
//! the key usage adds digitalSignature to keyCertSign and cRLSign (section 4.2.1.3). It
//! encodes the extensions that replace the end-entity ones in the profile's template:
//! basicConstraints (cA true, critical), keyUsage (critical) and nameConstraints (critical).
//! The profile's `extended_key_usage` restricts what the subordinate CA may issue (a TLS
//! issuing CA: serverAuth, clientAuth), and its subject, key and validity rules apply as for
//! any profile.
//!
//! Who may request a CA profile is the server's decision (only a token of role `ca-admin`);
//! the engine refuses everyone else (`CaError::ProfileRequiresCaAdmin`).

use std::net::IpAddr;

use der::asn1::{PrintableStringRef, Utf8StringRef};
use der::Encode;
use serde::{Deserialize, Serialize};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
use x509_parser::extensions::ParsedExtension;

use crate::csr::{AttributeKind, SubjectAttribute};
use crate::der_util::{self, encoding};
use crate::error::CaError;
use crate::hostname::ldh_problem;
use crate::oid;

/// The `[profiles.NAME.ca]` table: the profile issues subordinate CA certificates with these
/// constraints. Every field has a default: an empty table is a CA profile without a path
/// length or name constraints.
///
/// Name constraints (RFC 5280 section 4.2.1.10) bind every certificate below the subordinate
/// CA: a name of a constrained type must lie within one of the permitted subtrees of its type
/// (when there are any) and within none of the excluded ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaRules {
    /// pathLenConstraint: how many CA certificates may follow this one in a path (0: the
    /// subordinate CA issues end-entity certificates only); absent, no limit.
    pub path_len: Option<u8>,
    /// keyUsage carries digitalSignature besides keyCertSign and cRLSign, for what the
    /// subordinate CA signs with its key other than certificates and CRLs (its OCSP answers).
    pub digital_signature: bool,
    /// Permitted dNSName subtrees: `example.com` permits that name and every name below it,
    /// `.example.com` only the names below it.
    pub permitted_dns: Vec<String>,
    /// Excluded dNSName subtrees, in the same form; `""` excludes every DNS name.
    pub excluded_dns: Vec<String>,
    /// Permitted iPAddress ranges, in CIDR form: `192.0.2.0/24`, `2001:db8::/32`.
    pub permitted_ip: Vec<String>,
    /// Excluded iPAddress ranges, in CIDR form: `0.0.0.0/0` and `::/0` exclude every IPv4 or
    /// IPv6 address.
    pub excluded_ip: Vec<String>,
    /// Permitted rfc822Name subtrees: a mailbox (`ca@example.com`), every mailbox of a host
    /// (`example.com`) or of the hosts below a domain (`.example.com`).
    pub permitted_email: Vec<String>,
    /// Excluded rfc822Name subtrees, in the same form.
    pub excluded_email: Vec<String>,
    /// Permitted directoryName subtrees, RFC 4514 (`O=Example,C=PT`): a subject must begin
    /// with one of them.
    pub permitted_dirname: Vec<String>,
}

impl Default for CaRules {
    fn default() -> Self {
        CaRules {
            path_len: None,
            digital_signature: true,
            permitted_dns: Vec::new(),
            excluded_dns: Vec::new(),
            permitted_ip: Vec::new(),
            excluded_ip: Vec::new(),
            permitted_email: Vec::new(),
            excluded_email: Vec::new(),
            permitted_dirname: Vec::new(),
        }
    }
}

/// Why a `[profiles.NAME.ca]` table cannot be used: found when the configuration loads, or
/// when the CA starts with a certificate that cannot issue such CA certificates.
#[derive(Debug, thiserror::Error)]
pub enum CaRulesError {
    /// A DNS name constraint that is not a host or domain name.
    #[error(
        "{field}: {value:?} is not a DNS name constraint ({why}); give a name such as \
         example.com (it and every name below it) or .example.com (only the names below it)"
    )]
    Dns {
        /// `permitted_dns` or `excluded_dns`.
        field: &'static str,
        /// The value as configured.
        value: String,
        /// What is wrong.
        why: &'static str,
    },
    /// An IP constraint that is not an address range in CIDR form.
    #[error(
        "{field}: {value:?} is not an address range ({why}); give one in CIDR form, such as \
         192.0.2.0/24 or 2001:db8::/32"
    )]
    Ip {
        /// `permitted_ip` or `excluded_ip`.
        field: &'static str,
        /// The value as configured.
        value: String,
        /// What is wrong.
        why: &'static str,
    },
    /// An e-mail constraint that is not a mailbox, a host or a domain.
    #[error(
        "{field}: {value:?} is not an e-mail constraint ({why}); give a mailbox \
         (ca@example.com), a host (example.com) or a domain (.example.com)"
    )]
    Email {
        /// `permitted_email` or `excluded_email`.
        field: &'static str,
        /// The value as configured.
        value: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A directoryName constraint that is not a distinguished name.
    #[error("permitted_dirname: {value:?} is not a distinguished name in RFC 4514 form (O=Example,C=PT)")]
    DirName {
        /// The value as configured.
        value: String,
        /// Why it does not parse (boxed: it is rare, and keeps the error small).
        #[source]
        source: Box<CaError>,
    },
    /// The CA's own certificate limits the path below it more than the profile does.
    #[error(
        "the CA certificate's pathLenConstraint is {issuer}, so a CA certificate it issues \
         needs path_len {}",
        match issuer.checked_sub(1) {
            Some(max) => format!("of at most {max}"),
            None => "it cannot have: the CA may issue no CA certificate at all".to_string(),
        }
    )]
    PathLen {
        /// The issuing CA certificate's pathLenConstraint.
        issuer: u32,
    },
    /// The CA's own certificate is not one a CA certificate can be issued under.
    #[error("the CA certificate {0}, so it cannot issue CA certificates")]
    Issuer(&'static str),
}

/// One base name of a GeneralSubtree (RFC 5280 section 4.2.1.10), checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subtree {
    /// A dNSName: a host name, `.domain`, or `""` (every name).
    Dns(String),
    /// An rfc822Name: a mailbox, a host or `.domain`.
    Email(String),
    /// An iPAddress range: the address and the prefix length.
    Ip {
        /// The first address of the range (no bits set after the prefix).
        address: IpAddr,
        /// The prefix length: at most 32 (IPv4) or 128 (IPv6).
        prefix: u8,
    },
    /// A directoryName, its attributes in DER order.
    DirName(Vec<SubjectAttribute>),
}

/// A nameConstraints extension's content: the permitted and excluded subtrees.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameConstraints {
    /// permittedSubtrees, in the order configured: DNS, IP, e-mail, directory names.
    pub permitted: Vec<Subtree>,
    /// excludedSubtrees, in the order configured: DNS, IP, e-mail.
    pub excluded: Vec<Subtree>,
}

impl NameConstraints {
    /// Whether neither list has a subtree (then the extension is left out: RFC 5280 section
    /// 4.2.1.10 forbids an empty one).
    pub fn is_empty(&self) -> bool {
        self.permitted.is_empty() && self.excluded.is_empty()
    }
}

impl CaRules {
    /// Checks every constraint's syntax.
    pub fn check(&self) -> Result<(), CaRulesError> {
        self.name_constraints().map(drop)
    }

    /// The name constraints, parsed and checked.
    pub fn name_constraints(&self) -> Result<NameConstraints, CaRulesError> {
        let mut permitted = Vec::new();
        let mut excluded = Vec::new();
        for (field, list, out, allow_all) in [
            ("permitted_dns", &self.permitted_dns, &mut permitted, false),
            ("excluded_dns", &self.excluded_dns, &mut excluded, true),
        ] {
            for value in list {
                out.push(dns_subtree(field, value, allow_all)?);
            }
        }
        for (field, list, out) in [
            ("permitted_ip", &self.permitted_ip, &mut permitted),
            ("excluded_ip", &self.excluded_ip, &mut excluded),
        ] {
            for value in list {
                out.push(ip_subtree(field, value)?);
            }
        }
        for (field, list, out) in [
            ("permitted_email", &self.permitted_email, &mut permitted),
            ("excluded_email", &self.excluded_email, &mut excluded),
        ] {
            for value in list {
                out.push(email_subtree(field, value)?);
            }
        }
        for value in &self.permitted_dirname {
            let attrs =
                crate::name::parse_rfc4514(value).map_err(|source| CaRulesError::DirName {
                    value: value.clone(),
                    source: Box::new(source),
                })?;
            if attrs.is_empty() {
                return Err(CaRulesError::DirName {
                    value: value.clone(),
                    source: Box::new(CaError::InvalidRequest("an empty name".into())),
                });
            }
            permitted.push(Subtree::DirName(attrs));
        }
        Ok(NameConstraints {
            permitted,
            excluded,
        })
    }

    /// The key usage bits of the CA certificate: keyCertSign and cRLSign, and
    /// digitalSignature when [`CaRules::digital_signature`] says so.
    pub fn key_usages(&self) -> der::flagset::FlagSet<KeyUsages> {
        let mut set = KeyUsages::KeyCertSign | KeyUsages::CRLSign;
        if self.digital_signature {
            set |= KeyUsages::DigitalSignature;
        }
        set
    }

    /// The basicConstraints extension, DER: cA true, the path length when there is one,
    /// critical (RFC 5280 section 4.2.1.9: "Conforming CAs MUST include this extension in all
    /// CA certificates ... and MUST mark the extension as critical").
    pub fn basic_constraints_extension(&self) -> Result<Vec<u8>, CaError> {
        let value = BasicConstraints {
            ca: true,
            path_len_constraint: self.path_len,
        };
        der_util::extension(oid::ID_CE_BASIC_CONSTRAINTS, true, &value)?
            .to_der()
            .map_err(encoding)
    }

    /// The keyUsage extension, DER, critical (RFC 5280 section 4.2.1.3: keyCertSign for a key
    /// that verifies certificates, cRLSign for one that verifies CRLs).
    pub fn key_usage_extension(&self) -> Result<Vec<u8>, CaError> {
        der_util::extension(oid::ID_CE_KEY_USAGE, true, &KeyUsage(self.key_usages()))?
            .to_der()
            .map_err(encoding)
    }

    /// The nameConstraints extension, DER, critical (RFC 5280 section 4.2.1.10: "Conforming
    /// CAs MUST mark this extension as critical"); `None` without any constraint.
    pub fn name_constraints_extension(&self) -> Result<Option<Vec<u8>>, CaError> {
        let constraints = self
            .name_constraints()
            .map_err(|e| CaError::ca_material_from("a CA profile's name constraints", e))?;
        if constraints.is_empty() {
            return Ok(None);
        }
        let mut content = Vec::new();
        for (tag, subtrees) in [
            (0xa0, &constraints.permitted),
            (0xa1, &constraints.excluded),
        ] {
            if subtrees.is_empty() {
                continue;
            }
            let mut list = Vec::new();
            for subtree in subtrees {
                list.extend(tlv(0x30, &general_name(subtree)?));
            }
            content.extend(tlv(tag, &list));
        }
        let value = tlv(0x30, &content);
        let any = der::asn1::AnyRef::try_from(value.as_slice()).map_err(encoding)?;
        der_util::extension(oid::ID_CE_NAME_CONSTRAINTS, true, &any)?
            .to_der()
            .map_err(encoding)
            .map(Some)
    }

    /// Checks that the CA certificate `issuer_der` may issue CA certificates of these rules:
    /// it is a CA certificate whose keyUsage, if any, has keyCertSign, and whose
    /// pathLenConstraint, if any, leaves room for one more CA certificate with this
    /// [`CaRules::path_len`] (RFC 5280 section 4.2.1.9).
    pub fn check_issuer(&self, issuer_der: &[u8]) -> Result<(), CaRulesError> {
        let (_, cert) = x509_parser::parse_x509_certificate(issuer_der)
            .map_err(|_| CaRulesError::Issuer("does not parse"))?;
        let mut is_ca = false;
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::BasicConstraints(bc) => {
                    is_ca = bc.ca;
                    if let Some(issuer) = bc.path_len_constraint {
                        let room = issuer.checked_sub(1);
                        let fits = match (room, self.path_len) {
                            (None, _) => false,
                            (Some(_), None) => false,
                            (Some(max), Some(ours)) => u32::from(ours) <= max,
                        };
                        if !fits {
                            return Err(CaRulesError::PathLen { issuer });
                        }
                    }
                }
                ParsedExtension::KeyUsage(ku) if !ku.key_cert_sign() => {
                    return Err(CaRulesError::Issuer("has no keyCertSign in its keyUsage"));
                }
                _ => {}
            }
        }
        if !is_ca {
            return Err(CaRulesError::Issuer(
                "is not a CA certificate (basicConstraints cA)",
            ));
        }
        Ok(())
    }
}

fn dns_subtree(field: &'static str, value: &str, allow_all: bool) -> Result<Subtree, CaRulesError> {
    let refuse = |why| CaRulesError::Dns {
        field,
        value: value.to_string(),
        why,
    };
    if value.is_empty() {
        return if allow_all {
            Ok(Subtree::Dns(String::new()))
        } else {
            Err(refuse("empty: it would permit every name"))
        };
    }
    let host = value.strip_prefix('.').unwrap_or(value);
    match ldh_problem(host) {
        Some(why) => Err(refuse(why)),
        None => Ok(Subtree::Dns(value.to_string())),
    }
}

fn ip_subtree(field: &'static str, value: &str) -> Result<Subtree, CaRulesError> {
    let refuse = |why| CaRulesError::Ip {
        field,
        value: value.to_string(),
        why,
    };
    let (address, prefix) = value.split_once('/').ok_or_else(|| refuse("no /prefix"))?;
    let address: IpAddr = address
        .parse()
        .map_err(|_| refuse("not an IPv4 or IPv6 address"))?;
    let prefix: u8 = prefix
        .parse()
        .map_err(|_| refuse("the prefix is not a number"))?;
    let octets = octets(address);
    if usize::from(prefix) > octets.len() * 8 {
        return Err(refuse("the prefix is longer than the address"));
    }
    let mask = mask(octets.len(), prefix);
    if octets.iter().zip(&mask).any(|(a, m)| a & !m != 0) {
        return Err(refuse("bits are set after the prefix"));
    }
    Ok(Subtree::Ip { address, prefix })
}

fn email_subtree(field: &'static str, value: &str) -> Result<Subtree, CaRulesError> {
    let refuse = |why| CaRulesError::Email {
        field,
        value: value.to_string(),
        why,
    };
    let host = match value.rsplit_once('@') {
        Some((local, host)) => {
            let local_ok = !local.is_empty()
                && local.len() <= 64
                && local
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"@<>()[]\\,;:\"".contains(&b));
            if !local_ok {
                return Err(refuse("a malformed local part"));
            }
            host
        }
        None => value.strip_prefix('.').unwrap_or(value),
    };
    match ldh_problem(host) {
        Some(why) => Err(refuse(why)),
        None => Ok(Subtree::Email(value.to_string())),
    }
}

fn octets(address: IpAddr) -> Vec<u8> {
    match address {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// A network mask of `len` octets with the first `prefix` bits set.
fn mask(len: usize, prefix: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let bits = usize::from(prefix).saturating_sub(i * 8).min(8);
            match bits {
                0 => 0,
                n => 0xffu8 << (8 - n),
            }
        })
        .collect()
}

/// The GeneralName of a subtree's base (RFC 5280 sections 4.2.1.6 and 4.2.1.10): dNSName
/// `[2]` and rfc822Name `[1]` IA5String, iPAddress `[7]` the address and its mask, and
/// directoryName `[4]`, explicitly tagged since Name is a CHOICE.
fn general_name(subtree: &Subtree) -> Result<Vec<u8>, CaError> {
    match subtree {
        Subtree::Dns(name) => Ok(tlv(0x82, name.as_bytes())),
        Subtree::Email(name) => Ok(tlv(0x81, name.as_bytes())),
        Subtree::Ip { address, prefix } => {
            let mut bytes = octets(*address);
            let mask = mask(bytes.len(), *prefix);
            bytes.extend(mask);
            Ok(tlv(0x87, &bytes))
        }
        Subtree::DirName(attrs) => Ok(tlv(0xa4, &name(attrs)?)),
    }
}

/// A Name of one attribute per RDN: PrintableString for countryName and serialNumber (RFC 5280
/// appendix A.1), UTF8String for the rest (section 4.1.2.6), as the CA writes subjects.
fn name(attrs: &[SubjectAttribute]) -> Result<Vec<u8>, CaError> {
    let mut rdns = Vec::new();
    for attr in attrs {
        let mut atv = attr.kind.object_identifier().to_der().map_err(encoding)?;
        let value = match attr.kind {
            AttributeKind::Country | AttributeKind::SerialNumber => {
                PrintableStringRef::new(&attr.value)
                    .map_err(|_| {
                        CaError::ca_material(format!(
                            "permitted_dirname: {} must be a PrintableString",
                            attr.kind.short_name()
                        ))
                    })?
                    .to_der()
            }
            _ => Utf8StringRef::new(&attr.value).and_then(|s| s.to_der()),
        }
        .map_err(encoding)?;
        atv.extend(value);
        rdns.extend(tlv(0x31, &tlv(0x30, &atv)));
    }
    Ok(tlv(0x30, &rdns))
}

/// A DER TLV of the one-octet tag `tag` around `content` (definite length, X.690 section
/// 8.1.3).
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    if len < 0x80 {
        out.extend(u8::try_from(len).ok());
    } else {
        let bytes = len.to_be_bytes();
        let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        out.extend(u8::try_from(bytes.len() - first).ok().map(|n| 0x80 | n));
        out.extend_from_slice(&bytes[first..]);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::extensions::{GeneralName, X509Extension};
    use x509_parser::prelude::FromDer;

    fn rules() -> CaRules {
        CaRules {
            path_len: Some(0),
            permitted_dns: vec!["example.com".into()],
            excluded_dns: vec!["bad.example.com".into()],
            permitted_ip: vec!["192.0.2.0/24".into()],
            excluded_ip: vec!["::/0".into()],
            permitted_email: vec![".example.com".into()],
            permitted_dirname: vec!["O=Example,C=PT".into()],
            ..CaRules::default()
        }
    }

    fn parsed(der: &[u8]) -> X509Extension<'_> {
        let (rest, ext) = X509Extension::from_der(der).unwrap();
        assert!(rest.is_empty());
        ext
    }

    #[test]
    fn basic_constraints_are_critical_with_ca_true_and_the_path_length() {
        for path_len in [None, Some(0), Some(3)] {
            let der = CaRules {
                path_len,
                ..CaRules::default()
            }
            .basic_constraints_extension()
            .unwrap();
            let ext = parsed(&der);
            assert!(ext.critical);
            let ParsedExtension::BasicConstraints(bc) = ext.parsed_extension() else {
                unreachable!("not basicConstraints: {:?}", ext.parsed_extension());
            };
            assert!(bc.ca);
            assert_eq!(bc.path_len_constraint, path_len.map(u32::from));
        }
        // 30 0f 06 03 55 1d 13 01 01 ff 04 05 30 03 01 01 ff: cA TRUE, no path length.
        assert_eq!(
            CaRules::default().basic_constraints_extension().unwrap(),
            [
                0x30, 0x0f, 0x06, 0x03, 0x55, 0x1d, 0x13, 0x01, 0x01, 0xff, 0x04, 0x05, 0x30, 0x03,
                0x01, 0x01, 0xff
            ]
        );
    }

    #[test]
    fn key_usage_is_critical_key_cert_sign_and_crl_sign() {
        for digital_signature in [true, false] {
            let der = CaRules {
                digital_signature,
                ..CaRules::default()
            }
            .key_usage_extension()
            .unwrap();
            let ext = parsed(&der);
            assert!(ext.critical);
            let ParsedExtension::KeyUsage(ku) = ext.parsed_extension() else {
                unreachable!("not keyUsage");
            };
            assert!(ku.key_cert_sign() && ku.crl_sign());
            assert_eq!(ku.digital_signature(), digital_signature);
            assert!(!ku.key_encipherment() && !ku.non_repudiation() && !ku.key_agreement());
        }
    }

    #[test]
    fn name_constraints_encode_each_kind_of_subtree() {
        let der = rules().name_constraints_extension().unwrap().unwrap();
        let ext = parsed(&der);
        assert!(ext.critical);
        let ParsedExtension::NameConstraints(nc) = ext.parsed_extension() else {
            unreachable!("not nameConstraints: {:?}", ext.parsed_extension());
        };
        let permitted: Vec<String> = nc
            .permitted_subtrees
            .as_ref()
            .unwrap()
            .iter()
            .map(|s| match &s.base {
                GeneralName::DNSName(d) => format!("dns:{d}"),
                GeneralName::IPAddress(ip) => format!("ip:{}", hex::encode(ip)),
                GeneralName::RFC822Name(e) => format!("email:{e}"),
                GeneralName::DirectoryName(n) => format!("dir:{n}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            permitted,
            [
                "dns:example.com",
                "ip:c0000200ffffff00",
                "email:.example.com",
                "dir:C=PT, O=Example",
            ]
        );
        let excluded: Vec<String> = nc
            .excluded_subtrees
            .as_ref()
            .unwrap()
            .iter()
            .map(|s| match &s.base {
                GeneralName::DNSName(d) => format!("dns:{d}"),
                GeneralName::IPAddress(ip) => format!("ip:{}", hex::encode(ip)),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            excluded,
            ["dns:bad.example.com", &format!("ip:{}", "0".repeat(64))]
        );
        // Without constraints, no extension (RFC 5280: the extension is never empty).
        assert!(CaRules::default()
            .name_constraints_extension()
            .unwrap()
            .is_none());
        // Only exclusions: no permittedSubtrees at all.
        let only = CaRules {
            excluded_dns: vec![String::new()],
            ..CaRules::default()
        };
        let der = only.name_constraints_extension().unwrap().unwrap();
        let ext = parsed(&der);
        let ParsedExtension::NameConstraints(nc) = ext.parsed_extension() else {
            unreachable!("not nameConstraints");
        };
        assert!(nc.permitted_subtrees.is_none());
        assert_eq!(nc.excluded_subtrees.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn ip_ranges_are_cidr_with_a_clean_network() {
        let ip = |s: &str| ip_subtree("permitted_ip", s);
        assert_eq!(
            ip("10.1.0.0/16").unwrap(),
            Subtree::Ip {
                address: "10.1.0.0".parse().unwrap(),
                prefix: 16
            }
        );
        assert_eq!(mask(4, 20), [0xff, 0xff, 0xf0, 0]);
        assert_eq!(mask(16, 0), [0; 16]);
        assert_eq!(mask(4, 32), [0xff; 4]);
        ip("2001:db8::/32").unwrap();
        ip("0.0.0.0/0").unwrap();
        for (bad, why) in [
            ("192.0.2.0", "no /prefix"),
            ("192.0.2.1/24", "bits are set"),
            ("192.0.2.0/33", "longer than the address"),
            ("2001:db8::/129", "longer than the address"),
            ("example.com/8", "not an IPv4"),
            ("10.0.0.0/x", "not a number"),
        ] {
            let e = ip(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn names_are_checked() {
        let ok = |r: CaRules| r.check().is_ok();
        assert!(ok(rules()));
        let with = |f: fn(&mut CaRules)| {
            let mut r = CaRules::default();
            f(&mut r);
            r.check().unwrap_err().to_string()
        };
        assert!(with(|r| r.permitted_dns = vec![String::new()]).contains("permitted_dns"));
        assert!(with(|r| r.permitted_dns = vec!["*.example.com".into()]).contains("character"));
        assert!(with(|r| r.excluded_dns = vec!["a..example".into()]).contains("empty label"));
        assert!(with(|r| r.permitted_email = vec!["@example.com".into()]).contains("local part"));
        assert!(with(|r| r.permitted_dirname = vec!["XX=1".into()]).contains("RFC 4514"));
        assert!(with(|r| r.permitted_dirname = vec![String::new()]).contains("RFC 4514"));
        assert!(ok(CaRules {
            excluded_dns: vec![String::new()],
            permitted_dns: vec![".example.com".into()],
            permitted_email: vec!["ca@example.com".into(), "example.com".into()],
            ..CaRules::default()
        }));
    }

    #[test]
    fn the_issuer_must_leave_room_for_the_path_length() {
        let issuer = |path_len: Option<u8>| {
            let key = keys::generate_pkcs8(keys::KeyAlgorithm::EcdsaP256).unwrap();
            let signer = keys::SoftwareKey::from_pkcs8(&key).unwrap();
            let mut params = rcgen::CertificateParams::default();
            params.is_ca = match path_len {
                Some(n) => rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(n)),
                None => rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained),
            };
            params
                .self_signed(&crate::authority::SignerKey(std::sync::Arc::new(signer)))
                .unwrap()
                .der()
                .to_vec()
        };
        let rules = |path_len| CaRules {
            path_len,
            ..CaRules::default()
        };
        let unconstrained = issuer(None);
        rules(None).check_issuer(&unconstrained).unwrap();
        rules(Some(7)).check_issuer(&unconstrained).unwrap();
        let one = issuer(Some(1));
        rules(Some(0)).check_issuer(&one).unwrap();
        assert!(rules(Some(1)).check_issuer(&one).is_err());
        assert!(rules(None).check_issuer(&one).is_err());
        let zero = issuer(Some(0));
        let e = rules(Some(0)).check_issuer(&zero).unwrap_err().to_string();
        assert!(e.contains("no CA certificate at all"), "{e}");
    }
}

//! Pre-issuance checks: a profile that claims a standard is checked once, when it loads,
//! against the rules of that standard that its template fixes, so that no certificate it
//! issues can break them. (Boulder lints every certificate before signing; with templates
//! the fixed part is the same in every certificate, and the variable part — names, keys,
//! validity — is checked per request by [`crate::profile::Profile::validate`].)
//!
//! The rule list follows what pkilint's CA/Browser Forum linters report as ERROR for each
//! certificate type; the end-to-end tests issue from every built-in profile and run those
//! linters. `etsi-qcp-n-qscd` follows pkilint's ETSI linter (`lint_etsi_cert`) for its type
//! `QCP-N-QSCD-EIDAS-FINAL-CERTIFICATE`: an EU qualified certificate for a natural person's
//! electronic signatures, key in a QSCD (ETSI EN 319 412-2 and 319 412-5; policy QCP-n-qscd,
//! 0.4.0.194112.1.2, of EN 319 411-2), checked end to end on docs/profiles/etsi-qcp-n-qscd.toml.
//!
//! A CA profile (`[profiles.NAME.ca]`, [`crate::ca_profile`]) passes the rules of a CA
//! certificate whatever its standard (basicConstraints and keyUsage critical with cA and
//! keyCertSign, read back from the encoded extensions; key types fit for a CA; a subject; a
//! subjectKeyIdentifier), and under `cabf-serverauth-dv` those of a technically constrained
//! TLS subordinate CA (TLS BR 7.1.2.5: extendedKeyUsage serverAuth, nameConstraints over
//! every name type), which pkilint checks as `INTERNAL-CONSTRAINED-TLS-CA`.

use std::net::IpAddr;

use x509_parser::extensions::{ParsedExtension, X509Extension};
use x509_parser::prelude::FromDer;

use crate::ca_profile::{CaRules, Subtree};
use crate::csr::{AttributeKind, SubjectKeyType};
use crate::oid;
use crate::profile::{
    tls_br_validity_schedule, CnSource, ExtendedKeyUsage, KeyUsage, Profile, ProfileError, Standard,
};
use crate::urls::Urls;

/// A rule broken: the rule with its section, and what the profile has instead.
type Finding = (&'static str, String);

/// Checks `profile` (named `name`) against the rules of the standard it claims.
pub fn check(profile: &Profile, name: &str) -> Result<(), ProfileError> {
    let finding = match &profile.ca {
        Some(ca) => ca_certificate(profile, ca).or_else(|| match profile.standard {
            Standard::Rfc5280 => None,
            Standard::CabfServerauthDv => serverauth_constrained_ca(profile, ca),
            Standard::CabfSmimeStrict => Some((
                "a CA profile claims rfc5280 or cabf-serverauth-dv (S/MIME subordinate CAs are \
                 not supported)",
                "standard = cabf-smime-strict".to_string(),
            )),
            Standard::EtsiQcpNQscd => Some((
                "a CA profile claims rfc5280 or cabf-serverauth-dv (ETSI qualified CA \
                 certificates are not supported)",
                "standard = etsi-qcp-n-qscd".to_string(),
            )),
        }),
        None => match profile.standard {
            Standard::Rfc5280 => None,
            Standard::CabfServerauthDv => serverauth_dv(profile),
            Standard::CabfSmimeStrict => smime_strict(profile),
            Standard::EtsiQcpNQscd => etsi_qcp_n_qscd(profile),
        },
    };
    match finding.or_else(|| reserved_policies(profile)) {
        None => Ok(()),
        Some((rule, found)) => Err(nonconformant(profile, name, rule, found)),
    }
}

/// Checks that the CA's URLs give `profile` what its standard requires in every
/// certificate: an OCSP or issuer URL for authorityInfoAccess (TLS BR 7.1.2.7.7), a CRL
/// URL for cRLDistributionPoints (S/MIME BR 7.1.2.3 (b)), an http(s) issuer URL and an
/// http/ldap CRL or http(s) OCSP URL (ETSI EN 319 412-2 4.3.11, 4.4.1).
pub fn check_urls(profile: &Profile, name: &str, urls: &Urls) -> Result<(), ProfileError> {
    let finding = match profile.standard {
        Standard::Rfc5280 => None,
        Standard::CabfServerauthDv if profile.ca.is_some() => urls.crl.is_empty().then(|| {
            (
                "cRLDistributionPoints must be present in a TLS CA certificate (TLS BR \
                 7.1.2.5.1)",
                "no [urls] crl".to_string(),
            )
        }),
        Standard::CabfServerauthDv => {
            (urls.ocsp.is_empty() && urls.ca_issuers.is_empty()).then(|| {
                (
                    "authorityInformationAccess must be present (TLS BR 7.1.2.7.7)",
                    "no [urls] ocsp or ca_issuers".to_string(),
                )
            })
        }
        Standard::CabfSmimeStrict => urls.crl.is_empty().then(|| {
            (
                "cRLDistributionPoints must be present (S/MIME BR 7.1.2.3 (b))",
                "no [urls] crl".to_string(),
            )
        }),
        Standard::EtsiQcpNQscd => etsi_urls(profile, urls),
    };
    match finding {
        None => Ok(()),
        Some((rule, found)) => Err(nonconformant(profile, name, rule, found)),
    }
}

/// Checks that the CA certificate `issuer_der` may issue the CA certificates of `profile`, if
/// it is a CA profile: a CA certificate with keyCertSign whose path length leaves room for
/// them ([`CaRules::check_issuer`]); and, under `etsi-qcp-n-qscd`, that its subject names
/// the issuer as EN 319 412-2 wants it in every certificate ([`etsi_issuer`]).
pub fn check_issuer(profile: &Profile, name: &str, issuer_der: &[u8]) -> Result<(), ProfileError> {
    if profile.standard == Standard::EtsiQcpNQscd {
        if let Some((rule, found)) = etsi_issuer(issuer_der) {
            return Err(nonconformant(profile, name, rule, found));
        }
    }
    match &profile.ca {
        Some(ca) => ca
            .check_issuer(issuer_der)
            .map_err(|source| ProfileError::Ca {
                profile: name.to_string(),
                source: Box::new(source),
            }),
        None => Ok(()),
    }
}

/// The name of a standard as the configuration writes it.
pub fn standard_name(standard: Standard) -> &'static str {
    match standard {
        Standard::Rfc5280 => "rfc5280",
        Standard::CabfServerauthDv => "cabf-serverauth-dv",
        Standard::CabfSmimeStrict => "cabf-smime-strict",
        Standard::EtsiQcpNQscd => "etsi-qcp-n-qscd",
    }
}

fn nonconformant(profile: &Profile, name: &str, rule: &'static str, found: String) -> ProfileError {
    ProfileError::Nonconformant {
        profile: name.to_string(),
        standard: standard_name(profile.standard),
        rule,
        found,
    }
}

/// The extended key usages are serverAuth, optionally with clientAuth, and nothing else.
fn serverauth_eku(p: &Profile, rule: &'static str) -> Option<Finding> {
    let ok = p.extended_key_usage.contains(&ExtendedKeyUsage::ServerAuth)
        && p.extended_key_usage.iter().all(|e| {
            matches!(
                e,
                ExtendedKeyUsage::ServerAuth | ExtendedKeyUsage::ClientAuth
            )
        });
    (!ok).then(|| (rule, format!("{:?}", p.extended_key_usage)))
}

/// TLS BR section 7.1.2.7: a domain-validated subscriber certificate.
fn serverauth_dv(p: &Profile) -> Option<Finding> {
    cabf_key_types(p)
        .or_else(|| {
            serverauth_eku(
                p,
                "extendedKeyUsage is serverAuth, optionally clientAuth (TLS BR 7.1.2.7.10)",
            )
        })
        .or_else(|| {
            key_usage(
                p,
                &[KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment],
                "keyUsage is digitalSignature, and keyEncipherment only for RSA keys (TLS BR \
                 7.1.2.7.11)",
            )
        })
        .or_else(|| {
            p.subject_key_identifier.then(|| {
                (
                    "no subjectKeyIdentifier in a subscriber certificate (TLS BR 7.1.2.7.6: NOT \
                     RECOMMENDED)",
                    "subject_key_identifier = true".to_string(),
                )
            })
        })
        .or_else(|| {
            allowed_attributes(
                p,
                &[AttributeKind::CommonName, AttributeKind::Country],
                "a domain-validated subject has only countryName and commonName (TLS BR \
                 7.1.2.7.2)",
            )
        })
        .or_else(|| {
            let cn_ok = p.subject.cn_must_be_san || p.subject.cn_sources == [CnSource::San];
            (!cn_ok).then(|| {
                (
                    "the commonName repeats a SAN (TLS BR 7.1.4.3): cn_must_be_san = true",
                    "cn_must_be_san = false".to_string(),
                )
            })
        })
        .or_else(|| {
            let s = &p.san;
            let ok =
                s.required && !s.email && !s.uri && s.other_names.is_empty() && (s.dns || s.ip);
            (!ok).then(|| {
                (
                    "subjectAltName is required and holds only dNSName and iPAddress (TLS BR \
                     7.1.2.7.12)",
                    "san.required false, or e-mail, URI or otherName allowed".to_string(),
                )
            })
        })
        .or_else(|| {
            (!p.san.public_only).then(|| {
                (
                    "subjectAltName holds no Internal Name and no Reserved IP Address (TLS BR \
                     7.1.2.7.12, 4.2.2): san.public_only = true",
                    "san.public_only = false".to_string(),
                )
            })
        })
        .or_else(|| {
            let too_long = std::iter::once((i64::MIN, 398))
                .chain(
                    tls_br_validity_schedule()
                        .iter()
                        .filter_map(|s| Some((s.starts_at()?, s.max_days))),
                )
                .find(|(at, max)| p.max_validity_days_at(*at) > *max);
            too_long.map(|(at, max)| {
                (
                    "validity within the BR's schedule (TLS BR 6.3.2: 398 days, 200 from \
                     2026-03-15, 100 from 2027-03-15, 47 from 2029-03-15)",
                    format!(
                        "{} days where the BR allow {max}",
                        p.max_validity_days_at(at)
                    ),
                )
            })
        })
        .or_else(|| {
            (!p.authority_info_access).then(|| {
                (
                    "authorityInformationAccess must be present (TLS BR 7.1.2.7.7)",
                    "authority_info_access = false".to_string(),
                )
            })
        })
}

/// RFC 5280's rules for every CA certificate, checked on what the template will write: the
/// basicConstraints and keyUsage extensions as [`CaRules`] encodes them (read back), key types
/// fit for a CA key, a subject, a subjectKeyIdentifier.
fn ca_certificate(p: &Profile, ca: &CaRules) -> Option<Finding> {
    ca_extensions(ca)
        .or_else(|| {
            p.key_types
                .iter()
                .find(|k| match k {
                    SubjectKeyType::EcP256 | SubjectKeyType::EcP384 | SubjectKeyType::Ed25519 => {
                        false
                    }
                    SubjectKeyType::Rsa(bits) => *bits < 3072,
                })
                .map(|k| {
                    (
                        "a CA profile allows only key types fit for a CA key: ECDSA P-256 or \
                         P-384, Ed25519, RSA of at least 3072 bits (NIST SP 800-57 Part 1: \
                         128-bit security for keys used beyond 2030), as for this CA's own key",
                        format!("key type {}", k.name()),
                    )
                })
        })
        .or_else(|| {
            (p.key_usage != [KeyUsage::DigitalSignature]).then(|| {
                (
                    "a CA profile's keyUsage is keyCertSign and cRLSign, with digitalSignature \
                     as [profiles.NAME.ca] digital_signature says; leave key_usage unset",
                    format!("key_usage = {:?}", p.key_usage),
                )
            })
        })
        .or_else(|| {
            (!p.subject_key_identifier).then(|| {
                (
                    "a CA certificate carries a subjectKeyIdentifier (RFC 5280 4.2.1.2: MUST)",
                    "subject_key_identifier = false".to_string(),
                )
            })
        })
        .or_else(|| {
            (!p.subject.require_cn && p.subject.required.is_empty()).then(|| {
                (
                    "a CA certificate's subject is not empty (RFC 5280 4.1.2.6): \
                     subject.require_cn or subject.required",
                    "no subject attribute required".to_string(),
                )
            })
        })
}

/// The CA extensions as the template writes them, parsed back: basicConstraints critical with
/// cA true (RFC 5280 4.2.1.9), keyUsage critical with keyCertSign and cRLSign (4.2.1.3).
fn ca_extensions(ca: &CaRules) -> Option<Finding> {
    const BASIC: &str = "basicConstraints is critical with cA true (RFC 5280 4.2.1.9)";
    const USAGE: &str = "keyUsage is critical with keyCertSign and cRLSign (RFC 5280 4.2.1.3)";
    let basic = ca.basic_constraints_extension().map_err(|e| e.chain());
    let basic_ok = basic.as_deref().map(|der| {
        X509Extension::from_der(der).is_ok_and(|(_, ext)| {
            ext.critical
                && matches!(ext.parsed_extension(), ParsedExtension::BasicConstraints(bc) if bc.ca)
        })
    });
    if basic_ok != Ok(true) {
        return Some((BASIC, format!("{basic:02x?}")));
    }
    let usage = ca.key_usage_extension().map_err(|e| e.chain());
    let usage_ok = usage.as_deref().map(|der| {
        X509Extension::from_der(der).is_ok_and(|(_, ext)| {
            ext.critical
                && matches!(ext.parsed_extension(),
                    ParsedExtension::KeyUsage(ku) if ku.key_cert_sign() && ku.crl_sign())
        })
    });
    (usage_ok != Ok(true)).then(|| (USAGE, format!("{usage:02x?}")))
}

/// TLS BR section 7.1.2.5: a technically constrained non-EV TLS subordinate CA (7.1.5), as
/// pkilint's `INTERNAL-CONSTRAINED-TLS-CA` and `EXTERNAL-CONSTRAINED-TLS-CA` check it.
fn serverauth_constrained_ca(p: &Profile, ca: &CaRules) -> Option<Finding> {
    cabf_key_types(p)
        .or_else(|| {
            serverauth_eku(
                p,
                "a technically constrained TLS CA lists its extendedKeyUsage: serverAuth, \
                 optionally clientAuth (TLS BR 7.1.5, 7.1.2.10.6)",
            )
        })
        .or_else(|| complete_name_constraints(ca))
        .or_else(|| {
            allowed_attributes(
                p,
                &[
                    AttributeKind::Country,
                    AttributeKind::State,
                    AttributeKind::Locality,
                    AttributeKind::Organization,
                    AttributeKind::CommonName,
                ],
                "a TLS CA subject has countryName, organizationName and commonName, optionally \
                 stateOrProvinceName and localityName, no organizationalUnitName (TLS BR \
                 7.1.2.10.2)",
            )
        })
        .or_else(|| {
            let required = |kind: AttributeKind| {
                p.subject
                    .required
                    .iter()
                    .any(|r| AttributeKind::from_short_name(r) == Some(kind))
            };
            let ok = required(AttributeKind::Country)
                && required(AttributeKind::Organization)
                && (p.subject.require_cn || required(AttributeKind::CommonName));
            (!ok).then(|| {
                (
                    "a TLS CA subject requires countryName, organizationName and commonName \
                     (TLS BR 7.1.2.10.2): subject.required = [\"C\", \"O\", \"CN\"]",
                    format!("subject.required = {:?}", p.subject.required),
                )
            })
        })
        .or_else(|| {
            let s = &p.san;
            let any = s.required || s.dns || s.ip || s.email || s.uri;
            (any || !s.other_names.is_empty()).then(|| {
                (
                    "a TLS CA certificate has no subjectAltName (TLS BR 7.1.2.5.1)",
                    "san rules allow names".to_string(),
                )
            })
        })
        .or_else(|| {
            (!p.crl_distribution_points).then(|| {
                (
                    "cRLDistributionPoints must be present in a TLS CA certificate (TLS BR \
                     7.1.2.5.1)",
                    "crl_distribution_points = false".to_string(),
                )
            })
        })
}

/// TLS BR 7.1.2.5.2: permittedSubtrees hold a directoryName, and dNSName, IPv4 and IPv6 names
/// are each either permitted within given subtrees or excluded altogether.
fn complete_name_constraints(ca: &CaRules) -> Option<Finding> {
    const RULE: &str = "a technically constrained TLS CA constrains every name type (TLS BR \
                        7.1.2.5.2): a permitted_dirname, and for DNS names, IPv4 and IPv6 \
                        addresses a permitted subtree or the whole space excluded \
                        (excluded_dns = [\"\"], excluded_ip = [\"0.0.0.0/0\", \"::/0\"])";
    let constraints = match ca.name_constraints() {
        Ok(c) => c,
        Err(e) => return Some((RULE, e.to_string())),
    };
    let permits = |f: &dyn Fn(&Subtree) -> bool| constraints.permitted.iter().any(f);
    let excludes_all = |f: &dyn Fn(&Subtree) -> bool| {
        constraints.excluded.iter().any(|s| {
            f(s) && match s {
                Subtree::Ip { prefix, .. } => *prefix == 0,
                Subtree::Dns(d) => d.is_empty(),
                Subtree::Email(_) | Subtree::DirName(_) => false,
            }
        })
    };
    let dns = |s: &Subtree| matches!(s, Subtree::Dns(_));
    let v4 = |s: &Subtree| {
        matches!(
            s,
            Subtree::Ip {
                address: IpAddr::V4(_),
                ..
            }
        )
    };
    let v6 = |s: &Subtree| {
        matches!(
            s,
            Subtree::Ip {
                address: IpAddr::V6(_),
                ..
            }
        )
    };
    let missing: Vec<&str> = [
        (
            "directoryName",
            permits(&|s| matches!(s, Subtree::DirName(_))),
        ),
        ("dNSName", permits(&dns) || excludes_all(&dns)),
        ("IPv4", permits(&v4) || excludes_all(&v4)),
        ("IPv6", permits(&v6) || excludes_all(&v6)),
    ]
    .into_iter()
    .filter(|(_, constrained)| !constrained)
    .map(|(what, _)| what)
    .collect();
    (!missing.is_empty()).then(|| (RULE, format!("unconstrained: {}", missing.join(", "))))
}

/// S/MIME BR sections 7.1.2.3 and 7.1.4.2.2: a strict mailbox- or individual-validated
/// subscriber certificate.
fn smime_strict(p: &Profile) -> Option<Finding> {
    cabf_key_types(p)
        .or_else(|| {
            (p.extended_key_usage != [ExtendedKeyUsage::EmailProtection]).then(|| {
                (
                    "extendedKeyUsage is emailProtection only (S/MIME BR 7.1.2.3 (f), strict)",
                    format!("{:?}", p.extended_key_usage),
                )
            })
        })
        .or_else(|| {
            key_usage(
                p,
                &[
                    KeyUsage::DigitalSignature,
                    KeyUsage::NonRepudiation,
                    KeyUsage::KeyEncipherment,
                    KeyUsage::KeyAgreement,
                ],
                "keyUsage within digitalSignature, nonRepudiation, keyEncipherment (RSA) and \
                 keyAgreement (EC) (S/MIME BR 7.1.2.3 (e))",
            )
        })
        .or_else(|| {
            allowed_attributes(
                p,
                &[
                    AttributeKind::CommonName,
                    AttributeKind::GivenName,
                    AttributeKind::Surname,
                    AttributeKind::Pseudonym,
                    AttributeKind::SerialNumber,
                    AttributeKind::Country,
                    AttributeKind::State,
                    AttributeKind::Locality,
                ],
                "an individual-validated strict subject has no organization attributes (S/MIME \
                 BR 7.1.4.2.2)",
            )
        })
        .or_else(|| {
            let sources = &p.subject.cn_sources;
            let ok = !sources.is_empty() && !sources.contains(&CnSource::San);
            (!ok || p.subject.cn_must_be_san).then(|| {
                (
                    "the commonName is an e-mail address, personal name or pseudonym of the \
                     subject (S/MIME BR 7.1.4.2.2 (a)): cn_sources from email, personal-name, \
                     pseudonym",
                    format!("cn_sources = {sources:?}"),
                )
            })
        })
        .or_else(|| {
            let s = &p.san;
            let ok = s.email && s.email_required && !s.dns && !s.ip && !s.uri;
            (!ok).then(|| {
                (
                    "subjectAltName holds the mailbox addresses, at least one (S/MIME BR 7.1.2.3 \
                     (h)): email and email_required true, no DNS, IP or URI",
                    "san rules allow other names or no mailbox".to_string(),
                )
            })
        })
        .or_else(|| {
            (p.max_validity_days > 825).then(|| {
                (
                    "validity at most 825 days (S/MIME BR 6.3.2)",
                    format!("max_validity_days = {}", p.max_validity_days),
                )
            })
        })
        .or_else(|| {
            (!p.crl_distribution_points).then(|| {
                (
                    "cRLDistributionPoints must be present (S/MIME BR 7.1.2.3 (b))",
                    "crl_distribution_points = false".to_string(),
                )
            })
        })
}

/// ETSI EN 319 412-2 (natural persons) and EN 319 412-5 (qcStatements) for an EU qualified
/// certificate for electronic signatures with the key in a QSCD (policy QCP-n-qscd, EN 319
/// 411-2 5.3): what pkilint's `lint_etsi_cert -t QCP-N-QSCD-EIDAS-FINAL-CERTIFICATE` reports
/// as ERROR, where the template decides it. (Key and signature algorithms other than RSA and
/// ECDSA are only a NOTICE there, TS 119 312; no validity limit applies.)
fn etsi_qcp_n_qscd(p: &Profile) -> Option<Finding> {
    etsi_qc_statements(p)
        .or_else(|| {
            use KeyUsage::{DigitalSignature, KeyAgreement, KeyEncipherment, NonRepudiation};
            let has = |ku| p.key_usage.contains(&ku);
            let encipherment = usize::from(has(KeyEncipherment)) + usize::from(has(KeyAgreement));
            let (ec, rsa) = key_families(p);
            // Table 1: A = nonRepudiation; B = A + digitalSignature; F = B + one of
            // keyEncipherment (RSA keys) or keyAgreement (EC keys).
            let ok = has(NonRepudiation)
                && p.key_usage.iter().all(|ku| {
                    matches!(
                        ku,
                        DigitalSignature | NonRepudiation | KeyEncipherment | KeyAgreement
                    )
                })
                && (encipherment == 0 || (encipherment == 1 && has(DigitalSignature)))
                && !(has(KeyEncipherment) && ec)
                && !(has(KeyAgreement) && rsa);
            (!ok).then(|| {
                (
                    "keyUsage of a signature certificate is nonRepudiation (type A, \
                     recommended), with digitalSignature (B), and keyEncipherment for RSA or \
                     keyAgreement for EC keys (F) (EN 319 412-2 NAT-4.3.2-1, NAT-4.3.2-2)",
                    format!(
                        "key_usage = {:?} with key types {}",
                        p.key_usage,
                        p.allowed_key_types()
                    ),
                )
            })
        })
        .or_else(|| {
            let named = |kind: AttributeKind| {
                p.subject
                    .required
                    .iter()
                    .any(|r| AttributeKind::from_short_name(r) == Some(kind))
            };
            let personal = named(AttributeKind::GivenName)
                || named(AttributeKind::Surname)
                || named(AttributeKind::Pseudonym)
                || (!p.subject.cn_must_be_san
                    && !p.subject.cn_sources.is_empty()
                    && p.subject
                        .cn_sources
                        .iter()
                        .all(|s| matches!(s, CnSource::PersonalName | CnSource::Pseudonym)));
            let cn = p.subject.require_cn || named(AttributeKind::CommonName);
            (!(named(AttributeKind::Country) && cn && personal)).then(|| {
                (
                    "a natural person's subject has countryName, givenName and/or surname or a \
                     pseudonym, and commonName (EN 319 412-2 NAT-4.2.4-1): subject.required \
                     with C, CN (or require_cn) and GN, SN or pseudonym (or cn_sources only \
                     personal-name and pseudonym)",
                    format!(
                        "subject.required = {:?}, require_cn = {}, cn_sources = {:?}",
                        p.subject.required, p.subject.require_cn, p.subject.cn_sources
                    ),
                )
            })
        })
        .or_else(|| {
            (!p.authority_info_access).then(|| {
                (
                    "authorityInformationAccess must be present (EN 319 412-2 GEN-4.4.1-2)",
                    "authority_info_access = false".to_string(),
                )
            })
        })
        .or_else(|| {
            p.extended_key_usage
                .contains(&ExtendedKeyUsage::ServerAuth)
                .then(|| {
                    (
                        "a certificate for electronic signatures (QcType esign) is no website \
                         certificate: no serverAuth (EN 319 412-5 4.2.3; EN 319 412-4)",
                        format!("{:?}", p.extended_key_usage),
                    )
                })
        })
        .or_else(|| {
            // The CA writes authorityKeyIdentifier, keyUsage, certificatePolicies and
            // qcStatements itself (GEN-4.3.1-1, NAT-4.3.2-1, GEN-4.3.3-2), none critical but
            // keyUsage; these are the rest of what EN 319 412-2 forbids or wants non-critical.
            const FORBIDDEN: [(&str, &str); 4] = [
                ("2.5.29.33", "policyMappings (GEN-4.3.4-1)"),
                ("2.5.29.30", "nameConstraints (GEN-4.3.8-1)"),
                ("2.5.29.36", "policyConstraints (GEN-4.3.9-1)"),
                ("2.5.29.54", "inhibitAnyPolicy (GEN-4.3.12-1)"),
            ];
            p.extra_extensions.iter().find_map(|e| {
                let id = e.object_identifier().ok()?.to_string();
                let forbidden = FORBIDDEN.iter().find(|(oid, _)| *oid == id);
                let critical_ian = id == "2.5.29.18" && e.critical;
                (forbidden.is_some() || critical_ian).then(|| {
                    (
                        "no policyMappings, nameConstraints, policyConstraints or \
                         inhibitAnyPolicy, and issuerAltName not critical (EN 319 412-2 \
                         GEN-4.3.4-1, GEN-4.3.8-1, GEN-4.3.9-1, GEN-4.3.12-1, GEN-4.3.6-1)",
                        forbidden.map_or_else(
                            || "a critical issuerAltName in extra_extensions".to_string(),
                            |(_, what)| format!("{what} in extra_extensions"),
                        ),
                    )
                })
            })
        })
}

/// EN 319 412-5 section 5 (table 2) for an EU qualified certificate with the key in a QSCD
/// for electronic signatures: QcCompliance, QcSSCD, QcType esign alone, and QcPDS with
/// https URLs, ISO 639-1 languages, one statement in English.
fn etsi_qc_statements(p: &Profile) -> Option<Finding> {
    let Some(qc) = &p.qc_statements else {
        return Some((
            "an EU qualified certificate carries qcStatements (EN 319 412-5 5, QCS-5-01; EN \
             319 412-2 4.3)",
            "no qc_statements".to_string(),
        ));
    };
    let found = |what: &str| format!("qc_statements.{what}");
    if !qc.compliance {
        return Some((
            "QcCompliance: issued as an EU qualified certificate (EN 319 412-5 4.2.1, table 2)",
            found("compliance = false"),
        ));
    }
    if !qc.sscd {
        return Some((
            "QcSSCD: the private key is in a qualified signature creation device (EN 319 412-5 \
             4.2.2, table 2; QCP-n-qscd)",
            found("sscd = false"),
        ));
    }
    if qc.qc_type != [crate::policy::QcType::Esign] {
        return Some((
            "QcType is esign alone: one purpose, electronic signatures (EN 319 412-5 4.2.3)",
            found(&format!("qc_type = {:?}", qc.qc_type)),
        ));
    }
    if let Some(pds) = qc.pds.iter().find(|pds| {
        let https = pds
            .url
            .split_once("://")
            .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("https"));
        !https || !ISO_639_1.contains(&pds.language.to_ascii_lowercase().as_str())
    }) {
        return Some((
            "QcPDS locations are https URLs with ISO 639-1 language codes (EN 319 412-5 4.3.4)",
            found(&format!("pds has {} ({})", pds.url, pds.language)),
        ));
    }
    (!qc.pds
        .iter()
        .any(|pds| pds.language.eq_ignore_ascii_case("en")))
    .then(|| {
        (
            "QcPDS is present with at least one statement in English (EN 319 412-5 4.3.4, table \
             2)",
            found(&format!("pds = {:?}", qc.pds)),
        )
    })
}

/// EN 319 412-2 4.2.3.1: the issuer field (the CA's subject, a legal person) has
/// countryName, organizationName and commonName, countryName and commonName once
/// (GEN-4.2.3.1-2, GEN-4.2.3.1-5), as pkilint checks in every certificate issued.
fn etsi_issuer(issuer_der: &[u8]) -> Option<Finding> {
    const RULE: &str = "the issuing CA's subject has countryName, organizationName and \
                        commonName, each once (EN 319 412-2 GEN-4.2.3.1-2, GEN-4.2.3.1-5): \
                        this CA certificate cannot issue under the profile";
    let cert = match x509_parser::certificate::X509Certificate::from_der(issuer_der) {
        Ok((_, cert)) => cert,
        Err(e) => return Some((RULE, format!("the CA certificate does not parse: {e}"))),
    };
    let subject = cert.subject();
    let counts = [
        ("C", subject.iter_country().count()),
        ("O", subject.iter_organization().count()),
        ("CN", subject.iter_common_name().count()),
    ];
    counts
        .iter()
        .any(|(_, n)| *n != 1)
        .then(|| (RULE, format!("the CA certificate's subject is {subject}")))
}

/// The ISO 639-1 two-letter language codes, as pkilint checks a QcPDS language.
const ISO_639_1: [&str; 184] = [
    "aa", "ab", "ae", "af", "ak", "am", "an", "ar", "as", "av", "ay", "az", "ba", "be", "bg", "bi",
    "bm", "bn", "bo", "br", "bs", "ca", "ce", "ch", "co", "cr", "cs", "cu", "cv", "cy", "da", "de",
    "dv", "dz", "ee", "el", "en", "eo", "es", "et", "eu", "fa", "ff", "fi", "fj", "fo", "fr", "fy",
    "ga", "gd", "gl", "gn", "gu", "gv", "ha", "he", "hi", "ho", "hr", "ht", "hu", "hy", "hz", "ia",
    "id", "ie", "ig", "ii", "ik", "io", "is", "it", "iu", "ja", "jv", "ka", "kg", "ki", "kj", "kk",
    "kl", "km", "kn", "ko", "kr", "ks", "ku", "kv", "kw", "ky", "la", "lb", "lg", "li", "ln", "lo",
    "lt", "lu", "lv", "mg", "mh", "mi", "mk", "ml", "mn", "mr", "ms", "mt", "my", "na", "nb", "nd",
    "ne", "ng", "nl", "nn", "no", "nr", "nv", "ny", "oc", "oj", "om", "or", "os", "pa", "pi", "pl",
    "ps", "pt", "qu", "rm", "rn", "ro", "ru", "rw", "sa", "sc", "sd", "se", "sg", "sh", "si", "sk",
    "sl", "sm", "sn", "so", "sq", "sr", "ss", "st", "su", "sv", "sw", "ta", "te", "tg", "th", "ti",
    "tk", "tl", "tn", "to", "tr", "ts", "tt", "tw", "ty", "ug", "uk", "ur", "uz", "ve", "vi", "vo",
    "wa", "wo", "xh", "yi", "yo", "za", "zh", "zu",
];

/// EN 319 412-2 4.4.1 and 4.3.11 on the CA's URLs: authorityInfoAccess names the issuing CA's
/// certificate over http(s), and revocation is found through an http or ldap CRL
/// distribution point or, without one, an http(s) OCSP responder.
fn etsi_urls(p: &Profile, urls: &Urls) -> Option<Finding> {
    let any = |list: &[String], schemes: &[&str]| {
        list.iter().any(|url| {
            url.split_once("://")
                .is_some_and(|(scheme, _)| schemes.iter().any(|s| scheme.eq_ignore_ascii_case(s)))
        })
    };
    let crl = p.crl_distribution_points && !urls.crl.is_empty();
    if !any(&urls.ca_issuers, &["http", "https"]) {
        Some((
            "authorityInformationAccess names the issuing CA's certificate (caIssuers) at an \
             http or https URL (EN 319 412-2 GEN-4.4.1-3, GEN-4.4.1-4)",
            format!("[urls] ca_issuers = {:?}", urls.ca_issuers),
        ))
    } else if crl && !any(&urls.crl, &["http", "ldap"]) {
        Some((
            "a CRL distribution point uses http or ldap (EN 319 412-2 GEN-4.3.11-4)",
            format!("[urls] crl = {:?}", urls.crl),
        ))
    } else if !crl && !any(&urls.ocsp, &["http", "https"]) {
        Some((
            "without a CRL distribution point, an http or https OCSP responder (EN 319 412-2 \
             GEN-4.3.11-2, GEN-4.4.1-8)",
            format!("[urls] ocsp = {:?}", urls.ocsp),
        ))
    } else {
        None
    }
}

/// RSA and ECDSA P-256/P-384 only (TLS BR 6.1.5 and 7.1.3.1, S/MIME BR 6.1.5).
fn cabf_key_types(p: &Profile) -> Option<Finding> {
    p.key_types
        .iter()
        .find(|k| match k {
            SubjectKeyType::EcP256 | SubjectKeyType::EcP384 => false,
            SubjectKeyType::Rsa(bits) => *bits < 2048 || bits % 8 != 0,
            SubjectKeyType::Ed25519 => true,
        })
        .map(|k| {
            (
                "subject keys are RSA of at least 2048 bits or ECDSA P-256/P-384 (BR 6.1.5, \
                 7.1.3.1)",
                format!("key type {}", k.name()),
            )
        })
}

/// Whether the profile allows (ECDSA, RSA) subject keys.
fn key_families(p: &Profile) -> (bool, bool) {
    let ec = p
        .key_types
        .iter()
        .any(|k| matches!(k, SubjectKeyType::EcP256 | SubjectKeyType::EcP384));
    let rsa = p
        .key_types
        .iter()
        .any(|k| matches!(k, SubjectKeyType::Rsa(_)));
    (ec, rsa)
}

/// The key usages all within `allowed`, digitalSignature or an encipherment among them,
/// keyEncipherment only without EC keys and keyAgreement only without RSA keys.
fn key_usage(p: &Profile, allowed: &[KeyUsage], rule: &'static str) -> Option<Finding> {
    let (ec, rsa) = key_families(p);
    p.key_usage
        .iter()
        .find(|ku| {
            !allowed.contains(ku)
                || (**ku == KeyUsage::KeyEncipherment && ec)
                || (**ku == KeyUsage::KeyAgreement && rsa)
        })
        .map(|ku| {
            (
                rule,
                format!("{ku:?} with key types {}", p.allowed_key_types()),
            )
        })
        .or_else(|| {
            (!p.key_usage.contains(&KeyUsage::DigitalSignature))
                .then(|| (rule, "no digitalSignature".to_string()))
        })
}

fn allowed_attributes(
    p: &Profile,
    allowed: &[AttributeKind],
    rule: &'static str,
) -> Option<Finding> {
    p.subject
        .allowed
        .iter()
        .find(|a| AttributeKind::from_short_name(a).is_none_or(|k| !allowed.contains(&k)))
        .map(|a| (rule, format!("subject.allowed has {a}")))
}

/// The CA/Browser Forum's reserved policy OIDs appear only where the profile claims the
/// matching standard, which writes the right one itself (TLS BR 7.1.6.1, S/MIME BR
/// 7.1.6.1); so does QCP-n-qscd, and under `etsi-qcp-n-qscd` no other ETSI qualified
/// policy (0.4.0.194112.1.*) joins it (EN 319 412-2 QCS-5.2-1, -2: one, matching the
/// qcStatements).
fn reserved_policies(p: &Profile) -> Option<Finding> {
    p.certificate_policies.iter().find_map(|policy| {
        let id = policy.object_identifier().ok()?;
        let dotted = id.to_string();
        if dotted.starts_with("2.23.140.1.") {
            return Some((
                "a CA/Browser Forum reserved policy OID is written by the CA from `standard`, \
                 never listed in certificate_policies",
                format!("certificate_policies has {id}"),
            ));
        }
        let qualified = dotted.starts_with("0.4.0.194112.1.");
        (id == oid::ETSI_QCP_N_QSCD || (qualified && p.standard == Standard::EtsiQcpNQscd)).then(
            || {
                (
                    "an ETSI qualified certificate policy OID (EN 319 411-2 5.3) is written by \
                     the CA from `standard` (QCP-n-qscd for etsi-qcp-n-qscd), never listed in \
                     certificate_policies",
                    format!("certificate_policies has {id}"),
                )
            },
        )
    })
}

/// The policy OID the CA writes first for `standard` and `individual` validation.
pub fn reserved_policy(
    standard: Standard,
    individual: bool,
) -> Option<der::asn1::ObjectIdentifier> {
    match (standard, individual) {
        (Standard::Rfc5280, _) => None,
        (Standard::CabfServerauthDv, _) => Some(oid::CABF_DOMAIN_VALIDATED),
        (Standard::CabfSmimeStrict, false) => Some(oid::CABF_SMIME_MAILBOX_STRICT),
        (Standard::CabfSmimeStrict, true) => Some(oid::CABF_SMIME_INDIVIDUAL_STRICT),
        (Standard::EtsiQcpNQscd, _) => Some(oid::ETSI_QCP_N_QSCD),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_conform() {
        for (name, p) in Profile::builtin() {
            check(&p, &name).unwrap();
        }
    }

    /// TLS BR 7.1.2.7.12 and 4.2.2: a domain-validated subscriber profile certifies no
    /// Internal Name and no Reserved IP Address, as the built-in `tls-server` does; a copy of
    /// it without `san.public_only` does not load.
    #[test]
    fn serverauth_dv_requires_public_only() {
        let builtin = &Profile::builtin()["tls-server"];
        assert!(builtin.san.public_only);
        check(builtin, "tls-server").unwrap();
        let mut p = builtin.clone();
        p.san.public_only = false;
        let e = check(&p, "copy").unwrap_err().to_string();
        assert!(
            e.contains("[profiles.copy] does not conform to cabf-serverauth-dv")
                && e.contains("san.public_only = true")
                && e.contains("TLS BR 7.1.2.7.12, 4.2.2"),
            "{e}"
        );
        // Under RFC 5280 alone, internal names are the profile's business.
        p.standard = Standard::Rfc5280;
        check(&p, "copy").unwrap();
    }

    #[test]
    fn each_rule_refuses_a_profile_that_breaks_it() {
        let base = || Profile::builtin()["tls-server"].clone();
        let refused = |p: Profile, needle: &str| {
            let e = check(&p, "t").unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        };
        let mut p = base();
        p.key_types.push(SubjectKeyType::Ed25519);
        refused(p, "ed25519");
        let mut p = base();
        p.extended_key_usage.push(ExtendedKeyUsage::EmailProtection);
        refused(p, "7.1.2.7.10");
        let mut p = base();
        p.key_usage.push(KeyUsage::KeyEncipherment);
        refused(p, "7.1.2.7.11");
        let mut p = base();
        p.subject_key_identifier = true;
        refused(p, "7.1.2.7.6");
        let mut p = base();
        p.subject.allowed.push("O".into());
        refused(p, "7.1.2.7.2");
        let mut p = base();
        p.san.email = true;
        refused(p, "7.1.2.7.12");
        let mut p = base();
        p.validity_schedule.clear();
        refused(p, "6.3.2");
        let mut p = base();
        p.certificate_policies.push(crate::policy::PolicyConfig {
            oid: "2.23.140.1.2.2".into(),
            cps: None,
            notice: None,
        });
        refused(p, "reserved policy");

        let smime = || Profile::builtin()["personal"].clone();
        let mut p = smime();
        p.subject.allowed.push("O".into());
        refused(p, "7.1.4.2.2");
        let mut p = smime();
        p.san.email_required = false;
        refused(p, "7.1.2.3 (h)");
        let mut p = smime();
        p.max_validity_days = 1095;
        refused(p, "825");
        let mut p = smime();
        p.crl_distribution_points = false;
        refused(p, "7.1.2.3 (b)");
        let mut p = smime();
        p.extended_key_usage.push(ExtendedKeyUsage::ClientAuth);
        refused(p, "7.1.2.3 (f)");
    }

    #[test]
    fn urls_the_standard_needs() {
        let p = &Profile::builtin()["personal"];
        assert!(check_urls(p, "personal", &Urls::default()).is_err());
        let urls = Urls {
            crl: vec!["http://ca.example/ca.crl".into()],
            ..Urls::default()
        };
        check_urls(p, "personal", &urls).unwrap();
    }

    /// A QCP-n-qscd profile as docs/profiles/etsi-qcp-n-qscd.toml configures it (which
    /// ca-server's configuration tests load).
    fn etsi_example() -> Profile {
        use crate::policy::{PdsLocation, QcStatementsConfig, QcType};
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let pds = |language: &str| PdsLocation {
            url: format!("https://ca.example.com/pds-{language}.pdf"),
            language: language.into(),
        };
        Profile {
            standard: Standard::EtsiQcpNQscd,
            key_types: vec![
                SubjectKeyType::EcP256,
                SubjectKeyType::EcP384,
                SubjectKeyType::Rsa(3072),
                SubjectKeyType::Rsa(4096),
            ],
            max_validity_days: 1095,
            default_validity_days: 730,
            key_usage: vec![KeyUsage::NonRepudiation],
            qc_statements: Some(QcStatementsConfig {
                compliance: true,
                sscd: true,
                qc_type: vec![QcType::Esign],
                pds: vec![pds("en"), pds("pt")],
            }),
            subject: crate::profile::SubjectRules {
                allowed: names(&["C", "GN", "SN", "pseudonym", "serialNumber", "CN"]),
                required: names(&["C", "serialNumber", "CN"]),
                from_request: names(&["C", "GN", "SN", "pseudonym", "serialNumber"]),
                order: names(&["C", "GN", "SN", "pseudonym", "serialNumber", "CN"]),
                cn_sources: vec![CnSource::PersonalName, CnSource::Pseudonym],
                ..Default::default()
            },
            ..Profile::default()
        }
    }

    #[test]
    fn etsi_qcp_n_qscd_rules_refuse_a_profile_that_breaks_them() {
        let base = etsi_example;
        assert_eq!(base().standard, Standard::EtsiQcpNQscd);
        base().check("etsi").unwrap();
        check(&base(), "etsi").unwrap();
        assert_eq!(
            reserved_policy(Standard::EtsiQcpNQscd, false),
            Some(oid::ETSI_QCP_N_QSCD)
        );
        let refused = |p: Profile, needle: &str| {
            let e = check(&p, "e").unwrap_err().to_string();
            assert!(
                e.contains(needle) && e.contains("does not conform to etsi-qcp-n-qscd"),
                "{needle}: {e}"
            );
        };
        let qc = |f: fn(&mut crate::policy::QcStatementsConfig)| {
            let mut p = base();
            if let Some(qc) = p.qc_statements.as_mut() {
                f(qc);
            }
            p
        };
        let mut p = base();
        p.qc_statements = None;
        refused(p, "QCS-5-01");
        refused(qc(|q| q.compliance = false), "4.2.1");
        refused(qc(|q| q.sscd = false), "4.2.2");
        refused(
            qc(|q| q.qc_type = vec![crate::policy::QcType::Eseal]),
            "4.2.3",
        );
        refused(
            qc(|q| q.qc_type.push(crate::policy::QcType::Web)),
            "esign alone",
        );
        refused(qc(|q| q.pds.clear()), "4.3.4");
        refused(
            qc(|q| q.pds[0].url = "http://ca.example.com/pds-en.pdf".into()),
            "https URLs",
        );
        refused(qc(|q| q.pds[0].language = "zz".into()), "ISO 639-1");
        refused(
            qc(|q| q.pds.retain(|pds| pds.language != "en")),
            "in English",
        );
        for usage in [
            vec![KeyUsage::DigitalSignature],
            vec![KeyUsage::NonRepudiation, KeyUsage::KeyEncipherment],
            vec![KeyUsage::NonRepudiation, KeyUsage::DataEncipherment],
            vec![
                KeyUsage::DigitalSignature,
                KeyUsage::NonRepudiation,
                KeyUsage::KeyEncipherment,
                KeyUsage::KeyAgreement,
            ],
        ] {
            let mut p = base();
            p.key_usage = usage;
            refused(p, "NAT-4.3.2-1");
        }
        // Type F: keyEncipherment only for RSA keys, keyAgreement only for EC keys.
        let mut p = base();
        p.key_usage = vec![
            KeyUsage::DigitalSignature,
            KeyUsage::NonRepudiation,
            KeyUsage::KeyAgreement,
        ];
        refused(p.clone(), "NAT-4.3.2-1");
        p.key_types.retain(|k| !matches!(k, SubjectKeyType::Rsa(_)));
        check(&p, "type-f").unwrap();
        // Type B.
        let mut p = base();
        p.key_usage = vec![KeyUsage::DigitalSignature, KeyUsage::NonRepudiation];
        check(&p, "type-b").unwrap();
        for attribute in ["C", "CN"] {
            let mut p = base();
            p.subject.required.retain(|a| a != attribute);
            p.subject.require_cn = false;
            refused(p, "NAT-4.2.4-1");
        }
        // A CN that must repeat the personal name or pseudonym implies one of them; a CN
        // from anywhere else does not.
        let mut p = base();
        p.subject.cn_sources = vec![CnSource::PersonalName, CnSource::Email];
        refused(p.clone(), "NAT-4.2.4-1");
        p.subject.cn_sources.clear();
        refused(p.clone(), "NAT-4.2.4-1");
        p.subject.required.push("SN".into());
        check(&p, "surname-required").unwrap();
        let mut p = base();
        p.authority_info_access = false;
        refused(p, "GEN-4.4.1-2");
        let mut p = base();
        p.extended_key_usage.push(ExtendedKeyUsage::ServerAuth);
        refused(p, "serverAuth");
        for (oid, critical) in [
            ("2.5.29.33", false),
            ("2.5.29.54", false),
            ("2.5.29.18", true),
        ] {
            let mut p = base();
            p.extra_extensions.push(crate::policy::ExtraExtension {
                oid: oid.into(),
                critical,
                der: "3000".into(),
            });
            refused(p, "GEN-4.3");
        }
        for oid in ["0.4.0.194112.1.2", "0.4.0.194112.1.0"] {
            let mut p = base();
            p.certificate_policies.push(crate::policy::PolicyConfig {
                oid: oid.into(),
                cps: None,
                notice: None,
            });
            refused(p, "ETSI qualified certificate policy");
        }
        // QCP-n-qscd comes only from the standard, whatever the profile claims.
        let mut p = Profile::default();
        p.certificate_policies.push(crate::policy::PolicyConfig {
            oid: "0.4.0.194112.1.2".into(),
            cps: None,
            notice: None,
        });
        assert!(check(&p, "rfc").is_err());
        p.certificate_policies[0].oid = "0.4.0.194112.1.0".into();
        check(&p, "rfc").unwrap();
        // No ETSI subordinate CAs.
        let mut p = base();
        p.key_usage = vec![KeyUsage::DigitalSignature];
        p.ca = Some(CaRules::default());
        let e = check(&p, "e").unwrap_err().to_string();
        assert!(e.contains("ETSI qualified CA"), "{e}");
    }

    #[test]
    fn an_etsi_profile_needs_an_issuer_named_as_a_legal_person() {
        let key = keys::generate_pkcs8(keys::KeyAlgorithm::EcdsaP256).unwrap();
        let signer = std::sync::Arc::new(keys::SoftwareKey::from_pkcs8(&key).unwrap());
        let issuer = |attributes: &[(rcgen::DnType, &str)]| {
            let mut params = rcgen::CertificateParams::default();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.distinguished_name = rcgen::DistinguishedName::new();
            for (kind, value) in attributes {
                params.distinguished_name.push(kind.clone(), *value);
            }
            params
                .self_signed(&crate::authority::SignerKey(signer.clone()))
                .unwrap()
        };
        use rcgen::DnType::{CommonName, CountryName, OrganizationName};
        let good = issuer(&[
            (CountryName, "PT"),
            (OrganizationName, "Example QTSP"),
            (CommonName, "Example Qualified CA"),
        ]);
        check_issuer(&etsi_example(), "e", good.der()).unwrap();
        let bare = issuer(&[(CommonName, "Example CA")]);
        let e = check_issuer(&etsi_example(), "e", bare.der())
            .unwrap_err()
            .to_string();
        assert!(e.contains("GEN-4.2.3.1-2"), "{e}");
        // Other standards do not ask it.
        check_issuer(&Profile::default(), "rfc", bare.der()).unwrap();
    }

    #[test]
    fn etsi_urls_name_the_issuer_and_a_revocation_source() {
        let p = etsi_example();
        let urls = |crl: &[&str], ocsp: &[&str], ca_issuers: &[&str]| Urls {
            crl: crl.iter().map(|s| s.to_string()).collect(),
            ocsp: ocsp.iter().map(|s| s.to_string()).collect(),
            ca_issuers: ca_issuers.iter().map(|s| s.to_string()).collect(),
        };
        let issuer = "http://ca.example.com/ca.der";
        let crl = "http://ca.example.com/crl";
        let ocsp = "http://ca.example.com/ocsp";
        check_urls(&p, "e", &urls(&[crl], &[ocsp], &[issuer])).unwrap();
        check_urls(&p, "e", &urls(&[crl], &[], &[issuer])).unwrap();
        check_urls(&p, "e", &urls(&[], &[ocsp], &[issuer])).unwrap();
        let refused = |u: Urls, p: &Profile, needle: &str| {
            let e = check_urls(p, "e", &u).unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        };
        refused(urls(&[crl], &[ocsp], &[]), &p, "GEN-4.4.1-3");
        refused(
            urls(&[crl], &[ocsp], &["ldap://ca.example.com/ca"]),
            &p,
            "GEN-4.4.1-4",
        );
        refused(urls(&[], &[], &[issuer]), &p, "GEN-4.3.11-2");
        refused(
            urls(&["https://ca.example.com/crl"], &[ocsp], &[issuer]),
            &p,
            "GEN-4.3.11-4",
        );
        // Without cRLDistributionPoints in the profile, OCSP is what is left.
        let mut p = p;
        p.crl_distribution_points = false;
        refused(urls(&[crl], &[], &[issuer]), &p, "GEN-4.4.1-8");
        check_urls(&p, "e", &urls(&[crl], &[ocsp], &[issuer])).unwrap();
    }

    /// A technically constrained TLS subordinate CA (TLS BR 7.1.2.5), as the end-to-end test
    /// configures it.
    fn constrained_tls_ca() -> Profile {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Profile {
            standard: Standard::CabfServerauthDv,
            key_types: vec![
                SubjectKeyType::EcP256,
                SubjectKeyType::EcP384,
                SubjectKeyType::Rsa(3072),
            ],
            max_validity_days: 1825,
            default_validity_days: 1095,
            extended_key_usage: vec![ExtendedKeyUsage::ServerAuth, ExtendedKeyUsage::ClientAuth],
            subject: crate::profile::SubjectRules {
                allowed: names(&["C", "O", "CN"]),
                required: names(&["C", "O", "CN"]),
                ..Default::default()
            },
            ca: Some(CaRules {
                path_len: Some(0),
                permitted_dns: names(&["example.com"]),
                excluded_dns: names(&["bad.example.com"]),
                permitted_ip: names(&["192.0.2.0/24"]),
                excluded_ip: names(&["::/0"]),
                permitted_dirname: names(&["O=Example,C=PT"]),
                ..CaRules::default()
            }),
            ..Profile::default()
        }
    }

    #[test]
    fn ca_profiles_conform_to_the_rules_of_ca_certificates() {
        check(&constrained_tls_ca(), "sub-ca").unwrap();
        // RFC 5280 alone: no name constraints or EKU needed, but a subject.
        let private = Profile {
            key_types: vec![SubjectKeyType::Ed25519, SubjectKeyType::Rsa(4096)],
            subject: crate::profile::SubjectRules {
                require_cn: true,
                ..Default::default()
            },
            ca: Some(CaRules::default()),
            ..Profile::default()
        };
        check(&private, "private-ca").unwrap();
        let refused = |p: Profile, needle: &str| {
            let e = check(&p, "c").unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        };
        // Every standard.
        let mut p = private.clone();
        p.key_types.push(SubjectKeyType::Rsa(2048));
        refused(p, "fit for a CA key");
        let mut p = private.clone();
        p.key_usage.push(KeyUsage::KeyEncipherment);
        refused(p, "leave key_usage unset");
        let mut p = private.clone();
        p.subject_key_identifier = false;
        refused(p, "4.2.1.2");
        let mut p = private.clone();
        p.subject.require_cn = false;
        refused(p, "4.1.2.6");
        let mut p = private.clone();
        p.standard = Standard::CabfSmimeStrict;
        refused(p, "S/MIME subordinate CAs");
        // A technically constrained TLS CA.
        let base = constrained_tls_ca;
        let mut p = base();
        p.key_types.push(SubjectKeyType::Ed25519);
        refused(p, "7.1.3.1");
        let mut p = base();
        p.extended_key_usage = Vec::new();
        refused(p, "7.1.5");
        let mut p = base();
        p.extended_key_usage.push(ExtendedKeyUsage::CodeSigning);
        refused(p, "7.1.5");
        let ca = |f: fn(&mut CaRules)| {
            let mut p = base();
            if let Some(ca) = p.ca.as_mut() {
                f(ca);
            }
            p
        };
        refused(
            ca(|c| c.permitted_dirname.clear()),
            "unconstrained: directoryName",
        );
        refused(ca(|c| c.permitted_dns.clear()), "unconstrained: dNSName");
        refused(ca(|c| c.permitted_ip.clear()), "unconstrained: IPv4");
        refused(ca(|c| c.excluded_ip.clear()), "unconstrained: IPv6");
        // Everything of a type excluded constrains it as well as a permitted subtree.
        let p = ca(|c| {
            c.permitted_dns.clear();
            c.excluded_dns = vec![String::new()];
            c.permitted_ip.clear();
            c.excluded_ip = vec!["0.0.0.0/0".into(), "::/0".into()];
        });
        check(&p, "no-names").unwrap();
        // Excluding a part of a type does not.
        refused(
            ca(|c| c.excluded_ip = vec!["2001:db8::/32".into()]),
            "unconstrained: IPv6",
        );
        let mut p = base();
        p.subject.allowed.push("OU".into());
        refused(p, "7.1.2.10.2");
        let mut p = base();
        p.subject.required.retain(|a| a != "O");
        refused(p, "7.1.2.10.2");
        let mut p = base();
        p.san.dns = true;
        refused(p, "subjectAltName");
        let mut p = base();
        p.crl_distribution_points = false;
        refused(p, "7.1.2.5.1");
    }

    #[test]
    fn ca_extensions_are_checked_as_encoded() {
        assert_eq!(ca_extensions(&CaRules::default()), None);
        assert_eq!(
            ca_extensions(&CaRules {
                digital_signature: false,
                path_len: Some(2),
                ..CaRules::default()
            }),
            None
        );
    }

    #[test]
    fn a_tls_ca_profile_needs_a_crl_url_and_an_issuer_with_room() {
        let p = constrained_tls_ca();
        assert!(check_urls(&p, "sub-ca", &Urls::default()).is_err());
        let urls = Urls {
            crl: vec!["http://ca.example/ca.crl".into()],
            ..Urls::default()
        };
        check_urls(&p, "sub-ca", &urls).unwrap();
        // Issued by a CA whose own path length is 0, the profile cannot work.
        let key = keys::generate_pkcs8(keys::KeyAlgorithm::EcdsaP256).unwrap();
        let signer = std::sync::Arc::new(keys::SoftwareKey::from_pkcs8(&key).unwrap());
        let mut params = rcgen::CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        let issuer = params
            .self_signed(&crate::authority::SignerKey(signer))
            .unwrap();
        let e = check_issuer(&p, "sub-ca", issuer.der())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[profiles.sub-ca.ca]") && e.contains("pathLenConstraint is 0"),
            "{e}"
        );
        // A profile that is no CA profile needs nothing of the issuer.
        check_issuer(&Profile::default(), "leaf", issuer.der()).unwrap();
    }
}

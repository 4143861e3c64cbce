//! Certificate profiles: what a certificate of each kind may contain, and the check of a
//! verified CSR against it.
//!
//! Profiles are read from the `[profiles.NAME]` tables of the configuration TOML. Every field
//! has a default, so a profile can be as short as its name.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::csr::{AttributeKind, San, SubjectAttribute, SubjectKey, VerifiedCsr};
use crate::error::CaError;

/// A key usage bit (RFC 5280 section 4.2.1.3), named as in the RFC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyUsage {
    /// digitalSignature.
    DigitalSignature,
    /// nonRepudiation, also called contentCommitment.
    #[serde(alias = "contentCommitment")]
    NonRepudiation,
    /// keyEncipherment.
    KeyEncipherment,
    /// keyAgreement.
    KeyAgreement,
    /// dataEncipherment.
    DataEncipherment,
}

/// An extended key usage purpose (RFC 5280 section 4.2.1.12).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ExtendedKeyUsage {
    /// id-kp-serverAuth.
    ServerAuth,
    /// id-kp-clientAuth.
    ClientAuth,
    /// id-kp-emailProtection.
    EmailProtection,
    /// id-kp-codeSigning.
    CodeSigning,
    /// id-kp-timeStamping.
    TimeStamping,
    /// id-kp-OCSPSigning (RFC 6960 section 4.2.2.2): a delegated OCSP responder. Never read
    /// from or written to configuration: only the CA's own responder certificate
    /// ([`crate::ocsp::issue_responder_certificate`]) carries it, since a certificate with it
    /// answers OCSP for the whole CA.
    #[serde(skip)]
    OcspSigning,
}

/// Rules for the subject distinguished name.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubjectRules {
    /// Attribute short names that may appear (`CN`, `O`, `OU`, `C`, `ST`, `L`, `serialNumber`,
    /// `GN`, `SN`). Each may appear once.
    pub allowed: Vec<String>,
    /// Whether a commonName is required.
    pub require_cn: bool,
    /// Whether the commonName, when present, must repeat one of the DNS or IP SANs (as
    /// CA/Browser Forum baseline requirements ask of TLS server certificates).
    pub cn_must_be_san: bool,
}

impl Default for SubjectRules {
    fn default() -> Self {
        SubjectRules {
            allowed: ["CN", "O", "OU", "C", "ST", "L"].map(String::from).to_vec(),
            require_cn: false,
            cn_must_be_san: false,
        }
    }
}

/// Rules for subject alternative names.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SanRules {
    /// At least one SAN is required.
    pub required: bool,
    /// dNSName SANs are allowed.
    pub dns: bool,
    /// If not empty, every DNS name must equal one of these suffixes or end in `.suffix`.
    pub dns_suffixes: Vec<String>,
    /// A leading `*.` label is allowed in DNS names.
    pub wildcards: bool,
    /// iPAddress SANs are allowed.
    pub ip: bool,
    /// rfc822Name (e-mail) SANs are allowed.
    pub email: bool,
    /// At most this many SANs.
    pub max: usize,
}

impl Default for SanRules {
    fn default() -> Self {
        SanRules {
            required: false,
            dns: false,
            dns_suffixes: Vec::new(),
            wildcards: false,
            ip: false,
            email: false,
            max: 100,
        }
    }
}

/// One certificate profile, as configured.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Profile {
    /// Subject key types allowed: `ec-p256`, `ec-p384`, `ed25519`, `rsa-2048`, `rsa-3072`,
    /// `rsa-4096`.
    pub key_types: Vec<String>,
    /// Longest validity a request may ask for, in days.
    pub max_validity_days: u32,
    /// Validity when the request names none, in days.
    pub default_validity_days: u32,
    /// Key usage bits of issued certificates (the extension is marked critical).
    pub key_usage: Vec<KeyUsage>,
    /// Extended key usages of issued certificates.
    pub extended_key_usage: Vec<ExtendedKeyUsage>,
    /// How many days after expiry a certificate of this profile may still be renewed.
    pub renewal_grace_days: u32,
    /// Subject rules.
    pub subject: SubjectRules,
    /// SAN rules.
    pub san: SanRules,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            key_types: [
                "ec-p256", "ec-p384", "ed25519", "rsa-2048", "rsa-3072", "rsa-4096",
            ]
            .map(String::from)
            .to_vec(),
            max_validity_days: 397,
            default_validity_days: 90,
            key_usage: vec![KeyUsage::DigitalSignature],
            extended_key_usage: Vec::new(),
            renewal_grace_days: 0,
            subject: SubjectRules::default(),
            san: SanRules::default(),
        }
    }
}

/// The request after the profile check: everything the certificate builder writes.
#[derive(Clone, Debug)]
pub struct ValidatedRequest {
    /// The subject, in order, each attribute checked.
    pub subject: Vec<SubjectAttribute>,
    /// The SANs, each allowed by the profile.
    pub sans: Vec<San>,
    /// The subject key.
    pub key: SubjectKey,
    /// Validity in days, within the profile's bounds.
    pub validity_days: u32,
}

impl Profile {
    /// The profiles shipped with the CA: `tls-server`, `tls-client` and `personal`.
    pub fn builtin() -> BTreeMap<String, Profile> {
        let tls_server = Profile {
            extended_key_usage: vec![ExtendedKeyUsage::ServerAuth],
            subject: SubjectRules {
                cn_must_be_san: true,
                ..SubjectRules::default()
            },
            san: SanRules {
                required: true,
                dns: true,
                wildcards: true,
                ip: true,
                ..SanRules::default()
            },
            ..Profile::default()
        };
        let tls_client = Profile {
            extended_key_usage: vec![ExtendedKeyUsage::ClientAuth],
            subject: SubjectRules {
                require_cn: true,
                ..SubjectRules::default()
            },
            san: SanRules {
                dns: true,
                email: true,
                ..SanRules::default()
            },
            ..Profile::default()
        };
        let personal = Profile {
            key_types: [
                "ec-p256", "ec-p384", "ed25519", "rsa-2048", "rsa-3072", "rsa-4096",
            ]
            .map(String::from)
            .to_vec(),
            max_validity_days: 1095,
            default_validity_days: 365,
            key_usage: vec![KeyUsage::DigitalSignature, KeyUsage::NonRepudiation],
            extended_key_usage: vec![ExtendedKeyUsage::EmailProtection],
            renewal_grace_days: 30,
            subject: SubjectRules {
                allowed: ["CN", "GN", "SN", "serialNumber", "O", "OU", "C", "ST", "L"]
                    .map(String::from)
                    .to_vec(),
                require_cn: true,
                cn_must_be_san: false,
            },
            san: SanRules {
                email: true,
                max: 10,
                ..SanRules::default()
            },
        };
        BTreeMap::from([
            ("tls-server".to_string(), tls_server),
            ("tls-client".to_string(), tls_client),
            ("personal".to_string(), personal),
        ])
    }

    /// Checks that the profile itself is coherent; returns a message naming the first fault.
    pub fn check(&self, name: &str) -> Result<(), String> {
        if self.default_validity_days == 0 || self.default_validity_days > self.max_validity_days {
            return Err(format!(
                "profile {name}: default_validity_days must be between 1 and max_validity_days"
            ));
        }
        if self.key_usage.is_empty() {
            return Err(format!("profile {name}: key_usage must not be empty"));
        }
        for a in &self.subject.allowed {
            if AttributeKind::from_short_name(a).is_none() {
                return Err(format!("profile {name}: unknown subject attribute {a:?}"));
            }
        }
        Ok(())
    }

    /// Checks a verified CSR and the requested validity against this profile.
    pub fn validate(
        &self,
        name: &str,
        csr: VerifiedCsr,
        validity_days: Option<u32>,
    ) -> Result<ValidatedRequest, CaError> {
        let key_name = csr.key.key_type.name();
        if !self.key_types.contains(&key_name) {
            return Err(CaError::KeyTypeNotAllowed {
                key: key_name,
                profile: name.to_string(),
                allowed: self.key_types.join(", "),
            });
        }
        let validity_days = validity_days.unwrap_or(self.default_validity_days);
        if validity_days == 0 || validity_days > self.max_validity_days {
            return Err(CaError::ValidityNotAllowed {
                requested: validity_days,
                profile: name.to_string(),
                max: self.max_validity_days,
            });
        }
        self.check_sans(name, &csr.sans)?;
        self.check_subject(&csr.subject, &csr.sans)?;
        Ok(ValidatedRequest {
            subject: csr.subject,
            sans: csr.sans,
            key: csr.key,
            validity_days,
        })
    }

    /// Checks an enrolment's or renewal's subject and SANs, which come from the RA rather
    /// than from a CSR.
    pub fn check_names(
        &self,
        name: &str,
        subject: &[SubjectAttribute],
        sans: &[San],
    ) -> Result<(), CaError> {
        self.check_sans(name, sans)?;
        self.check_subject(subject, sans)
    }

    fn check_subject(&self, subject: &[SubjectAttribute], sans: &[San]) -> Result<(), CaError> {
        let mut seen = HashSet::new();
        for attr in subject {
            let short = attr.kind.short_name();
            if !self
                .subject
                .allowed
                .iter()
                .any(|a| a.eq_ignore_ascii_case(short))
            {
                return Err(CaError::SubjectNotAllowed(format!(
                    "attribute {short} is not allowed by this profile"
                )));
            }
            if !seen.insert(attr.kind) {
                return Err(CaError::SubjectNotAllowed(format!(
                    "attribute {short} appears more than once"
                )));
            }
            check_attribute_value(attr)?;
        }
        let cn = subject.iter().find(|a| a.kind == AttributeKind::CommonName);
        match cn {
            None if self.subject.require_cn => Err(CaError::SubjectNotAllowed(
                "this profile requires a commonName (CN)".into(),
            )),
            None if subject.is_empty() && sans.is_empty() => Err(CaError::SubjectNotAllowed(
                "a certificate needs a subject or a subject alternative name".into(),
            )),
            Some(cn) if self.subject.cn_must_be_san && !cn_in_sans(&cn.value, sans) => {
                Err(CaError::SubjectNotAllowed(format!(
                    "commonName {:?} must also appear as a DNS or IP subject alternative name",
                    cn.value
                )))
            }
            _ => Ok(()),
        }
    }

    fn check_sans(&self, name: &str, sans: &[San]) -> Result<(), CaError> {
        if sans.is_empty() && self.san.required {
            return Err(CaError::SanRequired(name.to_string()));
        }
        if sans.len() > self.san.max {
            return Err(CaError::SanNotAllowed(format!(
                "({} names; this profile allows at most {})",
                sans.len(),
                self.san.max
            )));
        }
        let mut seen = HashSet::new();
        for san in sans {
            let allowed = match san {
                San::Dns(d) => self.san.dns && self.dns_name_allowed(d),
                San::Ip(ip) => self.san.ip && !ip.is_unspecified(),
                San::Email(e) => self.san.email && is_valid_email(e),
                San::Other(_) => false,
            };
            if !allowed {
                return Err(CaError::SanNotAllowed(san.to_string()));
            }
            if !seen.insert(san.to_string().to_ascii_lowercase()) {
                return Err(CaError::SanNotAllowed(format!("{san} (repeated)")));
            }
        }
        Ok(())
    }

    fn dns_name_allowed(&self, name: &str) -> bool {
        let (wildcard, base) = match name.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, name),
        };
        if (wildcard && !self.san.wildcards) || !is_valid_hostname(base) {
            return false;
        }
        if self.san.dns_suffixes.is_empty() {
            return true;
        }
        let base = base.to_ascii_lowercase();
        self.san.dns_suffixes.iter().any(|suffix| {
            let suffix = suffix.trim_start_matches('.').to_ascii_lowercase();
            base == suffix || base.ends_with(&format!(".{suffix}"))
        })
    }
}

fn cn_in_sans(cn: &str, sans: &[San]) -> bool {
    sans.iter().any(|s| match s {
        San::Dns(d) => d.eq_ignore_ascii_case(cn),
        San::Ip(ip) => cn.parse::<IpAddr>().is_ok_and(|c| c == *ip),
        _ => false,
    })
}

fn check_attribute_value(attr: &SubjectAttribute) -> Result<(), CaError> {
    let short = attr.kind.short_name();
    let v = &attr.value;
    let chars = v.chars().count();
    if chars == 0 || chars > attr.kind.max_len() {
        return Err(CaError::SubjectNotAllowed(format!(
            "{short} must have 1 to {} characters",
            attr.kind.max_len()
        )));
    }
    if v.chars().any(char::is_control) {
        return Err(CaError::SubjectNotAllowed(format!(
            "{short} contains control characters"
        )));
    }
    let printable = |c: char| c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c);
    match attr.kind {
        AttributeKind::Country if !v.chars().all(|c| c.is_ascii_uppercase()) || chars != 2 => Err(
            CaError::SubjectNotAllowed("C must be a two-letter upper-case ISO 3166 code".into()),
        ),
        AttributeKind::SerialNumber if !v.chars().all(printable) => Err(
            CaError::SubjectNotAllowed("serialNumber must be a PrintableString".into()),
        ),
        _ => Ok(()),
    }
}

/// Whether `name` is a syntactically valid host name (RFC 1034 section 3.5, RFC 1123
/// section 2.1): at least two labels of letters, digits and inner hyphens, each 1 to 63
/// characters, 253 in all.
pub fn is_valid_hostname(name: &str) -> bool {
    if name.is_empty() || name.len() > 253 || !name.contains('.') {
        return false;
    }
    name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

fn is_valid_email(addr: &str) -> bool {
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && local
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"@<>()[]\\,;:\"".contains(&b))
        && is_valid_hostname(domain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csr::SubjectKeyType;

    fn csr(subject: &[(AttributeKind, &str)], sans: Vec<San>) -> VerifiedCsr {
        VerifiedCsr {
            key: SubjectKey {
                key_type: SubjectKeyType::EcP256,
                bits: vec![4; 65],
            },
            subject: subject
                .iter()
                .map(|(kind, value)| SubjectAttribute {
                    kind: *kind,
                    value: value.to_string(),
                })
                .collect(),
            sans,
        }
    }

    #[test]
    fn builtin_profiles_are_coherent() {
        for (name, p) in Profile::builtin() {
            p.check(&name).unwrap();
        }
    }

    #[test]
    fn tls_server_rules() {
        let p = &Profile::builtin()["tls-server"];
        let dns = |d: &str| San::Dns(d.into());
        let ok = p.validate(
            "tls-server",
            csr(
                &[(AttributeKind::CommonName, "a.example")],
                vec![dns("a.example")],
            ),
            Some(30),
        );
        assert_eq!(ok.unwrap().validity_days, 30);
        let err = |c, v| p.validate("tls-server", c, v).unwrap_err().code();
        assert_eq!(err(csr(&[], vec![]), None), "san_required");
        assert_eq!(
            err(csr(&[], vec![dns("bad_name.example")]), None),
            "san_not_allowed"
        );
        assert_eq!(
            err(csr(&[], vec![dns("localhost")]), None),
            "san_not_allowed"
        );
        assert_eq!(
            err(csr(&[], vec![San::Email("a@b.example".into())]), None),
            "san_not_allowed"
        );
        assert_eq!(
            err(
                csr(
                    &[(AttributeKind::CommonName, "b.example")],
                    vec![dns("a.example")]
                ),
                None
            ),
            "subject_not_allowed"
        );
        assert_eq!(
            err(csr(&[], vec![dns("a.example")]), Some(398)),
            "validity_not_allowed"
        );
        assert_eq!(
            err(csr(&[], vec![dns("a.example")]), Some(0)),
            "validity_not_allowed"
        );
        assert_eq!(
            err(
                csr(
                    &[(AttributeKind::Country, "Brazil")],
                    vec![dns("a.example")]
                ),
                None
            ),
            "subject_not_allowed"
        );
    }

    #[test]
    fn dns_suffixes_and_wildcards() {
        let mut p = Profile::builtin()["tls-server"].clone();
        p.san.dns_suffixes = vec!["example.com".into()];
        assert!(p.dns_name_allowed("example.com"));
        assert!(p.dns_name_allowed("*.www.Example.com"));
        assert!(!p.dns_name_allowed("badexample.com"));
        p.san.wildcards = false;
        assert!(!p.dns_name_allowed("*.example.com"));
    }
}

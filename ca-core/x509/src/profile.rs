//! Certificate profiles: what a certificate of each kind may contain, and the check of a
//! verified CSR against it.
//!
//! Profiles are read from the `[profiles.NAME]` tables of the configuration TOML. Every field
//! has a default, so a profile can be as short as its name.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::csr::{
    AttributeKind, San, SubjectAttribute, SubjectKey, SubjectKeyType, VerifiedCsr, RSA_F4,
};
use crate::error::CaError;

/// Why a configured profile cannot be used: a fault of the profile itself, found when the
/// configuration is loaded ([`Profile::check`]), never caused by a request.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// `default_validity_days` is 0 or above `max_validity_days`.
    #[error("profile {profile}: default_validity_days must be between 1 and max_validity_days")]
    DefaultValidity {
        /// The profile's name.
        profile: String,
    },
    /// `key_usage` is empty: a certificate must say what its key may do.
    #[error("profile {profile}: key_usage must not be empty")]
    NoKeyUsage {
        /// The profile's name.
        profile: String,
    },
    /// `key_types` is empty: the profile could issue nothing.
    #[error(
        "[profiles.{profile}] key_types must not be empty (allowed: {})",
        crate::csr::KEY_TYPE_NAMES
    )]
    NoKeyTypes {
        /// The profile's name.
        profile: String,
    },
    /// `subject.allowed` names an attribute this CA cannot carry.
    #[error(
        "[profiles.{profile}.subject] allowed: unknown subject attribute {attribute:?} \
         (allowed: CN, O, OU, C, ST, L, serialNumber, GN, SN)"
    )]
    UnknownSubjectAttribute {
        /// The profile's name.
        profile: String,
        /// The attribute as configured.
        attribute: String,
    },
}

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
    /// If not empty, every DNS name, and the domain of every e-mail address, must equal one
    /// of these suffixes or end in `.suffix`.
    pub dns_suffixes: Vec<String>,
    /// A leading `*.` label is allowed in DNS names, never directly on a public suffix
    /// (`*.co.uk`, `*.com`: the Public Suffix List, ICANN and private sections; CA/Browser
    /// Forum Baseline Requirements section 3.2.2.6).
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
    /// Subject key types allowed: `ec-p256`, `ec-p384`, `ed25519`, `rsa-BITS` (BITS from 2048
    /// to 8192: `rsa-2048`, `rsa-3072`, `rsa-4096`, ...). Any other name fails loading.
    pub key_types: Vec<SubjectKeyType>,
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
    /// RSA keys must have the public exponent 65537 (F4), as the CA/Browser Forum Baseline
    /// Requirements section 6.1.6 recommend; off, any odd exponent of at least 3 is allowed.
    pub rsa_require_f4: bool,
    /// Subject rules.
    pub subject: SubjectRules,
    /// SAN rules.
    pub san: SanRules,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            key_types: default_key_types(),
            max_validity_days: 397,
            default_validity_days: 90,
            key_usage: vec![KeyUsage::DigitalSignature],
            extended_key_usage: Vec::new(),
            renewal_grace_days: 0,
            rsa_require_f4: true,
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

/// The key types of the built-in profiles.
fn default_key_types() -> Vec<SubjectKeyType> {
    vec![
        SubjectKeyType::EcP256,
        SubjectKeyType::EcP384,
        SubjectKeyType::Ed25519,
        SubjectKeyType::Rsa(2048),
        SubjectKeyType::Rsa(3072),
        SubjectKeyType::Rsa(4096),
    ]
}

impl Profile {
    /// Whether the profile allows the key type named `name` (`ec-p256`, `rsa-3072`, ...).
    pub fn allows_key_type(&self, name: &str) -> bool {
        SubjectKeyType::parse(name).is_some_and(|k| self.key_types.contains(&k))
    }

    /// The allowed key types as messages show them: `ec-p256, rsa-3072`.
    pub fn allowed_key_types(&self) -> String {
        let names: Vec<String> = self.key_types.iter().map(SubjectKeyType::name).collect();
        names.join(", ")
    }

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
            key_types: default_key_types(),
            max_validity_days: 1095,
            default_validity_days: 365,
            key_usage: vec![KeyUsage::DigitalSignature, KeyUsage::NonRepudiation],
            extended_key_usage: vec![ExtendedKeyUsage::EmailProtection],
            renewal_grace_days: 30,
            rsa_require_f4: true,
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

    /// Checks that the profile itself is coherent; the error names the first fault.
    pub fn check(&self, name: &str) -> Result<(), ProfileError> {
        let profile = || name.to_string();
        if self.default_validity_days == 0 || self.default_validity_days > self.max_validity_days {
            return Err(ProfileError::DefaultValidity { profile: profile() });
        }
        if self.key_usage.is_empty() {
            return Err(ProfileError::NoKeyUsage { profile: profile() });
        }
        if self.key_types.is_empty() {
            return Err(ProfileError::NoKeyTypes { profile: profile() });
        }
        for a in &self.subject.allowed {
            if AttributeKind::from_short_name(a).is_none() {
                return Err(ProfileError::UnknownSubjectAttribute {
                    profile: profile(),
                    attribute: a.clone(),
                });
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
        if !self.key_types.contains(&csr.key.key_type) {
            return Err(CaError::KeyTypeNotAllowed {
                key: csr.key.key_type.name(),
                profile: format!("profile {name}"),
                allowed: self.allowed_key_types(),
            });
        }
        self.check_key(name, &csr.key)?;
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

    /// The profile's own rules on a key of an allowed type: with `rsa_require_f4`, an RSA
    /// exponent other than 65537 is [`CaError::WeakKey`]. (What no profile allows is refused
    /// by [`SubjectKey::check_strength`] when the key is read.)
    fn check_key(&self, name: &str, key: &SubjectKey) -> Result<(), CaError> {
        if self.rsa_require_f4 && matches!(key.key_type, SubjectKeyType::Rsa(_)) {
            let exponent = key.rsa_exponent();
            if exponent != Some(RSA_F4) {
                let shown = exponent.map_or_else(|| "above 2^64".into(), |e| e.to_string());
                return Err(CaError::WeakKey(format!(
                    "the RSA public exponent is {shown}; profile {name} requires 65537 \
                     (rsa_require_f4)"
                )));
            }
        }
        Ok(())
    }

    /// Checks an enrollment's or renewal's subject and SANs, which come from the RA rather
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
            self.check_san_domain(san)?;
            if let Some(why) = self.san_problem(san) {
                return Err(CaError::SanNotAllowed(format!("{san} ({why})")));
            }
            if !seen.insert(san.to_string().to_ascii_lowercase()) {
                return Err(CaError::SanNotAllowed(format!("{san} (repeated)")));
            }
        }
        Ok(())
    }

    /// Why the profile refuses a SAN of this form, in a message's words; `None` when it
    /// allows it.
    fn san_problem(&self, san: &San) -> Option<String> {
        let syntax = |kind: &str, why: &str| Some(format!("malformed {kind}: {why}"));
        match san {
            San::Dns(_) if !self.san.dns => Some("the profile allows no DNS names".into()),
            San::Dns(name) => match name.strip_prefix("*.") {
                Some(_) if !self.san.wildcards => Some("the profile allows no wildcards".into()),
                Some(base) => hostname_problem(base).and_then(|why| syntax("DNS name", why)),
                None => hostname_problem(name).and_then(|why| syntax("DNS name", why)),
            },
            San::Ip(_) if !self.san.ip => Some("the profile allows no IP addresses".into()),
            San::Ip(ip) if ip.is_unspecified() => Some("the unspecified address".into()),
            San::Ip(_) => None,
            San::Email(_) if !self.san.email => {
                Some("the profile allows no e-mail addresses".into())
            }
            San::Email(addr) => email_problem(addr).and_then(|why| syntax("e-mail address", why)),
            San::Other(_) => Some("a name type this CA does not certify".into()),
        }
    }

    /// The rules on the domain of a syntactically allowed DNS or e-mail SAN: within
    /// `dns_suffixes` when the profile lists any, and no wildcard directly on a public
    /// suffix.
    fn check_san_domain(&self, san: &San) -> Result<(), CaError> {
        let (domain, wildcard) = match san {
            San::Dns(d) => match d.strip_prefix("*.") {
                Some(base) => (base, true),
                None => (d.as_str(), false),
            },
            San::Email(e) => match e.rsplit_once('@') {
                Some((_, domain)) => (domain, false),
                None => return Ok(()),
            },
            San::Ip(_) | San::Other(_) => return Ok(()),
        };
        let domain = domain.to_ascii_lowercase();
        if wildcard && is_public_suffix(&domain) {
            return Err(CaError::SanNotAllowed(format!(
                "{san} (wildcard on a public suffix: *.{domain})"
            )));
        }
        let within = self.san.dns_suffixes.is_empty()
            || self.san.dns_suffixes.iter().any(|suffix| {
                let suffix = suffix.trim_start_matches('.').to_ascii_lowercase();
                domain == suffix || domain.ends_with(&format!(".{suffix}"))
            });
        if !within {
            return Err(CaError::SanNotAllowed(format!(
                "{san} (domain {domain} is outside the profile's dns_suffixes: {})",
                self.san.dns_suffixes.join(", ")
            )));
        }
        Ok(())
    }
}

/// Whether `domain` (lower case) is itself a public suffix (`com`, `co.uk`, `github.io`)
/// of the Public Suffix List, ICANN or private section, that the `psl` crate embeds.
fn is_public_suffix(domain: &str) -> bool {
    psl::suffix(domain.as_bytes())
        .is_some_and(|s| s.is_known() && s.as_bytes() == domain.as_bytes())
}

/// Unicode general category Cf (format characters, Unicode 15.1): bidirectional controls,
/// zero-width characters, the byte order mark, tags and the rest, which make a name display
/// as something other than what it holds (CVE-2021-42574, "Trojan Source").
const FORMAT_CHARACTERS: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{180E}', '\u{180E}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0001}', '\u{E0001}'),
    ('\u{E0020}', '\u{E007F}'),
];

/// Whether `c` is a Unicode format character (general category Cf).
pub fn is_format_character(c: char) -> bool {
    FORMAT_CHARACTERS
        .iter()
        .any(|(first, last)| (*first..=*last).contains(&c))
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
    if let Some(c) = v
        .chars()
        .find(|c| c.is_control() || is_format_character(*c))
    {
        let kind = if c.is_control() {
            "a control character"
        } else {
            "a Unicode format character"
        };
        return Err(CaError::SubjectNotAllowed(format!(
            "subject attribute {short} contains {kind} U+{:04X}",
            u32::from(c)
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
    hostname_problem(name).is_none()
}

/// Why `name` is not a preferred-syntax host name (RFC 1123 section 2.1, RFC 5280 section
/// 4.2.1.6), in the words a message gives it; `None` when it is one.
pub fn hostname_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty");
    }
    if name.len() > 253 {
        return Some("longer than 253 characters");
    }
    if !name.contains('.') {
        return Some("a single label; give a fully qualified name");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Some("an empty label");
        }
        if label.len() > 63 {
            return Some("a label longer than 63 characters");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some("a label that starts or ends with a hyphen");
        }
        if label.contains('_') {
            return Some("underscore");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Some("a character other than letters, digits and hyphens");
        }
    }
    None
}

/// Why `addr` is not an e-mail address this CA certifies (RFC 5280 section 4.2.1.6: a
/// Mailbox of RFC 5321, ASCII local part); `None` when it is one.
fn email_problem(addr: &str) -> Option<&'static str> {
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return Some("no @");
    };
    if local.is_empty() || local.len() > 64 {
        return Some("a local part of 1 to 64 characters");
    }
    if !local
        .bytes()
        .all(|b| b.is_ascii_graphic() && !b"@<>()[]\\,;:\"".contains(&b))
    {
        return Some("a character not allowed in the local part");
    }
    hostname_problem(domain).map(|_| "a malformed domain")
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
        let ok = |p: &Profile, d: &str| p.check_sans("p", &[San::Dns(d.into())]).is_ok();
        assert!(ok(&p, "example.com"));
        assert!(ok(&p, "*.www.Example.com"));
        assert!(!ok(&p, "badexample.com"));
        p.san.wildcards = false;
        assert!(!ok(&p, "*.example.com"));
    }

    #[test]
    fn dns_suffixes_apply_to_email_domains() {
        let mut p = Profile::builtin()["tls-client"].clone();
        p.san.dns_suffixes = vec!["example.com".into()];
        let check = |e: &str| p.check_sans("tls-client", &[San::Email(e.into())]);
        assert!(check("a@example.com").is_ok());
        assert!(check("a@mail.Example.COM").is_ok());
        let e = check("a@evil.example").unwrap_err();
        assert_eq!(e.code(), "san_not_allowed");
        assert!(e.to_string().contains("dns_suffixes"), "{e}");
        assert!(check("a@badexample.com").is_err());
    }

    #[test]
    fn wildcards_on_public_suffixes_are_refused() {
        let p = &Profile::builtin()["tls-server"];
        let check = |d: &str| p.check_sans("tls-server", &[San::Dns(d.into())]);
        for bad in ["*.co.uk", "*.com", "*.CO.UK", "*.github.io"] {
            let e = check(bad).unwrap_err();
            assert_eq!(e.code(), "san_not_allowed", "{bad}");
            assert!(
                e.to_string().contains("wildcard on a public suffix"),
                "{bad}: {e}"
            );
        }
        for good in [
            "*.example.co.uk",
            "*.example.com",
            "example.com",
            "*.a.example",
        ] {
            assert!(check(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn format_and_control_characters_are_refused_in_subjects() {
        let p = &Profile::builtin()["personal"];
        for (c, shown) in [
            ('\u{202E}', "U+202E"),
            ('\u{2066}', "U+2066"),
            ('\u{200B}', "U+200B"),
            ('\u{FEFF}', "U+FEFF"),
            ('\u{E0041}', "U+E0041"),
            ('\u{0007}', "U+0007"),
            ('\u{009B}', "U+009B"),
        ] {
            let subject = [SubjectAttribute {
                kind: AttributeKind::CommonName,
                value: format!("Maria{c}Silva"),
            }];
            let e = p.check_names("personal", &subject, &[]).unwrap_err();
            assert_eq!(e.code(), "subject_not_allowed");
            assert!(e.to_string().contains(shown), "{shown}: {e}");
            assert!(e.to_string().contains("attribute CN"), "{e}");
        }
        let fine = [SubjectAttribute {
            kind: AttributeKind::CommonName,
            value: "Jos\u{e9} \u{5f20}\u{4f1f} \u{0645}\u{062d}\u{0645}\u{062f}".into(),
        }];
        p.check_names("personal", &fine, &[]).unwrap();
        assert!(!is_format_character('a') && !is_format_character('\u{2065}'));
        assert!(is_format_character('\u{00AD}'));
    }

    #[test]
    fn rsa_exponents_other_than_f4_need_the_profile_to_allow_them() {
        let e3 = rsa_key(3);
        let mut p = Profile::builtin()["tls-server"].clone();
        let request = |key: SubjectKey| VerifiedCsr {
            key,
            subject: vec![],
            sans: vec![San::Dns("a.example".into())],
        };
        let e = p
            .validate("tls-server", request(e3.clone()), None)
            .unwrap_err();
        assert_eq!(e.code(), "weak_key");
        assert!(e.to_string().contains("rsa_require_f4"), "{e}");
        p.validate("tls-server", request(rsa_key(65_537)), None)
            .unwrap();
        p.rsa_require_f4 = false;
        p.validate("tls-server", request(e3), None).unwrap();
    }

    /// An RSAPublicKey (RFC 8017 appendix A.1.1) with a 2048-bit modulus (not a real one:
    /// the profile looks only at the exponent) and exponent `e`.
    fn rsa_key(e: u32) -> SubjectKey {
        let mut modulus = vec![0x00, 0xc1];
        modulus.extend(std::iter::repeat_n(0x5a, 254));
        modulus.push(0x01);
        let e = e.to_be_bytes();
        let e: Vec<u8> = e.iter().copied().skip_while(|b| *b == 0).collect();
        let int = |v: &[u8]| {
            let mut out = vec![0x02];
            out.extend(der_len(v.len()));
            out.extend_from_slice(v);
            out
        };
        let body = [int(&modulus), int(&e)].concat();
        let mut bits = vec![0x30];
        bits.extend(der_len(body.len()));
        bits.extend(body);
        SubjectKey {
            key_type: SubjectKeyType::Rsa(2048),
            bits,
        }
    }

    fn der_len(n: usize) -> Vec<u8> {
        match n {
            0..=127 => vec![n as u8],
            128..=255 => vec![0x81, n as u8],
            _ => vec![0x82, (n >> 8) as u8, n as u8],
        }
    }
}

//! Certificate profiles: what a certificate of each kind may contain, and the check of a
//! verified CSR against it.
//!
//! Profiles are read from the `[profiles.NAME]` tables of the configuration TOML. Every field
//! has a default, so a profile can be as short as its name.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::ca_profile::{CaRules, CaRulesError};
use crate::csr::{
    AttributeKind, San, SubjectAttribute, SubjectKey, SubjectKeyType, VerifiedCsr, RSA_F4,
};
use crate::error::CaError;
pub use crate::hostname::{hostname_problem, is_valid_hostname};
use crate::other_name::OtherNameRule;
use crate::policy::{ExtraExtension, PolicyConfig, PolicyError, QcStatementsConfig};

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
    /// A subject rule names an attribute this CA cannot carry.
    #[error(
        "[profiles.{profile}.subject] {setting}: unknown subject attribute {attribute:?} \
         (known: CN, O, OU, C, ST, L, serialNumber, GN, SN, pseudonym, organizationIdentifier)"
    )]
    UnknownSubjectAttribute {
        /// The profile's name.
        profile: String,
        /// The setting that names it (`allowed`, `required`, ...).
        setting: &'static str,
        /// The attribute as configured.
        attribute: String,
    },
    /// `backdate_secs` above [`MAX_BACKDATE_SECS`].
    #[error(
        "[profiles.{profile}] backdate_secs must be at most 172800 (48 hours, TLS BR 7.1.2.7)"
    )]
    Backdate {
        /// The profile's name.
        profile: String,
    },
    /// A `validity_schedule` step whose date is not `YYYY-MM-DD` or whose limit is 0.
    #[error("[profiles.{profile}] validity_schedule: step from {from:?} needs a YYYY-MM-DD date and max_days of at least 1")]
    ValiditySchedule {
        /// The profile's name.
        profile: String,
        /// The step's `from`.
        from: String,
    },
    /// A policy, statement, extra extension or otherName type that cannot be encoded.
    #[error("[profiles.{profile}]: {source}")]
    Policy {
        /// The profile's name.
        profile: String,
        /// What is wrong.
        #[source]
        source: Box<PolicyError>,
    },
    /// A `[profiles.NAME.ca]` table that cannot be used.
    #[error("[profiles.{profile}.ca] {source}")]
    Ca {
        /// The profile's name.
        profile: String,
        /// What is wrong (boxed, to keep configuration errors small).
        #[source]
        source: Box<CaRulesError>,
    },
    /// The profile would issue certificates that break a rule of the standard it claims.
    #[error("[profiles.{profile}] does not conform to {standard}: {rule} ({found})")]
    Nonconformant {
        /// The profile's name.
        profile: String,
        /// The standard claimed, as configured.
        standard: &'static str,
        /// The rule broken, with its section.
        rule: &'static str,
        /// What the profile has instead.
        found: String,
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

/// The standard a profile claims to follow: it decides the policy OID the CA writes
/// itself and the rules the profile must pass before it loads ([`crate::conformance`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Standard {
    /// RFC 5280 alone (pkilint's PKIX linter).
    #[default]
    Rfc5280,
    /// CA/Browser Forum TLS Baseline Requirements, domain-validated subscriber certificate
    /// (policy 2.23.140.1.2.1, BR section 7.1.2.7).
    CabfServerauthDv,
    /// CA/Browser Forum S/MIME Baseline Requirements, strict generation: mailbox-validated
    /// (2.23.140.1.5.1.3) or, when the subject carries a personal name or pseudonym,
    /// individual-validated (2.23.140.1.5.4.3) (S/MIME BR section 7.1.6.1).
    CabfSmimeStrict,
    /// ETSI EN 319 412-2 and 319 412-5: an EU qualified certificate for a natural person's
    /// electronic signatures, the key in a QSCD (policy QCP-n-qscd, 0.4.0.194112.1.2, ETSI
    /// EN 319 411-2 section 5.3); pkilint's `QCP-N-QSCD-EIDAS-FINAL-CERTIFICATE`.
    EtsiQcpNQscd,
}

/// How a certificate's subject was validated, where the standard distinguishes (S/MIME BR
/// section 7.1.6.1): it picks the reserved policy OID.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Validation {
    /// The standard's only or simplest kind (domain- or mailbox-validated).
    #[default]
    Basic,
    /// Individual-validated: the subject names a person (givenName, surname, pseudonym).
    Individual,
}

/// Where a commonName's value may come from (`subject.cn_sources`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CnSource {
    /// One of the DNS or IP SANs (TLS BR section 7.1.4.3).
    San,
    /// One of the e-mail SANs.
    Email,
    /// The personal name: givenName, surname, or both in either order separated by a space.
    PersonalName,
    /// The pseudonym attribute.
    Pseudonym,
}

/// Rules for the subject distinguished name.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubjectRules {
    /// Attribute short names that may appear (`CN`, `O`, `OU`, `C`, `ST`, `L`, `serialNumber`,
    /// `GN`, `SN`, `pseudonym`, `organizationIdentifier`). Each may appear once.
    pub allowed: Vec<String>,
    /// Attributes every certificate must have.
    pub required: Vec<String>,
    /// Attributes only the RA may assert, in the request's `identity.subject` (verified
    /// identity data); a CSR that carries one is refused.
    pub from_request: Vec<String>,
    /// The order of the attributes in the certificate; attributes not listed follow in the
    /// order they were given. Empty: as given (CSR first, then the request's identity).
    pub order: Vec<String>,
    /// Attributes written as PrintableString (countryName and serialNumber always are); the
    /// others are UTF8String (RFC 5280 section 4.1.2.6).
    pub printable: Vec<String>,
    /// Whether a commonName is required.
    pub require_cn: bool,
    /// Whether the commonName, when present, must repeat one of the DNS or IP SANs (as
    /// CA/Browser Forum baseline requirements ask of TLS server certificates). Same as
    /// `cn_sources = ["san"]`.
    pub cn_must_be_san: bool,
    /// Where the commonName may come from; empty: anywhere.
    pub cn_sources: Vec<CnSource>,
}

impl Default for SubjectRules {
    fn default() -> Self {
        SubjectRules {
            allowed: ["CN", "O", "OU", "C", "ST", "L"].map(String::from).to_vec(),
            required: Vec::new(),
            from_request: Vec::new(),
            order: Vec::new(),
            printable: Vec::new(),
            require_cn: false,
            cn_must_be_san: false,
            cn_sources: Vec::new(),
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
    /// Only names a publicly trusted certificate may carry (TLS BR 7.1.2.7.12): DNS names
    /// under a suffix of the Public Suffix List (no internal names such as `.local` or
    /// `.example`) and IP addresses outside IANA's special-purpose registries (RFC 6890:
    /// private, loopback, link-local, documentation ranges, ...).
    pub public_only: bool,
    /// rfc822Name (e-mail) SANs are allowed.
    pub email: bool,
    /// At least one e-mail SAN is required (S/MIME BR section 7.1.2.3 (h)).
    pub email_required: bool,
    /// uniformResourceIdentifier SANs (absolute URIs) are allowed.
    pub uri: bool,
    /// The otherName types allowed, each with its syntax; only the RA's request may carry
    /// them (`identity.sans`), never a CSR.
    pub other_names: Vec<OtherNameRule>,
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
            public_only: false,
            email: false,
            email_required: false,
            uri: false,
            other_names: Vec::new(),
            max: 100,
        }
    }
}

/// A step of a validity schedule: from `from` (a UTC date, `YYYY-MM-DD`) on, at most
/// `max_days`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidityStep {
    /// The first day the limit applies, `YYYY-MM-DD` (UTC midnight).
    pub from: String,
    /// The longest validity from then on, in days.
    pub max_days: u32,
}

impl ValidityStep {
    /// The step's start as a Unix time, or `None` if `from` is not `YYYY-MM-DD`.
    pub fn starts_at(&self) -> Option<i64> {
        let mut parts = self.from.splitn(3, '-').map(str::parse::<u16>);
        let (Some(Ok(year)), Some(Ok(month)), Some(Ok(day))) =
            (parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
        let date =
            time::Date::from_calendar_date(i32::from(year), month, u8::try_from(day).ok()?).ok()?;
        Some(date.midnight().assume_utc().unix_timestamp())
    }
}

/// The TLS Baseline Requirements' maximum validity of a subscriber certificate (BR section
/// 6.3.2): 398 days until 2026-03-15, then 200, 100 from 2027-03-15, 47 from 2029-03-15.
pub fn tls_br_validity_schedule() -> Vec<ValidityStep> {
    [("2026-03-15", 200), ("2027-03-15", 100), ("2029-03-15", 47)]
        .map(|(from, max_days)| ValidityStep {
            from: from.into(),
            max_days,
        })
        .to_vec()
}

/// The most a profile may backdate notBefore: 48 hours (TLS BR section 7.1.2.7).
pub const MAX_BACKDATE_SECS: u32 = 48 * 3600;

/// How an RSA CA key signs a profile's certificates (`[profiles.NAME] rsa_signature`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RsaSignature {
    /// sha256WithRSAEncryption (RSASSA-PKCS1-v1_5, RFC 8017 section 8.2).
    #[default]
    Pkcs1,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt (RFC 4055 section 3.1).
    Pss,
}

impl RsaSignature {
    /// Whether this is the default, PKCS#1 v1.5.
    pub fn is_pkcs1(&self) -> bool {
        *self == RsaSignature::Pkcs1
    }

    /// The scheme a CA key whose own scheme is `key_scheme` signs with: RSASSA-PSS for
    /// `Pss`, else the key's own.
    pub fn scheme(self, key_scheme: keys::SignatureScheme) -> keys::SignatureScheme {
        match self {
            RsaSignature::Pss => keys::SignatureScheme::RsaPssSha256,
            RsaSignature::Pkcs1 => key_scheme,
        }
    }
}

/// One certificate profile, as configured.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Profile {
    /// The standard the profile claims; its rules are checked when the profile loads.
    pub standard: Standard,
    /// Subject key types allowed: `ec-p256`, `ec-p384`, `ed25519`, `rsa-BITS` (BITS from 2048
    /// to 8192: `rsa-2048`, `rsa-3072`, `rsa-4096`, ...). Any other name fails loading.
    pub key_types: Vec<SubjectKeyType>,
    /// Longest validity a request may ask for, in days.
    pub max_validity_days: u32,
    /// Lower limits from given dates on (a standard's shrinking maximum); the smallest limit
    /// in force applies.
    pub validity_schedule: Vec<ValidityStep>,
    /// Validity when the request names none, in days (capped by the limit in force).
    pub default_validity_days: u32,
    /// How many seconds notBefore lies before the moment of issuance, for relying parties'
    /// clock skew; the validity counts from it. At most 48 hours.
    pub backdate_secs: u32,
    /// Key usage bits of issued certificates (the extension is marked critical).
    pub key_usage: Vec<KeyUsage>,
    /// Extended key usages of issued certificates.
    pub extended_key_usage: Vec<ExtendedKeyUsage>,
    /// certificatePolicies, after the OID of the claimed standard (which the CA writes
    /// itself).
    pub certificate_policies: Vec<PolicyConfig>,
    /// Whether certificates carry a subjectKeyIdentifier (RFC 5280 section 4.2.1.2; the TLS
    /// BR do not recommend it in subscriber certificates).
    pub subject_key_identifier: bool,
    /// Whether certificates carry authorityInfoAccess with the CA's OCSP and issuer URLs.
    pub authority_info_access: bool,
    /// Whether certificates carry cRLDistributionPoints with the CA's CRL URLs.
    pub crl_distribution_points: bool,
    /// qcStatements (ETSI EN 319 412-5), for EU qualified certificates.
    pub qc_statements: Option<QcStatementsConfig>,
    /// Extensions fixed by the operator, written after the CA's own.
    pub extra_extensions: Vec<ExtraExtension>,
    /// How many days after expiry a certificate of this profile may still be renewed.
    pub renewal_grace_days: u32,
    /// RSA keys must have the public exponent 65537 (F4), as the CA/Browser Forum Baseline
    /// Requirements section 6.1.6 recommend; off, any odd exponent of at least 3 is allowed.
    pub rsa_require_f4: bool,
    /// How an RSA CA key signs this profile's certificates: PKCS#1 v1.5 (`"pkcs1"`, the
    /// default) or RSASSA-PSS with SHA-256 (`"pss"`, RFC 4055). A CA key that is not RSA
    /// refuses `"pss"` at start. CRLs and OCSP answers keep the key's PKCS#1 v1.5.
    #[serde(skip_serializing_if = "RsaSignature::is_pkcs1")]
    pub rsa_signature: RsaSignature,
    /// Subject rules.
    pub subject: SubjectRules,
    /// SAN rules.
    pub san: SanRules,
    /// `[profiles.NAME.ca]`: the profile issues subordinate CA certificates with these
    /// constraints ([`crate::ca_profile`]), which only a `ca-admin` token may request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaRules>,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            standard: Standard::Rfc5280,
            key_types: default_key_types(),
            max_validity_days: 397,
            validity_schedule: Vec::new(),
            default_validity_days: 90,
            backdate_secs: 60,
            key_usage: vec![KeyUsage::DigitalSignature],
            extended_key_usage: Vec::new(),
            certificate_policies: Vec::new(),
            subject_key_identifier: true,
            authority_info_access: true,
            crl_distribution_points: true,
            qc_statements: None,
            extra_extensions: Vec::new(),
            renewal_grace_days: 0,
            rsa_require_f4: true,
            rsa_signature: RsaSignature::Pkcs1,
            subject: SubjectRules::default(),
            san: SanRules::default(),
            ca: None,
        }
    }
}

/// Identity data the RA asserts in the request body, having verified it: subject attributes
/// (a person's givenName and surname, a national serialNumber) and SANs (otherNames such as
/// a CPF) that a CSR must not dictate. Renewals and enrolments give their whole subject and
/// SANs this way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// Subject attributes; each replaces the CSR's attribute of the same type.
    pub subject: Vec<SubjectAttribute>,
    /// SANs added to the CSR's.
    pub sans: Vec<San>,
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
    /// How the subject was validated, where the standard tells kinds apart.
    pub validation: Validation,
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

/// The subject attributes of the built-in `personal` profile, in their order: what the
/// S/MIME BR (7.1.4.2.2, strict) allow an individual-validated certificate.
const SMIME_SUBJECT: [&str; 8] = [
    "C",
    "ST",
    "L",
    "GN",
    "SN",
    "pseudonym",
    "serialNumber",
    "CN",
];

/// The key types the CA/Browser Forum allow (TLS BR section 6.1.5, S/MIME BR section
/// 6.1.5): RSA and ECDSA P-256/P-384, no Ed25519.
fn cabf_key_types() -> Vec<SubjectKeyType> {
    vec![
        SubjectKeyType::EcP256,
        SubjectKeyType::EcP384,
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

    /// The longest validity allowed at Unix time `now`: `max_validity_days`, or less where a
    /// step of `validity_schedule` in force says so.
    pub fn max_validity_days_at(&self, now: i64) -> u32 {
        self.validity_schedule
            .iter()
            .filter(|step| step.starts_at().is_some_and(|t| t <= now))
            .map(|step| step.max_days)
            .fold(self.max_validity_days, u32::min)
    }

    /// The profiles shipped with the CA, each conforming to the standard it names:
    /// - `tls-server`: CA/Browser Forum TLS BR, domain-validated subscriber certificate
    ///   (2.23.140.1.2.1); no Ed25519; no CN unless it is one of the SANs; no SKI; the
    ///   BR's validity schedule; only public names (`san.public_only`: no internal names or
    ///   reserved IP addresses).
    /// - `tls-client`: RFC 5280, clientAuth only.
    /// - `personal`: CA/Browser Forum S/MIME BR, strict generation, mailbox-validated
    ///   (2.23.140.1.5.1.3) or, with a personal name or pseudonym asserted by the RA,
    ///   individual-validated (2.23.140.1.5.4.3); an e-mail SAN is required.
    pub fn builtin() -> BTreeMap<String, Profile> {
        let tls_server = Profile {
            standard: Standard::CabfServerauthDv,
            key_types: cabf_key_types(),
            max_validity_days: 397,
            validity_schedule: tls_br_validity_schedule(),
            subject_key_identifier: false,
            extended_key_usage: vec![ExtendedKeyUsage::ServerAuth],
            subject: SubjectRules {
                allowed: vec!["CN".into()],
                cn_must_be_san: true,
                ..SubjectRules::default()
            },
            san: SanRules {
                required: true,
                dns: true,
                wildcards: true,
                ip: true,
                public_only: true,
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
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let personal = Profile {
            standard: Standard::CabfSmimeStrict,
            key_types: cabf_key_types(),
            max_validity_days: 825,
            default_validity_days: 365,
            key_usage: vec![KeyUsage::DigitalSignature, KeyUsage::NonRepudiation],
            extended_key_usage: vec![ExtendedKeyUsage::EmailProtection],
            renewal_grace_days: 30,
            subject: SubjectRules {
                allowed: names(&SMIME_SUBJECT),
                from_request: names(&["GN", "SN", "pseudonym", "serialNumber"]),
                order: names(&SMIME_SUBJECT),
                cn_sources: vec![CnSource::Email, CnSource::PersonalName, CnSource::Pseudonym],
                ..SubjectRules::default()
            },
            san: SanRules {
                required: true,
                email: true,
                email_required: true,
                max: 10,
                ..SanRules::default()
            },
            ..Profile::default()
        };
        BTreeMap::from([
            ("tls-server".to_string(), tls_server),
            ("tls-client".to_string(), tls_client),
            ("personal".to_string(), personal),
        ])
    }

    /// Checks that the profile itself is coherent; the error names the first fault. (Its
    /// conformance to the standard it claims is [`crate::conformance::check`]'s.)
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
        if self.backdate_secs > MAX_BACKDATE_SECS {
            return Err(ProfileError::Backdate { profile: profile() });
        }
        if let Some(step) = self
            .validity_schedule
            .iter()
            .find(|s| s.starts_at().is_none() || s.max_days == 0)
        {
            return Err(ProfileError::ValiditySchedule {
                profile: profile(),
                from: step.from.clone(),
            });
        }
        let rules = &self.subject;
        for (setting, list) in [
            ("allowed", &rules.allowed),
            ("required", &rules.required),
            ("from_request", &rules.from_request),
            ("order", &rules.order),
            ("printable", &rules.printable),
        ] {
            if let Some(a) = list
                .iter()
                .find(|a| AttributeKind::from_short_name(a).is_none())
            {
                return Err(ProfileError::UnknownSubjectAttribute {
                    profile: profile(),
                    setting,
                    attribute: a.clone(),
                });
            }
        }
        for rule in &self.san.other_names {
            if der::asn1::ObjectIdentifier::new(&rule.oid).is_err() {
                return Err(ProfileError::Policy {
                    profile: profile(),
                    source: Box::new(PolicyError::Oid(rule.oid.clone())),
                });
            }
        }
        if let Some(ca) = &self.ca {
            ca.check().map_err(|source| ProfileError::Ca {
                profile: profile(),
                source: Box::new(source),
            })?;
        }
        Ok(())
    }

    /// Checks a verified CSR, the RA's identity data and the requested validity against
    /// this profile at Unix time `now`, and merges them into what the certificate says.
    pub fn validate(
        &self,
        name: &str,
        csr: VerifiedCsr,
        identity: &Identity,
        validity_days: Option<u32>,
        now: i64,
    ) -> Result<ValidatedRequest, CaError> {
        if !self.key_types.contains(&csr.key.key_type) {
            return Err(CaError::KeyTypeNotAllowed {
                key: csr.key.key_type.name(),
                profile: format!("profile {name}"),
                allowed: self.allowed_key_types(),
            });
        }
        self.check_key(name, &csr.key)?;
        let validity_days = self.validity(name, validity_days, now)?;
        let (subject, sans) = self.merge(csr.subject, csr.sans, identity)?;
        self.check_sans(name, &sans)?;
        self.check_subject(&subject, &sans)?;
        Ok(ValidatedRequest {
            validation: self.validation(&subject),
            subject,
            sans,
            key: csr.key,
            validity_days,
        })
    }

    /// The validity a request gets: the one asked for, or the profile's default capped by
    /// the limit in force at `now`.
    pub fn validity(&self, name: &str, requested: Option<u32>, now: i64) -> Result<u32, CaError> {
        let max = self.max_validity_days_at(now);
        let days = requested.unwrap_or(self.default_validity_days.min(max));
        if days == 0 || days > max {
            return Err(CaError::ValidityNotAllowed {
                requested: days,
                profile: name.to_string(),
                max,
            });
        }
        Ok(days)
    }

    /// The CSR's names with the RA's identity data over them: identity attributes replace
    /// the CSR's of the same type, identity SANs follow the CSR's, and the profile's `order`
    /// sorts the subject. A CSR may not carry what only the RA asserts (`from_request`
    /// attributes, otherNames).
    fn merge(
        &self,
        mut subject: Vec<SubjectAttribute>,
        mut sans: Vec<San>,
        identity: &Identity,
    ) -> Result<(Vec<SubjectAttribute>, Vec<San>), CaError> {
        if let Some(attr) = subject
            .iter()
            .find(|a| listed(&self.subject.from_request, a.kind))
        {
            return Err(CaError::SubjectNotAllowed(format!(
                "{} is identity data the RA asserts in the request (identity.subject), not \
                 the CSR",
                attr.kind.short_name()
            )));
        }
        if let Some(san) = sans.iter().find(|s| matches!(s, San::OtherName(_))) {
            return Err(CaError::SanNotAllowed(format!(
                "{san} (an otherName comes from the RA's request, identity.sans, never from \
                 a CSR)"
            )));
        }
        // An identity attribute replaces the CSR's of its type; repeated ones stay repeated,
        // for the subject check to refuse.
        let from_csr = subject.len();
        for attr in &identity.subject {
            match subject[..from_csr].iter_mut().find(|a| a.kind == attr.kind) {
                Some(existing) => existing.value.clone_from(&attr.value),
                None => subject.push(attr.clone()),
            }
        }
        for san in &identity.sans {
            if !sans.contains(san) {
                sans.push(san.clone());
            }
        }
        if !self.subject.order.is_empty() {
            let position = |a: &SubjectAttribute| {
                self.subject
                    .order
                    .iter()
                    .position(|o| AttributeKind::from_short_name(o) == Some(a.kind))
                    .unwrap_or(usize::MAX)
            };
            subject.sort_by_key(position);
        }
        for san in &mut sans {
            if let San::OtherName(other) = san {
                let rule = self
                    .san
                    .other_names
                    .iter()
                    .find(|r| r.matches(other))
                    .ok_or_else(|| {
                        CaError::SanNotAllowed(format!(
                            "otherName {} (the profile allows no otherName of this type)",
                            other.type_id
                        ))
                    })?;
                if let Some(why) = rule.problem(&other.value) {
                    return Err(CaError::SanNotAllowed(format!(
                        "otherName {}: {why}",
                        other.type_id
                    )));
                }
                other.encoding = rule.encoding;
            }
        }
        Ok((subject, sans))
    }

    /// How `subject` was validated, as the profile's standard tells kinds apart.
    fn validation(&self, subject: &[SubjectAttribute]) -> Validation {
        let personal = subject.iter().any(|a| {
            matches!(
                a.kind,
                AttributeKind::GivenName | AttributeKind::Surname | AttributeKind::Pseudonym
            )
        });
        if self.standard == Standard::CabfSmimeStrict && personal {
            Validation::Individual
        } else {
            Validation::Basic
        }
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

    /// Checks an enrolment's subject and SANs, which come from the RA rather than from a
    /// CSR, and returns them as a certificate would carry them (ordered, otherNames typed).
    pub fn check_names(&self, name: &str, identity: &Identity) -> Result<Identity, CaError> {
        let (subject, sans) = self.merge(Vec::new(), Vec::new(), identity)?;
        self.check_sans(name, &sans)?;
        self.check_subject(&subject, &sans)?;
        Ok(Identity { subject, sans })
    }

    fn check_subject(&self, subject: &[SubjectAttribute], sans: &[San]) -> Result<(), CaError> {
        let rules = &self.subject;
        let mut seen = HashSet::new();
        for attr in subject {
            let short = attr.kind.short_name();
            if !listed(&rules.allowed, attr.kind) {
                return Err(CaError::SubjectNotAllowed(format!(
                    "attribute {short} is not allowed by this profile"
                )));
            }
            if !seen.insert(attr.kind) {
                return Err(CaError::SubjectNotAllowed(format!(
                    "attribute {short} appears more than once"
                )));
            }
            check_attribute_value(attr, listed(&rules.printable, attr.kind))?;
        }
        if let Some(missing) = rules.required.iter().find(|r| {
            !subject
                .iter()
                .any(|a| a.kind.short_name().eq_ignore_ascii_case(r))
        }) {
            return Err(CaError::SubjectNotAllowed(format!(
                "this profile requires the attribute {missing}"
            )));
        }
        if self.standard == Standard::CabfSmimeStrict
            && self.validation(subject) == Validation::Basic
        {
            if let Some(attr) = subject.iter().find(|a| {
                !matches!(
                    a.kind,
                    AttributeKind::CommonName | AttributeKind::SerialNumber
                )
            }) {
                return Err(CaError::SubjectNotAllowed(format!(
                    "attribute {} needs an individual-validated certificate: give givenName, \
                     surname or pseudonym in identity.subject (a mailbox-validated \
                     certificate carries only CN and serialNumber, S/MIME BR 7.1.4.2.2)",
                    attr.kind.short_name()
                )));
            }
        }
        let has = |kind| subject.iter().any(|a| a.kind == kind);
        if self.standard == Standard::EtsiQcpNQscd
            && has(AttributeKind::Pseudonym)
            && has(AttributeKind::GivenName)
            && has(AttributeKind::Surname)
        {
            return Err(CaError::SubjectNotAllowed(
                "a pseudonym with both givenName and surname (ETSI EN 319 412-2 NAT-4.2.4-4: \
                 the pseudonym or the name)"
                    .into(),
            ));
        }
        let cn = subject.iter().find(|a| a.kind == AttributeKind::CommonName);
        let mut sources = rules.cn_sources.clone();
        if rules.cn_must_be_san && !sources.contains(&CnSource::San) {
            sources.push(CnSource::San);
        }
        match cn {
            None if rules.require_cn => Err(CaError::SubjectNotAllowed(
                "this profile requires a commonName (CN)".into(),
            )),
            None if subject.is_empty() && sans.is_empty() => Err(CaError::SubjectNotAllowed(
                "a certificate needs a subject or a subject alternative name".into(),
            )),
            Some(cn)
                if !sources.is_empty()
                    && !sources
                        .iter()
                        .any(|s| cn_from(*s, &cn.value, subject, sans)) =>
            {
                let names: Vec<&str> = sources.iter().map(|s| s.describe()).collect();
                Err(CaError::SubjectNotAllowed(format!(
                    "commonName {:?} must repeat {}",
                    cn.value,
                    names.join(" or ")
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
        if self.san.email_required && !sans.iter().any(|s| matches!(s, San::Email(_))) {
            return Err(CaError::SanNotAllowed(format!(
                "(profile {name} requires an e-mail address among the SANs)"
            )));
        }
        if let Some(rule) = self.san.other_names.iter().find(|r| {
            r.required
                && !sans
                    .iter()
                    .any(|s| matches!(s, San::OtherName(o) if r.matches(o)))
        }) {
            return Err(CaError::SanNotAllowed(format!(
                "(profile {name} requires the otherName {} in identity.sans)",
                rule.oid
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
            San::Ip(ip) if self.san.public_only && is_reserved_ip(*ip) => Some(
                "a reserved IP address, which a publicly trusted certificate may not name \
                 (TLS BR 7.1.2.7.12)"
                    .into(),
            ),
            San::Ip(_) => None,
            San::Email(_) if !self.san.email => {
                Some("the profile allows no e-mail addresses".into())
            }
            San::Email(addr) => email_problem(addr).and_then(|why| syntax("e-mail address", why)),
            San::Uri(_) if !self.san.uri => Some("the profile allows no URIs".into()),
            San::Uri(uri) => uri_problem(uri).and_then(|why| syntax("URI", why)),
            San::OtherName(o) if !self.san.other_names.iter().any(|r| r.matches(o)) => {
                Some("the profile allows no otherName of this type".into())
            }
            San::OtherName(_) => None,
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
            San::Ip(_) | San::Uri(_) | San::OtherName(_) | San::Other(_) => return Ok(()),
        };
        let domain = domain.to_ascii_lowercase();
        if wildcard && is_public_suffix(&domain) {
            return Err(CaError::SanNotAllowed(format!(
                "{san} (wildcard on a public suffix: *.{domain})"
            )));
        }
        if self.san.public_only && matches!(san, San::Dns(_)) && !under_public_suffix(&domain) {
            return Err(CaError::SanNotAllowed(format!(
                "{san} (an internal name: its suffix is not on the Public Suffix List, and a \
                 publicly trusted certificate names only public domains, TLS BR 7.1.2.7.12)"
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

/// Whether `domain` (lower case) lies under a suffix of the Public Suffix List (ICANN or
/// private section) and is not that suffix itself: a name that can be registered publicly.
fn under_public_suffix(domain: &str) -> bool {
    psl::suffix(domain.as_bytes())
        .is_some_and(|s| s.is_known() && s.as_bytes().len() < domain.len())
}

/// Whether `ip` lies in one of IANA's special-purpose address registries (RFC 6890 and its
/// updates): addresses no publicly trusted certificate may name.
pub fn is_reserved_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            a == 0
                || a == 10
                || a == 127
                || a >= 224
                || (a == 100 && (64..128).contains(&b))
                || (a == 169 && b == 254)
                || (a == 172 && (16..32).contains(&b))
                || (a == 192 && b == 0 && (c == 0 || c == 2))
                || (a == 192 && b == 88 && c == 99)
                || (a == 192 && b == 168)
                || (a == 198 && (18..20).contains(&b))
                || (a == 198 && b == 51 && c == 100)
                || (a == 203 && b == 0 && c == 113)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_unspecified()
                || v6.is_loopback()
                || v6.to_ipv4_mapped().is_some()
                || (s[0] == 0x0064 && s[1] == 0xff9b)
                || (s[0] == 0x0100 && s[1..4] == [0, 0, 0])
                || (s[0] == 0x2001 && s[1] < 0x0200)
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || s[0] == 0x2002
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xff00) == 0xff00
        }
    }
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

/// Whether `short` (a profile's list of attribute short names) names `kind`.
fn listed(short: &[String], kind: AttributeKind) -> bool {
    short
        .iter()
        .any(|a| a.eq_ignore_ascii_case(kind.short_name()))
}

impl CnSource {
    fn describe(self) -> &'static str {
        match self {
            CnSource::San => "a DNS or IP subject alternative name",
            CnSource::Email => "an e-mail subject alternative name",
            CnSource::PersonalName => "the givenName and/or surname",
            CnSource::Pseudonym => "the pseudonym",
        }
    }
}

/// Whether the commonName `cn` comes from `source` in this subject and these SANs.
fn cn_from(source: CnSource, cn: &str, subject: &[SubjectAttribute], sans: &[San]) -> bool {
    let attr = |kind| {
        subject
            .iter()
            .find(|a| a.kind == kind)
            .map(|a| a.value.as_str())
    };
    match source {
        CnSource::San => sans.iter().any(|s| match s {
            San::Dns(d) => d.eq_ignore_ascii_case(cn),
            San::Ip(ip) => cn.parse::<IpAddr>().is_ok_and(|c| c == *ip),
            _ => false,
        }),
        CnSource::Email => sans.iter().any(|s| matches!(s, San::Email(e) if e == cn)),
        CnSource::PersonalName => {
            match (attr(AttributeKind::GivenName), attr(AttributeKind::Surname)) {
                (Some(g), Some(s)) => cn == format!("{g} {s}") || cn == format!("{s} {g}"),
                (Some(one), None) | (None, Some(one)) => cn == one,
                (None, None) => false,
            }
        }
        CnSource::Pseudonym => attr(AttributeKind::Pseudonym) == Some(cn),
    }
}

/// Why `uri` is not an absolute URI this CA certifies (RFC 5280 section 4.2.1.6: a scheme,
/// then a scheme-specific part, ASCII without spaces); `None` when it is one.
fn uri_problem(uri: &str) -> Option<&'static str> {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Some("no scheme");
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return Some("a malformed scheme");
    }
    if rest.is_empty() || uri.len() > 2048 {
        return Some("an empty or overlong URI");
    }
    if !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return Some("a character other than printable ASCII");
    }
    None
}

fn check_attribute_value(attr: &SubjectAttribute, printable_required: bool) -> Result<(), CaError> {
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
        AttributeKind::OrganizationIdentifier if !organization_identifier_ok(v) => {
            Err(CaError::SubjectNotAllowed(
                "organizationIdentifier must be a 3-letter type, a 2-letter country, a hyphen \
                 and the identifier (ETSI EN 319 412-1 section 5.1.4: VATBE-0123456789)"
                    .into(),
            ))
        }
        _ if printable_required && !v.chars().all(printable) => Err(CaError::SubjectNotAllowed(
            format!("{short} must be a PrintableString in this profile"),
        )),
        _ => Ok(()),
    }
}

/// The semantics identifier of ETSI EN 319 412-1 section 5.1.4: `VAT`, `NTR`, `PSD`, `LEI`
/// or a national type of three upper-case letters, a country code, `-`, the identifier.
fn organization_identifier_ok(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() > 6 && b[..5].iter().all(u8::is_ascii_uppercase) && b[5] == b'-'
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

    /// 2026-12-03: the TLS BR allow 200 days.
    const NOW: i64 = 1_796_256_000;

    fn validate(
        p: &Profile,
        name: &str,
        csr: VerifiedCsr,
        days: Option<u32>,
    ) -> Result<ValidatedRequest, CaError> {
        p.validate(name, csr, &Identity::default(), days, NOW)
    }

    fn identity(subject: &[SubjectAttribute], sans: &[San]) -> Identity {
        Identity {
            subject: subject.to_vec(),
            sans: sans.to_vec(),
        }
    }

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
        let ok = validate(
            p,
            "tls-server",
            csr(
                &[(AttributeKind::CommonName, "a.example.com")],
                vec![dns("a.example.com")],
            ),
            Some(30),
        );
        assert_eq!(ok.unwrap().validity_days, 30);
        let err = |c, v| validate(p, "tls-server", c, v).unwrap_err().code();
        assert_eq!(err(csr(&[], vec![]), None), "san_required");
        assert_eq!(
            err(csr(&[], vec![dns("bad_name.example.com")]), None),
            "san_not_allowed"
        );
        assert_eq!(
            err(csr(&[], vec![dns("localhost")]), None),
            "san_not_allowed"
        );
        // Only public names (san.public_only): no internal names, no reserved addresses.
        for internal in ["a.example", "host.internal"] {
            assert_eq!(err(csr(&[], vec![dns(internal)]), None), "san_not_allowed");
        }
        assert_eq!(
            err(csr(&[], vec![San::Ip("10.0.0.1".parse().unwrap())]), None),
            "san_not_allowed"
        );
        assert_eq!(
            err(csr(&[], vec![San::Email("a@b.example".into())]), None),
            "san_not_allowed"
        );
        assert_eq!(
            err(
                csr(
                    &[(AttributeKind::CommonName, "b.example.com")],
                    vec![dns("a.example.com")]
                ),
                None
            ),
            "subject_not_allowed"
        );
        assert_eq!(
            err(csr(&[], vec![dns("a.example.com")]), Some(398)),
            "validity_not_allowed"
        );
        assert_eq!(
            err(csr(&[], vec![dns("a.example.com")]), Some(0)),
            "validity_not_allowed"
        );
        assert_eq!(
            err(
                csr(
                    &[(AttributeKind::Country, "Brazil")],
                    vec![dns("a.example.com")]
                ),
                None
            ),
            "subject_not_allowed"
        );
    }

    #[test]
    fn identity_data_comes_from_the_request_and_is_ordered() {
        let p = &Profile::builtin()["personal"];
        let email = San::Email("maria@example.com".into());
        let attr = |kind, value: &str| SubjectAttribute {
            kind,
            value: value.into(),
        };
        let identity = Identity {
            subject: vec![
                attr(AttributeKind::Surname, "Silva"),
                attr(AttributeKind::GivenName, "Maria"),
            ],
            sans: Vec::new(),
        };
        let v = p
            .validate(
                "personal",
                csr(
                    &[(AttributeKind::CommonName, "Maria Silva")],
                    vec![email.clone()],
                ),
                &identity,
                None,
                NOW,
            )
            .unwrap();
        let kinds: Vec<AttributeKind> = v.subject.iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            [
                AttributeKind::GivenName,
                AttributeKind::Surname,
                AttributeKind::CommonName
            ]
        );
        assert_eq!(v.validation, Validation::Individual);
        // A CSR may not assert what only the RA verifies.
        let e = p
            .validate(
                "personal",
                csr(&[(AttributeKind::GivenName, "Maria")], vec![email.clone()]),
                &Identity::default(),
                None,
                NOW,
            )
            .unwrap_err();
        assert!(e.to_string().contains("identity.subject"), "{e}");
        // Without a personal name: mailbox-validated, CN only the address.
        let mailbox = p
            .validate(
                "personal",
                csr(
                    &[(AttributeKind::CommonName, "maria@example.com")],
                    vec![email.clone()],
                ),
                &Identity::default(),
                None,
                NOW,
            )
            .unwrap();
        assert_eq!(mailbox.validation, Validation::Basic);
        let e = p
            .validate(
                "personal",
                csr(&[(AttributeKind::CommonName, "Maria Silva")], vec![email]),
                &Identity::default(),
                None,
                NOW,
            )
            .unwrap_err();
        assert!(e.to_string().contains("must repeat"), "{e}");
    }

    #[test]
    fn other_names_only_from_the_request_and_by_rule() {
        let mut p = Profile::builtin()["tls-client"].clone();
        p.san.other_names = vec![OtherNameRule {
            oid: "2.16.76.1.3.6".into(),
            encoding: crate::csr::OtherNameEncoding::OctetString,
            fields: vec![crate::other_name::OtherNameField {
                name: "cei".into(),
                kind: crate::other_name::FieldKind::Digits,
                length: 12,
            }],
            max_length: 255,
            required: true,
        }];
        let other = |value: &str| San::from_value(&format!("otherName:2.16.76.1.3.6:{value}"));
        let subject = &[(AttributeKind::CommonName, "Maria")];
        let with = |sans: Vec<San>| Identity {
            subject: Vec::new(),
            sans,
        };
        let v = p
            .validate(
                "c",
                csr(subject, vec![]),
                &with(vec![other("123456789012")]),
                None,
                NOW,
            )
            .unwrap();
        assert!(matches!(&v.sans[0], San::OtherName(o)
            if o.encoding == crate::csr::OtherNameEncoding::OctetString));
        let refused = |csr_sans: Vec<San>, identity: Identity| {
            p.validate("c", csr(subject, csr_sans), &identity, None, NOW)
                .unwrap_err()
                .to_string()
        };
        assert!(refused(vec![other("123456789012")], with(vec![])).contains("never from a CSR"));
        assert!(refused(vec![], with(vec![other("12345")])).contains("exactly 12"));
        assert!(refused(vec![], with(vec![])).contains("requires the otherName"));
        let unknown = San::from_value("otherName:1.2.3.4:x");
        assert!(
            refused(vec![], with(vec![other("123456789012"), unknown])).contains("no otherName")
        );
    }

    #[test]
    fn validity_follows_the_schedule_in_force() {
        let p = &Profile::builtin()["tls-server"];
        let at = |date: &str| {
            ValidityStep {
                from: date.into(),
                max_days: 1,
            }
            .starts_at()
            .unwrap()
        };
        assert_eq!(p.max_validity_days_at(at("2026-03-14")), 397);
        assert_eq!(p.max_validity_days_at(at("2026-03-15")), 200);
        assert_eq!(p.max_validity_days_at(at("2027-03-15")), 100);
        assert_eq!(p.max_validity_days_at(at("2029-03-15")), 47);
        // The default (90) is capped by the limit in force.
        assert_eq!(p.validity("t", None, at("2029-03-15")).unwrap(), 47);
        assert_eq!(p.validity("t", None, NOW).unwrap(), 90);
        assert_eq!(
            p.validity("t", Some(201), NOW).unwrap_err().code(),
            "validity_not_allowed"
        );
    }

    #[test]
    fn public_only_refuses_internal_names_and_reserved_addresses() {
        let mut p = Profile::builtin()["tls-server"].clone();
        assert!(
            p.san.public_only,
            "the built-in tls-server sets public_only"
        );
        let check = |s: San| p.check_sans("p", &[s]);
        for ok in ["www.example.com", "*.example.co.uk", "a.b.github.io"] {
            check(San::Dns(ok.into())).unwrap();
        }
        for internal in [
            "a.example",
            "printer.local",
            "intranet.corp",
            "com",
            "co.uk",
        ] {
            let e = check(San::Dns(internal.into())).unwrap_err();
            assert!(e.to_string().contains("internal name"), "{internal}: {e}");
        }
        for ok in ["1.1.1.1", "2606:4700:4700::1111", "8.8.8.8"] {
            check(San::Ip(ok.parse().unwrap())).unwrap();
        }
        for reserved in [
            "10.1.2.3",
            "127.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "192.0.2.7",
            "198.51.100.1",
            "203.0.113.9",
            "100.64.0.1",
            "169.254.1.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "2001:db8::1",
            "fd00::1",
            "fe80::1",
            "::ffff:8.8.8.8",
        ] {
            let e = check(San::Ip(reserved.parse().unwrap())).unwrap_err();
            assert!(e.to_string().contains("reserved IP"), "{reserved}: {e}");
        }
        p.san.public_only = false;
        p.check_sans("p", &[San::Dns("a.example".into())]).unwrap();
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
            "*.a.example.com",
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
            let email = [San::Email("maria@example.com".into())];
            let e = p
                .check_names("personal", &identity(&subject, &email))
                .unwrap_err();
            assert_eq!(e.code(), "subject_not_allowed");
            assert!(e.to_string().contains(shown), "{shown}: {e}");
            assert!(e.to_string().contains("attribute CN"), "{e}");
        }
        let fine = [SubjectAttribute {
            kind: AttributeKind::CommonName,
            value: "Jos\u{e9} \u{5f20}\u{4f1f} \u{0645}\u{062d}\u{0645}\u{062f}".into(),
        }];
        let with_email = [San::Email("jose@example.com".into())];
        p.check_names("personal", &identity(&[], &with_email))
            .unwrap();
        let e = p
            .check_names("personal", &identity(&fine, &with_email))
            .unwrap_err();
        assert!(e.to_string().contains("must repeat"), "{e}");
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
            sans: vec![San::Dns("a.example.com".into())],
        };
        let e = validate(&p, "tls-server", request(e3.clone()), None).unwrap_err();
        assert_eq!(e.code(), "weak_key");
        assert!(e.to_string().contains("rsa_require_f4"), "{e}");
        validate(&p, "tls-server", request(rsa_key(65_537)), None).unwrap();
        p.rsa_require_f4 = false;
        validate(&p, "tls-server", request(e3), None).unwrap();
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

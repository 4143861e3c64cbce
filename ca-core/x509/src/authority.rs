//! The certificate authority: its key, its certificate chain, and the building and signing
//! of end-entity certificates per RFC 5280 section 4.
//!
//! Each profile is turned once into a DER template (key usage, extended key usage, basic
//! constraints, CRL distribution points, authority information access: [`crate::template`]);
//! issuing writes only serial, validity, subject, SANs and key. The CA's own certificates
//! (a root, an intermediate's request) are built with rcgen.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use der::Encode;
use keys::{SecureRandom, SignatureScheme, Signer};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa, KeyIdMethod,
    KeyUsagePurpose, SerialNumber, SignatureAlgorithm,
};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::ParsedExtension;

use crate::csr::{AttributeKind, SubjectAttribute};
pub use crate::der_util::signature_algorithm;
use crate::error::CaError;
use crate::profile::{Profile, ValidatedRequest};
use crate::serial::Serial;
use crate::template::{self, CertFields, CertTemplate, IssuerParts, ToBeSigned, UrlExtensions};
pub use crate::urls::Urls;

/// How far the CA's own certificates' `notBefore` is set before the moment they are made,
/// to absorb relying parties' clock skew (profiles set their own: `backdate_secs`).
pub const BACKDATE: Duration = Duration::seconds(60);

/// A certificate just signed, not yet stored.
#[derive(Clone, Debug)]
pub struct SignedCertificate {
    /// Its serial.
    pub serial: Serial,
    /// Its DER.
    pub der: Vec<u8>,
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter.
    pub not_after: OffsetDateTime,
}

/// A certificate built and waiting for the CA key's signature
/// ([`CertificateAuthority::prepare`]).
#[derive(Debug)]
pub struct PreparedCertificate {
    /// Its serial.
    pub serial: Serial,
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter.
    pub not_after: OffsetDateTime,
    /// The scheme the CA key must sign it with (its profile's, see
    /// [`crate::profile::RsaSignature`]): the one its signatureAlgorithm names.
    pub scheme: SignatureScheme,
    tbs: ToBeSigned,
}

impl PreparedCertificate {
    /// The DER of the TBSCertificate: what the CA key signs, with
    /// [`PreparedCertificate::scheme`].
    pub fn message(&self) -> &[u8] {
        self.tbs.message()
    }

    /// The signed certificate, with `signature` made by the CA key over
    /// [`PreparedCertificate::message`].
    pub fn assemble(self, signature: &[u8]) -> Result<SignedCertificate, CaError> {
        Ok(SignedCertificate {
            serial: self.serial,
            der: self.tbs.assemble(signature)?,
            not_before: self.not_before,
            not_after: self.not_after,
        })
    }
}

/// The issuing CA: key, chain and per-profile templates.
pub struct CertificateAuthority {
    chain: Vec<Vec<u8>>,
    signer: Arc<dyn Signer>,
    random: Arc<dyn SecureRandom>,
    /// The CA certificate's notAfter: no certificate it issues ends later.
    issuer_not_after: OffsetDateTime,
    templates: BTreeMap<String, ProfileTemplate>,
}

/// A profile with its certificate template, the scheme its certificates are signed with and
/// the issuer's parts for that scheme (shared by the profiles that sign alike).
struct ProfileTemplate {
    profile: Profile,
    template: CertTemplate,
    scheme: SignatureScheme,
    issuer: Arc<IssuerParts>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("profiles", &self.templates.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Builds the CA from its signing key and chain (the CA's own certificate first, then its
    /// issuers up to the root), after checking that the key matches the certificate.
    pub fn new(
        signer: Arc<dyn Signer>,
        chain: Vec<Vec<u8>>,
        profiles: &BTreeMap<String, Profile>,
        urls: &Urls,
    ) -> Result<Self, CaError> {
        let ca_der = chain
            .first()
            .ok_or_else(|| CaError::ca_material("the CA chain is empty"))?;
        let (_, ca_cert) = x509_parser::parse_x509_certificate(ca_der).map_err(|e| {
            CaError::ca_material_from("the CA certificate does not parse", e.to_string())
        })?;
        if ca_cert.tbs_certificate.subject_pki.raw != signer.spki_der() {
            return Err(CaError::ca_material(
                "the CA key does not match the CA certificate's public key",
            ));
        }
        let key_id = ca_cert
            .iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0),
                _ => None,
            })
            .ok_or_else(|| {
                CaError::ca_material("the CA certificate has no subject key identifier")
            })?;
        let issuer_not_after = ca_cert.validity().not_after.to_datetime();
        let url_extensions = UrlExtensions::new(urls)?;
        let mut issuers: HashMap<SignatureScheme, Arc<IssuerParts>> = HashMap::new();
        let mut templates = BTreeMap::new();
        for (name, profile) in profiles {
            let scheme = profile.rsa_signature.scheme(signer.scheme());
            if !signer.supports(scheme) {
                return Err(CaError::ca_material(format!(
                    "profile {name} asks for rsa_signature = \"pss\", which only an RSA CA \
                     key can make"
                )));
            }
            let issuer = match issuers.get(&scheme) {
                Some(issuer) => issuer.clone(),
                None => {
                    let algorithm = signature_algorithm(scheme)
                        .to_der()
                        .map_err(CaError::Encoding)?;
                    let subject = ca_cert.tbs_certificate.subject.as_raw();
                    let issuer = Arc::new(IssuerParts::new(algorithm, subject, key_id)?);
                    issuers.insert(scheme, issuer.clone());
                    issuer
                }
            };
            let template = CertTemplate::new(profile, &url_extensions)?;
            templates.insert(
                name.clone(),
                ProfileTemplate {
                    profile: profile.clone(),
                    template,
                    scheme,
                    issuer,
                },
            );
        }
        Ok(CertificateAuthority {
            chain,
            signer,
            random: Arc::new(keys::SystemRandom::new()),
            issuer_not_after,
            templates,
        })
    }

    /// The CA's certificate followed by its issuers up to the root, DER.
    pub fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// The CA's own certificate, DER: the first of [`CertificateAuthority::chain`], which
    /// [`CertificateAuthority::new`] refuses to build without.
    pub fn certificate(&self) -> &[u8] {
        self.chain.first().map_or(&[], Vec::as_slice)
    }

    /// The profile of that name.
    pub fn profile(&self, name: &str) -> Result<&Profile, CaError> {
        self.templates
            .get(name)
            .map(|t| &t.profile)
            .ok_or_else(|| self.unknown_profile(name))
    }

    /// The configured profile names.
    pub fn profile_names(&self) -> impl Iterator<Item = &str> {
        self.templates.keys().map(String::as_str)
    }

    /// The refusal of a profile name that is not configured, listing those that are.
    fn unknown_profile(&self, name: &str) -> CaError {
        let mut known: Vec<&str> = self.profile_names().collect();
        known.sort_unstable();
        CaError::UnknownProfile {
            profile: name.chars().take(64).collect(),
            known: known.join(", "),
        }
    }

    /// Builds the certificate `profile` issues for `req` at `now` (RFC 5280 section 4.1), up
    /// to its signature: what a signing stage hands to the CA key.
    pub fn prepare(
        &self,
        profile: &str,
        serial: Serial,
        req: &ValidatedRequest,
        now: OffsetDateTime,
    ) -> Result<PreparedCertificate, CaError> {
        let ProfileTemplate {
            profile: rules,
            template,
            scheme,
            issuer,
        } = self
            .templates
            .get(profile)
            .ok_or_else(|| self.unknown_profile(profile))?;
        let now = now.replace_nanosecond(0).unwrap_or(now);
        let not_before = now - Duration::seconds(i64::from(rules.backdate_secs));
        let not_after =
            not_before + Duration::days(i64::from(req.validity_days)) - Duration::seconds(1);
        if not_after > self.issuer_not_after {
            return Err(CaError::ValidityBeyondIssuer {
                requested: req.validity_days,
                profile: profile.to_string(),
                max: u32::try_from((self.issuer_not_after - not_before).whole_days()).unwrap_or(0),
            });
        }
        let fields = CertFields {
            serial: &serial,
            not_before: not_before.unix_timestamp(),
            not_after: not_after.unix_timestamp(),
            subject: &req.subject,
            sans: &req.sans,
            key: &req.key,
            validation: req.validation,
        };
        let tbs = template.to_be_signed(issuer, &fields)?;
        Ok(PreparedCertificate {
            serial,
            not_before,
            not_after,
            scheme: *scheme,
            tbs,
        })
    }

    /// Builds and signs in one step ([`CertificateAuthority::prepare`], then the CA key on
    /// the calling thread).
    pub fn sign(
        &self,
        profile: &str,
        serial: Serial,
        req: &ValidatedRequest,
        now: OffsetDateTime,
    ) -> Result<SignedCertificate, CaError> {
        let prepared = self.prepare(profile, serial, req, now)?;
        let signature = self
            .signer
            .sign_with(prepared.scheme, prepared.message())
            .map_err(CaError::Signing)?;
        prepared.assemble(&signature)
    }

    /// The CA's signing key.
    pub fn signer(&self) -> &Arc<dyn Signer> {
        &self.signer
    }

    /// The CA with its serials, identifiers and codes drawn from `random`: the key
    /// provider's generator ([`keys::KeyProvider::secure_random`]) rather than the
    /// operating system's, which [`CertificateAuthority::new`] uses.
    pub fn with_random(mut self, random: Arc<dyn SecureRandom>) -> Self {
        self.random = random;
        self
    }

    /// The random generator of the CA's key provider.
    pub fn random(&self) -> &Arc<dyn SecureRandom> {
        &self.random
    }
}

/// Creates a self-signed root CA certificate (RFC 5280 section 4.2.1.9: cA true; key usage
/// keyCertSign and cRLSign) for the given key and subject.
pub fn create_root(
    signer: Arc<dyn Signer>,
    subject: &[SubjectAttribute],
    validity_days: u32,
    serial: Serial,
) -> Result<Vec<u8>, CaError> {
    let mut params = ca_params(subject, validity_days, serial)?;
    params.key_identifier_method = key_identifier(signer.public_key_bits());
    let cert = params
        .self_signed(&SignerKey(signer))
        .map_err(|e| CaError::ca_material_from("building the root certificate", e))?;
    Ok(cert.der().to_vec())
}

/// Creates a PKCS#10 request for an intermediate CA key, to be signed by a parent CA.
pub fn create_intermediate_csr(
    signer: Arc<dyn Signer>,
    subject: &[SubjectAttribute],
) -> Result<Vec<u8>, CaError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(subject)?;
    let csr = params
        .serialize_request(&SignerKey(signer))
        .map_err(|e| CaError::ca_material_from("building the intermediate's request", e))?;
    Ok(csr.der().to_vec())
}

fn ca_params(
    subject: &[SubjectAttribute],
    validity_days: u32,
    serial: Serial,
) -> Result<CertificateParams, CaError> {
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(subject)?;
    params.serial_number = Some(SerialNumber::from_slice(serial.as_bytes()));
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(i64::from(validity_days));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// The key identifier of RFC 7093 section 2 method 1: the leftmost 160 bits of the SHA-256
/// of the subjectPublicKey BIT STRING's value (used for SKI, and so for the AKI of what the
/// key signs).
fn key_identifier(public_key_bits: &[u8]) -> KeyIdMethod {
    KeyIdMethod::PreSpecified(template::key_identifier(public_key_bits).to_vec())
}

/// Builds an rcgen name from checked attributes. countryName and serialNumber are
/// PrintableString (RFC 5280 appendix A.1); the rest UTF8String (RFC 5280 section 4.1.2.6).
pub(crate) fn distinguished_name(
    subject: &[SubjectAttribute],
) -> Result<DistinguishedName, CaError> {
    let mut dn = DistinguishedName::new();
    for attr in subject {
        let ty = match attr.kind {
            AttributeKind::CommonName => DnType::CommonName,
            AttributeKind::Country => DnType::CountryName,
            AttributeKind::State => DnType::StateOrProvinceName,
            AttributeKind::Locality => DnType::LocalityName,
            AttributeKind::Organization => DnType::OrganizationName,
            AttributeKind::OrganizationalUnit => DnType::OrganizationalUnitName,
            other => DnType::CustomDnType(other.oid().to_vec()),
        };
        let value = match attr.kind {
            AttributeKind::Country | AttributeKind::SerialNumber => {
                DnValue::PrintableString(attr.value.as_str().try_into().map_err(|_| {
                    CaError::SubjectNotAllowed(format!(
                        "{} must be a PrintableString",
                        attr.kind.short_name()
                    ))
                })?)
            }
            _ => DnValue::Utf8String(attr.value.clone()),
        };
        dn.push(ty, value);
    }
    Ok(dn)
}

/// The rcgen view of a CA [`Signer`].
pub(crate) struct SignerKey(pub(crate) Arc<dyn Signer>);

fn rcgen_algorithm(scheme: SignatureScheme) -> &'static SignatureAlgorithm {
    match scheme {
        SignatureScheme::EcdsaP256Sha256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        SignatureScheme::EcdsaP384Sha384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        SignatureScheme::Ed25519 => &rcgen::PKCS_ED25519,
        // A key's own scheme (never RSASSA-PSS, which only profiles ask for): the CA's own
        // certificate and request are signed with PKCS#1 v1.5.
        SignatureScheme::RsaPkcs1Sha256 | SignatureScheme::RsaPssSha256 => &rcgen::PKCS_RSA_SHA256,
    }
}

impl rcgen::PublicKeyData for SignerKey {
    fn der_bytes(&self) -> &[u8] {
        self.0.public_key_bits()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        rcgen_algorithm(self.0.scheme())
    }
}

impl rcgen::SigningKey for SignerKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0.sign(msg).map_err(|e| {
            tracing::error!(error = %e, source = ?std::error::Error::source(&e), "the CA key did not sign");
            rcgen::Error::RemoteKeyError
        })
    }
}

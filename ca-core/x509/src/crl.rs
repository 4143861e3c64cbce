//! Certificate revocation lists (RFC 5280 section 5): the encoder of full and delta CRLs,
//! built from the revocation entries a caller gives (ca-core's publisher reads them from the
//! store) and signed by the CA key.
//!
//! The revoked-certificate list is DER-encoded entry by entry into one buffer (each entry with
//! `x509-cert`'s typed `RevokedCert`), so a CRL of a million entries costs one buffer of its
//! own size rather than a million heap objects.

use std::sync::Arc;

use der::asn1::{Any, AnyRef, BitString, Ia5String, OctetString, Uint};
use der::{Decode, Encode, Sequence, Tag};
use keys::Signer;
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::pkix::crl::dp::{DistributionPoint, IssuingDistributionPoint};
use x509_cert::ext::pkix::crl::{CrlReason, FreshestCrl};
use x509_cert::ext::pkix::name::DistributionPointName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::AuthorityKeyIdentifier;
use x509_cert::ext::Extensions;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::{Certificate, Version};

use crate::der_util::{encoding, extension, generalized_time, signature_algorithm, time};
use crate::error::CaError;
use crate::oid;
use crate::revocation::DegradedEntries;
use crate::revocation::{Revocation, RevocationReason};
use crate::serial::Serial;

/// CRL settings.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrlConfig {
    /// How often the CRL is rebuilt when a revocation changed, in seconds.
    pub interval_secs: u64,
    /// nextUpdate minus thisUpdate, in hours. The CRL is also rebuilt when half of this has
    /// passed, changed or not.
    pub next_update_hours: u64,
    /// Days a revoked certificate stays on the CRL after it expired.
    pub keep_expired_days: u32,
    /// Write an issuing distribution point extension naming the CRL URL (RFC 5280 5.2.5).
    pub issuing_distribution_point: bool,
}

impl Default for CrlConfig {
    fn default() -> Self {
        CrlConfig {
            interval_secs: 60,
            next_update_hours: 24,
            keep_expired_days: 1,
            issuing_distribution_point: true,
        }
    }
}

/// One entry of a CRL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrlEntry {
    /// The revoked certificate.
    pub serial: Serial,
    /// revocationDate, Unix seconds.
    pub revoked_at: i64,
    /// The reason; `None` writes no reason code (RFC 5280 5.3.1: unspecified SHOULD be absent).
    /// In a delta CRL, `Some(RemoveFromCrl)` removes a released hold.
    pub reason: Option<EntryReason>,
    /// invalidityDate, Unix seconds.
    pub invalidity_date: Option<i64>,
}

/// A reason code as a CRL entry carries it: a revocation reason, or removeFromCRL (8) in
/// delta CRLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryReason {
    /// A revocation reason.
    Revoked(RevocationReason),
    /// removeFromCRL: a hold that ended (delta CRLs only).
    RemoveFromCrl,
}

impl CrlEntry {
    /// The entry for a stored revocation.
    pub fn from_revocation(serial: Serial, r: &Revocation) -> Self {
        CrlEntry {
            serial,
            revoked_at: r.revoked_at,
            reason: (r.reason != RevocationReason::Unspecified)
                .then_some(EntryReason::Revoked(r.reason)),
            invalidity_date: r.invalidity_date,
        }
    }
}

/// Builds and signs CRLs for one CA.
pub struct CrlBuilder {
    signer: Arc<dyn Signer>,
    issuer: Name,
    algorithm: AlgorithmIdentifierOwned,
    key_identifier: Vec<u8>,
    crl_url: Option<String>,
    degraded: DegradedEntries,
}

impl std::fmt::Debug for CrlBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrlBuilder")
            .field("crl_url", &self.crl_url)
            .finish_non_exhaustive()
    }
}

/// The TBSCertList of RFC 5280 section 5.1 with the revoked list pre-encoded.
#[derive(Sequence)]
struct TbsCrl<'a> {
    version: Version,
    signature: AlgorithmIdentifierOwned,
    issuer: Name,
    this_update: Any,
    next_update: Option<Any>,
    revoked_certificates: Option<AnyRef<'a>>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    crl_extensions: Option<Extensions>,
}

/// The CertificateList of RFC 5280 section 5.1 around an encoded TBSCertList.
#[derive(Sequence)]
struct SignedCrl<'a> {
    tbs_cert_list: AnyRef<'a>,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
}

/// One entry of revokedCertificates (RFC 5280 section 5.1.2.6). `x509-cert`'s `RevokedCert`
/// holds its time in `der`'s types, which stop at 1970; [`time`] encodes any year.
#[derive(Sequence)]
struct RevokedEntry {
    serial_number: SerialNumber,
    revocation_date: Any,
    crl_entry_extensions: Option<Extensions>,
}

impl CrlBuilder {
    /// A builder for the CA whose certificate is `ca_cert_der`; `crl_url`, when given, is
    /// written as the issuing distribution point, and `{crl_url}/delta` as the complete CRL's
    /// freshest CRL (where its deltas are).
    pub fn new(
        signer: Arc<dyn Signer>,
        ca_cert_der: &[u8],
        crl_url: Option<String>,
    ) -> Result<Self, CaError> {
        let cert = Certificate::from_der(ca_cert_der)
            .map_err(|e| CaError::ca_material_from("the CA certificate does not parse", e))?;
        let ski = cert
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == oid::ID_CE_SUBJECT_KEY_IDENTIFIER)
            .and_then(|e| OctetString::from_der(e.extn_value.as_bytes()).ok())
            .map(|o| o.as_bytes().to_vec())
            .ok_or_else(|| {
                CaError::ca_material("the CA certificate has no subject key identifier")
            })?;
        Ok(CrlBuilder {
            algorithm: signature_algorithm(signer.scheme()),
            signer,
            issuer: cert.tbs_certificate.subject,
            key_identifier: ski,
            crl_url,
            degraded: DegradedEntries::default(),
        })
    }

    /// Reports entries written without a field that cannot be encoded to `degraded` (they
    /// are logged in any case).
    pub fn with_degraded(mut self, degraded: DegradedEntries) -> Self {
        self.degraded = degraded;
        self
    }

    /// Builds and signs a complete CRL (RFC 5280 section 5) with the given number and times.
    pub fn full(
        &self,
        number: u64,
        this_update: i64,
        next_update: i64,
        entries: impl IntoIterator<Item = CrlEntry>,
    ) -> Result<Vec<u8>, CaError> {
        self.build(number, None, this_update, next_update, entries)
    }

    /// Builds and signs a delta CRL (RFC 5280 section 5.2.4) against the complete CRL
    /// numbered `base`.
    pub fn delta(
        &self,
        number: u64,
        base: u64,
        this_update: i64,
        next_update: i64,
        entries: impl IntoIterator<Item = CrlEntry>,
    ) -> Result<Vec<u8>, CaError> {
        self.build(number, Some(base), this_update, next_update, entries)
    }

    fn build(
        &self,
        number: u64,
        base: Option<u64>,
        this_update: i64,
        next_update: i64,
        entries: impl IntoIterator<Item = CrlEntry>,
    ) -> Result<Vec<u8>, CaError> {
        let this_update = time(this_update)?;
        let mut revoked = Vec::new();
        for entry in entries {
            revoked_entry(&entry, &this_update, &self.degraded)?
                .encode_to_vec(&mut revoked)
                .map_err(encoding)?;
        }
        let list = (!revoked.is_empty())
            .then(|| AnyRef::new(Tag::Sequence, &revoked))
            .transpose()
            .map_err(encoding)?;
        let tbs = TbsCrl {
            version: Version::V2,
            signature: self.algorithm.clone(),
            issuer: self.issuer.clone(),
            this_update,
            next_update: Some(time(next_update)?),
            revoked_certificates: list,
            crl_extensions: Some(self.extensions(number, base)?),
        };
        let tbs_der = tbs.to_der().map_err(encoding)?;
        drop(revoked);
        let signature = self.signer.sign(&tbs_der).map_err(CaError::Signing)?;
        SignedCrl {
            tbs_cert_list: AnyRef::from_der(&tbs_der).map_err(encoding)?,
            signature_algorithm: self.algorithm.clone(),
            signature: BitString::from_bytes(&signature).map_err(encoding)?,
        }
        .to_der()
        .map_err(encoding)
    }

    fn extensions(&self, number: u64, base: Option<u64>) -> Result<Extensions, CaError> {
        let uint = |n: u64| Uint::new(&n.to_be_bytes()).map_err(encoding);
        let aki = AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(self.key_identifier.clone()).map_err(encoding)?),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        };
        let mut exts = vec![
            extension(oid::ID_CE_AUTHORITY_KEY_IDENTIFIER, false, &aki)?,
            extension(oid::ID_CE_CRL_NUMBER, false, &uint(number)?)?,
        ];
        if let Some(base) = base {
            exts.push(extension(
                oid::ID_CE_DELTA_CRL_INDICATOR,
                true,
                &uint(base)?,
            )?);
        }
        if let Some(url) = &self.crl_url {
            let full_name = |url: &str| {
                Ia5String::new(url).map_err(encoding).map(|uri| {
                    DistributionPointName::FullName(vec![GeneralName::UniformResourceIdentifier(
                        uri,
                    )])
                })
            };
            if base.is_none() {
                // Where the deltas of this complete CRL are (RFC 5280 5.2.6).
                let freshest = FreshestCrl(vec![DistributionPoint {
                    distribution_point: Some(full_name(&format!("{url}/delta"))?),
                    reasons: None,
                    crl_issuer: None,
                }]);
                exts.push(extension(oid::ID_CE_FRESHEST_CRL, false, &freshest)?);
            }
            let idp = IssuingDistributionPoint {
                distribution_point: Some(full_name(url)?),
                only_contains_user_certs: true,
                only_contains_ca_certs: false,
                only_some_reasons: None,
                indirect_crl: false,
                only_contains_attribute_certs: false,
            };
            exts.push(extension(
                oid::ID_CE_ISSUING_DISTRIBUTION_POINT,
                true,
                &idp,
            )?);
        }
        Ok(exts)
    }
}

/// The revokedCertificates entry of `entry`. A stored time that cannot be encoded does not
/// keep the revocation off the CRL: an invalidityDate is left out, a revocationDate becomes
/// the CRL's `this_update` (the certificate was revoked by then at the latest); either is
/// reported to `degraded`.
fn revoked_entry(
    entry: &CrlEntry,
    this_update: &Any,
    degraded: &DegradedEntries,
) -> Result<RevokedEntry, CaError> {
    let mut exts = Vec::new();
    if let Some(reason) = entry.reason {
        let reason = match reason {
            EntryReason::RemoveFromCrl => CrlReason::RemoveFromCRL,
            EntryReason::Revoked(r) => crl_reason(r),
        };
        exts.push(extension(oid::ID_CE_CRL_REASONS, false, &reason)?);
    }
    if let Some(date) = entry.invalidity_date {
        match generalized_time(date) {
            Ok(t) => exts.push(extension(oid::ID_CE_INVALIDITY_DATE, false, &t)?),
            Err(e) => degraded.report(&entry.serial, "invalidity_date", &e),
        }
    }
    let revocation_date = time(entry.revoked_at).unwrap_or_else(|e| {
        degraded.report(&entry.serial, "revocation_date", &e);
        this_update.clone()
    });
    Ok(RevokedEntry {
        serial_number: SerialNumber::new(entry.serial.as_bytes()).map_err(encoding)?,
        revocation_date,
        crl_entry_extensions: (!exts.is_empty()).then_some(exts),
    })
}

fn crl_reason(r: RevocationReason) -> CrlReason {
    match r {
        RevocationReason::Unspecified => CrlReason::Unspecified,
        RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
        RevocationReason::CaCompromise => CrlReason::CaCompromise,
        RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
        RevocationReason::Superseded => CrlReason::Superseded,
        RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
        RevocationReason::CertificateHold => CrlReason::CertificateHold,
        RevocationReason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
        RevocationReason::AaCompromise => CrlReason::AaCompromise,
    }
}
